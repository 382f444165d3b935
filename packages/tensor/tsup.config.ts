import { defineConfig } from 'tsup';

// ESM + .d.ts, no minification: gpu.js reads kernel functions' source text, and learners read dist too.
export default defineConfig({
  entry: { index: 'src/index.ts', testing: 'src/testing/index.ts', gpu: 'src/gpu/index.ts' },
  external: ['gpu.js'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  minify: false,
});
