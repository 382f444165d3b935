// `--backend` (backend.ts): the CPU is selected in process; a GPU that cannot start is one line
// naming every GPU path tried, through the real CLI, with no fall-back to the CPU and no run folder
// left behind. The GPU is made unavailable with environment variables of glvnd and the Vulkan
// loader, so this runs the same on a machine with a GPU.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CpuBackend, getDefaultBackend } from '@mofme/tensor';
import { selectBackend } from '../src/backend';
import { mofme, tmp } from './fixtures/helpers';

test('--backend cpu: the CPU backend becomes (stays) the default', async () => {
  const b = await selectBackend({ backend: 'cpu' });
  assert.ok(b instanceof CpuBackend);
  assert.is(getDefaultBackend(), b);
});

test('--backend gpu where no GPU path can start: one line with the reasons, exit 1, no run folder', () => {
  const out = join(tmp(), 'run');
  // no X display for headless GL; no EGL vendor and no Vulkan driver for Dawn (glvnd's and the
  // Vulkan loader's own override variables), so WebGPU finds no adapter either
  const r = mofme(['train', '--backend', 'gpu', '--steps', '1', '--val', 'none', '--workers', '0', '--out', out], {
    DISPLAY: '', __EGL_VENDOR_LIBRARY_FILENAMES: '/nonexistent', VK_ICD_FILENAMES: '/nonexistent',
  });
  // Dawn (native) may print its own EGL warning on stderr first; ours is one line and no JS stack
  const ours = r.stderr.split('\n').filter((l) => l.startsWith('mofme'));
  assert.is(ours.length, 1, r.stderr);
  const line = ours[0]!;
  assert.not.match(r.stderr, /\.(ts|js|mjs):\d+/);
  assert.match(line, /^mofme: error: --backend gpu is not available: gpu backend: no GPU path is available for mode "auto", and it does not fall back to the CPU/);
  assert.match(line, / - webgpu: .* - headlessgl: no X display/);
  assert.is(r.code, 1);
  assert.not.match(r.stdout, /training:/);
  assert.not.ok(existsSync(out), 'the empty run folder is removed');
});

test.run();
