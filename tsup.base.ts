/**
 * The tsup settings every package shares: ESM with .d.ts files and source maps, for Node 20, not
 * minified (gpu.js reads kernel functions' source text, and learners read dist too).
 * Each package's tsup.config.ts names its entries and anything particular to it.
 */
import { defineConfig, type Options } from 'tsup';

export function packageConfig(options: Options) {
  return defineConfig({ format: ['esm'], dts: true, sourcemap: true, clean: true, target: 'node20', minify: false, ...options });
}
