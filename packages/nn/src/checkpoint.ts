/**
 * Model checkpoints: a module's state dict in a safetensors file, with string metadata beside it
 * (we store the model config as JSON there, so a checkpoint describes the model it belongs to).
 */
import type { Module, LoadOptions, LoadReport } from './module';
import { loadSafetensors, loadSafetensorsSync, saveSafetensors, saveSafetensorsSync } from './safetensors';

/** Save `module.stateDict()` to `path` atomically. */
export async function saveModel(path: string, module: Module, metadata: Record<string, string> = {}): Promise<void> {
  await saveSafetensors(path, module.stateDict(), metadata);
}
export function saveModelSync(path: string, module: Module, metadata: Record<string, string> = {}): void {
  saveSafetensorsSync(path, module.stateDict(), metadata);
}

/**
 * Load a checkpoint into `module` (in place; values converted to each parameter's dtype and
 * backend). Strict by default: any missing, unexpected or mis-shaped key is an error that lists
 * them all. Returns the load report and the file's metadata.
 */
export async function loadModel(path: string, module: Module, options: LoadOptions = {}): Promise<{ report: LoadReport; metadata: Record<string, string> }> {
  const { tensors, metadata } = await loadSafetensors(path);
  return { report: module.loadStateDict(tensors, options), metadata };
}
export function loadModelSync(path: string, module: Module, options: LoadOptions = {}): { report: LoadReport; metadata: Record<string, string> } {
  const { tensors, metadata } = loadSafetensorsSync(path);
  return { report: module.loadStateDict(tensors, options), metadata };
}
