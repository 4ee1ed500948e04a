/**
 * rac as a library: prune a model with SparseGPT on a calibration file, then load the result and
 * generate — the same job `rac prune` runs, from TypeScript. In a project that installed rac, the
 * import is `from 'rac'`; here it is the checkout's entry module.
 *
 *   npx tsx examples/library.ts MODEL_DIR CALIB.jsonl OUT_DIR
 */
import { closeModel, generateText, loadModel, prune, RacError, type PruneJob } from '../src/index.ts';

const [model, calib, out] = process.argv.slice(2);
if (!model || !calib || !out) {
  console.error('usage: npx tsx examples/library.ts MODEL_DIR CALIB.jsonl OUT_DIR');
  process.exit(2);
}

const job: PruneJob = {
  model,
  out,
  method: 'sparsegpt',
  sparsity: 0.5,
  calibration: { file: calib },
  settings: { calibTokens: 4096, batchTokens: 1024 },
  onProgress: (e) => {
    if (e.phase === 'done') console.error(`layer ${e.layer + 1}/${e.layers} pruned`);
  },
};

try {
  const summary = await prune(job);
  console.log(`pruned ${summary.totals.pruned_linears} Linears to ${(100 * summary.totals.sparsity).toFixed(1)}% → ${out}`);
  const lm = await loadModel(out);
  try {
    const r = await generateText(lm, 'The answer is', { maxNewTokens: 8, temperature: 0 });
    console.log(JSON.stringify({ prompt: r.prompt, completion: r.completions[0]!.text, tokens: r.completions[0]!.ids.length }));
  } finally {
    await closeModel(lm);
  }
} catch (e) {
  // Every refusal is a RacError with a one-line message naming the file and the problem.
  if (e instanceof RacError) {
    console.error(`${e.name}: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
