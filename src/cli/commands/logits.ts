import { InvalidArgumentError, type Command } from 'commander';
import { RacTokenizer } from '../../io/tokenizer.ts';
import { Engine } from '../../models/engine.ts';
import { Model } from '../../models/model.ts';
import { argmax } from '../../models/sampling.ts';
import { addRuntimeOptions, printJson, usage, type RuntimeFlags } from '../common.ts';
import { runtimeOf } from '../../study/job.ts';

interface Opts extends RuntimeFlags {
  model: string;
  text?: string;
  ids?: number[];
  json?: boolean;
}

function parseIds(v: string): number[] {
  const ids = v.split(',').map((s) => Number(s.trim()));
  if (ids.length === 0 || ids.some((x) => !Number.isInteger(x) || x < 0)) {
    throw new InvalidArgumentError(`--ids must be comma-separated non-negative integers, got "${v}"`);
  }
  return ids;
}

export function register(program: Command): void {
  const cmd = program
    .command('logits')
    .description("teacher-forced forward: argmax per position and the last position's logits")
    .requiredOption('--model <dir>', 'model directory')
    .option('--text <text>', 'input text (tokenized without special tokens added)')
    .option('--ids <list>', 'input token ids, comma-separated', parseIds)
    .option('--json', 'print JSON (the default and only format)');
  addRuntimeOptions(cmd).action(async (o: Opts) => {
    if ((o.text === undefined) === (o.ids === undefined)) usage(cmd, 'give exactly one of --text or --ids');
    const model = Model.open(o.model);
    try {
      const ids = o.ids ?? (await RacTokenizer.load(model.dir)).encode(o.text!);
      if (ids.length === 0) usage(cmd, 'the input is empty');
      const V = model.config.vocabSize;
      const bad = ids.find((i) => i >= V);
      if (bad !== undefined) usage(cmd, `token id ${bad} is outside the vocabulary (${V})`);
      const engine = await Engine.load(model, runtimeOf(o));
      let logits: Float32Array | undefined;
      try {
        [logits] = await engine.forward([ids]);
      } finally {
        await engine.release();
      }
      const T = ids.length;
      printJson({
        ids,
        argmax: Array.from({ length: T }, (_, t) => argmax(logits!, t * V, V)),
        logits_last: Array.from(logits!.subarray((T - 1) * V, T * V)),
      });
    } finally {
      model.close();
    }
  });
}
