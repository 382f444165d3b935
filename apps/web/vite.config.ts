/**
 * Vite builds the page from the workspace's TypeScript sources directly: the `source` export
 * condition resolves `@mofme/*` to packages/*\/src, as the tests do, so no package build runs first.
 *
 * - COOP/COEP headers on the dev server and on `vite preview`: with them the page is cross-origin
 *   isolated (SharedArrayBuffer, what WebAssembly threads need); hosts of dist/ should send the same.
 * - gpu.js is a dependency of @mofme/tensor, not of this app; the alias points at its browser
 *   bundle so that both the engine and backends.ts use that one copy. Its optional native `gl`
 *   module is Node-only and stays out of the bundle.
 * - The libraries' Node-only files (safetensors' file writers, the data package's codecs) import
 *   `node:*` modules at the top; the page never calls them, and Vite replaces those modules with
 *   empty browser stubs.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { defineConfig, defaultClientConditions } from 'vite';

const fromTensor = createRequire(new URL('../../packages/tensor/package.json', import.meta.url));
const gpuJsBrowser = join(dirname(fromTensor.resolve('gpu.js/package.json')), 'dist', 'gpu-browser.js');

export const isolationHeaders = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  base: './', // relative asset paths: dist/ can be hosted under any path
  resolve: {
    conditions: ['source', ...defaultClientConditions],
    alias: { 'gpu.js': gpuJsBrowser },
  },
  worker: { format: 'es' },
  server: { headers: isolationHeaders },
  preview: { headers: isolationHeaders },
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2048, // gpu.js's browser bundle alone is about 1 MB
    rollupOptions: { external: ['gl'] },
  },
});
