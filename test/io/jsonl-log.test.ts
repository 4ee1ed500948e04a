/**
 * The append-only JSONL log (src/io/jsonl.ts) that `rac trace` and `rac eval` share: a torn last
 * line is reported and truncated away, a corrupt complete line is an error naming it, appends are
 * complete lines.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { JsonlAppender, JsonlError, readJsonlLog, repairJsonlLog } from '../../src/io/jsonl.ts';
import { tempDir } from '../helpers/checkpoints.ts';

describe('append-only JSONL log', () => {
  it('reports a torn last line (even one cut inside a UTF-8 character) and repair truncates it', () => {
    const p = join(tempDir('jsonllog'), 'log.jsonl');
    const full = Buffer.from('{"a":1}\n\n{"a":"é"}\n', 'utf8');
    const torn = Buffer.from('{"a":"é', 'utf8').subarray(0, 7); // ends inside "é"
    writeFileSync(p, Buffer.concat([full, torn]));
    const log = readJsonlLog(p);
    assert.deepEqual(
      log.rows.map((r) => r.row),
      [{ a: 1 }, { a: 'é' }],
    );
    assert.deepEqual(
      log.rows.map((r) => r.where),
      [`${p}:1`, `${p}:3`],
    );
    assert.equal(log.validBytes, full.length);
    assert.equal(log.tornBytes, 7);
    repairJsonlLog(p, log);
    assert.deepEqual(readFileSync(p), full);
    assert.equal(readJsonlLog(p).tornBytes, 0);
  });

  it("a corrupt complete line is an error naming file:line, with the caller's record name and hint", () => {
    const p = join(tempDir('jsonllog'), 'log.jsonl');
    writeFileSync(p, '{"a":1}\n{"a":\n');
    assert.throws(
      () => readJsonlLog(p, { record: 'sample record', hint: 'delete it' }),
      (e: Error) => e instanceof JsonlError && e.message.startsWith(`${p}:2: corrupt sample record (`) && e.message.endsWith('; delete it'),
    );
    writeFileSync(p, '[1]\n');
    assert.throws(() => readJsonlLog(p), /log\.jsonl:1: expected a JSON object$/);
    assert.throws(() => readJsonlLog(join(p, '..', 'absent.jsonl')), /file not found/);
  });

  it('appends complete lines, one write per append', () => {
    const p = join(tempDir('jsonllog'), 'log.jsonl');
    writeFileSync(p, '{"a":0}\n');
    const w = new JsonlAppender(p);
    try {
      w.append([{ a: 1 }, { b: 'x\ny' }]);
      w.append([]);
      w.sync();
    } finally {
      w.close();
    }
    assert.equal(readFileSync(p, 'utf8'), '{"a":0}\n{"a":1}\n{"b":"x\\ny"}\n');
    assert.deepEqual(
      readJsonlLog(p).rows.map((r) => r.row),
      [{ a: 0 }, { a: 1 }, { b: 'x\ny' }],
    );
  });
});
