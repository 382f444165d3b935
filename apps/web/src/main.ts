/**
 * The page: pick a built-in sample or drop a photo, restore it in the worker (worker.ts), and show
 * the before/after slider, the run's figures (backend, time per window and in total) and, per
 * transformer block, the map of which expert each patch was routed to, next to the per-weather
 * routing of the built-in samples (public/samples/routing.json, written by scripts/samples.ts).
 *
 * Images are decoded by the browser (createImageBitmap, no colour conversion, so a PNG's bytes are
 * the pixels the model sees, exactly as the Node reference decodes them) and sent to the worker as
 * float RGB planes. Bad input never reaches the model: a file the browser cannot decode gets a
 * one-line message naming it, its type and size; an image above LARGE_PIXELS gets an estimate of
 * what restoring it would cost and the choice of downscaling it first.
 *
 * Query parameters (used by the browser test, handy by hand): ?backend=webgl2|wasm|cpu picks the
 * first backend to try; ?simulate=gpu-kernel-failure makes the GPU fail to compile its kernels.
 */
import type { RoutingSummary } from '@mofme/mofme';
import { countTiles, DEFAULT_STRIDE, DEFAULT_TILE, type PlanarImage, type RoutingMap, type TileRecord } from './engine';
import { expertColour, formatMs, routingMapPixels } from './draw';
import { BACKEND_ORDER, type BackendKind, type RestoreMessage, type Simulation, type WorkerReply } from './protocol';

/** Above this many pixels (about 1.5 megapixels, a 1500x1000 photo) the page asks before restoring. */
const LARGE_PIXELS = 1_500_000;
/** Downscaled images fit in this side: a few dozen windows, minutes rather than hours on a software renderer. */
const DOWNSCALE_SIDE = 1024;
/**
 * Memory of a whole-image restore per pixel, counted from the code: float32 RGB planes for the
 * input here, its copy sent to the worker and the output coming back (3 x 12 bytes), the decoded
 * and the drawn RGBA pixels (2 x 4) and the two canvases (2 x 4): about 60 bytes. restorePlanes()
 * itself adds one band of window rows and one window's activations, which do not grow with the height.
 */
const BYTES_PER_PIXEL = 60;
/** The bundled model's patch size, for window counts before the worker has loaded it. */
const PATCH = 8;

interface SampleManifest {
  photo: string; author: string; licence: string; source: string;
  samples: { file: string; weather: string }[];
}
interface WeatherRouting { tile: number; stride: number; k: number; routing: Record<string, { block: number; topkShare: number[] }[]> }

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const samplesBase = `${import.meta.env.BASE_URL}samples/`;

const state = {
  image: null as PlanarImage | null,
  label: 'image',
  name: '',
  running: false,
  /** ms per window of the last run (compilation aside), for the cost estimate of a large image */
  msPerTile: null as number | null,
  weatherRouting: null as WeatherRouting | null,
};

// ---- messages ------------------------------------------------------------------------------------

function say(text: string, kind: 'info' | 'warn' | 'error' = 'info', actions: [string, () => void][] = []): HTMLElement {
  const p = document.createElement('p');
  p.className = `msg ${kind}`;
  p.textContent = text;
  for (const [label, act] of actions) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.addEventListener('click', () => { p.remove(); act(); });
    p.append(' ', b);
  }
  $('messages').append(p);
  return p;
}
const clearMessages = (): void => { $('messages').replaceChildren(); };
const setStatus = (text: string): void => { $('status').textContent = text; };

// ---- images --------------------------------------------------------------------------------------

/** RGBA bytes -> float RGB planes in [0, 1]. */
function toPlanar(pixels: ImageData): PlanarImage {
  const { width, height, data } = pixels, n = width * height;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = data[4 * i + c]! / 255;
  return { data: out, height, width };
}

/** Float RGB planes -> RGBA bytes (rounded, opaque), as the CLI's 8-bit PNG writer quantises. */
function toImageData(img: PlanarImage): ImageData {
  const { width, height, data } = img, n = width * height;
  const out = new ImageData(width, height);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) out.data[4 * i + c] = Math.round(Math.min(1, Math.max(0, data[c * n + i]!)) * 255);
    out.data[4 * i + 3] = 255;
  }
  return out;
}

function drawTo(canvas: HTMLCanvasElement, pixels: ImageData): void {
  canvas.width = pixels.width;
  canvas.height = pixels.height;
  canvas.getContext('2d')!.putImageData(pixels, 0, 0);
}

/** Pixels of a bitmap, optionally resized (the browser's own resampling). */
function bitmapPixels(bitmap: ImageBitmap, width = bitmap.width, height = bitmap.height): ImageData {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height);
}

function showInput(pixels: ImageData, label: string, name: string): void {
  state.image = toPlanar(pixels);
  state.label = label;
  state.name = name;
  drawTo($('before'), pixels);
  const after = $<HTMLCanvasElement>('after');
  after.width = pixels.width;
  after.height = pixels.height; // cleared: the old result does not belong to this image
  $('compare').style.aspectRatio = `${pixels.width} / ${pixels.height}`;
  ($('run') as HTMLButtonElement).disabled = false;
  setStatus(`${name}: ${pixels.width}x${pixels.height}, ${countTiles(pixels.height, pixels.width, PATCH, DEFAULT_TILE, DEFAULT_STRIDE)} windows of ${DEFAULT_TILE} px`);
}

async function decode(blob: Blob, name: string): Promise<ImageBitmap | null> {
  try {
    // no colour management: the file's bytes are the pixels (as in Node's decoders)
    return await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    say(`${name}: not an image this browser can decode (type "${blob.type || 'unknown'}", ${blob.size} bytes); choose a PNG, JPEG or WebP photo`, 'error');
    return null;
  }
}

/** A user's file: decode it, and for a large one say what it will cost and offer to downscale. */
async function openFile(file: File): Promise<void> {
  clearMessages();
  const bitmap = await decode(file, file.name);
  if (!bitmap) return;
  const { width, height } = bitmap;
  if (width * height <= LARGE_PIXELS) return showInput(bitmapPixels(bitmap), 'image', file.name);
  const tiles = countTiles(height, width, PATCH);
  const scale = DOWNSCALE_SIDE / Math.max(width, height);
  const w2 = Math.round(width * scale), h2 = Math.round(height * scale);
  const tiles2 = countTiles(h2, w2, PATCH);
  const perTile = state.msPerTile;
  const time = (n: number): string => (perTile ? `about ${formatMs(n * perTile)}` : 'unknown until one image has run here');
  const megabytes = Math.round((width * height * BYTES_PER_PIXEL) / 2 ** 20);
  say(
    `${file.name} is ${width}x${height} (${(width * height / 1e6).toFixed(1)} megapixels): ${tiles} windows, ${time(tiles)}, ` +
      `and about ${megabytes} MB of memory. Downscaled to ${w2}x${h2}: ${tiles2} windows, ${time(tiles2)}.`,
    'warn',
    [[`Downscale to ${w2}x${h2}`, () => showInput(bitmapPixels(bitmap, w2, h2), 'image', `${file.name} (downscaled)`)],
      ['Use full size', () => showInput(bitmapPixels(bitmap), 'image', file.name)]],
  );
}

async function openSample(file: string, weather: string): Promise<void> {
  clearMessages();
  const response = await fetch(samplesBase + file);
  const bitmap = await decode(await response.blob(), file);
  if (bitmap) showInput(bitmapPixels(bitmap), weather, `built-in sample: ${weather.replace('_', ' + ')}`);
}

// ---- the worker ------------------------------------------------------------------------------------

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
let tileBars: HTMLElement[] = [];

worker.onmessage = (event: MessageEvent<WorkerReply>) => {
  const m = event.data;
  switch (m.type) {
    case 'status': setStatus(m.text); break;
    case 'backend':
      $('backend-label').textContent = m.label;
      $('backend-label').dataset.kind = m.kind;
      $('backend-label').dataset.software = String(m.software);
      $('backend-label').dataset.threads = String(m.threads);
      break;
    case 'fallback':
      say(`${m.from} failed: ${m.reason}. ${m.to ? `Falling back to ${m.to}.` : 'No backend left.'}`, 'warn');
      $('messages').dataset.fallback = `${m.from}->${m.to ?? 'none'}`;
      break;
    case 'progress': {
      const bar = $<HTMLProgressElement>('progress');
      bar.max = m.total;
      bar.value = m.done;
      setStatus(`window ${m.done}/${m.total}: ${formatMs(m.tile.ms)}`);
      showTiles(null, m.tile, m.done, m.total);
      break;
    }
    case 'done': finish(m); break;
    case 'error':
      say(`restoring failed: ${m.message}`, 'error');
      state.running = false;
      ($('run') as HTMLButtonElement).disabled = false;
      setStatus('failed');
      document.body.dataset.state = 'error';
      break;
  }
};

function showTiles(all: TileRecord[] | null, one: TileRecord | null, done: number, total: number): void {
  const box = $('tiles');
  if (done === 1 || all) { box.replaceChildren(); tileBars = []; }
  const list = all ?? (one ? [one] : []);
  const max = Math.max(...(all ?? []).map((t) => t.ms), one?.ms ?? 0, 1);
  for (const t of list) {
    const bar = document.createElement('span');
    bar.title = `window at (${t.x}, ${t.y}), ${t.width}x${t.height}: ${formatMs(t.ms)}`;
    bar.textContent = formatMs(t.ms);
    bar.dataset.ms = String(t.ms);
    tileBars.push(bar);
    box.append(bar);
  }
  const scale = Math.max(max, ...tileBars.map((b) => Number(b.dataset.ms)));
  for (const b of tileBars) b.style.setProperty('--w', `${(100 * Number(b.dataset.ms)) / scale}%`);
  if (!all) box.dataset.total = String(total);
}

function restoreCurrent(): void {
  if (!state.image || state.running) return;
  state.running = true;
  document.body.dataset.state = 'running';
  ($('run') as HTMLButtonElement).disabled = true;
  $<HTMLProgressElement>('progress').value = 0;
  $('total').textContent = '…';
  const prefer = (params.get('backend') ?? $<HTMLSelectElement>('backend').value) as BackendKind;
  const image = { data: state.image.data.slice(), height: state.image.height, width: state.image.width };
  const message: RestoreMessage = {
    type: 'restore', image, label: state.label, tile: DEFAULT_TILE, stride: DEFAULT_STRIDE,
    prefer: BACKEND_ORDER.includes(prefer) ? prefer : 'webgl2',
    ...(params.get('simulate') ? { simulate: params.get('simulate') as Simulation } : {}),
  };
  worker.postMessage(message, [image.data.buffer]);
}

function finish(m: Extract<WorkerReply, { type: 'done' }>): void {
  state.running = false;
  ($('run') as HTMLButtonElement).disabled = false;
  drawTo($('after'), toImageData(m.image));
  // the first window also compiles kernels (on a GPU): estimate from the others when there are any
  const steady = m.tiles.length > 1 ? m.tiles.slice(1) : m.tiles;
  state.msPerTile = steady.reduce((s, t) => s + t.ms, 0) / Math.max(1, steady.length);
  $('total').textContent = `${formatMs(m.totalMs)} for ${m.tiles.length} windows of ${m.tiles[0]?.width ?? DEFAULT_TILE} px ` +
    `(the first includes compiling kernels)`;
  showTiles(m.tiles, null, m.tiles.length, m.tiles.length);
  setStatus(`done: ${state.name}`);
  drawMaps(m.routing);
  drawWeatherTable(m.summary);
  document.body.dataset.state = 'done';
}

// ---- routing -------------------------------------------------------------------------------------

function drawLegend(experts: number): void {
  $('legend').replaceChildren(...Array.from({ length: experts }, (_, e) => {
    const item = document.createElement('span');
    item.innerHTML = `<i style="background:${expertColour(e)}"></i>expert ${e}`;
    return item;
  }));
}

function drawMaps(routing: RoutingMap): void {
  drawLegend(routing.experts);
  $('maps').replaceChildren(...routing.blocks.map((block, b) => {
    const figure = document.createElement('figure');
    const canvas = document.createElement('canvas');
    canvas.className = 'routing-map';
    canvas.dataset.block = String(b);
    drawTo(canvas, routingMapPixels(routing, block));
    const caption = document.createElement('figcaption');
    caption.textContent = `block ${b}`;
    figure.append(canvas, caption);
    return figure;
  }));
}

/** Stacked bars per block: each built-in weather, and this image's own routing when it has run. */
function drawWeatherTable(current: RoutingSummary[] | null): void {
  const table = state.weatherRouting;
  if (!table) return;
  const rows: { name: string; blocks: { block: number; topkShare: number[] }[]; mine?: boolean }[] =
    Object.entries(table.routing).map(([name, blocks]) => ({ name, blocks }));
  if (current?.length) rows.push({ name: `this image (${state.label})`, blocks: current.map((s) => ({ block: s.layer, topkShare: s.topkShare })), mine: true });
  const blocks = Math.max(...rows.map((r) => r.blocks.length));
  const grid = document.createElement('table');
  grid.innerHTML = `<thead><tr><th></th>${Array.from({ length: blocks }, (_, b) => `<th>block ${b}</th>`).join('')}</tr></thead>`;
  const body = document.createElement('tbody');
  for (const row of rows) {
    const tr = document.createElement('tr');
    if (row.mine || row.name === state.label) tr.className = row.mine ? 'mine' : 'same';
    tr.innerHTML = `<th>${row.name.replace('_', ' + ')}</th>` + row.blocks.map((b) => {
      const sum = b.topkShare.reduce((s, v) => s + v, 0) || 1;
      const parts = b.topkShare.map((v, e) => `<i style="width:${(100 * v) / sum}%;background:${expertColour(e)}" title="expert ${e}: ${(100 * v / (table.k || 1)).toFixed(0)}% of tokens"></i>`);
      return `<td><div class="stack">${parts.join('')}</div></td>`;
    }).join('');
    body.append(tr);
  }
  grid.append(body);
  $('weather-table').replaceChildren(grid);
}

// ---- wiring --------------------------------------------------------------------------------------

async function init(): Promise<void> {
  const [manifest, routing] = await Promise.all([
    fetch(samplesBase + 'manifest.json').then((r) => r.json() as Promise<SampleManifest>),
    fetch(samplesBase + 'routing.json').then((r) => r.json() as Promise<WeatherRouting>),
  ]);
  state.weatherRouting = routing;
  drawLegend(routing.routing[manifest.samples[0]!.weather]?.[0]?.topkShare.length ?? 4);
  drawWeatherTable(null);
  $('samples').replaceChildren(...manifest.samples.map((s) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'sample';
    b.dataset.weather = s.weather;
    b.innerHTML = `<img src="${samplesBase + s.file}" alt="" width="120" height="80"><span>${s.weather.replace('_', ' + ')}</span>`;
    b.addEventListener('click', () => {
      for (const other of document.querySelectorAll('.sample')) other.classList.toggle('chosen', other === b);
      void openSample(s.file, s.weather).then(restoreCurrent);
    });
    return b;
  }));
  $('credits').innerHTML = `Samples: ${manifest.photo} by ${manifest.author} (${manifest.licence}), ` +
    `degraded by @mofme/data's weather synthesisers. Weights: apps/cli/pretrained (the tiny preset).`;
  if (params.get('backend')) $<HTMLSelectElement>('backend').value = params.get('backend')!;
  document.body.dataset.state = 'ready';
}

const slider = $<HTMLInputElement>('slider');
const slide = (): void => {
  $('compare').style.setProperty('--split', `${slider.value}%`);
};
slider.addEventListener('input', slide);
slide();

$<HTMLInputElement>('file').addEventListener('change', (e) => {
  const file = (e.target as HTMLInputElement).files?.[0];
  if (file) void openFile(file);
});
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const file = e.dataTransfer?.files[0];
  if (file) void openFile(file);
});
$('run').addEventListener('click', restoreCurrent);
void init().catch((e) => say(`the page could not load its samples: ${(e as Error).message}`, 'error'));
