/**
 * `--backend cpu|gpu`, whole: its row in the table of options.ts (the choices, the default and why),
 * and its effect, `selectBackend`, which train, eval, restore and demo call with their options.
 * The CPU backend is the default (WebAssembly SIMD kernels when available). The gpu.js backend is
 * loaded by @mofme/tensor's `useBackend('gpu')` only when asked for, because it pulls in gpu.js and
 * the native `gl` module; when it cannot start (no `gl` build, no X display, no WebGPU adapter) the
 * user gets one line saying why, never a silent fall-back to the CPU.
 *
 * This module is imported by options.ts, which `mofme --help` loads: it names the tensor engine only
 * in types and loads it when a command selects its backend.
 */
import type { Backend, BackendName } from '@mofme/tensor';
import { CliError, oneLine } from './errors';

/** The `--backend` row of options.ts's table (its value is checked there, as every choice row's).
 *  Default cpu: it needs no GPU, no driver and no display. */
export const BACKEND_OPTION = {
  arg: 'name',
  help: 'tensor backend: cpu, or gpu (gpu.js: WebGPU or headless GL, whichever starts; no fall-back to the CPU)',
  value: { kind: 'choice', choices: ['cpu', 'gpu'] },
  default: 'cpu',
} as const satisfies { arg: string; help: string; value: { kind: 'choice'; choices: readonly BackendName[] }; default: BackendName };

/** Make the options' `backend` the default backend of every tensor made from here on. The model
 *  picks its own way of running on it (dense expert execution where the backend compiles per
 *  shape: blocks.ts). */
export async function selectBackend(options: { backend: (typeof BACKEND_OPTION.value.choices)[number] }): Promise<Backend> {
  const { useBackend } = await import('@mofme/tensor');
  let backend: Backend;
  try {
    backend = await useBackend(options.backend);
  } catch (e) {
    throw new CliError(`--backend ${options.backend} is not available: ${oneLine(e)}`);
  }
  // say what "gpu" turned out to be (WebGPU or headless GL, a real GPU or a software renderer)
  if (options.backend === 'gpu') console.log(`backend: ${backend.describe()}`);
  return backend;
}
