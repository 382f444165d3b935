/**
 * @mofme/data — multi-weather image-restoration data for MoFME.ts.
 *
 *   image I/O      readImage / decodeImage / writeImage / encodePng / encodeJpeg (sharp, pure-JS fallback)
 *   datasets       openDataset(path | spec)  — list files, MoFME, Snow100K, Raindrop, Outdoor-Rain, CSD, paired
 *   built-in data  builtinDataset('train' | 'val' | 'test') — committed photos + on-the-fly weather
 *   synthesis      synthesize(image, 'rain' | 'rain_fog' | 'snow' | 'raindrop' | 'haze', params, seed)
 *   corpus         buildCorpus({ out }) — clean real photos from Debian packages; corpusDataset(dir)
 *   loader         createLoader(dataset, { batchSize, crop, ... }) — async batches, workers, resumable
 */
export type { Image, RawImage } from './image';
export { createImage, cloneImage, cropImage, resizeImage, dihedral, rawToImage, rawWindowInto, imageToRaw, clamp01 } from './image';
export {
  readImage, decodeImage, decodeRaw, writeImage, encodePng, encodeJpeg, imageSize, sniffFormat, codecBackend, setCodecBackend,
  readPhoto, readRawPhoto, encodePhotoPng, createPhotoPng, setPhotoPngRows, finishPhotoPng, type Photo, type RawPhoto, type PhotoPng,
  type DecodeOptions, type PngOptions, type JpegOptions, type ImageFormat,
} from './codec';
export {
  openDataset, detectLayout, inferTask, gtNameCandidates, describeSkipped, TASKS, LAYOUTS,
  type Task, type Layout, type Policy, type PairEntry, type SkippedPair, type FileDataset, type OpenOptions, type DatasetSpec,
} from './dataset';
export { builtinDataset, builtinPhotos, photosDir, type BuiltinDataset, type BuiltinItem, type BuiltinOptions, type Split, type PhotoInfo } from './builtin';
export {
  synthesize, WEATHERS, darkChannel, luminance,
  type Weather, type WeatherParams, type SynthResult, type HazeParams, type RainParams, type RainFogParams, type SnowParams, type SnowSize, type RaindropParams, type CameraParams, type Frame,
} from './synth/index';
export { createLoader, type Loader, type LoaderOptions, type LoaderPosition, type Batch } from './loader';
export { getPair, loadSample, type AnyDataset, type Sample, type SampleRequest, type SourceSpec } from './pipeline';
export { buildCorpus, corpusDataset, readCorpusManifest, isCorpusDir, CORPUS_SOURCES, RESERVED_PACKAGES, type CorpusEntry, type CorpusOptions, type CorpusResult, type CorpusSource } from './corpus';
export { loadFashionMnist, parseIdx, FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, type FashionMnist, type FashionMnistOptions } from './fashion-mnist';
