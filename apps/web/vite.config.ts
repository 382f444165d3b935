/**
 * Vite builds the page from the workspace's TypeScript sources directly: the `source` export
 * condition resolves `@mofme/*` to packages/*\/src, as the tests do, so no package build runs first.
 *
 * - COOP/COEP headers on the dev server and on `vite preview`: with them the page is cross-origin
 *   isolated (SharedArrayBuffer, what WebAssembly threads need). They are written once, in
 *   public/_headers, which also goes into dist/ to tell hosts what to send; this file reads it.
 * - gpu.js is a dependency of @mofme/tensor, not of this app; the alias points at its browser
 *   bundle so that both the engine and backends.ts use that one copy. Its optional native `gl`
 *   module is Node-only and stays out of the bundle.
 * - The libraries' Node-only files (safetensors' file writers, say) import `node:*` modules at the
 *   top; the page never calls them. Vite's own stand-in for such modules throws as soon as a named
 *   import is bound (in the dev server), so each `node:*` module becomes a stub with the real
 *   module's export names (read from Node when the config loads), each of which throws when called.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { defineConfig, defaultClientConditions, type Plugin } from 'vite';

const fromTensor = createRequire(new URL('../../packages/tensor/package.json', import.meta.url));
const gpuJsBrowser = join(dirname(fromTensor.resolve('gpu.js/package.json')), 'dist', 'gpu-browser.js');

const STUB = '\0node-stub:';
function nodeBuiltinStubs(): Plugin {
  return {
    name: 'mofme-node-builtin-stubs',
    enforce: 'pre',
    resolveId: (id) => (id.startsWith('node:') ? STUB + id : null),
    async load(id) {
      if (!id.startsWith(STUB)) return null;
      const name = id.slice(STUB.length);
      const names = Object.keys(await import(name)).filter((n) => n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n));
      return `const unavailable = (what) => () => { throw new Error(what + ' is Node-only: not available in a browser'); };\n` +
        names.map((n) => `export const ${n} = unavailable(${JSON.stringify(`${name}.${n}`)});`).join('\n') + '\nexport default {};\n';
    },
  };
}

/** The site-wide (`/*`) headers of public/_headers: indented `Name: value` lines under the path line. */
function siteHeaders(file: URL): Record<string, string> {
  const headers: Record<string, string> = {};
  let sitewide = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    if (!/^\s/.test(line)) { sitewide = line.trim() === '/*'; continue; }
    const m = /^\s+([\w-]+):\s*(.+?)\s*$/.exec(line);
    if (!m) throw new Error(`${file.pathname}: not a "Name: value" header line: ${JSON.stringify(line)}`);
    if (sitewide) headers[m[1]!] = m[2]!;
  }
  return headers;
}

const isolationHeaders = siteHeaders(new URL('public/_headers', import.meta.url));

export default defineConfig({
  base: './', // relative asset paths: dist/ can be hosted under any path
  resolve: {
    conditions: ['source', ...defaultClientConditions],
    alias: { 'gpu.js': gpuJsBrowser },
  },
  plugins: [nodeBuiltinStubs()],
  optimizeDeps: { include: ['gpu.js'] }, // pre-bundled at start: no reload on the first page load
  worker: { format: 'es', plugins: () => [nodeBuiltinStubs()] },
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
