/**
 * The README.md of a pruned model directory: what was done to it (method, target, zeros,
 * calibration), then the source model's own card under "Original model card". The source card's
 * YAML front matter (license, tags, … as the Hugging Face Hub reads it) stays at the very top;
 * its figures describe the dense model, which the header says. A source from the Hugging Face hub
 * is named by id and commit, and becomes the card's `base_model`.
 */
import YAML from 'yaml';
import type { PruneSummary } from './rac-json.ts';

const CALIB_WHAT: Record<string, string> = {
  prompt: 'chat-templated prompts only (prompt-only calibration)',
  rac: "prompt + the dense model's own chain-of-thought traces (reasoning-aware calibration)",
  text: 'plain text',
  mix: 'a weighted mix of sources',
};

/** Split `---\n…\n---\n` YAML front matter off a Markdown card. */
export function splitFrontMatter(card: string): { frontMatter: string | null; body: string } {
  const m = /^---\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)/.exec(card);
  return m ? { frontMatter: m[0].replace(/\s*$/, '\n'), body: card.slice(m[0].length) } : { frontMatter: null, body: card };
}

/** The front matter with `base_model` set to the source's hub id (other keys and comments kept). */
function withBaseModel(frontMatter: string | null, id: string): string {
  if (frontMatter === null) return `---\nbase_model: ${id}\n---\n`;
  const inner = frontMatter.replace(/^---\r?\n/, '').replace(/\r?\n---[ \t]*\s*$/, '');
  const doc = YAML.parseDocument(inner);
  if (doc.errors.length || !YAML.isMap(doc.contents)) return frontMatter;
  doc.set('base_model', id);
  return `---\n${doc.toString().replace(/\s*$/, '')}\n---\n`;
}

export function prunedModelCard(s: PruneSummary, originalCard: string | null): string {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const target = s.pattern !== undefined ? `${s.pattern} semi-structured (N:M)` : `${pct(s.sparsity ?? 0)} unstructured`;
  const c = s.calibration;
  const mode = typeof c['mode'] === 'string' ? (c['mode'] as string) : null;
  const calib =
    s.method === 'magnitude' || s.method === 'rtn' || c.tokens === 0
      ? `none (${s.method === 'rtn' ? 'round to nearest' : 'magnitude pruning'} reads only the weights)`
      : `${mode ? `\`${mode}\`: ${CALIB_WHAT[mode] ?? mode}` : String(c['kind'] ?? 'calibration set')}; ${c.tokens.toLocaleString('en-US')} tokens in ${c.sequences.toLocaleString('en-US')} sequences` +
        (typeof c['decode_share'] === 'number' ? `, ${pct(c['decode_share'] as number)} of them generated (trace) tokens` : '');
  const o = s.options;
  const split = originalCard === null ? { frontMatter: null, body: '' } : splitFrontMatter(originalCard);
  const body = split.body;
  const hub = s.source_hub;
  const frontMatter = hub ? withBaseModel(split.frontMatter, hub.id) : split.frontMatter;
  const source = hub
    ? `[\`${hub.id}\`](https://huggingface.co/${hub.id}) at commit \`${hub.commit}\`${hub.revision !== hub.commit ? ` (\`${hub.revision}\`)` : ''}`
    : `\`${s.source_model}\``;
  const er = s.expert_removal;
  const removalOnly = !!er && s.totals.pruned_linears === 0;
  const experts = er
    ? `${er.experts_before} → ${er.experts_after} per MoE layer (${er.scoring === 'reap' ? 'REAP saliency' : 'routed-token frequency'}); parameters ${er.parameters_before.toLocaleString('en-US')} → ${er.parameters_after.toLocaleString('en-US')}`
    : '';
  const heading = removalOnly
    ? `${er.experts_before - er.experts_after} of ${er.experts_before} experts removed per layer`
    : `${er ? `${er.experts_before - er.experts_after} of ${er.experts_before} experts removed, then ` : ''}${target}${s.quantization ? `, quantized to ${s.quantization.format}` : ''}`;
  const lines = [
    ...(frontMatter ? [frontMatter] : []),
    `# ${s.quantization ? 'Compressed' : 'Pruned'} with rac: ${s.method}, ${heading}`,
    '',
    `A pruned copy of ${source}, written by rac ${s.rac_version} on ${s.created.slice(0, 10)}. ` +
      (er
        ? 'Whole experts were removed (config.json `num_experts` lowered, the router rows sliced, the kept experts renumbered in order)' +
          (removalOnly ? '; every other tensor' : '; then the remaining linear layers were pruned; tokenizer and chat template') +
          ' are the same.'
        : 'Only the weights of the pruned linear layers differ from the source; config, tokenizer and chat template are the same.'),
    '',
    '| | |',
    '|---|---|',
    `| architecture | \`${s.architecture}\` |`,
    `| method | ${s.method} |`,
    ...(er ? [`| experts | ${experts} |`] : []),
    ...(removalOnly
      ? []
      : [
          `| target | ${target} |`,
          `| zeros | ${s.totals.zeros.toLocaleString('en-US')} of ${s.totals.weights.toLocaleString('en-US')} weights in ${s.totals.pruned_linears} linear layers (${pct(s.totals.sparsity)}) |`,
        ]),
    `| linear layers | ${String(o['linears'] ?? 'all')}; embeddings ${String(o['embeddings'] ?? 'untouched')}, lm_head ${String(o['lm_head'] ?? 'untouched')} |`,
    `| calibration | ${calib} |`,
    ...(s.quantization
      ? [
          `| quantization | ${s.quantization.format} (llama.cpp ${s.quantization.file_type}: ${Object.entries(s.quantization.types)
            .map(([t, n]) => `${n} × ${t}`)
            .join(
              ', ',
            )}; ${s.quantization.bits_per_weight.toFixed(2)} bits/weight${s.quantization.imatrix ? ', with an importance matrix' : ''}); ${
            s.quantization.layout === 'compressed-tensors'
              ? `the linear layers stored as compressed-tensors \`pack-quantized\` (W${s.quantization.format === 'q4_0' ? 4 : 8}A16, symmetric, group size 32, f16 scales: \`quantization_config\` in config.json, loadable by vLLM and transformers), the embedding (and an untied lm_head) as F32 (the dequantized blocks) with GGUF block bytes in \`${s.quantization.blocks_file}\` (\`rac export-gguf --dtype ${s.quantization.format}\` writes every block byte for byte)`
              : `values stored as F32 (the dequantized blocks), GGUF block bytes in \`${s.quantization.blocks_file}\` (\`rac export-gguf --dtype ${s.quantization.format}\` writes them byte for byte)`
          } |`,
        ]
      : []),
    '',
    s.quantization?.layout === 'compressed-tensors'
      ? 'Other weights are stored as in the source. `rac.json` beside this file has the'
      : 'Weights are stored dense (zeros included), in the source dtype. `rac.json` beside this file has the',
    'full record: settings, calibration inputs with their sha256, and the reconstruction error of every',
    `layer. Measure this model with \`rac eval\`${originalCard !== null ? '; any accuracy figures in the original card below are the dense model’s' : ''}.`,
    '',
  ];
  if (originalCard !== null) lines.push('## Original model card', '', body.replace(/^\s+/, ''));
  return lines.join('\n').replace(/\n*$/, '\n');
}
