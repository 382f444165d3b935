/**
 * @mofme/tensor/testing: tools to property-test numeric code, and the backend conformance suite.
 *
 * - `gradcheck` / `assertGradcheck`: autodiff vs central finite differences (PyTorch semantics);
 * - fast-check arbitraries: `shapeArb`, `broadcastPairArb`, `valuesArb`, `tensorArb`, `toTensor`;
 * - `assertAllClose`: elementwise comparison with a readable report of the worst element;
 * - `OP_CASES`: every differentiable op with a generator of valid inputs;
 * - `backendConformanceCases`: the suite every backend must pass against the CPU reference.
 */
// Load the Tensor class (and with it every op) first, so module cycles resolve the same way under
// ESM and CommonJS loaders.
import '../tensor';

export { gradcheck, assertGradcheck, type GradcheckOptions, type GradcheckResult } from './gradcheck';
export { shapeArb, broadcastPairArb, valuesArb, tensorArb, toTensor, numRuns, type TensorData, type ShapeOptions, type ValueOptions } from './arbitraries';
export { assertAllClose, allCloseReport, type CloseOptions } from './close';
export { OP_CASES, type OpCase } from './cases';
export { backendConformanceCases, type ConformanceCase, type ConformanceOptions } from './conformance';
