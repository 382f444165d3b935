// @mofme/mofme: the MoFME all-weather restoration network (AAAI 2024, arXiv 2312.16610), its
// baselines, and its parts as a reusable block API. Read in this order: config.ts (every choice,
// with its reason), router.ts (linear router and UaR), blocks.ts (the dense / MoE / FME feed-forward
// layers behind one interface, and the transformer block), model.ts (the restoration network of
// Fig. 3 composed from them), official.ts (official checkpoints), classifier.ts and segmenter.ts
// (the downstream models), count.ts (parameter and FLOP counts), restore.ts (tiled inference).

export {
  ConfigError,
  EXECUTIONS,
  FFN_KINDS,
  ROUTER_KINDS,
  TOPK_MODES,
  attnInnerOf,
  defaultUar,
  mlpHiddenOf,
  presetNames,
  presets,
  resolveConfig,
  tokensOf,
  validateConfig,
} from './config';
export type {
  ConfigOverrides,
  Execution,
  FfnKind,
  MofmeConfig,
  PresetName,
  RouterKind,
  TopkMode,
  UarBehaviour,
  UarConfig,
  UarDropoutPlace,
  UarNumerator,
  UarSign,
  UarTopk,
} from './config';
export { countFlops, countParameters, mofmeParameterSaving, numel, parameterShapes } from './count';
export type { BlockParameterCount, FlopCount, FlopOptions, FlopParts, ParamSpec, ParameterCount } from './count';
export { DenseFfn, FilmExpert, FmeFfn, GatedUnit, MoeFfn, TransformerBlock, createFfn, ffnOptionsOf, mixExperts } from './blocks';
export type { BlockOutput, FfnLayer, FfnOptions, FfnOutput, FmeOptions, MixtureOptions, TransformerBlockOptions } from './blocks';
export { MoFME, blockOf, createModel, fromModelInput, toModelInput } from './model';
export type { CreateModelOptions, MofmeOutput } from './model';
export { affine, linearRoute, normFloor, selectTopk, uarCalibrate, uarRoute, withRoutingOverride } from './router';
export type { McDropout, Routing, RoutingOverride } from './router';
export { calibrationReport, concatCounterfactuals, measureCalibration, patchLosses, tokenCounterfactuals } from './calibration';
export type { CalibrationInput, CalibrationReport, ModelCalibration, ReliabilityBin, TokenCounterfactuals } from './calibration';
export { RouterStats } from './stats';
export type { RoutingSummary } from './stats';
export { restore, restorePlanes, restoreRows, reserveRestoreMemory, planesSource, tileStarts, blendWeights, DEFAULT_TILE, DEFAULT_STRIDE, type PixelSource, type RowSink } from './restore';
export type { RestoreOptions, Planes } from './restore';
export {
  applyOfficialSharedInit, detectOfficialKind, fromOfficialStateDict, loadOfficialStateDict, officialToOurs, oursToOfficial,
  stripDdpPrefix, toOfficialStateDict,
} from './official';
export { ViTClassifier, ViTEncoder } from './classifier';
export type { BackboneOptions, ClassifierOutput, EncoderOutput } from './classifier';
export { ViTSegmenter } from './segmenter';
export type { SegmenterOutput } from './segmenter';
export { exportOnnx, traceMofme, officialExportProblem, ONNX_IO_NOTE, type OnnxSizeOptions } from './export';
