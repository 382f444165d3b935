/**
 * @mofme/nn: PyTorch's `torch.nn` + `torch.optim` in miniature, on @mofme/tensor.
 *
 * Read in this order: module.ts (the Module base class: named parameters, state dicts), init.ts
 * (how parameters start), layers/ (Linear, Conv2d, norms, attention, ...), optim/ (SGD, Adam,
 * AdamW, schedules, clipping), safetensors.ts and checkpoint.ts (saving and loading).
 */
export { Module, formatLoadReport, functionalCall, type UnaryModule, type StateDict, type LoadReport, type LoadOptions } from './module';
export * as init from './init';
export { withInitDefaults, resolveInit, fans, type InitOptions } from './init';
export { disposeTemporariesUnderNoGrad, chainDisposingUnderNoGrad, disposeUnreadByBackward } from './inference';
export { Linear, Identity, type LinearOptions } from './layers/linear';
export { Conv2d, type Conv2dOptions } from './layers/conv';
export { LayerNorm, GroupNorm, type LayerNormOptions, type GroupNormOptions } from './layers/norm';
export { GELU, ReLU, Sigmoid, Tanh, Dropout } from './layers/activation';
export { Sequential, ModuleList } from './layers/container';
export { MultiHeadSelfAttention, type AttentionOptions } from './layers/attention';
export { FeedForward, ResBlock, type FeedForwardOptions, type ResBlockOptions } from './layers/blocks';
export { PatchEmbed, PatchUnembed, patchify, type PatchEmbedOptions } from './layers/patch';
export {
  Optimizer, flattenOptimizerState, unflattenOptimizerState,
  type BaseHyper, type ParamGroup, type ParamsInput, type ParamState, type OptimizerStateDict,
} from './optim/optimizer';
export { SGD, type SGDHyper } from './optim/sgd';
export { Adam, AdamW, type AdamHyper } from './optim/adam';
export { LRScheduler, constantSchedule, warmupCosineSchedule, type Schedule, type WarmupCosineOptions } from './optim/schedule';
export { clipGradNorm, clipGradValue } from './optim/clip';
export {
  serializeSafetensors, parseSafetensors, parseSafetensorsRaw, decodeRaw, halfToFloat,
  saveSafetensors, saveSafetensorsSync, loadSafetensors, loadSafetensorsSync,
  writeFileAtomic, writeFileAtomicSync, SafetensorsError, SAFETENSORS_DTYPES, MAX_HEADER_BYTES,
  type RawTensor, type ParsedSafetensors, type ParseOptions,
} from './safetensors';
export { serializeModel, saveModel, saveModelSync, loadModel, loadModelSync, type ModuleOrBuild } from './checkpoint';
export { tracedGraphToOnnx, ONNX_OPSET, type OnnxExportOptions } from './onnx';
