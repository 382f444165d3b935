/**
 * `synthesize(image, weather, params, seed)`: one entry point over the five weather models.
 * Every model is a pure function of (clean image, params, seed): parameters not given are drawn
 * from the model's documented range with a seeded RNG, and the resolved values are returned, so a
 * caller can log exactly what was rendered. See each file for the physics and the ranges.
 */
import type { Image } from '../image';
import { assertImage } from '../image';
import { Rng } from '../rng';
import { synthHaze, type HazeParams } from './haze';
import { synthRain, synthRainFog, type RainFogParams, type RainParams } from './rain';
import { synthSnow, type SnowParams } from './snow';
import { synthRaindrop, type RaindropParams } from './raindrop';

export type Weather = 'rain' | 'rain_fog' | 'snow' | 'raindrop' | 'haze';
export const WEATHERS: readonly Weather[] = ['rain', 'rain_fog', 'snow', 'raindrop', 'haze'];

export interface WeatherParams {
  rain: RainParams; rain_fog: RainFogParams; snow: SnowParams; raindrop: RaindropParams; haze: HazeParams;
}

export interface SynthResult {
  /** the degraded image */
  image: Image;
  weather: Weather;
  /** every parameter actually used (given or drawn) */
  params: Record<string, unknown>;
  /** H×W layer where meaningful: rain streak intensity, snow translucency z, raindrop alpha */
  mask?: Float32Array;
  /** H×W transmission t = exp(−βd) for haze and rain_fog */
  transmission?: Float32Array;
}

/** Degrades a clean image with one weather model; deterministic for a given seed. */
export function synthesize<W extends Weather>(image: Image, weather: W, params: WeatherParams[W] = {} as WeatherParams[W], seed = 0): SynthResult {
  assertImage(image, `synthesize(${weather})`);
  const rng = new Rng(seed);
  switch (weather) {
    case 'haze': { const r = synthHaze(image, params as HazeParams, rng); return { image: r.image, weather, params: r.params, transmission: r.transmission }; }
    case 'rain': { const r = synthRain(image, params as RainParams, rng); return { image: r.image, weather, params: r.params, mask: r.mask }; }
    case 'rain_fog': { const r = synthRainFog(image, params as RainFogParams, rng); return { image: r.image, weather, params: r.params, mask: r.mask, transmission: r.transmission }; }
    case 'snow': { const r = synthSnow(image, params as SnowParams, rng); return { image: r.image, weather, params: r.params, mask: r.mask }; }
    case 'raindrop': { const r = synthRaindrop(image, params as RaindropParams, rng); return { image: r.image, weather, params: r.params, mask: r.mask }; }
    default: throw new Error(`synthesize: unknown weather "${weather as string}" (expected one of ${WEATHERS.join(', ')})`);
  }
}

export type { HazeParams, RainParams, RainFogParams, SnowParams, RaindropParams };
export type { Frame } from './common';
export { darkChannel, luminance } from './common';
