/**
 * Pure drawing helpers shared by the page and its test: the expert palette, the routing map as
 * RGBA pixels, and durations in words. Kept free of the DOM (ImageData aside) so that the browser
 * test can decode a drawn map back into expert indices with the same palette.
 */
import type { RoutingMap } from './engine';

/**
 * Expert colours: the first eight are Okabe & Ito's colour-blind-safe palette, in an order that
 * keeps neighbours distinct; beyond eight, evenly spaced hues.
 */
const PALETTE: readonly [number, number, number][] = [
  [230, 159, 0], [86, 180, 233], [0, 158, 115], [204, 121, 167], [0, 114, 178], [213, 94, 0], [240, 228, 66], [120, 120, 120],
];
/** patches no window routed (a dense block, or none at all) */
export const UNROUTED_RGB: readonly [number, number, number] = [34, 34, 38];

export function expertRgb(e: number): [number, number, number] {
  if (e < PALETTE.length) return [...PALETTE[e]!];
  const hue = ((e - PALETTE.length) * 137.508) % 360; // golden angle: successive hues far apart
  const f = (n: number): number => {
    const k = (n + hue / 30) % 12;
    return Math.round(255 * (0.55 - 0.45 * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

export const expertColour = (e: number): string => `rgb(${expertRgb(e).join(' ')})`;

/** One block's map as pixels: each patch a `patch` x `patch` square in its expert's colour. */
export function routingMapPixels(map: RoutingMap, block: Uint8Array): ImageData {
  const { rows, cols, patch } = map;
  const out = new ImageData(cols * patch, rows * patch);
  const width = cols * patch;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const e = block[r * cols + c]!;
      const [R, G, B] = e === 255 ? UNROUTED_RGB : expertRgb(e);
      for (let y = r * patch; y < (r + 1) * patch; y++) {
        for (let x = c * patch; x < (c + 1) * patch; x++) {
          const i = 4 * (y * width + x);
          out.data[i] = R; out.data[i + 1] = G; out.data[i + 2] = B; out.data[i + 3] = 255;
        }
      }
    }
  }
  return out;
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}
