// safetensors: round trips, a byte-level fixture built by hand from the spec, the half-precision
// and integer dtypes, every kind of corrupt file, atomic writes, and fuzzed headers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdtempSync, readdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, zeros, Generator } from '@mofme/tensor';
import {
  serializeSafetensors, parseSafetensors, saveSafetensors, loadSafetensors, saveSafetensorsSync, loadSafetensorsSync,
  SafetensorsError, halfToFloat, saveModel, loadModel, saveModelSync, loadModelSync, serializeModel, Linear, Sequential, ReLU, withInitDefaults,
} from '../src/index';

const enc = new TextEncoder();
const dir = mkdtempSync(join(tmpdir(), 'mofme-nn-st-'));

/** A file from a header string and data bytes, exactly as the spec lays it out. */
function file(header: string, data: number[] | Uint8Array, lengthOverride?: bigint): Uint8Array {
  const h = enc.encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const expectError = (bytes: Uint8Array, pattern: RegExp): void => {
  try {
    parseSafetensors(bytes, { source: 'bad.safetensors' });
  } catch (e) {
    assert.instance(e, SafetensorsError);
    assert.match((e as Error).message, /^safetensors: bad\.safetensors: /);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected an error matching ${pattern}`);
};

test('hand-built fixture: the spec layout read back, and our writer produces the same bytes', () => {
  const header = '{"__metadata__":{"format":"pt"},"b":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
  assert.is(header.length, 139);
  const padded = header + '     '; // 144 bytes: spaces up to a multiple of 8, so the data starts aligned
  const data = [
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0x3f, // 0.5 as float64, little-endian
    0x00, 0x00, 0x80, 0x3f, // 1 as float32
    0x00, 0x00, 0x00, 0xc0, // -2 as float32
  ];
  const bytes = file(padded, data);
  assert.equal(Array.from(bytes.slice(0, 8)), [144, 0, 0, 0, 0, 0, 0, 0]);
  assert.is(bytes.length, 8 + 144 + 16);
  const { tensors, metadata } = parseSafetensors(bytes);
  assert.equal(metadata, { format: 'pt' });
  assert.is(tensors.a!.dtype, 'float32');
  assert.equal(tensors.a!.shape, [2]);
  assert.equal(Array.from(tensors.a!.data()), [1, -2]);
  assert.is(tensors.b!.dtype, 'float64');
  assert.equal(Array.from(tensors.b!.data()), [0.5]);
  const ours = serializeSafetensors({ a: tensor([1, -2]), b: tensor([0.5], { dtype: 'float64' }) }, { format: 'pt' });
  assert.equal(Array.from(ours), Array.from(bytes));
});

test('header padding: spaces up to 8-byte alignment, accepted on reading', () => {
  const bytes = serializeSafetensors({ x: tensor([[1, 2, 3]]) });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.is(n % 8, 0);
  const text = new TextDecoder().decode(bytes.slice(8, 8 + n));
  assert.ok(text.startsWith('{"x":{"dtype":"F32","shape":[1,3],"data_offsets":[0,12]}}'), text);
  assert.ok(/^[^ ]*\}\s*$/.test(text) && text.endsWith(' '), JSON.stringify(text));
  assert.equal(Array.from(parseSafetensors(bytes).tensors.x!.data()), [1, 2, 3]);
});

test('round trip: float32, float64, scalars, empty tensors, metadata; exact bits', () => {
  const g = new Generator(1);
  const r = Array.from({ length: 60 }, () => g.normal());
  const tensors = {
    'blocks.0.attn.qkv.weight': tensor(r, { shape: [3, 4, 5] }),
    'f64': tensor([Math.PI, -0, 1e-310, Number.MAX_VALUE], { dtype: 'float64' }),
    'scalar': tensor([3], { shape: [] }),
    'empty': zeros([0, 4]),
    'nonfinite': tensor([Infinity, -Infinity, NaN]),
  };
  const { tensors: back, metadata } = parseSafetensors(serializeSafetensors(tensors, { config: '{"dim":384}' }));
  assert.equal(metadata, { config: '{"dim":384}' });
  for (const [k, t] of Object.entries(tensors)) {
    assert.equal(back[k]!.shape, t.shape, k);
    assert.is(back[k]!.dtype, t.dtype, k);
    assert.equal(Array.from(back[k]!.data()), Array.from(t.data()), k);
  }
  assert.ok(Object.is(back.f64!.data()[1], -0));
  assert.throws(() => serializeSafetensors({ __metadata__: tensor([1]) }), /reserved/);
  assert.throws(() => serializeSafetensors({ a: tensor([1]) }, { n: 3 as unknown as string }), /must be strings/);
});

test('F16, BF16 and integer dtypes load as float32; F8 is recognised but unsupported', () => {
  assert.is(halfToFloat(0x3c00), 1);
  assert.is(halfToFloat(0xc000), -2);
  assert.is(halfToFloat(0x7bff), 65504);
  assert.is(halfToFloat(0x0001), 2 ** -24);
  assert.is(halfToFloat(0x7c00), Infinity);
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  const header = '{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"bf":{"dtype":"BF16","shape":[2],"data_offsets":[6,10]},"i":{"dtype":"I64","shape":[1],"data_offsets":[10,18]},"u":{"dtype":"U8","shape":[2],"data_offsets":[18,20]},"k":{"dtype":"I32","shape":[1],"data_offsets":[20,24]}}';
  const data = [
    0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, // F16 1, -2, 0.5
    0x80, 0x3f, 0x40, 0xc0, // BF16 1, -3
    0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // I64 -2
    7, 255, // U8
    0x01, 0x00, 0x01, 0x00, // I32 65537
  ];
  const { tensors } = parseSafetensors(file(header, data));
  assert.equal(Array.from(tensors.h!.data()), [1, -2, 0.5]);
  assert.equal(Array.from(tensors.bf!.data()), [1, -3]);
  assert.equal(Array.from(tensors.i!.data()), [-2]);
  assert.equal(Array.from(tensors.u!.data()), [7, 255]);
  assert.equal(Array.from(tensors.k!.data()), [65537]);
  assert.ok(Object.values(tensors).every((t) => t.dtype === 'float32'));
  expectError(file('{"f":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', [1]), /F8_E4M3 is recognised but not supported/);
});

test('corrupt files: each defect gets an error naming the file and the problem', () => {
  const ok = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const eight = [0, 0, 128, 63, 0, 0, 0, 64];
  expectError(new Uint8Array(5), /5 bytes, too short/);
  expectError(file(ok, eight, 10_000n), /header length 10000 runs beyond the end of the file/);
  expectError(file(ok, eight, 2n ** 63n), /exceeds the 100000000-byte limit/);
  expectError(file('{"a": nope}', []), /not valid JSON/);
  expectError(file('  {}', []), /must start with '\{'/);
  expectError(file('[1, 2, 3]', []), /must start with '\{'/);
  expectError(file(ok.replace('F32', 'F31'), eight), /unknown dtype "F31"/);
  expectError(file(ok.replace('F32', 'constructor'), eight), /unknown dtype "constructor"/);
  expectError(file(ok.replace('[2]', '[3]'), eight), /shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/);
  expectError(file(ok.replace('[2]', '[1e300, 1e300]'), eight), /shape must be an array of non-negative integers/);
  expectError(file(ok.replace('[2]', '[100000, 100000, 100000]'), eight), /needs 4000000000000000 bytes but data_offsets \[0, 8\] hold 8/);
  expectError(file(ok.replace('[2]', '[1099511627776, 1099511627776]'), eight), /needs more than 2\^53 bytes/);
  expectError(file(ok.replace('[2]', '[-1]'), eight), /non-negative integers/);
  expectError(file(ok.replace('[0,8]', '[0,16]').replace('[2]', '[4]'), eight), /run beyond the data buffer \(8 bytes\)/);
  expectError(file(ok.replace('[0,8]', '[8,0]'), eight), /end before they begin/);
  expectError(file(ok.replace('[0,8]', '[0]'), eight), /data_offsets must be \[begin, end\]/);
  expectError(file(ok, [...eight, 1, 2, 3, 4]), /cover only 8: trailing bytes/);
  expectError(file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', eight), /bytes \[0, 4\) of the data buffer belong to no tensor/);
  expectError(file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', eight), /overlap/);
  expectError(file('{"__metadata__":{"n":3}}', []), /__metadata__ value 'n' is number, not a string/);
  expectError(file('{"__metadata__":[1]}', []), /__metadata__ must be an object of strings/);
  expectError(file('{"a":[1]}', []), /tensor 'a': entry is not an object/);
  expectError(file('{"a":{"shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /missing or non-string dtype/);
  const badUtf8 = file('{"a":1}', []);
  badUtf8[10] = 0xff;
  expectError(badUtf8, /not valid UTF-8/);
  // every truncation of a valid file is an error, never garbage
  const whole = serializeSafetensors({ w: tensor([[1, 2], [3, 4]]), b: tensor([5, 6], { dtype: 'float64' }) }, { k: 'v' });
  for (let n = 0; n < whole.length; n++) assert.throws(() => parseSafetensors(whole.subarray(0, n), { source: 'cut' }), (e: Error) => e instanceof SafetensorsError);
  assert.ok(parseSafetensors(whole).tensors.w);
});

test('files: async and sync save/load, atomic writes leave no temp files, errors name the path', async () => {
  const path = join(dir, 'model.safetensors');
  await saveSafetensors(path, { a: tensor([1, 2]) }, { v: '1' });
  await saveSafetensors(path, { a: tensor([3, 4]) }, { v: '2' }); // overwrite
  const back = await loadSafetensors(path);
  assert.equal(Array.from(back.tensors.a!.data()), [3, 4]);
  assert.equal(back.metadata, { v: '2' });
  saveSafetensorsSync(path, { a: tensor([5]) });
  assert.equal(Array.from(loadSafetensorsSync(path).tensors.a!.data()), [5]);
  assert.equal(readdirSync(dir), ['model.safetensors']);
  const truncated = join(dir, 'truncated.safetensors');
  writeFileSync(truncated, readFileSync(path).subarray(0, 20));
  try {
    await loadSafetensors(truncated);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, new RegExp(`^safetensors: ${truncated.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: header length \\d+ runs beyond`));
  }
  await loadSafetensors(join(dir, 'missing.safetensors')).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /missing\.safetensors: cannot read the file/));
  rmSync(truncated);
});

test('saveModel / loadModel: a model round trip with its config in the metadata', async () => {
  const build = (seed: number): Sequential => withInitDefaults({ generator: new Generator(seed) }, () => new Sequential(new Linear(3, 4), new ReLU(), new Linear(4, 2)));
  const a = build(1), b = build(2);
  const path = join(dir, 'mlp.safetensors');
  await saveModel(path, a, { config: JSON.stringify({ widths: [3, 4, 2] }) });
  const { report, metadata } = await loadModel(path, b);
  assert.equal(report.missing, []);
  assert.equal(JSON.parse(metadata.config!), { widths: [3, 4, 2] });
  const x = tensor([[1, 2, 3]]);
  assert.equal(Array.from(b.forward(x).data()), Array.from(a.forward(x).data()));
  const wrong = withInitDefaults({}, () => new Sequential(new Linear(3, 5), new ReLU(), new Linear(5, 2)));
  await loadModel(path, wrong).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /shape mismatch for 0\.weight: the module has \[5, 3\], the state dict \[4, 3\]/));
});

test('loadModel builds the module from the file\'s metadata when given a function; serializeModel is the bytes saveModel writes', async () => {
  const mlp = (widths: number[], seed: number): Sequential => withInitDefaults({ generator: new Generator(seed) }, () => new Sequential(new Linear(widths[0]!, widths[1]!), new ReLU(), new Linear(widths[1]!, widths[2]!)));
  const a = mlp([3, 7, 2], 1);
  const path = join(dir, 'mlp-built.safetensors');
  saveModelSync(path, a, { config: JSON.stringify({ widths: [3, 7, 2] }) });
  assert.equal(readFileSync(path), Buffer.from(serializeModel(a, { config: JSON.stringify({ widths: [3, 7, 2] }) })));
  let seen: Record<string, string> = {};
  const { module: b } = loadModelSync(path, (metadata) => { seen = metadata; return mlp(JSON.parse(metadata.config!).widths, 2); });
  assert.equal(JSON.parse(seen.config!), { widths: [3, 7, 2] });
  const x = tensor([[1, 2, 3]]);
  assert.equal(Array.from(b.forward(x).data()), Array.from(a.forward(x).data()));
});

// ---- fuzzing: never a crash other than SafetensorsError, never a hang, never a big allocation ----

const parseOutcome = (bytes: Uint8Array): 'ok' | 'error' => {
  try {
    parseSafetensors(bytes, { source: 'fuzz' });
    return 'ok';
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw e;
    return 'error';
  }
};

const dtypeArb = fc.constantFrom('F32', 'F64', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'F8_E5M2', 'X', '', 'f32');
const entryArb = fc.record({
  dtype: fc.oneof(dtypeArb, fc.integer(), fc.constant(null)),
  shape: fc.oneof(fc.array(fc.oneof(fc.nat(5), fc.integer({ min: -3, max: 2 ** 40 }), fc.double()), { maxLength: 4 }), fc.string()),
  data_offsets: fc.oneof(fc.tuple(fc.nat(64), fc.nat(64)), fc.array(fc.integer({ min: -10, max: 2 ** 53 }), { maxLength: 3 }), fc.constant('x')),
}, { requiredKeys: [] });
const headerArb = fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constant('__metadata__'), fc.constant('__proto__')), fc.oneof(entryArb, fc.jsonValue({ maxDepth: 2 })), { maxKeys: 4 });
const lengthArb = fc.oneof(fc.constant(null), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 200n }));

test('fuzz: structured headers with random lengths and data (400 runs)', () => {
  fc.assert(
    fc.property(headerArb, fc.uint8Array({ maxLength: 64 }), lengthArb, fc.nat(7), (header, data, length, pad) => {
      const text = JSON.stringify(header) + ' '.repeat(pad);
      const bytes = file(text, data, length ?? undefined);
      const t0 = performance.now();
      const before = process.memoryUsage().arrayBuffers;
      parseOutcome(bytes);
      assert.ok(performance.now() - t0 < 1000, 'parse took too long');
      assert.ok(process.memoryUsage().arrayBuffers - before < 16 * 1024 * 1024, 'parse allocated too much');
    }),
    { numRuns: 400, seed: 42 },
  );
});

test('fuzz: random bytes and mutations of a valid file (300 + 300 runs)', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => { parseOutcome(bytes); }), { numRuns: 300, seed: 7 });
  const valid = serializeSafetensors({ w: tensor([[1, 2], [3, 4]]), b: tensor([5], { dtype: 'float64' }) }, { cfg: '{}' });
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.nat(255)), { minLength: 1, maxLength: 4 }), fc.nat(valid.length), (flips, cut) => {
      const bytes = valid.slice(0, Math.max(cut, 1));
      for (const [i, v] of flips) if (i < bytes.length) bytes[i] = v;
      const outcome = parseOutcome(bytes);
      if (outcome === 'ok') {
        // a mutation that still parses must still describe a consistent file: re-serialising it works
        const { tensors } = parseSafetensors(bytes);
        for (const t of Object.values(tensors)) assert.ok(t.size >= 0);
      }
    }),
    { numRuns: 300, seed: 9 },
  );
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('a failed save names the file and keeps the error code; no temp file is left', async () => {
  const missing = join(dir, 'no-such-folder', 'w.safetensors');
  const t = { w: tensor([1, 2, 3]) };
  for (const save of [() => saveSafetensors(missing, t), async () => saveSafetensorsSync(missing, t)]) {
    try {
      await save();
      assert.unreachable('saving into a missing folder must fail');
    } catch (e) {
      assert.match((e as Error).message, /^cannot write .*no-such-folder\/w\.safetensors: ENOENT/);
      assert.is((e as NodeJS.ErrnoException).code, 'ENOENT');
    }
  }
  assert.not.ok(readdirSync(dir).some((n) => n.endsWith('.tmp')));
});

test.run();
