/**
 * The ONNX writer: a traced graph (@mofme/tensor's trace.ts) as an ONNX model file.
 *
 * ONNX is a protobuf: a graph of nodes, each a standard operator (`Conv`, `MatMul`, `ReduceSum`,
 * ...) reading and writing named values, plus initialisers (constant tensors: here the weights and
 * the literals the forward read). The onnx-proto package supplies the protobuf encoder; this file
 * decides what each of our ops becomes. Most are one ONNX operator with the same semantics (both
 * follow NumPy broadcasting). A few need a small pattern:
 *   - matmul with a transposed operand: Transpose of the last two axes, then MatMul;
 *   - im2col (the composed route of conv2d): a grouped Conv with one-hot 0/1 kernels copies each
 *     receptive field into channels c·kh·kw + i·kw + j, exactly im2col's row order;
 *   - comparisons give booleans in ONNX and 0/1 floats here: a Cast follows; `where` casts its
 *     0/1 condition to bool first; top-k's int64 indices are cast to floats as ours are;
 *   - flip is a Slice with step −1.
 * The opset is fixed (17, ONNX 1.12) so a file means the same thing in every runtime that opens it.
 * Shapes are the traced ones: the graph runs at the input sizes it was traced with.
 * An op with no translation (e.g. scatterAdd, whose sparse-execution callers choose rows on the
 * host) is refused with a one-line error naming it.
 */
import onnxProto from 'onnx-proto';
import type { DType, TracedConstant, TracedGraph, TracedNode, TypedArray } from '@mofme/tensor';

const { onnx } = onnxProto;
type Attr = onnxProto.onnx.IAttributeProto;
type Elem = onnxProto.onnx.TensorProto.DataType;

/** The operator set every exported file declares; ONNX 1.12 / onnxruntime ≥ 1.12 read it. */
export const ONNX_OPSET = 17;
/** The IR version that goes with opset 17. */
const IR_VERSION = 8;

export interface OnnxExportOptions {
  /** names of the graph inputs (default input0, input1, ...) */
  inputNames?: string[];
  /** names of the graph outputs (default output0, ...) */
  outputNames?: string[];
  /** graph name and the producer recorded in the file */
  graphName?: string;
  producer?: string;
  /** key/value notes stored in the model's metadata_props (e.g. the model config) */
  metadata?: Record<string, string>;
}

const DT = onnx.TensorProto.DataType;
const elemOf = (dtype: DType): Elem => (dtype === 'float64' ? DT.DOUBLE : DT.FLOAT);

function bytesOf(data: TypedArray | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

const ints = (name: string, values: readonly number[]): Attr => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: [...values] });
const int = (name: string, value: number): Attr => ({ name, type: onnx.AttributeProto.AttributeType.INT, i: value });

const UNARY: Record<string, string> = {
  neg: 'Neg', exp: 'Exp', log: 'Log', sqrt: 'Sqrt', abs: 'Abs', relu: 'Relu', sigmoid: 'Sigmoid',
  tanh: 'Tanh', erf: 'Erf', sin: 'Sin', cos: 'Cos', detach: 'Identity', clone: 'Identity', to: 'Identity',
};
const BINARY: Record<string, string> = { add: 'Add', sub: 'Sub', mul: 'Mul', div: 'Div', pow: 'Pow', maximum: 'Max', minimum: 'Min' };
const COMPARE: Record<string, string> = { eq: 'Equal', lt: 'Less', le: 'LessOrEqual', gt: 'Greater', ge: 'GreaterOrEqual', ne: 'Equal' };

/** Builds the node list and initialisers of one graph. */
class GraphBuilder {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly used = new Set<string>();
  private readonly shared = new Map<string, string>(); // content key -> initialiser name
  private counter = 0;

  fresh(prefix: string): string {
    let name = prefix;
    while (this.used.has(name)) name = `${prefix}_${++this.counter}`;
    this.used.add(name);
    return name;
  }
  claim(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX export: the value name '${name}' is used twice`);
    this.used.add(name);
    return name;
  }
  node(opType: string, inputs: string[], output: string | null, attribute: Attr[] = [], extraOutputs: string[] = []): string {
    const out = output ?? this.fresh(`${opType.toLowerCase()}_out`);
    this.nodes.push({ opType, input: inputs, output: [out, ...extraOutputs], name: this.fresh(`${opType}_${this.nodes.length}`), attribute });
    return out;
  }
  initializer(name: string, dims: readonly number[], dataType: Elem, data: TypedArray | BigInt64Array): string {
    this.initializers.push({ name, dims: [...dims], dataType, rawData: bytesOf(data) });
    return name;
  }
  /** An int64 vector constant (shapes, axes, pads), shared between the nodes that need it. */
  int64s(values: readonly number[]): string {
    const key = `i64:${values.join(',')}`;
    let name = this.shared.get(key);
    if (!name) {
      name = this.initializer(this.fresh('shape_const'), [values.length], DT.INT64, BigInt64Array.from(values.map((v) => BigInt(v))));
      this.shared.set(key, name);
    }
    return name;
  }
  /** A constant from the trace; literal scalars of equal value share one initialiser. */
  constant(c: TracedConstant, preferred: string): string {
    const key = c.name === undefined && c.data.length === 1 ? `${c.dtype}:${c.shape.join('x')}:${c.data[0]}` : null;
    const known = key ? this.shared.get(key) : undefined;
    if (known) return known;
    const name = this.initializer(this.fresh(preferred), c.shape, elemOf(c.dtype), c.data);
    if (key) this.shared.set(key, name);
    return name;
  }
  /** The 0/1 kernels [C·kh·kw, 1, kh, kw] that make a grouped Conv copy receptive fields (im2col). */
  oneHotKernels(channels: number, kh: number, kw: number, dtype: DType): string {
    const key = `onehot:${channels}:${kh}:${kw}:${dtype}`;
    let name = this.shared.get(key);
    if (!name) {
      const k = kh * kw;
      const data = dtype === 'float64' ? new Float64Array(channels * k * k) : new Float32Array(channels * k * k);
      for (let c = 0; c < channels; c++) for (let j = 0; j < k; j++) data[(c * k + j) * k + j] = 1; // channel c·k+j picks window position j
      name = this.initializer(this.fresh(`im2col_kernel_${channels}x${kh}x${kw}`), [channels * k, 1, kh, kw], elemOf(dtype), data);
      this.shared.set(key, name);
    }
    return name;
  }
}

interface WindowSpecLike {
  kh: number; kw: number; strideH: number; strideW: number; padH: number; padW: number;
  dilationH: number; dilationW: number; channels: number; batch: number; outH: number; outW: number; padValue: number;
}

const convAttrs = (s: WindowSpecLike, group: number): Attr[] => [
  ints('kernel_shape', [s.kh, s.kw]), ints('strides', [s.strideH, s.strideW]),
  ints('pads', [s.padH, s.padW, s.padH, s.padW]), ints('dilations', [s.dilationH, s.dilationW]), int('group', group),
];

/** Emit the ONNX nodes for one traced node; `name(id)` is the ONNX name of a value. */
function translate(g: GraphBuilder, graph: TracedGraph, n: TracedNode, name: (id: number) => string, out: string): void {
  const x = name(n.inputs[0]!);
  const inShape = graph.values.get(n.inputs[0]!)!.shape;
  const { shape: outShape, dtype } = graph.values.get(n.output)!;
  const a = n.attrs as Record<string, unknown>;
  if (UNARY[n.op]) { g.node(UNARY[n.op]!, [x], out); return; }
  if (BINARY[n.op]) { g.node(BINARY[n.op]!, [x, name(n.inputs[1]!)], out); return; }
  switch (n.op) {
    case 'compare': {
      const op = a.op as string;
      let b = g.node(COMPARE[op]!, [x, name(n.inputs[1]!)], null);
      if (op === 'ne') b = g.node('Not', [b], null);
      g.node('Cast', [b], out, [int('to', elemOf(dtype))]);
      return;
    }
    case 'where': {
      const cond = g.node('Cast', [x], null, [int('to', DT.BOOL)]);
      g.node('Where', [cond, name(n.inputs[1]!), name(n.inputs[2]!)], out);
      return;
    }
    case 'matmul': {
      const t = (v: string, flag: unknown): string => (flag ? g.node('Transpose', [v], null, [ints('perm', [0, 2, 1])]) : v);
      g.node('MatMul', [t(x, a.transA), t(name(n.inputs[1]!), a.transB)], out);
      return;
    }
    case 'conv2d': {
      const spec = a.spec as WindowSpecLike;
      g.node('Conv', n.inputs.map(name), out, convAttrs(spec, a.groups as number));
      return;
    }
    case 'im2col': {
      const s = a.spec as WindowSpecLike;
      // the one-hot Conv pads with zeros; a padded max-pool pads with −∞ (0·∞ would be NaN)
      if (s.padValue !== 0 && (s.padH > 0 || s.padW > 0)) throw new Error(`ONNX export: im2col padded with ${s.padValue} (a padded max-pool) has no ONNX translation here`);
      const cols = g.node('Conv', [x, g.oneHotKernels(s.channels, s.kh, s.kw, dtype)], null, convAttrs(s, s.channels));
      g.node('Reshape', [cols, g.int64s(outShape)], out);
      return;
    }
    case 'reshape': g.node('Reshape', [x, g.int64s(outShape)], out); return;
    case 'expand': g.node('Expand', [x, g.int64s(outShape)], out); return;
    case 'permute': g.node('Transpose', [x], out, [ints('perm', a.perm as number[])]); return;
    case 'slice': {
      const starts = a.starts as number[];
      const axes = [...starts.keys()];
      g.node('Slice', [x, g.int64s(starts), g.int64s(starts.map((s, d) => s + outShape[d]!)), g.int64s(axes)], out);
      return;
    }
    case 'flip': {
      const axes = a.axes as number[];
      // step −1 from the last entry; an end of −(size+1) means "past the first entry"
      g.node('Slice', [x, g.int64s(axes.map((d) => inShape[d]! - 1)), g.int64s(axes.map((d) => -(inShape[d]! + 1))), g.int64s(axes), g.int64s(axes.map(() => -1))], out);
      return;
    }
    case 'pad': {
      const pads = a.pads as [number, number][];
      const value = g.constant({ data: dtype === 'float64' ? Float64Array.of(a.value as number) : Float32Array.of(a.value as number), shape: [], dtype, name: undefined }, 'pad_value');
      g.node('Pad', [x, g.int64s([...pads.map((p) => p[0]), ...pads.map((p) => p[1])]), value], out, [{ name: 'mode', type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode('constant') }]);
      return;
    }
    case 'concat': g.node('Concat', n.inputs.map(name), out, [int('axis', a.axis as number)]); return;
    case 'gather': {
      const index = g.node('Cast', [name(n.inputs[1]!)], null, [int('to', DT.INT64)]);
      g.node('GatherElements', [x, index], out, [int('axis', a.axis as number)]);
      return;
    }
    case 'sum': g.node('ReduceSum', [x, g.int64s(a.axes as number[])], out, [int('keepdims', a.keepdim ? 1 : 0), int('noop_with_empty_axes', 1)]); return;
    case 'max':
    case 'min':
      g.node(n.op === 'max' ? 'ReduceMax' : 'ReduceMin', [x], out, [ints('axes', a.axes as number[]), int('keepdims', a.keepdim ? 1 : 0)]);
      return;
    case 'topk': {
      const values = g.fresh('topk_values');
      const indices = g.fresh('topk_indices');
      g.nodes.push({ opType: 'TopK', input: [x, g.int64s([a.k as number])], output: [values, indices], name: g.fresh('TopK'), attribute: [int('axis', -1), int('largest', 1), int('sorted', 1)] });
      g.node('Cast', [indices], out, [int('to', elemOf(dtype))]);
      return;
    }
    case 'cast': g.node('Cast', [x], out, [int('to', elemOf(dtype))]); return;
    case 'scatterAdd':
      throw new Error("ONNX export: op 'scatterAdd' (rows chosen on the host, e.g. sparse expert execution) cannot be exported; run the model with dense execution (same output)");
    default:
      throw new Error(`ONNX export: op '${n.op}' has no ONNX translation`);
  }
}

const valueInfo = (name: string, shape: readonly number[], dtype: DType): onnxProto.onnx.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType: elemOf(dtype), shape: { dim: shape.map((d) => ({ dimValue: d })) } } },
});

/** An initialiser name from a parameter name (ONNX allows any string; keep them readable). */
const constantName = (c: TracedConstant, id: number): string => (c.name ? c.name.replace(/[^\w.]/g, '_') : `const_${id}`);

/** Encode a traced graph as an ONNX model (opset ONNX_OPSET). */
export function tracedGraphToOnnx(graph: TracedGraph, options: OnnxExportOptions = {}): Uint8Array {
  const g = new GraphBuilder();
  const names = new Map<number, string>();
  graph.inputs.forEach((id, i) => names.set(id, g.claim(options.inputNames?.[i] ?? `input${i}`)));
  graph.outputs.forEach((id, i) => {
    if (names.has(id)) throw new Error(`ONNX export: output ${i} is also ${names.get(id)} (an input or another output)`);
    names.set(id, g.claim(options.outputNames?.[i] ?? `output${i}`));
  });
  const name = (id: number): string => {
    let known = names.get(id);
    if (known === undefined) {
      const c = graph.constants.get(id);
      known = c ? g.constant(c, constantName(c, id)) : g.fresh(`v${id}`);
      names.set(id, known);
    }
    return known;
  };
  for (const n of graph.nodes) translate(g, graph, n, name, name(n.output));
  const info = (id: number): onnxProto.onnx.IValueInfoProto => {
    const v = graph.values.get(id)!;
    return valueInfo(names.get(id)!, v.shape, v.dtype);
  };
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: options.producer ?? 'mofme',
    graph: {
      name: options.graphName ?? 'graph',
      node: g.nodes,
      initializer: g.initializers,
      input: graph.inputs.map(info),
      output: graph.outputs.map(info),
    },
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(model).finish();
}
