import { packageConfig } from '../../tsup.base';

// worker.ts is a second entry: the loader starts dist/worker.js in its worker threads.
export default packageConfig({
  entry: { index: 'src/index.ts', worker: 'src/worker.ts' },
  dts: { entry: { index: 'src/index.ts' } },
  external: ['sharp', 'pngjs', 'jpeg-js'],
});
