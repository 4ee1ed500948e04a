import { InvalidArgumentError, type Command } from 'commander';
import { exportGguf, GGUF_DTYPES, type GgufDtype } from '../../export/gguf.ts';
import { printJson } from '../common.ts';

export function register(program: Command): void {
  program
    .command('export-gguf')
    .description(
      'convert a Hugging Face model directory (qwen2, qwen3, qwen3_moe, llama, mistral; pruned, quantized or not) to GGUF for llama.cpp / Ollama',
    )
    .requiredOption('--model <dir>', 'model directory (config.json + safetensors + tokenizer.json)')
    .requiredOption('--out <file>', 'output .gguf file (written to a temp name, renamed when complete)')
    .option(
      '--dtype <type>',
      `weight type of 2-D tensors: ${GGUF_DTYPES.join(' | ')} (norms and biases stay f32; q2_k … q6_k: one ggml type, embeddings and output Q8_0; q4_k_m …: llama.cpp's mixes, as llama-quantize assigns them)`,
      (v: string) => {
        if (!(GGUF_DTYPES as readonly string[]).includes(v))
          throw new InvalidArgumentError(`dtype must be one of ${GGUF_DTYPES.join(', ')}, got "${v}"`);
        return v as GgufDtype;
      },
      'f32',
    )
    .option('--name <name>', 'general.name (default: the model directory name)')
    .option(
      '--imatrix <file>',
      'importance matrix (rac imatrix / llama-imatrix GGUF) for the tensors quantized here, as llama-quantize --imatrix',
    )
    .option('--tokenizer-pre <name>', "llama.cpp pre-tokenizer name, when rac does not recognise the tokenizer's (e.g. qwen2, llama-bpe)")
    .option('--force', 'replace --out if it exists (an --out inside the input model is refused regardless)')
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'no progress on stderr')
    .action(
      (o: {
        model: string;
        out: string;
        dtype: GgufDtype;
        name?: string;
        tokenizerPre?: string;
        force?: boolean;
        imatrix?: string;
        json?: boolean;
        quiet?: boolean;
      }) => {
        let last = 0;
        const r = exportGguf({
          model: o.model,
          out: o.out,
          dtype: o.dtype,
          force: o.force === true,
          ...(o.name !== undefined ? { name: o.name } : {}),
          ...(o.tokenizerPre !== undefined ? { tokenizerPre: o.tokenizerPre } : {}),
          ...(o.imatrix !== undefined ? { imatrix: o.imatrix } : {}),
          onProgress: (done, total) => {
            if (o.quiet || !process.stderr.isTTY) return;
            const now = Date.now();
            if (now - last > 200 || done === total) {
              last = now;
              process.stderr.write(`\rexport-gguf: ${done}/${total} tensors${done === total ? '\n' : ''}`);
            }
          },
        });
        if (o.json) return printJson(r);
        process.stdout.write(
          `${r.out}: GGUF ${r.arch}, ${r.dtype}, ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB, vocab ${r.vocab}, pre ${r.tokenizerPre}${r.tiedOutput ? ', tied output' : ''}\n`,
        );
      },
    );
}
