import type { Command } from 'commander';
import { Model } from '../../models/model.ts';
import { printJson } from '../common.ts';

export function register(program: Command): void {
  program
    .command('info')
    .description('describe a Hugging Face model directory: architecture, parameters, dtypes, shards')
    .requiredOption('--model <dir>', 'model directory (config.json + safetensors)')
    .option('--json', 'print JSON')
    .action((o: { model: string; json?: boolean }) => {
      const m = Model.open(o.model);
      try {
        const c = m.config;
        const moeLayers = Array.from({ length: c.numLayers }, (_, i) => i).filter((i) => m.experts(i));
        const info = {
          dir: m.dir,
          model_type: c.modelType,
          architecture: m.spec.hfArchitecture,
          parameters: m.parameterCount(),
          layers: c.numLayers,
          hidden_size: c.hiddenSize,
          intermediate_size: c.intermediateSize,
          heads: c.numHeads,
          kv_heads: c.numKvHeads,
          head_dim: c.headDim,
          vocab_size: c.vocabSize,
          tied_embeddings: m.tiedHead,
          rope_theta: c.ropeTheta,
          rope_scaling: c.ropeScaling.type,
          qkv_bias: c.qkvBias,
          qk_norm: c.qkNorm,
          sliding_window: c.slidingWindow,
          ...(moeLayers.length > 0 && c.moe
            ? {
                experts: c.moe.numExperts,
                experts_per_token: c.moe.topK,
                expert_intermediate_size: c.moe.expertIntermediateSize,
                norm_topk_prob: c.moe.normTopKProb,
                moe_layers: moeLayers,
                active_parameters: m.activeParameterCount(),
              }
            : {}),
          dtypes: m.dtypeCounts(),
          shards: m.tensors.shards,
          tensors: m.tensors.names().length,
        };
        if (o.json) return printJson(info);
        const rows: [string, string][] = [
          ['model', info.dir],
          ['architecture', `${info.architecture} (${info.model_type})`],
          ['parameters', `${info.parameters.toLocaleString('en-US')} (${(info.parameters / 1e9).toFixed(3)} B)`],
          ['layers', String(info.layers)],
          ['hidden / intermediate', `${info.hidden_size} / ${info.intermediate_size}`],
          ['heads / kv heads / head dim', `${info.heads} / ${info.kv_heads} / ${info.head_dim}`],
          ...(info.experts !== undefined
            ? ([
                [
                  'experts',
                  `${info.experts}, top-${info.experts_per_token}${info.norm_topk_prob ? ' renormalized' : ''}, width ${info.expert_intermediate_size}, in ${moeLayers.length} of ${info.layers} layers`,
                ],
                ['active parameters', `${info.active_parameters!.toLocaleString('en-US')} per token`],
              ] as [string, string][])
            : []),
          ['vocab', String(info.vocab_size)],
          ['tied embeddings', String(info.tied_embeddings)],
          ['rope', `theta ${info.rope_theta}, scaling ${info.rope_scaling}`],
          [
            'quirks',
            [info.qkv_bias && 'q/k/v bias', info.qk_norm && 'q/k norm', info.sliding_window && `sliding window ${info.sliding_window}`]
              .filter(Boolean)
              .join(', ') || 'none',
          ],
          [
            'dtypes',
            Object.entries(info.dtypes)
              .map(([k, v]) => `${k}×${v}`)
              .join(', '),
          ],
          ['shards', `${info.shards.length}: ${info.shards.join(', ')}`],
        ];
        const w = Math.max(...rows.map((r) => r[0].length));
        for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
      } finally {
        m.close();
      }
    });
}
