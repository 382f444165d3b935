/**
 * Memory ownership: reference-counted storages and `tidy` scopes.
 *
 * On the CPU, JavaScript's garbage collector frees typed arrays by itself. GPU textures are not
 * garbage collected, so every tensor's storage is reference counted: a tensor holds one reference
 * (reshapes share the storage and hold one each), and `dispose()` releases it; the backend frees
 * the storage when the count reaches zero.
 *
 * `tidy(fn)` (the idea comes from TensorFlow.js) disposes every tensor created inside `fn` except
 * those it returns and those explicitly `keep()`-ed (autograd keeps parameter gradients; optimisers
 * keep their state). A training step wrapped in `tidy` therefore leaves device memory exactly as
 * it found it, which the gpu tests check with `backend.memory()`.
 */
import type { Storage } from './backend/backend';
import type { Tensor } from './tensor';

const refCounts = new WeakMap<Storage, number>();

export function retainStorage(storage: Storage): void {
  refCounts.set(storage, (refCounts.get(storage) ?? 0) + 1);
}

export function releaseStorage(storage: Storage): void {
  const n = (refCounts.get(storage) ?? 1) - 1;
  if (n > 0) {
    refCounts.set(storage, n);
    return;
  }
  refCounts.delete(storage);
  storage.backend.dispose(storage);
}

const scopes: Set<Tensor>[] = [];
const kept = new WeakSet<Tensor>();

export function trackInScope(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Exempt a tensor from the enclosing tidy scopes' cleanup. */
export function keep<T extends Tensor>(t: T): T {
  kept.add(t);
  for (const scope of scopes) scope.delete(t);
  return t;
}

/** Collect the tensors inside a (possibly nested) return value. */
function tensorsIn(value: unknown, found: Set<Tensor>, seen = new Set<unknown>()): void {
  // (a typed array holds numbers only: walking its values would cost a visit per element, e.g.
  // a window's pixels returned by `tidy(() => model(x).data())`)
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || seen.has(value)) return;
  seen.add(value);
  if ((value as { storage?: unknown }).storage !== undefined && (value as { shape?: unknown }).shape !== undefined) {
    found.add(value as Tensor);
    return;
  }
  for (const v of Array.isArray(value) ? value : value instanceof Map ? value.values() : Object.values(value)) tensorsIn(v, found, seen);
}

/**
 * Run `fn` in a scope of its own; `each` then gets every tensor `fn` created, with whether it is
 * owned outside (returned by `fn`, or passed to `keep`). The one walk behind `tidy` and
 * `releaseAfterBackward`.
 */
function inScope<T>(fn: () => T, each: (t: Tensor, ownedOutside: boolean, parent: Set<Tensor> | undefined) => void): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const returned = new Set<Tensor>();
  tensorsIn(result, returned);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) each(t, returned.has(t) || kept.has(t), parent);
  return result;
}

/**
 * Run `fn`, then dispose every tensor it created except those it returns (which move to the
 * enclosing scope) and those passed to `keep`.
 */
export function tidy<T>(fn: () => T): T {
  return inScope(fn, (t, ownedOutside, parent) => {
    if (ownedOutside) parent?.add(t);
    else t.dispose();
  });
}

/** Tensors made inside a `releaseAfterBackward` scope and not returned from it (see there). */
const internal = new WeakSet<Tensor>();

/**
 * Run `fn` (a model's forward pass) and mark every tensor it creates, except those it returns and
 * those passed to `keep`, as internal to it: nobody outside can read them, only the autograd graph
 * can. A backward pass then disposes each of them as soon as its own gradient step has run (every
 * op that read it came later in the forward, so its backward has run already; PyTorch frees saved
 * tensors the same way), instead of leaving them all to the end of the training step's `tidy`,
 * which still owns them as before (and frees those no backward reached). Not under `retainGraph`.
 */
export function releaseAfterBackward<T>(fn: () => T): T {
  return inScope(fn, (t, ownedOutside, parent) => {
    if (!ownedOutside) internal.add(t);
    parent?.add(t);
  });
}

/** Whether `t` was made inside a `releaseAfterBackward` scope and not returned from it. */
export function isReleasedAfterBackward(t: Tensor): boolean {
  return internal.has(t);
}
