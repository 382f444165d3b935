/**
 * The Tensor: an N-dimensional array on a backend, which remembers how it was computed.
 *
 * A tensor is a shape, a dtype, and a `Storage` owned by a backend (CPU typed arrays, GPU
 * textures). If it was produced by an op from inputs that need gradients, it also holds a
 * `GradNode`: the op's name, its inputs, and a closure computing the inputs' gradients from the
 * output's. Calling `backward()` walks these nodes in reverse (see `autograd.ts`).
 *
 * The methods below (x.add(y), x.matmul(w), x.sum(1), ...) are thin forwarders to the ops in
 * `ops/`, where each op's forward and backward are written side by side. Read those next.
 */
import type { Backend, DType, Shape, Storage, TypedArray } from './backend/backend';
import { sizeOf, shapeToString } from './shape';
// ops are imported module by module (not through ops/index) so that the Tensor <-> ops import
// cycle resolves under CommonJS loaders too, where a re-exporting index is seen half-built
import * as elementwise from './ops/elementwise';
import * as format from './ops/format';
import * as linalg from './ops/linalg';
import * as movement from './ops/movement';
import * as nnOps from './ops/nn';
import * as reduction from './ops/reduce';
import { backward as runBackward, type BackwardOptions } from './autograd';
import { trackInScope, retainStorage, releaseStorage } from './memory';

/** How a non-leaf tensor was made: what autograd needs to send gradients back to its inputs. */
export interface GradNode {
  readonly op: string;
  inputs: Tensor[];
  /** d(loss)/d(inputs) from d(loss)/d(output); null for inputs that need no gradient */
  backward: ((grad: Tensor, output: Tensor) => (Tensor | null)[]) | null;
}

export type NestedArray = number | NestedArray[];

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly backend: Backend;
  /** the data; shared between a tensor and its reshapes (reference counted, see memory.ts) */
  storage: Storage;
  /** leaf tensors with requiresGrad collect `grad` in backward() */
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** set on tensors computed from inputs that need gradients */
  node: GradNode | null = null;
  /** an optional label shown in errors and toString (parameters get their dotted names) */
  name: string | undefined;

  constructor(storage: Storage, shape: Shape, requiresGrad = false) {
    if (sizeOf(shape) !== storage.size) {
      throw new Error(`Tensor: shape ${shapeToString(shape)} needs ${sizeOf(shape)} elements but the storage holds ${storage.size}`);
    }
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = storage.dtype;
    this.backend = storage.backend;
    this.requiresGrad = requiresGrad;
    retainStorage(storage);
    trackInScope(this);
  }

  get ndim(): number { return this.shape.length; }
  get size(): number { return this.storage.size; }
  /** true for tensors made by the user (not by an op): those that collect .grad */
  get isLeaf(): boolean { return this.node === null; }

  // ---- reading data out ----
  /** The values as a flat typed array (a copy). */
  data(): TypedArray { return this.backend.download(this.storage); }
  /** The values as nested JavaScript arrays (a number for a scalar). */
  toArray(): NestedArray {
    const flat = this.data();
    const build = (axis: number, offset: number): NestedArray => {
      if (axis === this.ndim) return flat[offset]!;
      const inner = sizeOf(this.shape.slice(axis + 1));
      return Array.from({ length: this.shape[axis]! }, (_, i) => build(axis + 1, offset + i * inner));
    };
    return build(0, 0);
  }
  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor of shape ${shapeToString(this.shape)} has ${this.size} elements, not 1`);
    return this.data()[0]!;
  }
  toString(): string { return format.formatTensor(this); }

  // ---- autograd ----
  /** Backpropagate from this tensor: a scalar, or any shape with an explicit upstream gradient. */
  backward(grad?: Tensor, options?: BackwardOptions): void { runBackward(this, grad, options); }
  /** The same data, cut off from the graph: no gradient flows through it. */
  detach(): Tensor { return movement.detach(this); }
  /** Mark a leaf as needing gradients (in place); returns this. */
  requiresGrad_(flag = true): this {
    if (!this.isLeaf) throw new Error('requiresGrad_: only leaf tensors can be marked; use detach() first');
    this.requiresGrad = flag;
    return this;
  }

  // ---- memory ----
  /** Release this tensor's hold on its storage (the storage is freed when no tensor holds it). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    releaseStorage(this.storage);
  }
  disposed = false;
  /** Replace this tensor's data by `value`'s (same shape and dtype), in place: how optimisers update parameters. */
  assign(value: Tensor): this {
    if (value.shape.join() !== this.shape.join() || value.dtype !== this.dtype || value.backend !== this.backend) {
      throw new Error(`assign: expected ${shapeToString(this.shape)} ${this.dtype} on ${this.backend.name}, got ${shapeToString(value.shape)} ${value.dtype} on ${value.backend.name}`);
    }
    retainStorage(value.storage);
    releaseStorage(this.storage);
    this.storage = value.storage;
    return this;
  }
  /** A copy on another backend (or with another dtype). */
  to(backend: Backend, dtype: DType = this.dtype): Tensor { return movement.toBackend(this, backend, dtype); }
  cast(dtype: DType): Tensor { return movement.cast(this, dtype); }
  clone(): Tensor { return movement.clone(this); }

  // ---- elementwise ----
  add(other: Tensor | number): Tensor { return elementwise.add(this, other); }
  sub(other: Tensor | number): Tensor { return elementwise.sub(this, other); }
  mul(other: Tensor | number): Tensor { return elementwise.mul(this, other); }
  div(other: Tensor | number): Tensor { return elementwise.div(this, other); }
  pow(other: Tensor | number): Tensor { return elementwise.pow(this, other); }
  maximum(other: Tensor | number): Tensor { return elementwise.maximum(this, other); }
  minimum(other: Tensor | number): Tensor { return elementwise.minimum(this, other); }
  eq(other: Tensor | number): Tensor { return elementwise.compare('eq', this, other); }
  ne(other: Tensor | number): Tensor { return elementwise.compare('ne', this, other); }
  lt(other: Tensor | number): Tensor { return elementwise.compare('lt', this, other); }
  le(other: Tensor | number): Tensor { return elementwise.compare('le', this, other); }
  gt(other: Tensor | number): Tensor { return elementwise.compare('gt', this, other); }
  ge(other: Tensor | number): Tensor { return elementwise.compare('ge', this, other); }
  neg(): Tensor { return elementwise.neg(this); }
  exp(): Tensor { return elementwise.exp(this); }
  log(): Tensor { return elementwise.log(this); }
  sqrt(): Tensor { return elementwise.sqrt(this); }
  abs(): Tensor { return elementwise.abs(this); }
  relu(): Tensor { return elementwise.relu(this); }
  sigmoid(): Tensor { return elementwise.sigmoid(this); }
  tanh(): Tensor { return elementwise.tanh(this); }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return elementwise.gelu(this, approximate); }
  square(): Tensor { return elementwise.mul(this, this); }
  clamp(min?: number, max?: number): Tensor { return elementwise.clamp(this, min, max); }

  // ---- reductions ----
  sum(axes?: number | number[], keepdim = false): Tensor { return reduction.sum(this, axes, keepdim); }
  mean(axes?: number | number[], keepdim = false): Tensor { return reduction.mean(this, axes, keepdim); }
  max(axes?: number | number[], keepdim = false): Tensor { return reduction.max(this, axes, keepdim); }
  min(axes?: number | number[], keepdim = false): Tensor { return reduction.min(this, axes, keepdim); }
  var(axes?: number | number[], options?: { correction?: number; keepdim?: boolean }): Tensor { return reduction.variance(this, axes, options); }
  argmax(axis: number, keepdim = false): Tensor { return reduction.argmax(this, axis, keepdim); }
  argmin(axis: number, keepdim = false): Tensor { return reduction.argmin(this, axis, keepdim); }

  // ---- linear algebra and NN ----
  matmul(other: Tensor): Tensor { return linalg.matmul(this, other); }
  softmax(axis = -1): Tensor { return nnOps.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return nnOps.logSoftmax(this, axis); }

  // ---- movement ----
  reshape(...shape: number[] | [number[]]): Tensor { return movement.reshape(this, flatArgs(shape)); }
  view(...shape: number[] | [number[]]): Tensor { return movement.reshape(this, flatArgs(shape)); }
  flatten(startAxis = 0, endAxis = -1): Tensor { return movement.flatten(this, startAxis, endAxis); }
  permute(...order: number[] | [number[]]): Tensor { return movement.permute(this, flatArgs(order)); }
  transpose(axis0 = -2, axis1 = -1): Tensor { return movement.transpose(this, axis0, axis1); }
  get T(): Tensor { return movement.transpose(this, -2, -1); }
  expand(...shape: number[] | [number[]]): Tensor { return movement.expand(this, flatArgs(shape)); }
  unsqueeze(axis: number): Tensor { return movement.unsqueeze(this, axis); }
  squeeze(axis?: number): Tensor { return movement.squeeze(this, axis); }
  narrow(axis: number, start: number, length: number): Tensor { return movement.narrow(this, axis, start, length); }
  slice(ranges: ([number, number] | null)[]): Tensor { return movement.slice(this, ranges); }
  pad(pads: [number, number][], value = 0): Tensor { return movement.pad(this, pads, value); }
  flip(axes: number | number[]): Tensor { return movement.flip(this, axes); }
  split(sizes: number | number[], axis = 0): Tensor[] { return movement.split(this, sizes, axis); }
  gather(axis: number, index: Tensor): Tensor { return movement.gather(this, axis, index); }
  indexSelect(axis: number, index: Tensor): Tensor { return movement.indexSelect(this, axis, index); }
}

function flatArgs(args: number[] | [number[]]): number[] {
  return Array.isArray(args[0]) ? [...args[0]] : (args as number[]);
}

