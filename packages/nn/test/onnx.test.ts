// The ONNX writer at the protobuf level (running the files is tested with onnxruntime-node in
// packages/mofme/test/onnx.test.ts): the file declares IR 8 / opset 17, weights are initialisers
// under their parameter names with their exact bytes, inputs and outputs carry the traced shapes,
// and ops without a translation are refused with their name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import onnxProto from 'onnx-proto';
import { matmul, relu, scatterAdd, tensor, trace, type TracedGraph } from '@mofme/tensor';
import { tracedGraphToOnnx, ONNX_OPSET } from '../src/index';

const { onnx } = onnxProto;

test('a traced linear layer: IR 8, opset 17, named initialiser with its bytes, shapes, op types', () => {
  const w = tensor([[1, 2], [3, 4], [5, 6]]);
  w.name = 'fc.weight';
  const x = tensor([[0.5, -1, 2]]);
  const graph = trace(() => relu(matmul(x, w)), [x]);
  const bytes = tracedGraphToOnnx(graph, { inputNames: ['features'], outputNames: ['activation'], metadata: { note: 'hi' } });
  const model = onnx.ModelProto.decode(bytes);
  assert.is(Number(model.irVersion), 8);
  assert.equal(model.opsetImport!.map((o) => [o.domain ?? '', Number(o.version)]), [['', ONNX_OPSET]]);
  assert.is(ONNX_OPSET, 17);
  const init = model.graph!.initializer!.find((t) => t.name === 'fc.weight')!;
  assert.equal(init.dims!.map(Number), [3, 2]);
  assert.is(init.dataType, onnx.TensorProto.DataType.FLOAT);
  assert.equal(Array.from(new Float32Array(new Uint8Array(init.rawData!).buffer)), [1, 2, 3, 4, 5, 6]);
  assert.equal(model.graph!.input!.map((v) => [v.name, v.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue))]), [['features', [1, 3]]]);
  assert.equal(model.graph!.output!.map((v) => [v.name, v.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue))]), [['activation', [1, 2]]]);
  assert.equal(model.graph!.node!.map((n) => n.opType), ['Reshape', 'Reshape', 'MatMul', 'Reshape', 'Relu']);
  assert.equal(model.metadataProps!.map((p) => [p.key, p.value]), [['note', 'hi']]);
});

test('ops without a translation are refused by name', () => {
  const x = tensor([1, 2, 3]);
  const graph = trace(() => scatterAdd([4], 0, tensor([0, 0, 3]), x), [x]);
  assert.throws(() => tracedGraphToOnnx(graph), /op 'scatterAdd' .* cannot be exported; run the model with dense execution/);
  const odd: TracedGraph = { ...graph, nodes: graph.nodes.map((n) => ({ ...n, op: 'frobnicate' })) };
  assert.throws(() => tracedGraphToOnnx(odd), /op 'frobnicate' has no ONNX translation/);
});

test.run();
