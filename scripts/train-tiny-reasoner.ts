/**
 * Train rac's tiny reasoning model (issue 4) from scratch on the project's own ONNX graphs
 * (forward + hand-derived backward in one graph, see scripts/train/), then export the
 * Hugging Face directory.
 *
 *   npx tsx scripts/train-tiny-reasoner.ts [--recipe v1|v2] [--out DIR] [--work DIR]
 *       [--steps N] [--resume] [--seed 0] [--threads 0] [--stop-after N] [--export] [--inject-rate R]
 *       [--hidden D] [--layers L] [--heads H] [--kv-heads K] [--intermediate I] [--experts E] [--aux-coef A]
 *
 * Recipes (scripts/train/recipes.ts): `v1` (default) is the shipped models/tiny-reasoner's
 * (0.78M parameters, arith + trace, format v1; --out models/tiny-reasoner, --work
 * /work/tiny-train); `v2` is issue 17's self-checking reasoner (2.46M parameters, arith + trace
 * in format v2 with 15% injected, loss-masked errors, and the code family; --out
 * models/tiny-reasoner-v2, --work /work/tiny-train-v2), see models/tiny-reasoner-v2/RECIPE.md.
 * A resumed run keeps its checkpoint's recipe (--recipe must then name the same one or be absent;
 * it only picks the default --work).
 *
 * Deterministic: fixed seed, data order a pure function of (seed, position in the stream).
 * Resumable: a checkpoint (params, Adam moments, step, data cursor) is written atomically to
 * <work>/checkpoint.bin every few minutes and on Ctrl-C / SIGTERM; --resume continues exactly
 * where it stopped. Each checkpoint also refreshes <work>/latest (an HF export for evaluation).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RacTokenizer } from '../src/io/tokenizer.ts';
import { setRuntimeDefaults } from '../src/runtime/session.ts';
import { createRng, hashSeed } from '../src/tasks/rng.ts';
import type { TinyProblem } from '../src/tasks/tiny/index.ts';
import { loadCheckpoint, saveCheckpoint, type CheckpointMeta } from './train/checkpoint.ts';
import {
  batchFeeds,
  encodeExample,
  makeTokenizer,
  packBatch,
  permutation,
  ropeTable,
  trainPool,
  type Example,
  type PackState,
} from './train/data.ts';
import { numberFlag, parseFlags, stringFlag } from './train/cli.ts';
import { exportHf } from './train/export.ts';
import { headDim, initParams, paramSpecs, Params, type TinyConfig } from './train/model.ts';
import { AdamW, lrAt } from './train/optim.ts';
import { RECIPE_NAMES, RECIPES, type RecipeName } from './train/recipes.ts';
import { StepRunner } from './train/step.ts';

interface Args {
  /** The recipe named by --recipe (null: none given → v1 for a fresh run, the checkpoint's on resume). */
  recipe: RecipeName | null;
  out: string;
  work: string;
  injectRate: number | null;
  steps: number | null;
  resume: boolean;
  seed: number;
  threads: number;
  /** Stop (with a checkpoint) after this many steps in this invocation (tests). */
  stopAfter: number | null;
  /** Model/batch overrides for a fresh run (tests); a resumed run keeps the checkpoint's. */
  model: Partial<Omit<TinyConfig, 'vocab'>>;
  batch: number | null;
  seq: number | null;
  quiet: boolean;
  /** Export the checkpoint as it stands to --out and exit (no training). */
  exportOnly: boolean;
}

const STRING = { type: 'string' } as const;
const BOOLEAN = { type: 'boolean' } as const;

function parseArgs(argv: string[]): Args {
  const v = parseFlags(argv, {
    out: STRING,
    work: STRING,
    steps: STRING,
    resume: BOOLEAN,
    seed: STRING,
    threads: STRING,
    'stop-after': STRING,
    hidden: STRING,
    layers: STRING,
    heads: STRING,
    'kv-heads': STRING,
    intermediate: STRING,
    experts: STRING,
    'aux-coef': STRING,
    batch: STRING,
    seq: STRING,
    quiet: BOOLEAN,
    export: BOOLEAN,
    recipe: STRING,
    'inject-rate': STRING,
  });
  const recipeFlag = stringFlag(v, 'recipe');
  if (recipeFlag !== undefined && !RECIPE_NAMES.includes(recipeFlag as RecipeName)) {
    throw new Error(`--recipe must be one of ${RECIPE_NAMES.join(', ')} (got ${JSON.stringify(recipeFlag)})`);
  }
  const recipe = (recipeFlag ?? null) as RecipeName | null;
  const defaults = RECIPES[recipe ?? 'v1'];
  const model: Args['model'] = {};
  for (const [flag, key] of [
    ['hidden', 'hidden'],
    ['layers', 'layers'],
    ['heads', 'heads'],
    ['kv-heads', 'kvHeads'],
    ['intermediate', 'intermediate'],
  ] as const) {
    const n = numberFlag(v, flag, null);
    if (n !== null) model[key] = n;
  }
  const experts = numberFlag(v, 'experts', null);
  const auxCoef = numberFlag(v, 'aux-coef', null);
  if (experts !== null || auxCoef !== null) {
    const moe = defaults.model.moe;
    if (!moe) throw new Error(`--experts and --aux-coef apply to an MoE recipe (moe), not ${defaults.name}`);
    if (experts !== null && (!Number.isInteger(experts) || experts <= moe.topK))
      throw new Error(`--experts must be an integer > top-k (${moe.topK})`);
    if (auxCoef !== null && !(auxCoef >= 0 && auxCoef <= 1)) throw new Error(`--aux-coef must be in [0, 1] (got ${auxCoef})`);
    model.moe = { ...moe, ...(experts !== null ? { experts } : {}), ...(auxCoef !== null ? { auxCoef } : {}) };
  }
  const a: Args = {
    recipe,
    out: stringFlag(v, 'out') ?? defaults.out,
    work: stringFlag(v, 'work') ?? defaults.work,
    injectRate: numberFlag(v, 'inject-rate', null),
    steps: numberFlag(v, 'steps', null),
    resume: v['resume'] === true,
    seed: numberFlag(v, 'seed', 0),
    threads: numberFlag(v, 'threads', 0),
    stopAfter: numberFlag(v, 'stop-after', null),
    model,
    batch: numberFlag(v, 'batch', null),
    seq: numberFlag(v, 'seq', null),
    quiet: v['quiet'] === true,
    exportOnly: v['export'] === true,
  };
  if (a.steps !== null && (!Number.isInteger(a.steps) || a.steps < 1)) throw new Error('--steps must be a positive integer');
  if (a.injectRate !== null && !(a.injectRate >= 0 && a.injectRate <= 1)) throw new Error('--inject-rate must be in [0, 1]');
  return a;
}

const CHECKPOINT_SECONDS = 300;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.threads) setRuntimeDefaults({ threads: args.threads });
  const work = resolve(args.work);
  mkdirSync(work, { recursive: true });
  const ckptFile = join(work, 'checkpoint.bin');
  const tokDir = join(work, 'tokenizer');
  const log = (s: string) => {
    if (!args.quiet) console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  };

  let meta: CheckpointMeta;
  let params: Params;
  let opt: AdamW;
  const resuming = args.resume && existsSync(ckptFile);
  const c = resuming ? loadCheckpoint(ckptFile) : null;
  // Checkpoints written before recipes existed are v1's.
  const recipe = RECIPES[c ? (c.meta.recipe ?? 'v1') : (args.recipe ?? 'v1')];
  if (c && args.recipe !== null && args.recipe !== recipe.name) {
    throw new Error(`${ckptFile}: the checkpoint is recipe ${recipe.name}, not ${args.recipe} (use another --work for a new run)`);
  }
  if (c && args.injectRate !== null) throw new Error('--inject-rate applies to a fresh run only (the checkpoint keeps its data)');
  const data = c
    ? (c.meta.data ?? recipe.data)
    : { ...recipe.data, ...(args.injectRate !== null && recipe.data.format === 'v2' ? { injectRate: args.injectRate } : {}) };
  const tok: RacTokenizer =
    existsSync(join(tokDir, 'tokenizer.json')) && args.resume
      ? await RacTokenizer.load(tokDir)
      : await makeTokenizer(tokDir, args.seed, recipe.tokenizerVocab, data);
  if (c) {
    meta = c.meta;
    if (args.steps !== null && args.steps !== meta.totalSteps) {
      log(`total steps ${meta.totalSteps} → ${args.steps}`);
      meta.totalSteps = args.steps;
    }
    params = new Params(paramSpecs(meta.cfg), c.params);
    opt = new AdamW(meta.optim, params.specs, params.size, c.m, c.v);
    log(
      `resumed at step ${meta.step}/${meta.totalSteps} (${(meta.tokensSeen / 1e6).toFixed(2)}M tokens, ${(meta.trainSeconds / 60).toFixed(1)} min)`,
    );
  } else {
    if (args.resume) log('no checkpoint found; starting from scratch');
    const cfg: TinyConfig = { ...recipe.model, ...args.model, vocab: tok.vocabSize };
    const totalSteps = args.steps ?? recipe.steps;
    const initRng = createRng(hashSeed('rac-tiny-reasoner-init', args.seed));
    params = initParams(paramSpecs(cfg), () => initRng.next());
    opt = new AdamW(recipe.optim, params.specs, params.size);
    meta = {
      version: 1,
      // v1 checkpoints keep the pre-recipe layout (no recipe/data fields).
      ...(recipe.name === 'v1' ? {} : { recipe: recipe.name, data }),
      cfg,
      optim: recipe.optim,
      seed: args.seed,
      batch: args.batch ?? recipe.batch,
      seq: args.seq ?? recipe.seq,
      // One pass over the pool covers the run.
      poolPerFamily: recipe.poolPerFamily(totalSteps),
      step: 0,
      totalSteps,
      pack: { cursor: 0, deferred: [] },
      tokensSeen: 0,
      targetTokensSeen: 0,
      trainSeconds: 0,
      size: params.size,
    };
  }
  const { cfg, batch: B, seq: T } = meta;
  if (tok.vocabSize !== cfg.vocab) throw new Error(`tokenizer has ${tok.vocabSize} ids, model ${cfg.vocab}`);
  const padId = tok.padTokenId!;
  if (args.exportOnly) {
    if (!args.resume) throw new Error('--export needs --resume (it exports the checkpoint in --work)');
    writeSummary(work, meta, params.size);
    exportHf(args.out, cfg, params, tokDir, { steps: String(meta.step), tokens_seen: String(meta.tokensSeen) });
    log(`exported step ${meta.step} to ${resolve(args.out)}`);
    return;
  }
  log(
    `recipe ${recipe.name}: ${data.families.join(' + ')}, format ${data.format}${data.format === 'v2' ? `, inject rate ${data.injectRate}` : ''}`,
  );
  log(
    `model: D=${cfg.hidden} L=${cfg.layers} H=${cfg.heads} Hkv=${cfg.kvHeads} hd=${headDim(cfg)} ` +
      (cfg.moe
        ? `MoE E=${cfg.moe.experts} top-${cfg.moe.topK} I=${cfg.moe.expertIntermediate} aux ${cfg.moe.auxCoef}`
        : `I=${cfg.intermediate}`) +
      ` V=${cfg.vocab}, ${params.size} params; batch ${B}×${T}`,
  );

  // ---- data stream: index i → problem (epoch-wise permutation of the pool) -------------------
  const t0 = Date.now();
  const pool: TinyProblem[] = trainPool(meta.poolPerFamily, meta.seed, data);
  const injected = pool.filter((p) => p.noLoss !== undefined).length;
  log(
    `train pool: ${pool.length} problems${injected ? ` (${injected} with an injected error)` : ''} in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  const perms = new Map<number, Uint32Array>();
  const problemAt = (i: number): TinyProblem => {
    const e = Math.floor(i / pool.length);
    let p = perms.get(e);
    if (!p) {
      const r = createRng(hashSeed('rac-tiny-reasoner-order', meta.seed, e));
      perms.set(e, (p = permutation(pool.length, () => r.next())));
    }
    return pool[p[i % pool.length]!]!;
  };
  const memo = new Map<number, Example>();
  const exampleAt = (i: number): Example => {
    let ex = memo.get(i);
    if (!ex) {
      ex = encodeExample(tok, problemAt(i));
      memo.set(i, ex);
    }
    return ex;
  };
  const rope = ropeTable(cfg, T);
  const nextBatch = (state: PackState) => {
    const { packing, next } = packBatch(state, (i) => exampleAt(i).ids.length, B, T, 32);
    for (const k of memo.keys()) if (k < next.cursor - 64 && !next.deferred.includes(k)) memo.delete(k);
    const fb = batchFeeds(
      cfg,
      packing.map((r) => r.map(exampleAt)),
      T,
      padId,
      rope,
    );
    return { ...fb, next };
  };

  const runner = await StepRunner.create(cfg, { batch: B, seq: T });
  const grad = new Float32Array(params.size);
  let stop = false;
  const onSignal = (sig: string) => {
    if (stop) process.exit(130);
    log(`${sig}: finishing the current step, then saving a checkpoint`);
    stop = true;
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  const save = () => {
    const t = Date.now();
    saveCheckpoint(ckptFile, { meta, params: params.flat, m: opt.m, v: opt.v });
    exportHf(join(work, 'latest'), cfg, params, tokDir);
    log(`checkpoint at step ${meta.step} (${Date.now() - t} ms)`);
  };

  let lastSave = Date.now();
  let winLoss = 0;
  let winCe = 0;
  const winLoad: Float64Array[] = [];
  let winSteps = 0;
  let winTokens = 0;
  let winStart = Date.now();
  let pending = nextBatch(meta.pack);
  const stopAt = args.stopAfter === null ? Infinity : meta.step + args.stopAfter;
  while (meta.step < meta.totalSteps && !stop && meta.step < stopAt) {
    const stepStart = Date.now();
    const cur = pending;
    const runP = runner.run(params, cur.feeds, grad);
    // Prepare the next batch while ORT computes this one.
    pending = nextBatch(cur.next);
    const { loss, ce, loads } = await runP;
    if (!Number.isFinite(loss)) throw new Error(`non-finite loss at step ${meta.step}; checkpoint left at step ${meta.step}`);
    const gnorm = AdamW.clip(grad, meta.optim.clip);
    const lr = lrAt(meta.optim, meta.step, meta.totalSteps);
    opt.update(params.flat, grad, meta.step, lr);
    meta.step++;
    meta.pack = cur.next;
    meta.tokensSeen += cur.tokens;
    meta.targetTokensSeen += cur.targets;
    meta.trainSeconds += (Date.now() - stepStart) / 1000;
    winLoss += loss;
    winCe += ce;
    for (let l = 0; l < loads.length; l++) {
      const acc = (winLoad[l] ??= new Float64Array(loads[l]!.length));
      loads[l]!.forEach((x, j) => (acc[j]! += x));
    }
    winSteps++;
    winTokens += cur.tokens;
    if (meta.step % 20 === 0 || meta.step === meta.totalSteps) {
      const dt = (Date.now() - winStart) / 1000;
      const ceNote = cfg.moe ? ` (ce ${(winCe / winSteps).toFixed(4)})` : '';
      log(
        `step ${meta.step}/${meta.totalSteps} loss ${(winLoss / winSteps).toFixed(4)}${ceNote} lr ${lr.toExponential(2)} |g| ${gnorm.toFixed(3)} ` +
          `${(winTokens / dt).toFixed(0)} tok/s, ${(meta.tokensSeen / 1e6).toFixed(2)}M tokens, ${(meta.trainSeconds / 60).toFixed(1)} min`,
      );
      // MoE: each layer's routing-slot shares per expert over the window (1/E each when balanced).
      if (cfg.moe && meta.step % 200 === 0) {
        log(
          `  expert load: ${winLoad.map((a, l) => `L${l} [${[...a].map((x) => ((100 * x) / winSteps).toFixed(0)).join(' ')}]%`).join(' ')}`,
        );
      }
      winLoss = winCe = winSteps = winTokens = 0;
      winLoad.length = 0;
      winStart = Date.now();
    }
    if (Date.now() - lastSave > CHECKPOINT_SECONDS * 1000) {
      save();
      lastSave = Date.now();
    }
  }
  save();
  await runner.release();
  if (meta.step < meta.totalSteps) {
    log(`stopped at step ${meta.step}; continue with --resume`);
    process.exit(0);
  }
  writeSummary(work, meta, params.size);
  exportHf(args.out, cfg, params, tokDir, { steps: String(meta.step), tokens_seen: String(meta.tokensSeen) });
  log(
    `done: ${meta.step} steps, ${(meta.tokensSeen / 1e6).toFixed(2)}M tokens, ${(meta.trainSeconds / 60).toFixed(1)} min; exported to ${resolve(args.out)}`,
  );
}

function writeSummary(work: string, meta: CheckpointMeta, params: number): void {
  const summary = {
    recipe: meta.recipe ?? 'v1',
    ...(meta.data ? { data: meta.data } : {}),
    params,
    steps: meta.step,
    totalSteps: meta.totalSteps,
    tokensSeen: meta.tokensSeen,
    targetTokensSeen: meta.targetTokensSeen,
    trainMinutes: meta.trainSeconds / 60,
    config: meta.cfg,
    batch: [meta.batch, meta.seq],
    optim: meta.optim,
    seed: meta.seed,
  };
  writeFileSync(join(work, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
