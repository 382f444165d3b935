// All ops, re-exported in one namespace for tensor.ts's methods and for users.
export * from './creation';
export * from './elementwise';
export * from './reduce';
export * from './movement';
export * from './linalg';
export * from './nn';
export { formatTensor } from './format';
export { record, type BackwardFn } from './record';
