/**
 * Anomaly detection: find the first op that produced a NaN or an infinity.
 *
 * When enabled, every op checks its output (and autograd checks every gradient) and throws an
 * error naming the op, the input shapes and the first bad index. This downloads every result, so
 * it is slow: switch it on to hunt a NaN loss, then off again.
 */
import type { Tensor } from './tensor';
import { shapeToString } from './shape';

let enabled = false;

export function setDetectAnomaly(on: boolean): void {
  enabled = on;
}

export function isAnomalyDetectionEnabled(): boolean {
  return enabled;
}

export function checkFinite(what: string, output: Tensor, inputs: readonly Tensor[] = []): void {
  const values = output.data();
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) {
      const from = inputs.length ? ` from inputs ${inputs.map((t) => `${shapeToString(t.shape)}${t.name ? ` '${t.name}'` : ''}`).join(', ')}` : '';
      throw new Error(`anomaly: ${what} produced ${v} at flat index ${i} of its ${shapeToString(output.shape)} output${from}`);
    }
  }
}
