/**
 * The one door to onnxruntime-node: every other module calls `createSession` / `Session.run`
 * with plain typed arrays, and never imports onnxruntime itself.
 *
 * onnxruntime's telemetry is off (`ORT_DISABLE_TELEMETRY=1` unless the environment sets it): on
 * Linux, ORT 1.30 collects it when the first session is created — it reads /etc/machine-id, runs
 * `blkid; hostname` and matches a std::regex over the whole command line, which overflows the stack
 * (SIGSEGV) once the command line passes ~20–30 k characters, e.g. a long `--prompt` or `--stop`.
 * The variable is read when the first session creates onnxruntime's environment, so setting it
 * here, before any session, is enough.
 */
import ort from 'onnxruntime-node';

if (!process.env['ORT_DISABLE_TELEMETRY']) process.env['ORT_DISABLE_TELEMETRY'] = '1';

export type Provider = 'cpu' | 'cuda';

export interface RuntimeOptions {
  /** Intra-op threads (0 = onnxruntime's default: one per physical core). */
  threads: number;
  provider: Provider;
  /** Let idle intra-op threads spin-wait (onnxruntime's default; rac's is off, RAC_SPIN=1 turns it on). */
  spinning: boolean;
}

let defaults: RuntimeOptions = {
  threads: Number(process.env.RAC_THREADS ?? 0) || 0,
  provider: (process.env.RAC_PROVIDER as Provider | undefined) ?? 'cpu',
  spinning: process.env.RAC_SPIN === '1',
};

/** Set process-wide defaults (the CLI's --threads / --provider). */
export function setRuntimeDefaults(opts: Partial<RuntimeOptions>): void {
  if (opts.provider !== undefined && opts.provider !== 'cpu' && opts.provider !== 'cuda') {
    throw new Error(`unknown execution provider "${String(opts.provider)}" (supported: cpu, cuda)`);
  }
  if (opts.threads !== undefined && (!Number.isInteger(opts.threads) || opts.threads < 0)) {
    throw new Error(`threads must be a non-negative integer, got ${opts.threads}`);
  }
  defaults = { ...defaults, ...opts };
}

export function runtimeDefaults(): RuntimeOptions {
  return { ...defaults };
}

export type TensorData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

/** A tensor as the rest of rac sees it: data plus dims, no onnxruntime types. */
export interface HostTensor<T extends TensorData = TensorData> {
  data: T;
  dims: readonly number[];
}

function typeOf(data: TensorData): 'float32' | 'int64' | 'int32' | 'bool' {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  return 'bool';
}

export class Session {
  private constructor(
    private readonly inner: ort.InferenceSession,
    readonly name: string,
  ) {}

  /**
   * `memArena: false` drops onnxruntime's per-session CPU arena: activations go back to the
   * allocator after each run instead of staying reserved at the session's largest run (the
   * engine does so for packed weights, whose sessions would otherwise each keep a prefill's
   * activations: measured +67 vs +13 MiB on the decode bench model).
   */
  static async create(name: string, model: Uint8Array, opts: Partial<RuntimeOptions> & { memArena?: boolean } = {}): Promise<Session> {
    const { memArena = true, ...rest } = opts;
    const o = { ...defaults, ...rest };
    const so: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      executionProviders: [o.provider],
      intraOpNumThreads: o.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      enableCpuMemArena: memArena,
      // Idle pool threads sleep instead of spin-waiting for the next run: the engine holds one
      // session per layer, each with its own pool, and on a shared machine spinning pools take
      // the cores the running session needs (decode measured about 2x slower with spinning on 2 shared cores).
      extra: { session: { intra_op: { allow_spinning: o.spinning ? '1' : '0' }, inter_op: { allow_spinning: o.spinning ? '1' : '0' } } },
    };
    try {
      return new Session(await ort.InferenceSession.create(model, so), name);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (o.provider === 'cuda') {
        throw new Error(
          `could not create the ${name} session on the CUDA provider: ${msg}\n` +
            `(install onnxruntime-node's CUDA files as docs/install.md, "onnxruntime-node and GPUs", describes, or use --provider cpu)`,
        );
      }
      throw new Error(`could not create the ${name} session: ${msg}`);
    }
  }

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  /** Run with feeds fitted to the session's inputs; unknown feed names are an error. */
  async run(feeds: Record<string, HostTensor>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of this.inner.inputNames) {
      const f = feeds[name];
      if (!f) throw new Error(`${this.name}: missing input "${name}"`);
      ortFeeds[name] = new ort.Tensor(typeOf(f.data), f.data, f.dims as number[]);
    }
    for (const name of Object.keys(feeds)) {
      if (!this.inner.inputNames.includes(name)) throw new Error(`${this.name}: unexpected input "${name}"`);
    }
    const res = outputs ? await this.inner.run(ortFeeds, outputs as string[]) : await this.inner.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [k, t] of Object.entries(res)) {
      out[k] = { data: t.data as TensorData, dims: t.dims };
    }
    return out;
  }

  async release(): Promise<void> {
    await this.inner.release();
  }
}
