import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsError, SafetensorsFile, SafetensorsModel, findNonFinite } from '../../src/io/safetensors.ts';
import { SafetensorsWriter, writeSafetensors, writeShardedIndex } from '../../src/io/safetensors-writer.ts';
import { f32ToBf16, f32ToF16 } from '../../src/io/dtype.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rac-safetensors-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let counter = 0;
/** A fresh directory under the test root. */
function freshDir(): string {
  const d = path.join(root, `d${counter++}`);
  fs.mkdirSync(d);
  return d;
}

/** u64 LE length + header text + data, as raw bytes. */
function rawFile(header: string, data: Uint8Array | number[] = [], headerLen?: bigint): Buffer {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(h.length));
  return Buffer.concat([len, h, Buffer.from(data instanceof Uint8Array ? data : Uint8Array.from(data))]);
}

function f32Bytes(...xs: number[]): Buffer {
  return Buffer.from(new Float32Array(xs).buffer);
}

/** Asserts `fn` throws a SafetensorsError whose message starts with `file` and contains `phrase`. */
function assertStErr(fn: () => unknown, file: string, phrase: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.ok(e.message.startsWith(`${file}: `), `message should start with the path: ${e.message}`);
    if (typeof phrase === 'string') assert.ok(e.message.includes(phrase), `"${phrase}" not in: ${e.message}`);
    else assert.match(e.message, phrase);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

test('byte-exact against the reference format: single F32 tensor, no padding needed', () => {
  const file = path.join(freshDir(), 'a.safetensors');
  writeSafetensors(file, [{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) }]);
  // The reference test vector: '@' = 64 header bytes, then 24 bytes of little-endian f32 0..5.
  const want = Buffer.concat([
    Buffer.from('@\x00\x00\x00\x00\x00\x00\x00', 'latin1'),
    Buffer.from('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}', 'utf8'),
    Buffer.from('\x00\x00\x00\x00\x00\x00\x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@\x00\x00\xa0@', 'latin1'),
  ]);
  assert.deepEqual(fs.readFileSync(file), want);
  const f = SafetensorsFile.open(file);
  assert.deepEqual(Array.from(f.readF32('attn.0')), [0, 1, 2, 3, 4, 5]);
  assert.equal(f.metadata, undefined);
  f.close();
});

test('byte-exact: header padded with spaces to a multiple of 8, __metadata__ first', () => {
  const file = path.join(freshDir(), 'b.safetensors');
  writeSafetensors(
    file,
    [
      { name: 'attn.0', dtype: 'I16', shape: [1], data: Uint8Array.from([1, 0]) },
      { name: 'attn.1', dtype: 'I16', shape: [2], data: Uint8Array.from([5, 4, 3, 2]) },
      { name: 'attn.2', dtype: 'I16', shape: [1], data: Uint8Array.from([7, 6]) },
    ],
    { happy: 'very' },
  );
  const json =
    '{"__metadata__":{"happy":"very"},"attn.0":{"dtype":"I16","shape":[1],"data_offsets":[0,2]},' +
    '"attn.1":{"dtype":"I16","shape":[2],"data_offsets":[2,6]},"attn.2":{"dtype":"I16","shape":[1],"data_offsets":[6,8]}}';
  assert.equal(json.length, 207);
  const want = Buffer.concat([
    Buffer.from([0xd0, 0, 0, 0, 0, 0, 0, 0]), // 208
    Buffer.from(json + ' ', 'utf8'),
    Buffer.from([1, 0, 5, 4, 3, 2, 7, 6]),
  ]);
  assert.deepEqual(fs.readFileSync(file), want);
  const f = SafetensorsFile.open(file);
  assert.deepEqual(f.metadata, { happy: 'very' });
  assert.deepEqual([...f.tensors.keys()], ['attn.0', 'attn.1', 'attn.2']);
  assert.deepEqual([...f.readRaw('attn.1')], [5, 4, 3, 2]);
  const t = f.tensors.get('attn.2')!;
  assert.equal(t.file, file);
  assert.equal(t.start, 8 + 208 + 6);
  assert.equal(t.byteLength, 2);
  assert.deepEqual(t.shape, [1]);
  f.close();

  // forced alignment (the reference's second vector): 65 bytes of JSON → 7 spaces → 72 ('H')
  const file2 = path.join(path.dirname(file), 'c.safetensors');
  writeSafetensors(file2, [{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) }]);
  const got = fs.readFileSync(file2);
  assert.equal(got.readBigUInt64LE(0), 72n);
  assert.equal(got.subarray(8, 80).toString('utf8'), '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ');
});

test('float dtypes round-trip through writeF32/readF32', () => {
  const dir = freshDir();
  const file = path.join(dir, 'm.safetensors');
  const x = new Float32Array([1, -2.5, 0.15625, 65504, 2 ** -24, -0, 3.140625, 2 ** -10]);
  const y = new Float32Array([1.1, -7.3e5, 1e-40, Infinity, NaN]); // values F32 keeps but F16/BF16 round
  writeSafetensors(file, [
    { name: 'f32', dtype: 'F32', shape: [2, 4], data: x },
    { name: 'f16', dtype: 'F16', shape: [8], data: x },
    { name: 'bf16', dtype: 'BF16', shape: [4, 2], data: new Float32Array([1, -2.5, 0.15625, 3.140625, 256, -0.5, 2 ** -100, 7]) },
    { name: 'y32', dtype: 'F32', shape: [5], data: y },
    { name: 'y16', dtype: 'F16', shape: [5], data: y },
    { name: 'yb16', dtype: 'BF16', shape: [5], data: y },
    { name: 'i32', dtype: 'I32', shape: [3], data: new Uint8Array(new Int32Array([-1, 7, 1 << 30]).buffer) },
    { name: 'scalar', dtype: 'F64', shape: [], data: new Uint8Array(new Float64Array([Math.PI]).buffer) },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  ]);
  const f = SafetensorsFile.open(file);
  assert.deepEqual(Array.from(f.readF32('f32')), Array.from(x));
  assert.deepEqual(Array.from(f.readF32('f16')), Array.from(x)); // all exactly representable in half
  assert.deepEqual(Array.from(f.readF32('bf16')), [1, -2.5, 0.15625, 3.140625, 256, -0.5, 2 ** -100, 7]);
  assert.ok(Object.is(f.readF32('f16')[5], -0));
  assert.deepEqual(Array.from(f.readF32('y32')), Array.from(y));
  // narrowed bytes are exactly the converters' output
  assert.deepEqual(f.readRaw('y16'), Buffer.from(f32ToF16(y).buffer));
  assert.deepEqual(f.readRaw('yb16'), Buffer.from(f32ToBf16(y).buffer));
  const y16 = f.readF32('y16');
  assert.equal(y16[0], 1.099609375);
  assert.equal(y16[1], -Infinity); // overflow
  assert.equal(y16[2], 0); // underflow
  assert.equal(y16[3], Infinity);
  assert.ok(Number.isNaN(y16[4]!));
  const yb = f.readF32('yb16');
  assert.equal(yb[0], 1.1015625);
  assert.ok(Number.isNaN(yb[4]!));
  assert.equal(findNonFinite(y16), 1);
  assert.deepEqual(Array.from(new Int32Array(f.readRaw('i32').buffer)), [-1, 7, 1 << 30]);
  const s = f.readRaw('scalar');
  assert.equal(s.readDoubleLE(0), Math.PI);
  assert.deepEqual(f.tensors.get('scalar')!.shape, []);
  assert.equal(f.readF32('empty').length, 0);
  assertStErr(() => f.readF32('i32'), file, 'has dtype I32; readF32 reads only F32, F16 and BF16');
  assertStErr(() => f.readRaw('nope'), file, 'no tensor "nope"');
  f.close();
  assertStErr(() => f.readRaw('f32'), file, 'after close()');
});

test('writer: positional writes in any order give the same bytes as a hand-built file', () => {
  const dir = freshDir();
  const file = path.join(dir, 'w.safetensors');
  const entries = [
    { name: 'a', dtype: 'F32', shape: [2] },
    { name: 'b', dtype: 'U8', shape: [3] },
    { name: 'c', dtype: 'BF16', shape: [2] },
  ];
  const w = SafetensorsWriter.create(file, entries, { format: 'pt' });
  assert.equal(w.dataBytes, 8 + 3 + 4);
  w.writeF32('c', new Float32Array([1, -2]));
  w.write('b', Uint8Array.from([9, 8, 7]));
  assertStErr(() => w.write('b', Uint8Array.from([9, 8, 7])), file, 'tensor "b" written twice');
  assertStErr(() => w.write('a', Uint8Array.from([1, 2, 3])), file, 'tensor "a": got 3 bytes, expected 8');
  assertStErr(() => w.writeF32('a', new Float32Array(3)), file, 'got 3 values, expected 2');
  assertStErr(() => w.writeF32('b', new Float32Array(3)), file, 'writeF32 writes only F32, F16 and BF16');
  assertStErr(() => w.write('zz', Uint8Array.from([])), file, 'no tensor "zz"');
  w.writeF32('a', new Float32Array([0.5, 4]));
  w.close();

  const json =
    '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},"c":{"dtype":"BF16","shape":[2],"data_offsets":[11,15]}}';
  const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
  const want = rawFile(padded, Buffer.concat([f32Bytes(0.5, 4), Buffer.from([9, 8, 7]), Buffer.from([0x80, 0x3f, 0x00, 0xc0])]));
  assert.deepEqual(fs.readFileSync(file), want);
  assert.equal(padded.length % 8, 0);

  const f = SafetensorsFile.open(file);
  assert.deepEqual(Array.from(f.readF32('c')), [1, -2]);
  assert.deepEqual(f.metadata, { format: 'pt' });
  f.close();
});

test('writer: close() names tensors never written; bad entries rejected up front', () => {
  const dir = freshDir();
  const file = path.join(dir, 'x.safetensors');
  const w = SafetensorsWriter.create(file, [
    { name: 'one', dtype: 'F32', shape: [1] },
    { name: 'two', dtype: 'F32', shape: [1] },
    { name: 'three', dtype: 'F32', shape: [1] },
  ]);
  w.writeF32('two', new Float32Array([2]));
  assertStErr(() => w.close(), file, '2 tensor(s) never written: "one", "three"');

  assertStErr(
    () =>
      SafetensorsWriter.create(file, [
        { name: 'a', dtype: 'F32', shape: [1] },
        { name: 'a', dtype: 'F32', shape: [1] },
      ]),
    file,
    'duplicate tensor name "a"',
  );
  assertStErr(() => SafetensorsWriter.create(file, [{ name: 'a', dtype: 'F4', shape: [1] }]), file, 'unknown dtype "F4"');
  assertStErr(
    () => SafetensorsWriter.create(file, [{ name: 'a', dtype: 'F32', shape: [-1] }]),
    file,
    'shape must be an array of non-negative integers',
  );
  assertStErr(
    () => SafetensorsWriter.create(file, [{ name: '__metadata__', dtype: 'F32', shape: [1] }]),
    file,
    'cannot be named __metadata__',
  );

  // writeSafetensors removes its partial file on failure
  const bad = path.join(dir, 'bad.safetensors');
  assertStErr(
    () => writeSafetensors(bad, [{ name: 'a', dtype: 'F32', shape: [4], data: new Float32Array(3) }]),
    bad,
    'got 3 values, expected 4',
  );
  assert.equal(fs.existsSync(bad), false);
});

test('reader keeps header order, including integer-like names JSON.parse would reorder', () => {
  const file = path.join(freshDir(), 'o.safetensors');
  const header =
    '{"z":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"1":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"0":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}}';
  fs.writeFileSync(file, rawFile(header, [5, 6]));
  const f = SafetensorsFile.open(file);
  assert.deepEqual([...f.tensors.keys()], ['z', '1', '0']);
  assert.deepEqual([...f.readRaw('1')], [6]);
  f.close();
});

test('reference edge cases accepted: scalar shape, zero-sized tensor, padded header', () => {
  const dir = freshDir();
  const a = path.join(dir, 'scalar.safetensors');
  fs.writeFileSync(a, rawFile('{"test":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}', [1, 0, 0, 0]));
  const fa = SafetensorsFile.open(a);
  assert.deepEqual([...fa.readRaw('test')], [1, 0, 0, 0]);
  fa.close();
  const b = path.join(dir, 'zero.safetensors');
  fs.writeFileSync(b, rawFile('{"test":{"dtype":"I32","shape":[2,0],"data_offsets":[0, 0]}}'));
  const fb = SafetensorsFile.open(b);
  assert.equal(fb.readRaw('test').length, 0);
  fb.close();
  const c = path.join(dir, 'empty.safetensors');
  fs.writeFileSync(c, rawFile('{}      '));
  const fc = SafetensorsFile.open(c);
  assert.equal(fc.tensors.size, 0);
  fc.close();
});

test('every malformed file is a SafetensorsError naming the file and the problem', () => {
  const dir = freshDir();
  const t = (h: string) => h; // readability
  const cases: [string, Buffer, string][] = [
    ['short', Buffer.from([1, 2, 3, 4, 5]), 'file too short: 5 bytes'],
    ['empty', Buffer.alloc(0), 'file too short: 0 bytes'],
    ['past-end', rawFile('{}', [], 68n), 'header length 68 runs past the end of the file (10 bytes)'],
    ['absurd', rawFile('{}', [], 0xffffff0000000000n), 'is absurd'],
    ['absurd-100mb', rawFile('{}', [], 100_000_001n), 'header length 100000001 is absurd'],
    ['non-utf8', rawFile('', [0xff, 0xfe]).fill(2, 0, 1), 'header is not valid UTF-8'],
    ['not-json', rawFile('{'), 'header is not valid JSON'],
    ['not-object', rawFile('[1,2]'), 'header is not a JSON object'],
    ['null', rawFile('null'), 'header is not a JSON object'],
    ['entry-not-object', rawFile('{"a":3}'), 'tensor "a": entry must be an object'],
    ['no-dtype', rawFile(t('{"a":{"shape":[1],"data_offsets":[0,1]}}'), [0]), 'tensor "a": missing dtype'],
    ['no-shape', rawFile(t('{"a":{"dtype":"U8","data_offsets":[0,1]}}'), [0]), 'tensor "a": missing shape'],
    ['no-offsets', rawFile(t('{"a":{"dtype":"U8","shape":[1]}}'), [0]), 'tensor "a": missing data_offsets'],
    ['dtype-type', rawFile(t('{"a":{"dtype":8,"shape":[1],"data_offsets":[0,1]}}'), [0]), 'tensor "a": dtype must be a string'],
    ['dtype-unknown', rawFile(t('{"a":{"dtype":"F4","shape":[1],"data_offsets":[0,1]}}'), [0]), 'tensor "a": unknown dtype "F4"'],
    [
      'shape-type',
      rawFile(t('{"a":{"dtype":"U8","shape":"1","data_offsets":[0,1]}}'), [0]),
      'tensor "a": shape must be an array of non-negative integers',
    ],
    [
      'shape-neg',
      rawFile(t('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}'), [0]),
      'shape must be an array of non-negative integers (got [-1])',
    ],
    [
      'shape-frac',
      rawFile(t('{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}'), [0]),
      'shape must be an array of non-negative integers (got [1.5])',
    ],
    [
      'offsets-type',
      rawFile(t('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}'), [0]),
      'tensor "a": data_offsets must be [begin, end]',
    ],
    [
      'offsets-neg',
      rawFile(t('{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}'), [0]),
      'tensor "a": data_offsets must be [begin, end]',
    ],
    [
      'offsets-reversed',
      rawFile(t('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}'), [0]),
      'tensor "a": data_offsets [1, 0] end before begin',
    ],
    [
      'offsets-out',
      rawFile(t('{"a":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}'), new Uint8Array(14)),
      'data_offsets [0, 16] run past the end of the data section (14 bytes)',
    ],
    [
      'bytes-vs-shape',
      rawFile(t('{"a":{"dtype":"I32","shape":[2,2],"data_offsets":[0,4]}}'), new Uint8Array(4)),
      'byte length 4 from data_offsets does not match shape [2, 2] × I32 (4 bytes) = 16',
    ],
    [
      'bytes-overflow',
      rawFile(t('{"a":{"dtype":"I32","shape":[2,9223372036854775807],"data_offsets":[0,16]}}'), new Uint8Array(16)),
      'tensor "a": shape must be an array of non-negative integers',
    ],
    [
      'overlap',
      rawFile(
        t('{"test1":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"test2":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}'),
        new Uint8Array(4),
      ),
      'tensor "test2" (bytes [0, 4]) overlaps tensor "test1" (bytes [0, 4])',
    ],
    [
      'gap',
      rawFile(
        t('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}'),
        new Uint8Array(6),
      ),
      'gap in the data section: bytes [2, 4) before tensor "b"',
    ],
    [
      'gap-at-start',
      rawFile(t('{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}'), new Uint8Array(4)),
      'gap in the data section: bytes [0, 2)',
    ],
    [
      'trailing',
      rawFile(
        t('{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}'),
        Buffer.concat([new Uint8Array(16), Buffer.from('extra_bogus_data_for_polyglot_file')]),
      ),
      '34 trailing bytes after the last tensor',
    ],
    [
      'duplicate',
      rawFile(t('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'), [0, 0]),
      'duplicate tensor name "a" in header',
    ],
    ['metadata-type', rawFile(t('{"__metadata__":{"n":1}}')), '__metadata__ value for "n" must be a string'],
    ['metadata-array', rawFile(t('{"__metadata__":["x"]}')), '__metadata__ must be an object of strings'],
  ];
  for (const [name, bytes, phrase] of cases) {
    const file = path.join(dir, `${name}.safetensors`);
    fs.writeFileSync(file, bytes);
    assertStErr(() => SafetensorsFile.open(file), file, phrase);
  }
  const missing = path.join(dir, 'missing.safetensors');
  assertStErr(() => SafetensorsFile.open(missing), missing, 'cannot open (ENOENT');
  assertStErr(() => SafetensorsFile.open(dir), dir, 'not a regular file');
});

test('open reads only the header: a sparse 3 GiB file opens at once and a tensor past 2^31 reads back', () => {
  const dir = freshDir();
  const file = path.join(dir, 'big.safetensors');
  const big = 3 * 2 ** 30;
  const { bytes } = SafetensorsWriter.header(file, [
    { name: 'huge', dtype: 'U8', shape: [big] },
    { name: 'tail', dtype: 'F32', shape: [2] },
  ]);
  const fd = fs.openSync(file, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(bytes.length));
  fs.writeSync(fd, len, 0, 8, 0);
  fs.writeSync(fd, bytes, 0, bytes.length, 8);
  fs.writeSync(fd, f32Bytes(1.5, -3), 0, 8, 8 + bytes.length + big); // sparse hole before it
  fs.closeSync(fd);
  assert.equal(fs.statSync(file).size, 8 + bytes.length + big + 8);
  // reading the whole file would exceed Buffer's limit; open must not
  const f = SafetensorsFile.open(file);
  assert.equal(f.tensors.get('huge')!.byteLength, big);
  assert.equal(f.tensors.get('tail')!.start, 8 + bytes.length + big);
  assert.deepEqual(Array.from(f.readF32('tail')), [1.5, -3]);
  f.close();
});

test('lazy reads: each tensor is read at its own offset only', () => {
  const dir = freshDir();
  const file = path.join(dir, 'lazy.safetensors');
  writeSafetensors(file, [
    { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    { name: 'b', dtype: 'F32', shape: [1024], data: new Float32Array(1024).fill(7) },
  ]);
  const f = SafetensorsFile.open(file);
  // Cut b's region away after the header was validated: a still reads, b reports a short read.
  fs.truncateSync(file, f.tensors.get('b')!.start + 16);
  assert.deepEqual(Array.from(f.readF32('a')), [1, 2]);
  assertStErr(() => f.readRaw('b'), file, 'short read of tensor "b": 16 of 4096 bytes');
  f.close();
});

/** A two-shard model: a, b in shard 1; c in shard 2. */
function makeSharded(dir: string): void {
  writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), [
    { name: 'b', dtype: 'BF16', shape: [2], data: new Float32Array([1, 2]) },
    { name: 'a', dtype: 'F32', shape: [1], data: new Float32Array([3]) },
  ]);
  writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), [
    { name: 'c', dtype: 'F16', shape: [2, 1], data: new Float32Array([4, 5]) },
  ]);
  writeShardedIndex(
    dir,
    { c: 'model-00002-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', a: 'model-00001-of-00002.safetensors' },
    12,
  );
}

function writeIndex(dir: string, weightMap: Record<string, string>, extra = ''): void {
  fs.writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    `{"metadata":{"total_size":1}${extra},"weight_map":${JSON.stringify(weightMap)}}`,
  );
}

test('sharded model with index: names, shards, reads, index text in the HF format', () => {
  const dir = freshDir();
  makeSharded(dir);
  assert.equal(
    fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'),
    '{\n  "metadata": {\n    "total_size": 12\n  },\n  "weight_map": {\n' +
      '    "a": "model-00001-of-00002.safetensors",\n' +
      '    "b": "model-00001-of-00002.safetensors",\n' +
      '    "c": "model-00002-of-00002.safetensors"\n  }\n}\n',
  );
  const m = SafetensorsModel.open(dir);
  assert.deepEqual(m.shards, ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
  assert.deepEqual(m.names(), ['b', 'a', 'c']);
  assert.deepEqual(m.indexMetadata, { total_size: 12 });
  assert.equal(m.has('a'), true);
  assert.equal(m.has('zz'), false);
  assert.equal(m.shardOf('c'), 'model-00002-of-00002.safetensors');
  assert.deepEqual(Array.from(m.readF32('b')), [1, 2]);
  assert.deepEqual(Array.from(m.readF32('c')), [4, 5]);
  assert.deepEqual(m.readRaw('a'), f32Bytes(3));
  const info = m.info('c');
  assert.equal(info.file, path.join(dir, 'model-00002-of-00002.safetensors'));
  assert.equal(info.dtype, 'F16');
  assert.deepEqual(info.shape, [2, 1]);
  assertStErr(() => m.info('zz'), dir, 'no tensor "zz" in this model');
  m.close();
});

test('index JSON escapes like Python json.dumps (ensure_ascii) and sorts by code point', () => {
  const dir = freshDir();
  writeShardedIndex(dir, { é: 's.safetensors', z: 's.safetensors', '\u{1F600}': 's.safetensors', '\uFF5E': 's.safetensors' }, 0);
  assert.equal(
    fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'),
    '{\n  "metadata": {\n    "total_size": 0\n  },\n  "weight_map": {\n' +
      '    "z": "s.safetensors",\n    "\\u00e9": "s.safetensors",\n    "\\uff5e": "s.safetensors",\n    "\\ud83d\\ude00": "s.safetensors"\n  }\n}\n',
  );
  const file = path.join(dir, 'model.safetensors.index.json');
  assertStErr(() => writeShardedIndex(dir, { a: '../x.safetensors' }, 1), file, 'not a plain file name');
});

test('single-file model directory', () => {
  const dir = freshDir();
  writeSafetensors(path.join(dir, 'model.safetensors'), [{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array([9]) }]);
  const m = SafetensorsModel.open(dir);
  assert.deepEqual(m.shards, ['model.safetensors']);
  assert.deepEqual(m.names(), ['w']);
  assert.equal(m.indexMetadata, undefined);
  assert.deepEqual(Array.from(m.readF32('w')), [9]);
  m.close();
  const empty = freshDir();
  assertStErr(() => SafetensorsModel.open(empty), empty, 'no model.safetensors or model.safetensors.index.json');
  const nowhere = path.join(root, 'does-not-exist');
  assertStErr(() => SafetensorsModel.open(nowhere), nowhere, 'cannot open model directory');
});

test('index problems: escapes, missing shards, weight_map ≠ headers', () => {
  const outside = freshDir();
  writeSafetensors(path.join(outside, 'evil.safetensors'), [{ name: 'a', dtype: 'F32', shape: [1], data: new Float32Array([1]) }]);
  const evil = path.join(outside, 'evil.safetensors');

  const check = (setup: (dir: string) => void, phrase: string) => {
    const parent = freshDir();
    const dir = path.join(parent, 'model');
    fs.mkdirSync(dir);
    setup(dir);
    assertStErr(() => SafetensorsModel.open(dir), path.join(dir, 'model.safetensors.index.json'), phrase);
  };
  check((d) => {
    fs.copyFileSync(evil, path.join(d, '..', 'evil.safetensors'));
    writeIndex(d, { a: '../evil.safetensors' });
  }, 'maps to shard "../evil.safetensors", which is not a plain file name inside the model directory');
  check((d) => writeIndex(d, { a: evil }), 'which is not a plain file name');
  check((d) => writeIndex(d, { a: 'sub/x.safetensors' }), 'which is not a plain file name');
  check((d) => writeIndex(d, { a: '..' }), 'which is not a plain file name');
  check((d) => writeIndex(d, { a: 7 as unknown as string }), 'maps to 7, not a file name');
  check(
    (d) => {
      fs.symlinkSync(evil, path.join(d, 'link.safetensors'));
      writeIndex(d, { a: 'link.safetensors' });
    },
    `shard "link.safetensors" resolves to ${fs.realpathSync(evil)}, outside the model directory (symlink escape)`,
  );
  check((d) => writeIndex(d, { a: 'gone.safetensors' }), 'shard "gone.safetensors" does not exist');
  check((d) => {
    makeSharded(d);
    writeIndex(d, {
      a: 'model-00001-of-00002.safetensors',
      b: 'model-00001-of-00002.safetensors',
      c: 'model-00002-of-00002.safetensors',
      d: 'model-00002-of-00002.safetensors',
    });
  }, 'weight_map puts tensor "d" in shard "model-00002-of-00002.safetensors", whose header has no such tensor');
  check((d) => {
    makeSharded(d);
    writeIndex(d, { a: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' });
  }, 'shard "model-00001-of-00002.safetensors" holds tensor "b", which weight_map does not list');
  check((d) => {
    makeSharded(d);
    fs.writeFileSync(
      path.join(d, 'model.safetensors.index.json'),
      '{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors","a":"model-00001-of-00002.safetensors"}}',
    );
  }, 'weight_map: duplicate tensor name "a"');
  check((d) => fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), '{"metadata":{}}'), 'no weight_map');
  check((d) => fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), '{"weight_map":'), 'index is not valid JSON');
  check((d) => fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), '{"weight_map":[]}'), 'weight_map must be an object');
  check((d) => {
    makeSharded(d);
    writeIndex(
      d,
      { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' },
      ',"metadata":5',
    );
  }, 'metadata must be an object');
  // a corrupt shard is reported by its own path
  const parent = freshDir();
  fs.writeFileSync(path.join(parent, 'bad.safetensors'), Buffer.from([1, 2, 3]));
  writeIndex(parent, { a: 'bad.safetensors' });
  assertStErr(() => SafetensorsModel.open(parent), path.join(parent, 'bad.safetensors'), 'file too short');
});

test('Hugging Face cache snapshot: shard symlinks into ../../blobs are allowed', () => {
  const repo = path.join(freshDir(), 'models--org--tiny');
  const snap = path.join(repo, 'snapshots', 'abc123');
  fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
  fs.mkdirSync(snap, { recursive: true });
  writeSafetensors(path.join(repo, 'blobs', 'deadbeef'), [{ name: 'w', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
  fs.symlinkSync('../../blobs/deadbeef', path.join(snap, 'model-00001-of-00001.safetensors'));
  writeIndex(snap, { w: 'model-00001-of-00001.safetensors' });
  const m = SafetensorsModel.open(snap);
  assert.deepEqual(Array.from(m.readF32('w')), [1, 2]);
  m.close();
});
