/**
 * `--backend cpu|gpu`. The CPU backend is the default (WebAssembly SIMD kernels when available).
 * The gpu.js backend lives in `@mofme/tensor/gpu`, loaded only when asked for, because it pulls in
 * gpu.js and the native `gl` module; when it cannot start (no `gl` build, no X display) the user
 * gets one line saying why, never a silent fall-back to the CPU.
 */
import { getDefaultBackend, setDefaultBackend, type Backend } from '@mofme/tensor';
import type { MofmeConfig } from '@mofme/mofme';
import { CliError, oneLine } from './errors';

/**
 * The expert execution to use on `backend`. Sparse execution gathers a different number of tokens
 * for each expert at every step, so on a backend that compiles kernels per shape (gpu.js) it would
 * compile new shaders at every step (measured: ~100 per tiny training step, each step slower than
 * the last). Dense execution computes the same outputs with fixed shapes, so it is used there.
 */
export function executionFor<C extends Readonly<MofmeConfig>>(config: C, backend: Backend): C {
  if (!backend.compilesPerShape || config.execution !== 'sparse' || config.ffn === 'dense') return config;
  console.log(`${backend.name}: dense expert execution (same outputs as sparse; fixed shapes, so kernels compile once)`);
  return { ...config, execution: 'dense' };
}

export async function selectBackend(name: string): Promise<Backend> {
  if (name === 'cpu') return getDefaultBackend();
  if (name !== 'gpu') throw new CliError(`--backend: invalid value "${name}"; choose one of cpu, gpu`);
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
