/**
 * A small typed ONNX graph builder: one method per op, named values, no string soup.
 * Produces a serialized ModelProto (bytes) that src/runtime/session.ts hands to onnxruntime.
 *
 * Opset 17 (default domain) keeps every op here on ORT's well-trodden CPU and CUDA kernels;
 * ORT's graph optimizer fuses the primitive RMSNorm / GELU-free patterns we emit.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const OPSET = 17;
export const IR_VERSION = 8;

export type ElemType = 'float32' | 'int64' | 'int32' | 'bool' | 'uint8';

const ELEM: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
};

/** onnxruntime's contrib-op domain (MatMulNBits), imported at version 1 when a graph uses it. */
export const MS_DOMAIN = 'com.microsoft';

/** A block-quantized weight for `MatMulNBits` (onnxruntime contrib op): B (N, K) in blocks of `blockSize` along K. */
export interface NBitsWeight {
  /** Inner dim (input features) and output features. */
  K: number;
  N: number;
  bits: 4 | 8;
  /** A power of two ≥ 16 dividing K. */
  blockSize: number;
  /** (N, K/blockSize, blockSize·bits/8): unsigned codes, 4-bit ones two a byte, element 2i in the low nibble. */
  B: Uint8Array;
  /** (N·K/blockSize) f32 scales. */
  scales: Float32Array;
  /** (N·ceil(K/blockSize·bits/8)) unsigned zero points packed like B, or null: 2^(bits−1). */
  zeroPoints: Uint8Array | null;
}

/** A symbolic dimension (string) or a fixed one (number). */
export type Dim = number | string;

/** A named value in the graph. */
export class Value {
  constructor(
    readonly g: GraphBuilder,
    readonly name: string,
  ) {}
}

type Attr = number | number[] | string | { floats: number[] } | { float: number };

function attrProto(name: string, v: Attr): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use {float: x} for non-integer ${v}`);
    return { name, type: T.INT, i: v };
  }
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.FLOAT, f: v.float };
}

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly inits: onnxProto.onnx.ITensorProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  private usesMsDomain = false;

  /**
   * `constants`: inputs baked in as initializers when declared (their data referenced, copied once
   * by build()) — bakeInputs' effect without decoding and re-encoding the model.
   */
  constructor(
    readonly graphName: string,
    private readonly constants: Readonly<Record<string, { data: Float32Array; dims: readonly number[] }>> = {},
  ) {}

  private fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.counter++}`;
    while (this.names.has(name));
    this.names.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`graph ${this.graphName}: duplicate value name "${name}"`);
    this.names.add(name);
    return name;
  }

  private valueInfo(name: string, elem: ElemType, shape: Dim[]): onnxProto.onnx.IValueInfoProto {
    return {
      name,
      type: {
        tensorType: {
          elemType: ELEM[elem],
          shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    };
  }

  /** Declare a graph input (an initializer when `constants` holds it). */
  input(name: string, elem: ElemType, shape: Dim[]): Value {
    const c = this.constants[name];
    if (c) {
      if (elem !== 'float32' || c.dims.length !== shape.length || shape.some((d, i) => typeof d === 'number' && d !== c.dims[i]))
        throw new Error(
          `graph ${this.graphName}: constant "${name}" [${c.dims.join(', ')}] does not fit input ${elem} [${shape.join(', ')}]`,
        );
      this.inits.push({
        name: this.claim(name),
        dataType: ELEM.float32,
        dims: [...c.dims],
        rawData: new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength),
      });
      return new Value(this, name);
    }
    this.inputs.push(this.valueInfo(this.claim(name), elem, shape));
    return new Value(this, name);
  }

  /** Declare `v` as a graph output named `name` (an Identity is inserted when names differ). */
  output(v: Value, name: string, elem: ElemType = 'float32', shape?: Dim[]): void {
    let outName = v.name;
    if (v.name !== name) {
      this.nodes.push({ opType: 'Identity', input: [v.name], output: [this.claim(name)], name: this.fresh('identity') });
      outName = name;
    }
    const info = shape ? this.valueInfo(outName, elem, shape) : { name: outName, type: { tensorType: { elemType: ELEM[elem] } } };
    this.outputs.push(info);
  }

  /** A float32 constant (stored as an initializer). */
  constF32(values: number[] | Float32Array, dims: number[], hint = 'cf'): Value {
    const name = this.fresh(hint);
    this.inits.push({ name, dataType: ELEM.float32, dims, floatData: Array.from(values) });
    return new Value(this, name);
  }

  /** An int64 constant (stored as an initializer); shapes, axes, indices. */
  constI64(values: number[], dims: number[] = [values.length], hint = 'ci'): Value {
    const name = this.fresh(hint);
    this.inits.push({ name, dataType: ELEM.int64, dims, int64Data: values });
    return new Value(this, name);
  }

  scalar(x: number): Value {
    return this.constF32([x], [], 'scalar');
  }

  /** A constant of raw little-endian bytes (stored as an initializer, not copied until build()). */
  constRaw(elem: ElemType, dims: number[], bytes: Uint8Array | Float32Array | Int32Array, hint = 'cr'): Value {
    const name = this.fresh(hint);
    this.inits.push({ name, dataType: ELEM[elem], dims, rawData: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) });
    return new Value(this, name);
  }

  /** Emit a node (in `domain`, default ONNX's); returns its outputs. */
  node(opType: string, inputs: (Value | null)[], attrs: Record<string, Attr> = {}, nOut = 1, hint?: string, domain = ''): Value[] {
    const outs = Array.from({ length: nOut }, () => this.fresh(hint ?? opType.toLowerCase()));
    if (domain === MS_DOMAIN) this.usesMsDomain = true;
    this.nodes.push({
      opType,
      ...(domain ? { domain } : {}),
      name: this.fresh(`n_${opType}`),
      input: inputs.map((v) => (v ? v.name : '')),
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attrProto(k, v)),
    });
    return outs.map((n) => new Value(this, n));
  }

  op(opType: string, inputs: (Value | null)[], attrs: Record<string, Attr> = {}, hint?: string): Value {
    return this.node(opType, inputs, attrs, 1, hint)[0]!;
  }

  // ---- typed wrappers ------------------------------------------------------------------------
  add(a: Value, b: Value): Value {
    return this.op('Add', [a, b]);
  }
  sub(a: Value, b: Value): Value {
    return this.op('Sub', [a, b]);
  }
  mul(a: Value, b: Value): Value {
    return this.op('Mul', [a, b]);
  }
  div(a: Value, b: Value): Value {
    return this.op('Div', [a, b]);
  }
  neg(a: Value): Value {
    return this.op('Neg', [a]);
  }
  sqrt(a: Value): Value {
    return this.op('Sqrt', [a]);
  }
  sigmoid(a: Value): Value {
    return this.op('Sigmoid', [a]);
  }
  matmul(a: Value, b: Value): Value {
    return this.op('MatMul', [a, b]);
  }
  /** Y = A·op(B) + C for 2-D A; transB reads B as (n, k) — an HF Linear weight (out, in) as is. */
  gemm(a: Value, b: Value, c: Value | null, opts: { transA?: boolean; transB?: boolean } = {}): Value {
    return this.op('Gemm', c ? [a, b, c] : [a, b], { transA: opts.transA ? 1 : 0, transB: opts.transB ? 1 : 0 });
  }
  reshape(x: Value, shape: number[] | Value): Value {
    const s = shape instanceof Value ? shape : this.constI64(shape);
    return this.op('Reshape', [x, s]);
  }
  transpose(x: Value, perm: number[]): Value {
    return this.op('Transpose', [x], { perm });
  }
  softmax(x: Value, axis = -1): Value {
    return this.op('Softmax', [x], { axis });
  }
  concat(xs: Value[], axis: number): Value {
    return this.op('Concat', xs, { axis });
  }
  slice(x: Value, starts: number[], ends: number[], axes: number[]): Value {
    return this.op('Slice', [x, this.constI64(starts), this.constI64(ends), this.constI64(axes)]);
  }
  shape(x: Value): Value {
    return this.op('Shape', [x]);
  }
  reduceMean(x: Value, axes: number[], keepdims = true): Value {
    return this.op('ReduceMean', [x], { axes, keepdims: keepdims ? 1 : 0 });
  }
  /** ReduceSum over `axes` (opset 13+: the axes are an input). */
  reduceSum(x: Value, axes: number[], keepdims = true): Value {
    return this.op('ReduceSum', [x, this.constI64(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  gather(x: Value, indices: Value, axis = 0): Value {
    return this.op('Gather', [x, indices], { axis });
  }
  /**
   * Y = A·dequant(B)ᵀ for A (…, K) and a block-quantized B (N, K), its blocks baked in as
   * initializers: com.microsoft `MatMulNBits`. `accuracyLevel` 4 quantizes A to int8 per block
   * (onnxruntime's int8 dot-product kernels); 0/1 compute in f32.
   */
  matMulNBits(a: Value, w: NBitsWeight, accuracyLevel: number): Value {
    const nb = w.K / w.blockSize;
    if (!Number.isInteger(nb) || w.blockSize < 16 || (w.blockSize & (w.blockSize - 1)) !== 0)
      throw new Error(`graph ${this.graphName}: MatMulNBits block size ${w.blockSize} must be a power of two ≥ 16 dividing K = ${w.K}`);
    const blob = (w.blockSize * w.bits) / 8;
    if (w.B.length !== w.N * nb * blob || w.scales.length !== w.N * nb)
      throw new Error(
        `graph ${this.graphName}: MatMulNBits weights hold ${w.B.length} bytes and ${w.scales.length} scales for ${w.N}×${w.K}`,
      );
    const B = this.constRaw('uint8', [w.N, nb, blob], w.B, 'nbits_b');
    const S = this.constRaw('float32', [w.N * nb], w.scales, 'nbits_scales');
    const Z = w.zeroPoints ? this.constRaw('uint8', [w.zeroPoints.length], w.zeroPoints, 'nbits_zp') : null;
    const attrs = { K: w.K, N: w.N, bits: w.bits, block_size: w.blockSize, accuracy_level: accuracyLevel };
    return this.node('MatMulNBits', Z ? [a, B, S, Z] : [a, B, S], attrs, 1, 'matmulnbits', MS_DOMAIN)[0]!;
  }

  // ---- composite helpers -----------------------------------------------------------------
  /** x·sigmoid(x) */
  silu(x: Value): Value {
    return this.mul(x, this.sigmoid(x));
  }

  /** HF RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · w. */
  rmsNorm(x: Value, w: Value, eps: number): Value {
    const ms = this.reduceMean(this.mul(x, x), [-1]);
    const inv = this.div(this.scalar(1), this.sqrt(this.add(ms, this.scalar(eps))));
    return this.mul(this.mul(x, inv), w);
  }

  /** Concatenate the leading `axes` of `ref`'s runtime shape with fixed trailing dims. */
  shapeFrom(ref: Value, leading: number, trailing: number[]): Value {
    const s = this.slice(this.shape(ref), [0], [leading], [0]);
    return this.concat([s, this.constI64(trailing)], 0);
  }

  build(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: 'rac',
      opsetImport: [{ domain: '', version: OPSET }, ...(this.usesMsDomain ? [{ domain: MS_DOMAIN, version: 1 }] : [])],
      graph: {
        name: this.graphName,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.inits,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

/** Largest serialized graph onnxruntime accepts from memory: protobuf's 2 GiB cap, less headroom. */
export const MAX_BAKED_BYTES = 1.75 * 2 ** 30;

/**
 * The model `bytes` with the named float32 inputs turned into initializers holding `constants`
 * (raw little-endian data). onnxruntime pre-packs constant MatMul/Gemm weights once at session
 * creation, which weights fed as inputs miss on every run. The caller keeps the
 * total under MAX_BAKED_BYTES.
 */
export function bakeInputs(bytes: Uint8Array, constants: Record<string, { data: Float32Array; dims: readonly number[] }>): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const declared = new Set((graph.input ?? []).map((i) => i.name!));
  for (const name of Object.keys(constants)) {
    if (!declared.has(name)) throw new Error(`graph ${graph.name}: no input "${name}" to bake`);
  }
  graph.input = (graph.input ?? []).filter((i) => !(i.name! in constants));
  graph.initializer = [
    ...(graph.initializer ?? []),
    ...Object.entries(constants).map(([name, t]) => ({
      name,
      dataType: ELEM.float32,
      dims: [...t.dims],
      rawData: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    })),
  ];
  return onnx.ModelProto.encode(model).finish();
}
