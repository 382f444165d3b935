// The page in a real browser: builds it with Vite, serves dist/ with `vite preview` (the same
// COOP/COEP headers as `pnpm web`), opens it in Debian's chromium driven by playwright-core (no
// browser download; WebGL2 through SwiftShader in headless mode), and checks what a user would:
//   - a built-in sample is restored on WebGL2, and its pixels equal the Node CPU output of the same
//     PNG and weights (engine.ts, the code the worker runs) within float32 tolerance after 8-bit
//     quantisation; the routing maps are drawn, use several experts and agree with Node's routing;
//   - the WebGL2 path runs inside the page's Web Worker (createGpuBackend on an OffscreenCanvas),
//     and the page names the renderer (SwiftShader here: "software");
//   - a GPU that cannot compile kernels falls back to WebAssembly, says so, and still gives the
//     Node pixels, on one thread per core since the page is cross-origin isolated;
//   - served without COOP/COEP (not isolated), WebAssembly runs on one thread, says why, and gives
//     the same pixels;
//   - a non-image file gets one clear line; a huge image gets its cost and a downscale offer.
// It saves docs/screenshot.png, the picture in the README. Without chromium (or CHROMIUM_PATH)
// it prints one line and runs nothing, unless MOFME_REQUIRE_BROWSER=1 (then that is a failure).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getDefaultBackend } from '@mofme/tensor';
import { createImage, encodePng, readImage } from '@mofme/data';
import { build, preview, type PreviewServer } from 'vite';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildModel, countTiles, DEFAULT_STRIDE, DEFAULT_TILE, parseWeights, restoreImage, type RestoreResult } from '../src/engine';
import { expertRgb } from '../src/draw';

const root = join(import.meta.dirname, '..');
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** the waits for a restore: SwiftShader on a loaded 2-core machine needs tens of seconds per window */
const RESTORE_TIMEOUT_MS = 300_000;
/** float32 on two backends, then rounding to 8 bits: at most 2 levels apart */
const MAX_LEVELS = 2;

const weights = parseWeights(readFileSync(join(root, '..', 'cli', 'pretrained', 'model.safetensors')));
interface NodeReference { rgba: Uint8Array; result: RestoreResult; input: Float32Array }
const references = new Map<string, Promise<NodeReference>>();
/** The Node reference (once per sample): the same PNG through engine.ts on the CPU backend, quantised as the page draws it. */
function nodeReference(weather: string): Promise<NodeReference> {
  if (!references.has(weather)) references.set(weather, computeReference(weather));
  return references.get(weather)!;
}
async function computeReference(weather: string): Promise<NodeReference> {
  const img = await readImage(join(root, 'public', 'samples', `${weather}.png`));
  const backend = getDefaultBackend();
  const result = restoreImage(buildModel(weights, backend), backend, img, { tile: DEFAULT_TILE, stride: DEFAULT_STRIDE });
  const n = img.height * img.width, rgba = new Uint8Array(4 * n);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) rgba[4 * i + c] = Math.round(result.image.data[c * n + i]! * 255);
    rgba[4 * i + 3] = 255;
  }
  return { rgba, result, input: img.data };
}

async function canvasPixels(page: Page, selector: string): Promise<{ width: number; height: number; data: Uint8Array }> {
  const r = await page.$eval(selector, (c) => {
    const canvas = c as HTMLCanvasElement;
    const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
    return { width: d.width, height: d.height, data: Array.from(d.data) };
  });
  return { ...r, data: Uint8Array.from(r.data) };
}

async function restoreSample(page: Page, weather: string): Promise<void> {
  await page.click(`.sample[data-weather=${weather}]`);
  await page.waitForSelector('body[data-state=done], body[data-state=error]', { timeout: RESTORE_TIMEOUT_MS });
  const state = await page.$eval('body', (b) => b.dataset.state);
  if (state !== 'done') assert.unreachable(`restoring failed in the page: ${await page.textContent('#messages')}`);
}

function compareToNode(page: { width: number; height: number; data: Uint8Array }, ref: { rgba: Uint8Array; input: Float32Array }, what: string): void {
  assert.is(page.data.length, ref.rgba.length);
  let maxDiff = 0, changed = 0;
  for (let i = 0; i < page.data.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(page.data[i]! - ref.rgba[i]!));
  }
  // the restoration did something: the output is not the input (so equality is not trivial). A
  // value counts as changed when it moved by more than the tolerance between backends; the bundled
  // model is gentle on these small samples (about 58 % of the values move by more than 2 levels,
  // under 0.2 % by more than 8), so a fifth of the values is the bar
  const n = page.width * page.height;
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) changed += Math.abs(page.data[4 * i + c]! - Math.round(ref.input[c * n + i]! * 255)) > MAX_LEVELS ? 1 : 0;
  console.log(`browser test: ${what}: restored pixels at most ${maxDiff}/255 from Node's`);
  assert.ok(maxDiff <= MAX_LEVELS, `restored pixels differ from Node's by up to ${maxDiff}/255 (allowed ${MAX_LEVELS})`);
  assert.ok(changed > 0.2 * 3 * n, `the page's output is nearly the input (${changed} of ${3 * n} values changed by more than ${MAX_LEVELS} levels)`);
}

const have = existsSync(executablePath);
if (!have && process.env.MOFME_REQUIRE_BROWSER === '1') {
  // CI sets this: there a missing browser is a failure, not a skip
  test('chromium is installed (MOFME_REQUIRE_BROWSER=1)', () => assert.unreachable(`no chromium at ${executablePath}`));
} else if (!have) {
  console.log(`browser test skipped: no chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`);
} else {
  let server: PreviewServer;
  let browser: Browser;
  let url: string;
  const t0 = Date.now();

  test.before(async () => {
    await build({ root, logLevel: 'error' });
    server = await preview({ root, logLevel: 'error', preview: { host: '127.0.0.1', port: 0, strictPort: false } });
    url = server.resolvedUrls!.local[0]!;
    browser = await chromium.launch({
      executablePath,
      args: [
        '--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--no-first-run', '--disable-quic',
        // WebGL2 without a GPU: SwiftShader (the page reports it as software)
        '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
      ],
    });
  });

  test.after(async () => {
    await browser?.close();
    await server?.close();
    console.log(`browser test: ${((Date.now() - t0) / 1000).toFixed(0)} s in all`);
  });

  /** `isolated: false` serves the page without COOP/COEP (as a host that sends no headers would) */
  const openPage = async (query = '', { isolated = true } = {}): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 760 } });
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    if (!isolated) {
      // the document's headers decide isolation (its worker inherits it): drop the two from it
      await page.route(url + query, async (route) => {
        const response = await route.fetch();
        const headers = { ...response.headers() };
        delete headers['cross-origin-opener-policy'];
        delete headers['cross-origin-embedder-policy'];
        await route.fulfill({ response, headers });
      });
    }
    await page.goto(url + query);
    await page.waitForSelector('body[data-state=ready]', { timeout: 30_000 });
    return page;
  };

  test('a built-in sample restored on WebGL2 equals the Node output; the routing maps are drawn', async () => {
    const page = await openPage();
    assert.ok(await page.evaluate(() => crossOriginIsolated), 'the page is not cross-origin isolated (COOP/COEP headers missing)');
    // the built folder tells hosts which headers to send (the same file vite.config.ts serves them from)
    const hostHeaders = readFileSync(join(root, 'dist', '_headers'), 'utf8');
    assert.match(hostHeaders, /^\/\*\n {2}Cross-Origin-Opener-Policy: same-origin\n {2}Cross-Origin-Embedder-Policy: require-corp$/m);
    const [ref] = await Promise.all([nodeReference('snow'), restoreSample(page, 'snow')]);
    const label = (await page.textContent('#backend-label')) ?? '';
    assert.match(label, /^WebGL2 \(gpu\.js\) on "/);
    assert.match(label, /SwiftShader[\s\S]*software/); // headless chromium emulates the GPU, and the page says so
    console.log(`browser test: the page's worker got ${label}`);
    compareToNode(await canvasPixels(page, '#after'), ref, 'snow on WebGL2');

    // per-window and total times are shown, one per window
    const tiles = await page.$$eval('#tiles span', (s) => s.map((e) => Number((e as HTMLElement).dataset.ms)));
    assert.is(tiles.length, countTiles(160, 240, 8));
    for (const ms of tiles) assert.ok(ms > 0);
    assert.match((await page.textContent('#total')) ?? '', /for 2 windows of 160 px/);

    // routing maps: one per block, several expert colours, and the cells agree with Node's routing
    const maps = await page.$$('canvas.routing-map');
    assert.is(maps.length, weights.config.depth);
    const palette = Array.from({ length: weights.config.experts }, (_, e) => expertRgb(e).join());
    for (let b = 0; b < maps.length; b++) {
      const px = await canvasPixels(page, `canvas.routing-map[data-block="${b}"]`);
      const { rows, cols, patch } = ref.result.routing;
      assert.is(px.width, cols * patch);
      let agree = 0;
      const used = new Map<number, number>();
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const i = 4 * ((r * patch + patch / 2) * px.width + c * patch + patch / 2);
          const e = palette.indexOf(`${px.data[i]},${px.data[i + 1]},${px.data[i + 2]}`);
          assert.ok(e >= 0, `block ${b} cell (${r}, ${c}) is not an expert colour`);
          used.set(e, (used.get(e) ?? 0) + 1);
          if (e === ref.result.routing.blocks[b]![r * cols + c]) agree++;
        }
      }
      const common = [...used.values()].filter((v) => v >= 0.02 * rows * cols).length;
      assert.ok(common >= 2, `block ${b}: only ${common} expert colour(s) cover 2% of the map`);
      // float32 differences may flip a near-tie between two experts in a few patches, no more
      console.log(`browser test: block ${b}: ${agree} of ${rows * cols} patches routed as in Node`);
      assert.ok(agree >= 0.95 * rows * cols, `block ${b}: ${agree} of ${rows * cols} patches agree with Node's routing`);
    }
    const weatherRows = await page.$$eval('#weather-table tbody tr', (r) => r.length);
    assert.is(weatherRows, 6); // five built-in weathers and this image

    // The README's picture is refreshed only on request, so that a test run leaves the checkout as it was.
    const shots = process.env.MOFME_UPDATE_SCREENSHOT === '1' ? join(root, 'docs') : mkdtempSync(join(tmpdir(), 'mofme-web-shot-'));
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, 'screenshot.png'), fullPage: true });
    await page.close();
  });

  test('a GPU that fails to compile kernels: the page says so, falls back to threaded WebAssembly, same pixels', async () => {
    const page = await openPage('?simulate=gpu-kernel-failure');
    const [ref] = await Promise.all([nodeReference('haze'), restoreSample(page, 'haze')]);
    assert.match((await page.textContent('#messages')) ?? '', /webgl2 failed: .*compiling fragment shader.*Falling back to wasm/);
    // cross-origin isolated: one thread per core the browser reports, all of them started
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    assert.ok(cores > 1, `the browser reports ${cores} core(s): the threaded path cannot be tested here`);
    assert.is((await page.textContent('#backend-label')) ?? '', `WebAssembly SIMD, ${cores} threads`);
    assert.is(await page.$eval('#backend-label', (e) => (e as HTMLElement).dataset.threads), String(cores));
    compareToNode(await canvasPixels(page, '#after'), ref, `haze on WebAssembly (${cores} threads) after the simulated GPU failure`);
    await page.close();
  });

  test('not cross-origin isolated (no COOP/COEP): WebAssembly on one thread, the page says why, same pixels', async () => {
    const page = await openPage('?backend=wasm', { isolated: false });
    assert.is(await page.evaluate(() => crossOriginIsolated), false);
    const [ref] = await Promise.all([nodeReference('haze'), restoreSample(page, 'haze')]);
    assert.is((await page.textContent('#backend-label')) ?? '', 'WebAssembly SIMD, 1 thread: page not cross-origin isolated');
    assert.is(await page.$eval('#backend-label', (e) => (e as HTMLElement).dataset.threads), '1');
    compareToNode(await canvasPixels(page, '#after'), ref, 'haze on WebAssembly (1 thread, not isolated)');
    await page.close();
  });

  test('bad input: a non-image file gets one line naming it; a huge image gets its cost and a downscale offer', async () => {
    const page = await openPage();
    await page.setInputFiles('#file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a photo\n') });
    const error = await page.waitForSelector('.msg.error');
    assert.is(await error.textContent(), 'notes.txt: not an image this browser can decode (type "text/plain", 12 bytes); choose a PNG, JPEG or WebP photo');
    assert.ok(await page.$eval('#run', (b) => (b as HTMLButtonElement).disabled), 'Restore is enabled without an image');

    const big = createImage(1200, 1600, 0.5); // 1.9 megapixels, above the page's 1.5
    const png = Buffer.from(await encodePng(big));
    await page.setInputFiles('#file', { name: 'big.png', mimeType: 'image/png', buffer: png });
    const warn = await page.waitForSelector('.msg.warn');
    assert.match((await warn.textContent()) ?? '', /^big\.png is 1600x1200 \(1\.9 megapixels\): \d+ windows, .* MB of memory\. Downscaled to 1024x768: \d+ windows/);
    await page.click('.msg.warn button:text("Downscale to 1024x768")');
    assert.match((await page.textContent('#status')) ?? '', /^big\.png \(downscaled\): 1024x768/);
    assert.equal(await page.$eval('#before', (c) => [(c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height]), [1024, 768]);
    await page.close();
  });
}

test.run();
