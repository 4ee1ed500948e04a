/**
 * Chat template rendering bounds (issue #12, item 7): a template that loops, nests loops or
 * produces a huge output fails within the time limit naming the template's file, instead of
 * hanging rac or running it out of memory; normal renders are unchanged and barely slower.
 */
import assert from 'node:assert/strict';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Template } from '@huggingface/jinja';
import { renderPrompt } from '../../src/io/datasets.ts';
import { renderTemplate } from '../../src/io/template-render.ts';
import { RacTokenizer, TokenizerError } from '../../src/io/tokenizer.ts';
import { tempDir } from '../helpers/checkpoints.ts';
import { editJson } from '../helpers/corrupt.ts';

const TINY = 'models/tiny-reasoner';
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'];

/** A tokenizer-only copy of the tiny reasoner whose chat template is `template` (in tokenizer_config.json, or chat_template.jinja). */
async function withTemplate(template: string, where: 'config' | 'jinja' = 'config'): Promise<RacTokenizer> {
  const dir = tempDir('tmpl');
  for (const f of TOKENIZER_FILES) cpSync(join(TINY, f), join(dir, f));
  editJson(join(dir, 'tokenizer_config.json'), (j) => {
    if (where === 'config') j['chat_template'] = template;
    else delete j['chat_template'];
  });
  if (where === 'jinja') writeFileSync(join(dir, 'chat_template.jinja'), template);
  const tok = await RacTokenizer.load(dir);
  tok.templateLimits = { ...tok.templateLimits, timeMs: 1000 };
  return tok;
}

const USER = [{ role: 'user', content: 'What is 2 + 3?' }];

function refusedWithin(tok: RacTokenizer, file: string, re: RegExp, ms: number): void {
  const t0 = performance.now();
  assert.throws(
    () => tok.applyChatTemplate(USER, { addGenerationPrompt: true }),
    (e: unknown) => {
      assert.ok(e instanceof TokenizerError, String(e));
      assert.ok(e.message.startsWith(`${file}: chat template refused: `), e.message);
      assert.match(e.message, re);
      return true;
    },
  );
  const took = performance.now() - t0;
  assert.ok(took < ms, `took ${took.toFixed(0)} ms`);
}

describe('chat template bounds', { concurrency: 1 }, () => {
  it('range(1e8), nested loops and a 30 MB output fail within the limit, naming the file (before: out of memory or a hang)', async () => {
    const loop = await withTemplate('{% for i in range(100000000) %}{% endfor %}x');
    refusedWithin(loop, join(loop.dir, 'tokenizer_config.json'), /range\(\) of 100000000 numbers is over the limit of 1000000$/, 8000);
    // a loop that never allocates much runs into the time limit (default 5 s; 1 s here)
    const endless = await withTemplate('{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}x');
    refusedWithin(endless, join(endless.dir, 'tokenizer_config.json'), /did not finish within 1000 ms or ran out of its 512 MB/, 8000);
    const nested = await withTemplate('{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}', 'jinja');
    refusedWithin(nested, join(nested.dir, 'chat_template.jinja'), /did not finish within 1000 ms/, 8000);
    const huge = await withTemplate(`{% for i in range(300000) %}{{ '${'x'.repeat(100)}' }}{% endfor %}`);
    refusedWithin(huge, join(huge.dir, 'tokenizer_config.json'), /did not finish|characters, more than the 16777216-character limit/, 8000);
    // the output bound on its own
    const big = await withTemplate(`{% for i in range(2000) %}{{ messages[0].content }}{% endfor %}`);
    big.templateLimits = { ...big.templateLimits, maxChars: 10_000 };
    refusedWithin(
      big,
      join(big.dir, 'tokenizer_config.json'),
      /the output has 28000 characters, more than the 10000-character limit/,
      8000,
    );
    // and rendering works again afterwards (a fresh worker replaced the terminated one)
    const tok = await RacTokenizer.load(TINY);
    assert.equal(
      tok.applyChatTemplate(USER, { addGenerationPrompt: true }),
      new Template(tok.chatTemplate!).render({
        messages: USER,
        add_generation_prompt: true,
        bos_token: tok.bosToken,
        eos_token: tok.eosToken,
        pad_token: tok.padToken,
        unk_token: tok.unkToken,
      }),
    );
  });

  it('template errors keep their kind and name the file', async () => {
    const bad = await withTemplate('{% for %}');
    assert.throws(
      () => bad.applyChatTemplate(USER),
      new RegExp(
        `^TokenizerError: ${join(bad.dir, 'tokenizer_config.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot parse chat_template`,
      ),
    );
    const raise = await withTemplate("{{ raise_exception('no system role') }}", 'jinja');
    assert.throws(
      () => raise.applyChatTemplate(USER),
      (e: Error) => e.message === `${join(raise.dir, 'chat_template.jinja')}: chat template: no system role`,
    );
    rmSync(bad.dir, { recursive: true, force: true });
  });

  it('normal renders: same text as in-process rendering; the worker adds little per prompt (measured)', async (ctx) => {
    const tok = await RacTokenizer.load(TINY);
    const rows = Array.from({ length: 1000 }, (_, i) => `Compute ${i} + ${i * 7} and explain the steps carefully.`);
    const t = new Template(tok.chatTemplate!);
    const vars = (content: string) => ({
      messages: [{ role: 'user', content }],
      add_generation_prompt: true,
      bos_token: tok.bosToken,
      eos_token: tok.eosToken,
      pad_token: tok.padToken,
      unk_token: tok.unkToken,
    });
    renderPrompt(tok, rows[0]!); // worker start-up out of the timing
    let t0 = performance.now();
    const direct = rows.map((r) => t.render(vars(r)));
    const inProcess = (performance.now() - t0) / rows.length;
    t0 = performance.now();
    for (const r of rows) tok.applyChatTemplate([{ role: 'user', content: r }], { addGenerationPrompt: true });
    const inWorker = (performance.now() - t0) / rows.length;
    t0 = performance.now();
    const bounded = rows.map((r) => renderPrompt(tok, r).text);
    const withEncode = (performance.now() - t0) / rows.length;
    assert.deepEqual(bounded, direct);
    t0 = performance.now();
    renderTemplate(tok.chatTemplate!, rows.map(vars));
    const batched = (performance.now() - t0) / rows.length;
    const diag = `in-process render ${inProcess.toFixed(3)} ms/prompt; bounded (worker) render ${inWorker.toFixed(3)} ms/prompt; bounded render + encode ${withEncode.toFixed(3)} ms/prompt; one batched worker call ${batched.toFixed(3)} ms/prompt`;
    ctx.diagnostic(diag);
    // generous: a shared 2-core machine; what matters is that a dataset of thousands stays at seconds
    assert.ok(withEncode < 5, diag);
  });
});
