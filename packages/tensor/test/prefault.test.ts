/**
 * Memory faulted in ahead of time (backend/prefault.ts, CpuBackend.reserve): the helper thread
 * never changes a value, the backend's new arrays come from the arena once one is reserved (and
 * are zero-filled), the results are the same bits as without it, and a warm backend starts no
 * new arena. Speed is measured in the benches, not here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { conv2d, CpuBackend, tensor, tidy, type Tensor } from '@mofme/tensor';
import { Arena, backgroundTouchAvailable, touchInBackground } from '../src/backend/prefault';

/** Await a helper: it is unref()'d (it never keeps a process alive), so a timer holds this one open meanwhile. */
async function settled(promise: Promise<void>): Promise<void> {
  const alive = setInterval(() => {}, 1000);
  try { await promise; } finally { clearInterval(alive); }
}

test('the helper thread faults pages in without changing a value', async () => {
  const buffer = new SharedArrayBuffer(3 * 4096 * 4 + 12);
  const words = new Int32Array(buffer);
  for (let i = 0; i < words.length; i += 7) words[i] = i * 31 - 5000; // a pattern, zeros between
  const before = words.slice();
  await settled(touchInBackground([buffer]));
  assert.equal(Array.from(words), Array.from(before));
});

test('an arena hands out consecutive zero-filled arrays, aligned, until it is used up', () => {
  const arena = new Arena(1000);
  const a = arena.take('float32', 10)!, b = arena.take('float64', 20)!;
  assert.ok(a instanceof Float32Array && b instanceof Float64Array);
  assert.is(a.length, 10);
  assert.is(b.byteOffset, 64); // 40 bytes rounded up to a cache line
  assert.ok(b.every((v) => v === 0));
  assert.is(arena.left, 1024 - 64 - 192);
  assert.is(arena.take('float32', 1000), undefined); // does not fit: the backend allocates as before
  assert.is(arena.left, 1024 - 64 - 192);
});

/** conv -> relu -> + input, on arrays large enough for the pool (16384 values and more) */
function pipeline(backend: CpuBackend): { y: Tensor; shared: boolean } {
  const x = tensor(Float32Array.from({ length: 8 * 64 * 64 }, (_, i) => Math.sin(i * 0.013)), { shape: [1, 8, 64, 64], backend });
  const w = tensor(Float32Array.from({ length: 8 * 8 * 9 }, (_, i) => Math.cos(i * 0.7) * 0.2), { shape: [8, 8, 3, 3], backend });
  const y = conv2d(x, w, null, { padding: 1 }).relu().add(x);
  return { y, shared: backend.data(y.storage).buffer instanceof SharedArrayBuffer };
}

test('after reserve, new arrays come from the arena and give the same bits as fresh ones', async () => {
  if (!backgroundTouchAvailable()) return;
  const plain = new CpuBackend(), reserved = new CpuBackend();
  await settled(reserved.reserve(4 * 2 ** 20, 2 ** 20));
  const a = pipeline(plain), b = pipeline(reserved);
  assert.not.ok(a.shared);
  assert.ok(b.shared, 'the result lives in the reserved arena');
  assert.equal(b.y.data(), a.y.data());
});

test('a warm backend (its pool covers the request) starts no new arena', async () => {
  if (!backgroundTouchAvailable()) return;
  const backend = new CpuBackend();
  tidy(() => { pipeline(backend); }); // fills the pool with the pipeline's arrays (about 0.5 MiB)
  await settled(backend.reserve(2 ** 18));
  assert.not.ok(pipeline(backend).shared, 'arrays are recycled from the pool, not taken from an arena');
  await settled(backend.reserve(2 ** 24)); // more than the pool holds: now an arena is made
  const arrays = [16384, 20000].map((n) => backend.data(backend.fill(n, 0, 'float32')));
  assert.ok(arrays.every((a) => a.buffer instanceof SharedArrayBuffer && a.every((v) => v === 0)));
});

test('tidy returning a typed array (the window of a restore) returns it and disposes what it made', () => {
  const backend = new CpuBackend();
  const live = backend.memory().buffers;
  const values = tidy(() => tensor(new Float32Array(100_000).fill(2), { backend }).mul(3).data());
  assert.ok(values instanceof Float32Array && values.length === 100_000 && values[99_999] === 6);
  assert.is(backend.memory().buffers, live);
});

test.run();
