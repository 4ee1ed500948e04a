/**
 * Invalid UTF-8 in datasets, calibration files and traces is refused naming the file and line
 * (it used to be replaced by U+FFFD and used); well-formed multi-byte text and a BOM are accepted.
 */
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { DatasetError, loadDataset } from '../../src/io/datasets.ts';
import { decodeUtf8, firstInvalidUtf8, JsonlError } from '../../src/io/jsonl.ts';
import { Rng } from '../../src/models/sampling.ts';
import { CalibError, readCalibJsonl } from '../../src/prune/calib.ts';
import { buildRacComponent, buildTextComponent } from '../../src/prune/calib-modes.ts';
import { readTraceFile, TraceError } from '../../src/study/trace.ts';
import { tempDir } from '../helpers/checkpoints.ts';

const enc = (s: string) => Buffer.from(s, 'utf8');

function file(name: string, ...parts: (string | number[])[]): string {
  const f = join(tempDir('utf8'), name);
  writeFileSync(f, Buffer.concat(parts.map((p) => (typeof p === 'string' ? enc(p) : Buffer.from(p)))));
  return f;
}

describe('firstInvalidUtf8 / decodeUtf8', () => {
  it('agrees with node:buffer isUtf8 on 20,000 random byte strings, and with TextDecoder on what it decodes', () => {
    const rng = new Rng(12, 34);
    const pool = [0x41, 0x0a, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xa0, 0xed, 0x9f, 0xef, 0xf0, 0x90, 0xf4, 0x8f, 0xf5, 0xff];
    for (let t = 0; t < 20_000; t++) {
      const n = 1 + Math.floor(rng.next() * 8);
      const b = Buffer.from(
        Array.from({ length: n }, () => (rng.next() < 0.7 ? pool[Math.floor(rng.next() * pool.length)]! : Math.floor(rng.next() * 256))),
      );
      const at = firstInvalidUtf8(b);
      assert.equal(at === -1, isUtf8(b), b.toString('hex'));
      if (at >= 0) assert.ok(isUtf8(b.subarray(0, at)), `the prefix before ${at} is valid: ${b.toString('hex')}`);
      else assert.equal(decodeUtf8(b, 'x'), new TextDecoder().decode(b));
    }
  });

  it('names the line and byte offset; a BOM is dropped', () => {
    assert.throws(
      () => decodeUtf8(Buffer.concat([enc('ok\nstill ok\nbad '), Buffer.from([0xff]), enc('\n')]), 'f.jsonl'),
      (e: Error) => {
        assert.ok(e instanceof JsonlError);
        assert.equal(e.message, 'f.jsonl:3: invalid UTF-8 (byte 0xff at offset 16); the file must be UTF-8 text');
        return true;
      },
    );
    assert.equal(decodeUtf8(Buffer.from([0xef, 0xbb, 0xbf, 0x61]), 'x'), 'a');
  });
});

describe('invalid UTF-8 is refused where rac reads text', () => {
  const good = { prompt: 'naïve café — 日本語 😀', answer: '1' };

  it('JSONL and JSON datasets: DatasetError naming file:line; valid multi-byte text and a BOM load', async () => {
    for (const [name, bytes, line] of [
      ['invalid-byte.jsonl', [0xff], 2],
      ['overlong.jsonl', [0xc0, 0xaf], 2],
      ['surrogate.jsonl', [0xed, 0xa0, 0x80], 2],
      ['latin1.jsonl', [0xe9], 2], // "é" saved as Latin-1
    ] as const) {
      const f = file(name, JSON.stringify(good) + '\n{"prompt": "caf', [...bytes], '"}\n');
      await assert.rejects(loadDataset(f), (e: Error) => {
        assert.ok(e instanceof DatasetError, e.message);
        assert.match(
          e.message,
          new RegExp(
            `^${resolve(f).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}: invalid UTF-8 \\(byte 0x${bytes[0]!.toString(16)} at offset \\d+\\)`,
          ),
        );
        return true;
      });
    }
    const json = file('bad.json', '[\n' + JSON.stringify(good) + ',\n{"prompt": "', [0xfe], '"}\n]');
    await assert.rejects(loadDataset(json), /bad\.json:3: invalid UTF-8 \(byte 0xfe/);
    const ok = await loadDataset(file('good.jsonl', '\uFEFF' + JSON.stringify(good) + '\n'));
    assert.equal(ok.rows[0]!.prompt, good.prompt);
  });

  it('calibration JSONL (--calib) and text files (--text-files): CalibError naming file:line', () => {
    const f = file('calib.jsonl', '{"input_ids": [1, 2]}\n{"text": "x', [0xc3], '"}\n');
    assert.throws(
      () => readCalibJsonl(f, { encode: (s: string) => [...s].map((c) => c.charCodeAt(0) % 50) }, 50, { tokenBudget: 0, maxSeqLen: 64 }),
      (e: Error) => {
        assert.ok(e instanceof CalibError);
        assert.match(e.message, /calib\.jsonl:2: invalid UTF-8 \(byte 0xc3 at offset 33\)/);
        return true;
      },
    );
    const txt = file('notes.md', 'fine\n', [0xa0], '\n');
    const ctx = {
      vocabSize: 50,
      tokenizer: { encode: (s: string) => [...s].map((c) => c.charCodeAt(0) % 50), eosTokenId: 0 },
    } as unknown as Parameters<typeof buildTextComponent>[2];
    const shape = { tokenBudget: 0, maxSeqLen: 64, overflow: 'truncate', pack: false } as unknown as Parameters<
      typeof buildTextComponent
    >[3];
    assert.throws(() => buildTextComponent([txt], 'text', ctx, shape), /notes\.md:2: invalid UTF-8 \(byte 0xa0 at offset 5\)/);
  });

  it('traces: a record with invalid UTF-8 is refused; a torn tail cut inside a character is still just a torn tail', () => {
    const rec = (i: number, text: string) =>
      JSON.stringify({ prompt_id: `p${i}`, sample: 0, input_ids: [1, 2, 3], num_prompt_tokens: 1, text });
    const bad = file('bad-traces.jsonl', rec(0, 'ok') + '\n' + rec(1, 'x').slice(0, -2), [0xff], '"}\n');
    assert.throws(
      () => readTraceFile(bad),
      (e: Error) => e instanceof TraceError && /bad-traces\.jsonl:2: invalid UTF-8/.test(e.message),
    );
    const ctx = { vocabSize: 10, tokenizer: null } as unknown as Parameters<typeof buildRacComponent>[1];
    const shape = { tokenBudget: 0, maxSeqLen: 64, overflow: 'truncate', pack: false } as unknown as Parameters<
      typeof buildRacComponent
    >[2];
    assert.throws(
      () => buildRacComponent([bad], ctx, shape),
      (e: Error) => e instanceof CalibError && /bad-traces\.jsonl:2: invalid UTF-8/.test(e.message),
    );
    // "😀" is 4 bytes: a write killed after 2 of them.
    const torn = file(
      'torn.jsonl',
      rec(0, 'ok') + '\n',
      enc(rec(1, '😀'))
        .subarray(0, rec(1, 'x').length - 1)
        .toJSON().data,
    );
    assert.equal(readTraceFile(torn).records.length, 1);
    const c = buildRacComponent([torn], ctx, shape);
    assert.ok(c);
  });
});
