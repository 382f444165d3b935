/**
 * Model files: a module's state dict in a safetensors file, with string metadata beside it (the
 * CLI stores the model config as JSON there, so a file describes the network it belongs to). These
 * are the one writer and reader of a module's weights: `serializeModel` is the bytes, `saveModel`
 * writes them atomically, and `loadModel` reads a file into a module, or into one built from the
 * file's metadata (give a function instead of a module: the metadata says which network to build).
 */
import { serializeSafetensors, loadSafetensors, loadSafetensorsSync, writeFileAtomic, writeFileAtomicSync } from './safetensors';
import type { Module, LoadOptions, LoadReport } from './module';

/** The bytes of a model file: `module.stateDict()` under its dotted names, and the metadata. */
export function serializeModel(module: Module, metadata: Record<string, string> = {}): Uint8Array {
  return serializeSafetensors(module.stateDict(), metadata);
}

/** Save `module.stateDict()` to `path` atomically. */
export async function saveModel(path: string, module: Module, metadata: Record<string, string> = {}): Promise<void> {
  await writeFileAtomic(path, serializeModel(module, metadata));
}
export function saveModelSync(path: string, module: Module, metadata: Record<string, string> = {}): void {
  writeFileAtomicSync(path, serializeModel(module, metadata));
}

/** A module to load into, or how to build it from the file's metadata. */
export type ModuleOrBuild<M extends Module> = M | ((metadata: Record<string, string>) => M);

/**
 * Load a model file into `module` (in place; values converted to each parameter's dtype and
 * backend), or into the module `build(metadata)` returns. Strict by default: any missing,
 * unexpected or mis-shaped key is an error that lists them all. Returns the module, the load report
 * and the file's metadata.
 */
export async function loadModel<M extends Module>(path: string, module: ModuleOrBuild<M>, options: LoadOptions = {}): Promise<{ module: M; report: LoadReport; metadata: Record<string, string> }> {
  return into(await loadSafetensors(path), module, options);
}
export function loadModelSync<M extends Module>(path: string, module: ModuleOrBuild<M>, options: LoadOptions = {}): { module: M; report: LoadReport; metadata: Record<string, string> } {
  return into(loadSafetensorsSync(path), module, options);
}

function into<M extends Module>(file: Awaited<ReturnType<typeof loadSafetensors>>, module: ModuleOrBuild<M>, options: LoadOptions): { module: M; report: LoadReport; metadata: Record<string, string> } {
  const m = typeof module === 'function' ? module(file.metadata) : module;
  return { module: m, report: m.loadStateDict(file.tensors, options), metadata: file.metadata };
}
