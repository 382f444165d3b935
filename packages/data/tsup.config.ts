import { defineConfig } from 'tsup';

// ESM + .d.ts, no minification: gpu.js reads kernel functions' source text, and learners read dist too.
export default defineConfig({
  entry: { index: 'src/index.ts' },
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  minify: false,
});
