/**
 * Datasets: JSONL / JSON (array, {data}, datasets-server rows, columns) / Parquet rows → prompts,
 * answers, ids; column defaults and errors naming file, row and the available columns; prompts
 * rendered with the chat template (system prompt, add_generation_prompt, template flags).
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DatasetError, loadDataset, parseTemplateFlag, renderPrompt } from '../../src/io/datasets.ts';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { fileURLToPath } from 'node:url';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { writeParquet } from '../helpers/parquet.ts';

function file(name: string, text: string): string {
  const f = join(tempDir('ds'), name);
  writeFileSync(f, text);
  return f;
}
const jsonl = (name: string, rows: unknown[]) =>
  file(name, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');

async function rejects(p: Promise<unknown>, mentions: string[]): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof DatasetError, `${e.name}: ${e.message}`);
    for (const m of mentions) assert.ok(e.message.includes(m), `${JSON.stringify(e.message)} does not mention ${JSON.stringify(m)}`);
    return true;
  });
}

describe('loadDataset', () => {
  it('JSONL: problem column by default, answers, ids from the id column, blank lines skipped, limit', async () => {
    const f = jsonl('a.jsonl', [
      { id: 'x1', problem: 'What is 1+1?', answer: 2, extra: true },
      '',
      { id: 'x2', problem: 'Name a prime.', answer: '7' },
      { id: 'x3', problem: 'p3' },
    ]);
    const d = await loadDataset(f);
    assert.equal(d.format, 'jsonl');
    assert.equal(d.promptColumn, 'problem');
    assert.equal(d.idColumn, 'id');
    assert.equal(d.totalRows, 3);
    assert.match(d.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(
      d.rows.map((r) => [r.id, r.index, r.prompt, r.answer]),
      [
        ['x1', 0, 'What is 1+1?', '2'],
        ['x2', 1, 'Name a prime.', '7'],
        ['x3', 2, 'p3', undefined],
      ],
    );
    assert.equal(d.rows[0]!.raw['extra'], true);
    const lim = await loadDataset(f, { limit: 2 });
    assert.equal(lim.rows.length, 2);
    assert.equal(lim.totalRows, 3);
  });

  it('prompt column "prompt" when there is no "problem"; row indices as ids when there is no id column', async () => {
    const f = jsonl('b.jsonl', [{ prompt: 'a' }, { prompt: 'b' }]);
    const d = await loadDataset(f);
    assert.equal(d.promptColumn, 'prompt');
    assert.equal(d.idColumn, undefined);
    assert.deepEqual(
      d.rows.map((r) => r.id),
      ['0', '1'],
    );
  });

  it('explicit columns: --prompt-column / --answer-column / --id-column', async () => {
    const f = jsonl('c.jsonl', [
      { q: 'Q1', gold: 'A1', uid: 10 },
      { q: 'Q2', gold: 'A2', uid: 11 },
    ]);
    const d = await loadDataset(f, { promptColumn: 'q', answerColumn: 'gold', idColumn: 'uid' });
    assert.deepEqual(
      d.rows.map((r) => [r.id, r.prompt, r.answer]),
      [
        ['10', 'Q1', 'A1'],
        ['11', 'Q2', 'A2'],
      ],
    );
  });

  it('JSON: an array, {data: [...]}, datasets-server {rows: [{row_idx, row}]}, and columns all give the same rows', async () => {
    const rows = [
      { problem: 'p0', answer: 'a0' },
      { problem: 'p1', answer: 'a1' },
    ];
    const variants = [
      rows,
      { data: rows },
      { rows: rows.map((row, row_idx) => ({ row_idx, row, truncated_cells: [] })) },
      { problem: ['p0', 'p1'], answer: ['a0', 'a1'] },
    ];
    for (const [i, v] of variants.entries()) {
      const d = await loadDataset(file(`v${i}.json`, JSON.stringify(v)));
      assert.equal(d.format, 'json');
      assert.deepEqual(
        d.rows.map((r) => [r.id, r.prompt, r.answer]),
        [
          ['0', 'p0', 'a0'],
          ['1', 'p1', 'a1'],
        ],
        `variant ${i}`,
      );
    }
  });

  it('a prompt given as chat messages is kept as messages', async () => {
    const f = jsonl('m.jsonl', [
      {
        prompt: [
          { role: 'system', content: 'S' },
          { role: 'user', content: 'U' },
        ],
      },
    ]);
    const d = await loadDataset(f);
    assert.equal(d.rows[0]!.prompt, 'U');
    assert.deepEqual(d.rows[0]!.messages, [
      { role: 'system', content: 'S' },
      { role: 'user', content: 'U' },
    ]);
  });

  it('Parquet (uncompressed, and GZIP pages through hyparquet-compressors) with INT64 ids', async () => {
    const cols = { id: [BigInt(7), BigInt(8), BigInt(9)], problem: ['p7', 'p8', 'p9'], answer: ['1', '2', '3'] };
    for (const codec of ['UNCOMPRESSED', 'GZIP'] as const) {
      const f = join(tempDir('pq'), `d-${codec}.parquet`);
      writeParquet(f, cols, { codec });
      const d = await loadDataset(f);
      assert.equal(d.format, 'parquet');
      assert.deepEqual(d.columns, ['id', 'problem', 'answer']);
      assert.deepEqual(
        d.rows.map((r) => [r.id, r.prompt, r.answer]),
        [
          ['7', 'p7', '1'],
          ['8', 'p8', '2'],
          ['9', 'p9', '3'],
        ],
        codec,
      );
      assert.equal(d.rows[0]!.raw['id'], 7);
      const lim = await loadDataset(f, { limit: 1, promptColumn: 'answer' });
      assert.deepEqual(
        lim.rows.map((r) => r.prompt),
        ['1'],
      );
      assert.equal(lim.totalRows, 3);
    }
    const bad = join(tempDir('pq'), 'bad.parquet');
    writeFileSync(bad, 'PAR1 not really');
    await rejects(loadDataset(bad), [bad, 'Parquet']);
  });

  it('Parquet --limit decodes only the rows it keeps: values past them are never read (before: the whole row group)', async () => {
    // One row group, one PLAIN page per column (the fixture writer): the third value's length is
    // made absurd, so decoding the whole page fails and decoding the first two cannot.
    const f = join(tempDir('pq-limit'), 'p.parquet');
    writeParquet(f, { problem: ['first prompt', 'second prompt', 'THIRD-VALUE-XYZ'], answer: ['1', '2', '3'] });
    const bytes = readFileSync(f);
    const at = bytes.indexOf(Buffer.from('THIRD-VALUE-XYZ'));
    assert.ok(at > 4);
    bytes.writeUInt32LE(0x7fffffff, at - 4);
    writeFileSync(f, bytes);
    await rejects(loadDataset(f), [f, 'Parquet']);
    const d = await loadDataset(f, { limit: 2 });
    assert.deepEqual(
      d.rows.map((r) => [r.prompt, r.answer]),
      [
        ['first prompt', '1'],
        ['second prompt', '2'],
      ],
    );
    assert.equal(d.totalRows, 3);
    // GZIP pages, several row groups' worth of limits: the same rows as a full read.
    const g = join(tempDir('pq-limit'), 'g.parquet');
    const cols = { id: [1n, 2n, 3n, 4n, 5n], problem: ['a', 'b', 'c', 'd', 'e'], answer: ['1', '2', '3', '4', '5'] };
    writeParquet(g, cols, { codec: 'GZIP' });
    const all = (await loadDataset(g)).rows;
    for (const limit of [0, 1, 3, 5, 9]) assert.deepEqual((await loadDataset(g, { limit })).rows, all.slice(0, limit), `limit ${limit}`);
  });

  it('a dataset file that is a FIFO is refused at once (before: rac hung reading it)', async () => {
    const dir = tempDir('ds-fifo');
    const fifo = join(dir, 'prompts.jsonl');
    execFileSync('mkfifo', [fifo]);
    const mod = fileURLToPath(new URL('../../src/io/datasets.ts', import.meta.url));
    const code = `import('tsx/esm/api').then(async (t) => { t.register(); const { loadDataset } = await import(${JSON.stringify(mod)}); try { await loadDataset(${JSON.stringify(fifo)}); console.log('read'); } catch (e) { console.log(e.name + ': ' + e.message); } })`;
    const out = await new Promise<string>((resolve) =>
      execFile(process.execPath, ['-e', code], { timeout: 30_000, killSignal: 'SIGKILL' }, (err, stdout) =>
        resolve(err && err.killed ? 'killed: it hung' : stdout.trim()),
      ),
    );
    assert.equal(out, `DatasetError: ${fifo}: is a FIFO, not a regular file`);
  });

  it('errors name the file, the row and the available columns', async () => {
    const f = jsonl('e.jsonl', [
      { problem: 'ok', id: 'a' },
      { question: 'no problem here', id: 'b' },
    ]);
    await rejects(loadDataset(f), [f, ':2', 'row 1', 'missing prompt column "problem"', 'available columns: problem, id']);
    await rejects(loadDataset(f, { promptColumn: 'text' }), [f, 'no column "text"', 'available columns: problem, id']);
    await rejects(loadDataset(f, { answerColumn: 'gold' }), ['no column "gold"', 'available columns']);
    const nop = jsonl('nop.jsonl', [{ body: 'x' }]);
    await rejects(loadDataset(nop), [nop, 'no prompt column', 'problem, prompt, question', 'available columns: body']);
    const badJson = file('bad.jsonl', '{"problem": "a"}\n{"problem": \n');
    await rejects(loadDataset(badJson), [`${badJson}:2`, 'invalid JSON']);
    const notObj = jsonl('arr.jsonl', [[1, 2]]);
    await rejects(loadDataset(notObj), [`${notObj}:1`, 'expected a JSON object']);
    const dup = jsonl('dup.jsonl', [
      { problem: 'a', k: 1 },
      { problem: 'b', k: 1 },
    ]);
    await rejects(loadDataset(dup, { idColumn: 'k' }), ['duplicate id "1"', 'row 0']);
    const numPrompt = jsonl('num.jsonl', [{ problem: 5 }]);
    await rejects(loadDataset(numPrompt), ['prompt column "problem" must be a string']);
    await rejects(loadDataset(join(tempDir('ds'), 'missing.jsonl')), ['missing.jsonl', 'file not found']);
    await rejects(loadDataset(file('x.csv', 'a,b\n')), ['unknown dataset format ".csv"']);
    await rejects(loadDataset(file('empty.jsonl', '\n\n')), ['no rows']);
    await rejects(loadDataset(file('obj.json', '{"a": 1}')), ['expected an array of rows']);
  });

  it('an automatic id column with duplicates falls back to row indices', async () => {
    const d = await loadDataset(
      jsonl('autodup.jsonl', [
        { problem: 'a', id: 1 },
        { problem: 'b', id: 1 },
      ]),
    );
    assert.equal(d.idColumn, undefined);
    assert.deepEqual(
      d.rows.map((r) => r.id),
      ['0', '1'],
    );
  });
});

describe('renderPrompt', () => {
  it('chat template with the system prompt and add_generation_prompt; ids = encode(text) without added specials', async () => {
    const tok = await RacTokenizer.load(checkpoint({ family: 'qwen2', seed: 11 }));
    const r = renderPrompt(tok, 'What is 2+2?', { system: 'Think step by step.' });
    assert.equal(
      r.text,
      '<|im_start|>system\nThink step by step.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n',
    );
    assert.deepEqual(r.ids, tok.encode(r.text, { addSpecialTokens: false }));
    assert.equal(r.ids[0], tok.tokenToId('<|im_start|>'));
    const plain = renderPrompt(tok, 'What is 2+2?');
    assert.equal(plain.text, '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n');
    // template flags pass through (Qwen3's enable_thinking=false closes an empty think block)
    const off = renderPrompt(tok, 'What is 2+2?', { templateFlags: { enable_thinking: false } });
    assert.equal(off.text, plain.text + '<think>\n\n</think>\n\n');
    assert.equal(renderPrompt(tok, 'What is 2+2?', { templateFlags: { enable_thinking: true } }).text, plain.text);
    // a row with messages keeps its own system message
    const row = {
      id: '0',
      index: 0,
      prompt: 'U',
      messages: [
        { role: 'system', content: 'S' },
        { role: 'user', content: 'U' },
      ],
      raw: {},
    };
    assert.equal(
      renderPrompt(tok, row, { system: 'ignored' }).text,
      '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('template flags parse key=value with JSON values', () => {
    assert.deepEqual(parseTemplateFlag('enable_thinking=false'), ['enable_thinking', false]);
    assert.deepEqual(parseTemplateFlag('budget=1024'), ['budget', 1024]);
    assert.deepEqual(parseTemplateFlag('mode=fast'), ['mode', 'fast']);
    assert.throws(() => parseTemplateFlag('novalue'), /key=value/);
    assert.throws(() => parseTemplateFlag('bad-name=1'), /identifier/);
  });
});
