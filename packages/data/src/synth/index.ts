/**
 * `synthesize(image, weather, params, seed)`: one entry point over the five weather models.
 * Every model is a pure function of (clean image, params, seed): parameters not given are drawn
 * from the model's documented range with a seeded RNG, and the resolved values are returned, so a
 * caller can log exactly what was rendered. See each file for the physics and the ranges.
 * After the weather comes the camera (camera.ts: sensor noise, then JPEG), for every weather;
 * its parameters (`noise`, `jpeg`) go in the same params object and are returned with the rest.
 * Mixtures are part of the models themselves: rain carries a distant-rain veil, snow a haze veil,
 * raindrops a wet-glass veil and glare, and rain_fog is rain under Outdoor-Rain's fog.
 */
import type { Image } from '../image';
import { assertImage } from '../image';
import { Generator } from '@mofme/tensor';
import { synthHaze, type HazeParams } from './haze';
import { synthRain, synthRainFog, type RainFogParams, type RainParams } from './rain';
import { synthSnow, type SnowParams, type SnowSize } from './snow';
import { synthRaindrop, type RaindropParams } from './raindrop';
import { synthCamera, type CameraParams } from './camera';

export type Weather = 'rain' | 'rain_fog' | 'snow' | 'raindrop' | 'haze';
export const WEATHERS: readonly Weather[] = ['rain', 'rain_fog', 'snow', 'raindrop', 'haze'];

export interface WeatherParams {
  rain: RainParams & CameraParams; rain_fog: RainFogParams & CameraParams; snow: SnowParams & CameraParams;
  raindrop: RaindropParams & CameraParams; haze: HazeParams & CameraParams;
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
  const rng = new Generator(seed);
  let r: SynthResult;
  switch (weather) {
    case 'haze': { const h = synthHaze(image, params as HazeParams, rng); r = { image: h.image, weather, params: h.params, transmission: h.transmission }; break; }
    case 'rain': { const h = synthRain(image, params as RainParams, rng); r = { image: h.image, weather, params: h.params, mask: h.mask }; break; }
    case 'rain_fog': { const h = synthRainFog(image, params as RainFogParams, rng); r = { image: h.image, weather, params: h.params, mask: h.mask, transmission: h.transmission }; break; }
    case 'snow': { const h = synthSnow(image, params as SnowParams, rng); r = { image: h.image, weather, params: h.params, mask: h.mask }; break; }
    case 'raindrop': { const h = synthRaindrop(image, params as RaindropParams, rng); r = { image: h.image, weather, params: h.params, mask: h.mask }; break; }
    default: throw new Error(`synthesize: unknown weather "${weather as string}" (expected one of ${WEATHERS.join(', ')})`);
  }
  const cam = synthCamera(r.image, params as CameraParams, rng);
  return { ...r, image: cam.image, params: { ...r.params, ...cam.params } };
}

export type { HazeParams, RainParams, RainFogParams, SnowParams, SnowSize, RaindropParams, CameraParams };
export type { Frame } from './common';
export { darkChannel, luminance } from './common';
