/**
 * Hugging Face ids for every command's `--model` and `--dataset`: one pre-action hook resolves
 * them (src/io/hub.ts: the hub cache, downloads when allowed) before any command runs, so each
 * command receives a local directory (or the split's Parquet shards) and nothing else changes.
 */
import type { Command } from 'commander';
import { resolveDataset, resolveModel } from '../io/hub.ts';

const MODEL_HELP = ' — or a Hugging Face id org/name[@revision] (from the hub cache; downloaded when missing unless HF_HUB_OFFLINE=1)';
const DATASET_HELP = ' — or a Hugging Face dataset id org/name[@revision] (the Parquet shards of --dataset-config / --split)';

/**
 * Add the id forms to every command's --model / --dataset help, --dataset-config and --split, and
 * (unless `resolve` is false) the hook that resolves them.
 */
export function addHubResolution(program: Command, opts: { resolve?: boolean } = {}): void {
  for (const c of program.commands) {
    const model = c.options.find((o) => o.long === '--model');
    if (model) model.description += MODEL_HELP;
    const dataset = c.options.find((o) => o.long === '--dataset');
    if (dataset) {
      dataset.description += DATASET_HELP;
      c.option('--dataset-config <name>', 'config of a hub --dataset', 'default').option(
        '--split <name>',
        'split of a hub --dataset',
        'train',
      );
    }
  }
  if (opts.resolve === false) return;
  program.hook('preAction', async (_program, action) => {
    const o = action.opts() as { model?: unknown; dataset?: unknown; datasetConfig?: string; split?: string; quiet?: boolean };
    const log = o.quiet ? undefined : (line: string) => void process.stderr.write(`rac: ${line}\n`);
    if (typeof o.model === 'string') {
      const r = await resolveModel(o.model, { ...(log ? { log } : {}) });
      if (r.source) {
        action.setOptionValue('model', r.dir);
        log?.(`model ${r.source.id}@${r.source.revision} → ${r.dir}`);
      }
    }
    if (typeof o.dataset === 'string') {
      const r = await resolveDataset(
        o.dataset,
        { ...(o.datasetConfig ? { config: o.datasetConfig } : {}), ...(o.split ? { split: o.split } : {}) },
        { ...(log ? { log } : {}) },
      );
      if (r.source) {
        action.setOptionValue('dataset', r.files);
        log?.(
          `dataset ${r.source.id}@${r.source.revision} (${r.source.config}/${r.source.split}) → ${r.files.length} Parquet shard${r.files.length === 1 ? '' : 's'} of ${r.source.commit}`,
        );
      }
    }
  });
}
