// @mofme/mofme: the MoFME all-weather restoration network (AAAI 2024, arXiv 2312.16610) and its
// baselines. This first layer of the package needs no tensors: the typed configuration and its
// presets, parameter and FLOP counting by arithmetic, the parameter inventory (our names and
// shapes), and the mapping between official checkpoint names and ours. The network itself
// (src/model.ts) follows docs/model-plan.md once @mofme/tensor and @mofme/nn land.

export {
  ConfigError,
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
export { countFlops, countParameters, mofmeParameterSaving } from './count';
export type { BlockParameterCount, FlopCount, FlopOptions, FlopParts, ParameterCount } from './count';
export { numel, parameterShapes } from './params';
export type { ParamSpec } from './params';
export { detectOfficialKind, officialToOurs, oursToOfficial, stripDdpPrefix } from './official-names';
export {
  Attention, Block, DenseFfn, FilmExpert, FmeFfn, GatedUnit, MoFME, MoeFfn, Mlp, createFfn, createModel, mixExperts,
} from './model';
export type { CreateModelOptions, MofmeOutput } from './model';
export { affine, linearRoute, normFloor, selectTopk, uarCalibrate, uarRoute } from './router';
export type { McDropout, Routing } from './router';
export { RouterStats } from './stats';
export type { RoutingSummary } from './stats';
export { restore, tileStarts } from './restore';
export type { RestoreOptions } from './restore';
export { fromOfficialStateDict, loadOfficialStateDict, toOfficialStateDict } from './official';
