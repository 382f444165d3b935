/** Fashion-MNIST reader: the IDX format on hand-made bytes, the real files (Debian's
 *  dataset-fashion-mnist) against the dataset's published facts, and the missing-file message. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { FASHION_MNIST_DIR, loadFashionMnist, parseIdx } from '../src/index';

/** An IDX file: big-endian magic, dims as u32, then the bytes. */
function idx(magic: number, dims: number[], data: number[]): Uint8Array {
  const head = new DataView(new ArrayBuffer(4 + 4 * dims.length));
  head.setUint32(0, magic);
  dims.forEach((d, i) => head.setUint32(4 + 4 * i, d));
  return Uint8Array.from([...new Uint8Array(head.buffer), ...data]);
}

test('parseIdx reads dims and payload, and names the file on a bad magic or a short payload', () => {
  const { dims, data } = parseIdx(idx(0x803, [2, 1, 3], [1, 2, 3, 4, 5, 6]), 'x.idx', 0x803);
  assert.equal(dims, [2, 1, 3]);
  assert.equal([...data], [1, 2, 3, 4, 5, 6]);
  assert.throws(() => parseIdx(idx(0x801, [3], [1, 2, 3]), 'labels.idx', 0x803), /labels\.idx: IDX magic 0x00000801, expected 0x00000803/);
  assert.throws(() => parseIdx(idx(0x801, [4], [1, 2, 3]), 'short.idx', 0x801), /short\.idx: header says \[4\] = 4 bytes, the file has 3/);
});

test('a folder of tiny gzipped files loads, with pixels scaled to [0, 1]', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fmnist-'));
  try {
    const pixels = Array.from({ length: 2 * 784 }, (_, i) => i % 256);
    for (const [img, lab] of [['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'], ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']] as const) {
      writeFileSync(join(dir, img), gzipSync(idx(0x803, [2, 28, 28], pixels)));
      writeFileSync(join(dir, lab), gzipSync(idx(0x801, [2], [7, 3])));
    }
    const d = loadFashionMnist('test', { dir });
    assert.is(d.count, 2);
    assert.equal([...d.labels], [7, 3]);
    assert.is(d.images[255], 1);
    assert.is(d.images[256], 0);
    assert.is(d.images[51], Math.fround(51 / 255)); // float32 storage
    assert.is(loadFashionMnist('train', { dir, limit: 1 }).count, 1);
    assert.throws(() => loadFashionMnist('train', { dir, limit: 3 }), /limit 3 is not in 1\.\.2/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing file names the path and the install command', () => {
  assert.throws(() => loadFashionMnist('train', { dir: '/nonexistent/fmnist' }),
    /\/nonexistent\/fmnist\/train-images-idx3-ubyte\.gz is missing; install it with `apt-get install dataset-fashion-mnist`/);
});

test('the real files (dataset-fashion-mnist): 60,000 + 10,000 images, 1,000 test images per class, the known first labels', () => {
  if (!existsSync(FASHION_MNIST_DIR)) {
    // not installed here: the reader must say how to get it (CI installs the package)
    assert.throws(() => loadFashionMnist('test'), /apt-get install dataset-fashion-mnist/);
    return;
  }
  const testSet = loadFashionMnist('test');
  assert.is(testSet.count, 10_000);
  const perClass = new Array(10).fill(0);
  for (const l of testSet.labels) perClass[l]++;
  assert.equal(perClass, new Array(10).fill(1000)); // the test set is balanced (Xiao et al. 2017)
  const train = loadFashionMnist('train', { limit: 10 });
  assert.equal([...train.labels], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]); // the published first training labels
  assert.ok(train.images.every((v) => v >= 0 && v <= 1));
  assert.is(loadFashionMnist('train').count, 60_000);
});

test.run();
