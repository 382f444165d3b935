/**
 * `mofme export CHECKPOINT --format onnx|official|safetensors -o FILE`: a trained model for other
 * runtimes.
 *
 *   onnx        the eval-mode forward as an ONNX graph (opset 17, weights as initialisers) for
 *               ONNX Runtime and friends; traced at one image size (--size, default the config's
 *               square imageSize) because the patchify reshapes fix H and W (see
 *               packages/mofme/src/export.ts for why and for what the UaR stores). The file is
 *               opened in onnxruntime-node and checked against our forward on a random image before
 *               it is kept.
 *   official    the weights under the official MoFME-Pytorch state-dict names (official.ts), as
 *               safetensors, for the official code's `load_state_dict`; refused for models the
 *               official network cannot compute (the tiny/small presets' residual output, MoFME
 *               without the official expert slots).
 *   safetensors our own model file (our names, config and step in the metadata): what `mofme eval`
 *               reads; pulls one model out of a run or checkpoint folder.
 * Every refusal is one line that says what the target cannot represent. The file is written
 * atomically (temporary file, fsync, rename): a failed export leaves no partial file behind.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Generator, noGrad, uniform } from '@mofme/tensor';
import { serializeSafetensors } from '@mofme/nn';
import { exportOnnx, officialExportProblem, ONNX_IO_NOTE, toOfficialStateDict, type MoFME } from '@mofme/mofme';
import { loadModelFile, modelFileBytes } from '../checkpoint';
import { CliError, oneLine } from '../errors';
import { assertFresh, writeOutput } from '../io';
import { parseSize, type EXPORT_FORMATS } from '../options';

export interface ExportOpts { format: (typeof EXPORT_FORMATS)[number]; out: string; size?: string; overwrite?: boolean }

/** The largest |ours − onnxruntime| accepted by the check after export. Float32 rounding gives
 *  ~1e-6 on ordinary models; the UaR divides by small variances, which can amplify it to ~1e-4. */
const VERIFY_TOLERANCE = 1e-3;

export async function exportCommand(checkpoint: string, o: ExportOpts): Promise<number> {
  if (o.size && o.format !== 'onnx') throw new CliError('--size applies to --format onnx only');
  const dir = dirname(resolve(o.out));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CliError(`-o ${o.out}: the folder ${dir} does not exist`);
  assertFresh(o.out, o.overwrite);
  const { model, config, file, step } = await loadModelFile(checkpoint);
  let bytes: Uint8Array;
  let what: string;
  if (o.format === 'onnx') {
    const { width, height } = o.size ? parseSize(o.size, '--size') : { width: config.imageSize, height: config.imageSize };
    try {
      bytes = exportOnnx(model, { width, height });
    } catch (e) {
      throw new CliError(`cannot export ${file} to ONNX: ${oneLine(e).replace(/^ONNX export: /, '')}`);
    }
    const diff = await verifyOnnx(bytes, model, width, height);
    what = `ONNX opset 17, ${width}x${height}, ${ONNX_IO_NOTE}; onnxruntime agrees with our forward (max |diff| ${diff.toExponential(1)})`;
  } else if (o.format === 'official') {
    const problem = officialExportProblem(config);
    if (problem) throw new CliError(`cannot export ${file} in the official format: ${problem}`);
    bytes = serializeSafetensors(toOfficialStateDict(model), { format: 'MoFME-Pytorch state dict (official names)', config: JSON.stringify(config) });
    what = `official MoFME-Pytorch names (${config.ffn}), safetensors; PyTorch: model.load_state_dict(safetensors.torch.load_file(FILE))`;
  } else {
    bytes = modelFileBytes(model, step ?? 0);
    what = 'our names with the config in the metadata (what mofme eval / restore read)';
  }
  writeOutput(o.out, bytes);
  console.log(`wrote ${o.out} (${(bytes.length / 1e6).toFixed(2)} MB): ${what}`);
  return 0;
}

/** Open the file in onnxruntime-node and compare it with our forward on one random image. */
async function verifyOnnx(bytes: Uint8Array, model: MoFME, width: number, height: number): Promise<number> {
  const ort = await import('onnxruntime-node'); // a native module: loaded for ONNX only
  const x = uniform([1, 3, height, width], -1, 1, { generator: new Generator(1234) });
  const ours = noGrad(() => model.eval().forward(x).image.data()); // the stream is where export left it: the masks in the file
  let theirs: Float32Array;
  try {
    const session = await ort.InferenceSession.create(bytes);
    const out = await session.run({ image: new ort.Tensor('float32', Float32Array.from(x.data()), [1, 3, height, width]) });
    theirs = out.restored!.data as Float32Array;
  } catch (e) {
    throw new CliError(`the exported ONNX model does not run in onnxruntime-node (nothing written): ${oneLine(e)}`);
  }
  let diff = 0;
  for (let i = 0; i < ours.length; i++) diff = Math.max(diff, Math.abs(ours[i]! - theirs[i]!));
  if (!(diff <= VERIFY_TOLERANCE)) throw new CliError(`the exported ONNX model disagrees with ours by ${diff} (> ${VERIFY_TOLERANCE}); nothing written`);
  return diff;
}
