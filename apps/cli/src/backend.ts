/**
 * `--backend cpu|gpu`. The CPU backend is the default (WebAssembly SIMD kernels when available).
 * The gpu.js backend lives in `@mofme/tensor/gpu`, loaded only when asked for, because it pulls in
 * gpu.js and the native `gl` module; when it cannot start (no `gl` build, no X display) the user
 * gets one line saying why, never a silent fall-back to the CPU.
 */
import { getDefaultBackend, setDefaultBackend, type Backend } from '@mofme/tensor';
import { CliError, oneLine } from './errors';
import type { BACKENDS } from './options';

/** Make the options' `backend` the default backend of every tensor made from here on (the table of
 *  options.ts has checked the name). The model picks its own way of running on it (dense expert
 *  execution where the backend compiles per shape: blocks.ts). */
export async function selectBackend(options: { backend: (typeof BACKENDS)[number] }): Promise<Backend> {
  if (options.backend === 'cpu') return getDefaultBackend();
  const specifier = '@mofme/tensor/gpu'; // a variable: typecheck must not depend on the optional entry point
  let mod: { createGpuBackend: (o: { mode: string }) => Backend };
  try {
    mod = (await import(specifier)) as typeof mod;
  } catch (e) {
    throw new CliError(`--backend gpu is not available: cannot load ${specifier} (${oneLine(e)})`);
  }
  try {
    const gpu = mod.createGpuBackend({ mode: 'auto' });
    setDefaultBackend(gpu);
    // say what "gpu" turned out to be (WebGPU or headless GL, a real GPU or a software renderer)
    console.log(`backend: ${gpu.describe()}`);
    return gpu;
  } catch (e) {
    throw new CliError(`--backend gpu is not available: ${oneLine(e)}`);
  }
}
