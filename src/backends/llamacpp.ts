/**
 * llama.cpp as a GenerationBackend, in process through node-llama-cpp, over a GGUF file (one made
 * by `rac export-gguf`, or any llama.cpp-compatible GGUF of the same model).
 *
 * - Prompts go in as token ids (no re-tokenization); up to `parallel` requests decode together
 *   as sequences of one llama.cpp context (node-llama-cpp batches concurrent sequences into one
 *   llama_decode).
 * - Sampling is llama.cpp's own (temperature, top-k, top-p passed explicitly: node-llama-cpp's
 *   defaults are top-k 40, top-p 0.95), seeded per sample: sample i of request r uses seed
 *   mix(seed, r·n + i). They are not the samples rac's engine would draw (different PRNG).
 * - llama.cpp's batched decode is not batch-invariant (logits move in the last bits with the
 *   batch a token shares), so exact reproducibility — and greedy equality with rac's engine up to
 *   near-ties (test/export/gguf-oracle.test.ts) — holds with parallel = 1.
 * - Stops: on the eos ids rac's local backend uses (generation_config + tokenizer) when a model
 *   directory is given, else on llama.cpp's end-of-generation tokens; on stop strings; at
 *   maxNewTokens; and at the context size (finish reason 'length', never a context shift).
 * - Text: decoded with the model directory's tokenizer (the same text the local backend writes),
 *   else with llama.cpp's detokenizer.
 *
 * node-llama-cpp is not a runtime dependency of rac (its optional binaries weigh ~700 MB); it is
 * imported on first use, and a missing package is a clear error saying what to install.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { updateWithFileSample } from '../io/file-sample-hash.ts';
import { RacTokenizer } from '../io/tokenizer.ts';
import { readModelJsonFile } from '../io/checkpoint.ts';
import { modelFilePath } from '../io/model-file.ts';
import { loadGenerationConfig } from '../io/generation-config.ts';
import { resolveArch } from '../models/arch/index.ts';
import {
  checkSettings,
  fingerprintOf,
  SampleJobs,
  type BackendCompletion,
  type BackendRequest,
  type GenerationBackend,
  type GenerationHooks,
  type SampleJob,
  type SamplingSettings,
} from './backend.ts';
import { exportGguf, type GgufDtype } from '../export/gguf.ts';
import { stopTokenIds } from '../models/loaded.ts';
import { RacError } from '../errors.ts';

export const NODE_LLAMA_CPP_VERSION = '3.21.1';

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
type LlamaModel = Awaited<ReturnType<Llama['loadModel']>>;
type LlamaContext = Awaited<ReturnType<LlamaModel['createContext']>>;
type Token = import('node-llama-cpp').Token;
type LlamaSequence = ReturnType<LlamaContext['getSequence']>;

export interface LlamaCppBackendOptions {
  /** GGUF file. Without it, `model` is exported to a temporary GGUF (`exportDtype`) first. */
  gguf?: string;
  /** HF model directory: tokenizer, generation config (eos ids), and the weights when no gguf. */
  model?: string;
  /** dtype of the temporary export (default f32). */
  exportDtype?: GgufDtype;
  /** Sequences decoded together (default 8). */
  parallel?: number;
  /** llama.cpp threads (default: node-llama-cpp's choice, all cores). */
  threads?: number;
  /** Tokens per sequence (default: the longest prompt + budget of each call, up to the GGUF's context_length). */
  contextSize?: number;
  log?: (line: string) => void;
}

export class LlamaCppUnavailableError extends RacError {
  constructor(message: string) {
    super(message);
    this.name = 'LlamaCppUnavailableError';
  }
}

/** Import node-llama-cpp, or explain how to get it. */
export async function importNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  try {
    return await import('node-llama-cpp');
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND')
      throw new LlamaCppUnavailableError(
        `the llama.cpp backend needs the node-llama-cpp package, a development dependency of rac that production installs (--omit=dev) leave out: ` +
          `run \`npm install --no-save node-llama-cpp@${NODE_LLAMA_CPP_VERSION}\` in rac's directory (see docs/install.md, "node-llama-cpp")`,
      );
    throw e;
  }
}

/** Identity of a GGUF file: sha256 over its size and 16 evenly spaced 4 KiB windows. */
export function ggufFingerprint(path: string): string {
  return fingerprintOf((h) => updateWithFileSample(h, path, 'gguf'));
}

/** 32-bit llama.cpp sampler seed for PRNG stream `stream` of run seed `seed`. */
export function llamaSeed(seed: number, stream: number): number {
  const d = createHash('sha256').update(`rac-llama.cpp-seed:${seed}:${stream}`).digest();
  return d.readUInt32LE(0);
}

/** Incremental text from token ids: the HF tokenizer's decode stream, or llama.cpp's detokenizer. */
interface TextStream {
  push(id: number): string;
  flush(): string;
}

function llamaTextStream(lm: LlamaModel): TextStream {
  const ids: Token[] = [];
  let emitted = 0;
  const pending = (final: boolean) => {
    const text = lm.detokenize(ids, false);
    // Hold back an unfinished UTF-8 character (decoded as U+FFFD) until its last byte arrives.
    let end = text.length;
    if (!final) while (end > emitted && text.charCodeAt(end - 1) === 0xfffd) end--;
    const out = text.slice(emitted, end);
    emitted = end;
    return out;
  };
  return {
    push(id) {
      ids.push(id as Token);
      return pending(false);
    },
    flush() {
      return pending(true);
    },
  };
}

export class LlamaCppBackend implements GenerationBackend {
  readonly name = 'llama.cpp';

  private ctx: LlamaContext | null = null;

  private constructor(
    private readonly llama: Llama,
    private readonly lm: LlamaModel,
    private readonly vocabSize: number,
    private readonly ctxOptions: { contextSize: number | null; threads: number | undefined },
    readonly fingerprint: string,
    readonly gguf: string,
    private readonly tokenizer: RacTokenizer | null,
    private readonly eos: ReadonlySet<number> | null,
    private readonly parallel: number,
    private readonly tempDir: string | null,
  ) {}

  static async open(o: LlamaCppBackendOptions): Promise<LlamaCppBackend> {
    if (!o.gguf && !o.model)
      throw new Error('the llama.cpp backend needs a GGUF file (--gguf FILE) or a model directory to export (--model DIR)');
    const parallel = o.parallel ?? 8;
    if (!Number.isInteger(parallel) || parallel < 1)
      throw new Error(`llama.cpp: parallel sequences must be an integer ≥ 1, got ${parallel}`);
    const nlc = await importNodeLlamaCpp();

    let tempDir: string | null = null;
    let gguf: string;
    if (o.gguf) {
      gguf = resolve(o.gguf);
      if (!existsSync(gguf) || !statSync(gguf).isFile()) throw new Error(`${gguf}: no such GGUF file`);
    } else {
      tempDir = mkdtempSync(join(tmpdir(), 'rac-llamacpp-'));
      gguf = join(tempDir, 'model.gguf');
      o.log?.(`llama.cpp: exporting ${o.model} to a temporary GGUF (${o.exportDtype ?? 'f32'})`);
      try {
        exportGguf({ model: o.model!, out: gguf, dtype: o.exportDtype ?? 'f32', warn: (w) => o.log?.(`warning: ${w}`) });
      } catch (e) {
        rmSync(tempDir, { recursive: true, force: true });
        throw e;
      }
    }

    // The model directory's tokenizer and stop ids, as the local backend uses them.
    let tokenizer: RacTokenizer | null = null;
    let eos: Set<number> | null = null;
    if (o.model) {
      tokenizer = await RacTokenizer.load(o.model);
      // The local backend's stop ids, read without loading the weights (a tokenizer-only
      // directory is fine next to a --gguf).
      const configPath = join(o.model, 'config.json');
      let ids: number[];
      if (modelFilePath(o.model, 'config.json') !== undefined) {
        const raw = readModelJsonFile(o.model, 'config.json') as Record<string, unknown>;
        const { config } = resolveArch(configPath, raw);
        ids = stopTokenIds(loadGenerationConfig(o.model, raw).eosTokenIds, config.eosTokenIds, tokenizer.eosTokenId);
      } else {
        ids = stopTokenIds([], [], tokenizer.eosTokenId);
      }
      eos = ids.length > 0 ? new Set(ids) : null;
    }

    let llama: Llama | null = null;
    try {
      llama = await nlc.getLlama({ gpu: 'auto', build: 'never', logLevel: nlc.LlamaLogLevel.error });
      const lm = await llama.loadModel({ modelPath: gguf });
      const vocabSize = lm.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 0;
      if (tokenizer && vocabSize > 0 && tokenizer.vocabSize > vocabSize)
        throw new Error(
          `${gguf}: its vocabulary has ${vocabSize} tokens, fewer than ${o.model}'s tokenizer (${tokenizer.vocabSize}); is it the same model?`,
        );
      const ctxOptions = { contextSize: o.contextSize ?? null, threads: o.threads !== undefined && o.threads > 0 ? o.threads : undefined };
      return new LlamaCppBackend(llama, lm, vocabSize, ctxOptions, ggufFingerprint(gguf), gguf, tokenizer, eos, parallel, tempDir);
    } catch (e) {
      await llama?.dispose();
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Tokens per sequence the backend can hold: --context-size, else the GGUF's training context. */
  get contextLength(): number {
    return this.ctxOptions.contextSize ?? this.lm.trainContextSize;
  }

  /** Tokens per sequence of the current context (null before the first generate()). */
  get contextSize(): number | null {
    return this.ctx?.contextSize ?? null;
  }

  /**
   * The context, created on first use with room for the longest prompt of the call plus its
   * generation budget (capped by the GGUF's training context; --context-size fixes it), and
   * recreated larger when a later call needs more: a real model's full context × `parallel`
   * sequences of f32 KV cache would not fit in memory.
   */
  private async context(need: number): Promise<LlamaContext> {
    const train = this.lm.trainContextSize;
    const fixed = this.ctxOptions.contextSize;
    if (this.ctx && (fixed !== null || this.ctx.contextSize >= Math.min(need, train))) return this.ctx;
    const size = fixed ?? Math.min(train, Math.max(need, this.ctx ? 2 * this.ctx.contextSize : 0));
    if (this.ctx) await this.ctx.dispose();
    this.ctx = null;
    this.ctx = await this.lm.createContext({
      contextSize: size,
      sequences: this.parallel,
      ...(this.ctxOptions.threads !== undefined ? { threads: { ideal: this.ctxOptions.threads, min: 1 } } : {}),
      flashAttention: false,
      // f32 KV cache: the same arithmetic as rac's engine (llama.cpp's default is f16).
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    });
    return this.ctx;
  }

  private isEos(t: number): boolean {
    return this.eos ? this.eos.has(t) : this.lm.isEogToken(t as Token);
  }

  async generate(requests: BackendRequest[], s: SamplingSettings, hooks: GenerationHooks): Promise<void> {
    checkSettings(s);
    const stops = (s.stopStrings ?? []).filter((x) => x.length > 0);
    if (requests.length === 0) return;
    for (const r of requests) {
      if (r.prompt.length === 0) throw new Error(`llama.cpp: request ${r.index} has an empty prompt`);
      const bad = this.vocabSize > 0 ? r.prompt.find((t) => !Number.isInteger(t) || t < 0 || t >= this.vocabSize) : undefined;
      if (bad !== undefined)
        throw new Error(
          `llama.cpp: request ${r.index}'s prompt has token id ${bad}, outside ${this.gguf}'s vocabulary of ${this.vocabSize}`,
        );
    }
    const longest = Math.max(...requests.map((r) => r.prompt.length));
    const ctx = await this.context(longest + s.maxNewTokens);
    for (const r of requests) {
      if (r.prompt.length >= ctx.contextSize)
        throw new Error(
          `llama.cpp: request ${r.index}'s prompt has ${r.prompt.length} tokens; the context holds ${ctx.contextSize} per sequence (--context-size)`,
        );
    }
    const samples = new SampleJobs(requests, hooks);
    let newTokens = 0;
    let next = 0;
    let failure: unknown = null;

    // One sequence per worker for the whole call, cleared between requests.
    const one = async (seq: LlamaSequence, req: BackendRequest, job: SampleJob): Promise<BackendCompletion> => {
      await seq.clearHistory();
      const text = this.tokenizer ? this.tokenizer.decodeStream() : llamaTextStream(this.lm);
      const ids: number[] = [];
      let out = '';
      let finish: BackendCompletion['finishReason'] = 'length';
      let stopAt = -1;
      const room = Math.min(s.maxNewTokens, ctx.contextSize - req.prompt.length);
      const gen = seq.evaluate(req.prompt as Token[], {
        temperature: s.temperature,
        topK: s.topK,
        topP: s.topP,
        minP: 0,
        seed: llamaSeed(s.seed, job.stream),
        yieldEogToken: true,
      });
      for await (const t of gen) {
        ids.push(t);
        newTokens++;
        if (this.isEos(t)) {
          finish = 'stop';
          break;
        }
        const prev = out.length;
        out += text.push(t);
        if (stops.length && out.length > prev) {
          for (const st of stops) {
            const at = out.indexOf(st, Math.max(0, prev - st.length + 1));
            if (at >= 0) {
              stopAt = at;
              break;
            }
          }
          if (stopAt >= 0) {
            finish = 'stop';
            break;
          }
        }
        if (ids.length >= room) break;
        if (failure) break;
      }
      if (stopAt < 0) out += text.flush();
      else out = out.slice(0, stopAt);
      return { ids, text: out, finishReason: finish };
    };

    const worker = async (seq: LlamaSequence) => {
      while (!failure && next < samples.jobs.length) {
        const job = samples.jobs[next++]!;
        try {
          await samples.put(job, await one(seq, requests[job.ri]!, job));
          hooks.onProgress?.({ done: samples.done, total: requests.length, newTokens });
        } catch (e) {
          failure ??= e;
        }
      }
    };
    const seqs = Array.from({ length: Math.min(this.parallel, samples.jobs.length) }, () => ctx.getSequence());
    try {
      await Promise.all(seqs.map(worker));
    } finally {
      await Promise.all(seqs.map((seq) => seq.dispose()));
    }
    if (failure) throw failure;
  }

  async close(): Promise<void> {
    try {
      await this.ctx?.dispose();
      await this.lm.dispose();
      await this.llama.dispose();
    } finally {
      if (this.tempDir) rmSync(this.tempDir, { recursive: true, force: true });
    }
  }
}
