import { defineConfig } from 'tsup';

// ESM + .d.ts, no minification: gpu.js reads kernel functions' source text, and learners read dist too.
// worker.ts is a second entry: the loader starts dist/worker.js in its worker threads.
export default defineConfig({
  entry: { index: 'src/index.ts', worker: 'src/worker.ts' },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
  minify: false,
  external: ['sharp', 'pngjs', 'jpeg-js'],
});
