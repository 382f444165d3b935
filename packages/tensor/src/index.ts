/**
 * @mofme/tensor: N-d tensors with reverse-mode autodiff on pluggable backends.
 *
 * Start reading at tensor.ts (the Tensor class), then ops/ (each op's forward and backward side
 * by side), then autograd.ts (how backward() walks the graph), then backend/cpu-reference.ts (the
 * reference kernels). See README.md for a tour.
 */
export { Tensor, type GradNode, type NestedArray } from './tensor';
export * from './ops';
export { backward, noGrad, isGradEnabled, sumToShape, type BackwardOptions } from './autograd';
export { tidy, keep, releaseAfterBackward } from './memory';
export { enableProfiling, disableProfiling, profileReport, profilingRequested, resetProfile, type ProfileClock } from './profile';
export { setDetectAnomaly, isAnomalyDetectionEnabled } from './anomaly';
export { getDefaultBackend, setDefaultBackend, useBackend, withBackend, type BackendName } from './device';
export { Generator, defaultGenerator, manualSeed, mixSeed, type GeneratorState } from './random';
export { CpuBackend, erf as erfScalar, type CpuBackendOptions, type FastKernels } from './backend/cpu';
export { ReferenceCpuBackend, matmulNaive } from './backend/cpu-reference';
export { matmulBlocked } from './backend/cpu-matmul';
export { im2colFast, col2imFast } from './backend/cpu-window';
export { createWasmKernels, sharedFastKernels, wasmSimdAvailable, fastKernelsEnabled, setFastKernelsEnabled, FAST_MATMUL_MIN_WORK, type FastKernelOptions } from './backend/wasm';
export * from './backend/backend';
export { broadcastShapes, shapeToString } from './shape';
export { trace, compareTraces, isTracing, traceAttrs, traceOp, traceRecorded, withoutFusedKernels, FUSED_KERNELS, type TracedGraph, type TracedNode, type TracedConstant } from './trace';
