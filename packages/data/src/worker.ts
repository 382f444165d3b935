/**
 * Loader worker thread. It receives the dataset's `SourceSpec` once (workerData), then answers
 * { id, req } messages with { id, sample } (or { id, error }), transferring the two Float32Array
 * buffers instead of copying them. Decoding (sharp/libvips or the JS codecs), cropping, flipping
 * and weather synthesis all happen here, off the training thread.
 *
 * This file is started from src/worker.ts (under tsx) or from dist/worker.js (the built package);
 * see `workerUrl()` in loader.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadSample, type SampleRequest, type SourceSpec } from './pipeline';
import { loadSharp } from './codec';

const spec = (workerData as { spec: SourceSpec }).spec;
if (!parentPort) throw new Error('worker.ts must run in a worker thread');
const port = parentPort;

// One libvips thread per worker: parallelism comes from the workers, and oversubscribing the cores
// would slow down the training thread this pool is meant to relieve.
void loadSharp().then((s) => s?.concurrency(1));

// Every request gets exactly one reply. Sending is inside the try: a sample that cannot be sent
// (postMessage throws, e.g. when one buffer is listed twice for transfer) becomes an error reply
// instead of an unhandled rejection that leaves the training loop waiting for nothing.
port.on('message', (msg: { id: number; req: SampleRequest }) => {
  void loadSample(spec, msg.req)
    .then((sample) => {
      const buffers = new Set([sample.input.buffer as ArrayBuffer, sample.target.buffer as ArrayBuffer]);
      port.postMessage({ id: msg.id, sample }, [...buffers]);
    })
    .catch((e: Error) => port.postMessage({ id: msg.id, error: e.message }));
});
