/**
 * assertAllClose: compare two arrays of numbers elementwise with |a - e| <= atol + rtol * |e|.
 *
 * On failure the error names the worst element (by how far it exceeds its tolerance), its index,
 * and shows the first few values side by side, like llm.c's "poor man's tensor checker", so a
 * person can see at a glance whether everything is off or one element.
 */
export interface CloseOptions {
  atol?: number;
  rtol?: number;
  /** what is being compared, for the message */
  label?: string;
}

export function allCloseReport(actual: ArrayLike<number>, expected: ArrayLike<number>, options: CloseOptions = {}): string | null {
  const { atol = 1e-6, rtol = 1e-5, label = 'values' } = options;
  if (actual.length !== expected.length) return `${label}: length ${actual.length} != expected length ${expected.length}`;
  let worst = -1, worstExcess = 0, bad = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (a === e) continue; // also equal infinities
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0)) {
      bad++;
      if (worst < 0 || !(excess <= worstExcess)) { worst = i; worstExcess = excess; }
    }
  }
  if (worst < 0) return null;
  const show = (i: number): string => `  [${i}] ${fmt(actual[i]!)} vs ${fmt(expected[i]!)}${i === worst ? '   <- worst' : ''}`;
  const rows = [...new Set([0, 1, 2, 3, 4, worst].filter((i) => i < actual.length))].map(show);
  return `${label}: ${bad} of ${actual.length} elements differ (atol ${atol}, rtol ${rtol}); worst at index ${worst}: ` +
    `actual ${fmt(actual[worst]!)}, expected ${fmt(expected[worst]!)}, |diff| ${fmt(Math.abs(actual[worst]! - expected[worst]!))}\n  actual vs expected:\n${rows.join('\n')}`;
}

export function assertAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, options: CloseOptions = {}): void {
  const report = allCloseReport(actual, expected, options);
  if (report !== null) throw new Error(report);
}

function fmt(v: number): string {
  return Number.isFinite(v) ? (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-4 && v !== 0) ? v.toExponential(6) : v.toFixed(8)) : String(v);
}
