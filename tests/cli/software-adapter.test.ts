/** `agentark` finds a software WebGPU adapter by itself when the machine has no GPU driver. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  commandUsesWebGpu,
  hasGpuDeviceNodes,
  reportNoAdapter,
  searchAdapter,
  findSoftwareDrivers,
  probeAdapter,
  SOFTWARE_ADAPTER_ENV,
} from '../../src/cli/software-adapter';
import { writeTinyModel } from '../helpers/tiny-model';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(repoRoot, 'bin/agentark.js');

/** The environment of a user who never heard of scripts/with-webgpu.sh. */
function plainEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['VK_ICD_FILENAMES', 'LD_LIBRARY_PATH', SOFTWARE_ADAPTER_ENV, 'AGENTARK_WEBGPU']) delete env[k];
  return env;
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

let dir: string;
let model: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'software-adapter-'));
  model = path.join(dir, 'model');
  writeTinyModel(model, { arch: 'qwen2', dtype: 'F32', tied: true, seed: 3 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('software WebGPU adapter for the CLI', () => {
  it('probes only for commands that open a WebGPU device', () => {
    expect(commandUsesWebGpu(['generate', '--model', 'm', '--ids', '1'])).toBe(true);
    expect(commandUsesWebGpu(['generate', '--model', 'm', '--backend', 'cpu'])).toBe(false);
    expect(commandUsesWebGpu(['train', '--backend=cpu'])).toBe(false);
    expect(commandUsesWebGpu(['serve', '--help'])).toBe(false);
    expect(commandUsesWebGpu(['debate', '--model', 'm'])).toBe(true);
    expect(commandUsesWebGpu(['debate', '--base-url', 'http://x/v1'])).toBe(false);
    expect(commandUsesWebGpu(['debate', '--engine', 'openai'])).toBe(false);
    expect(commandUsesWebGpu(['eval', '--model', 'm'])).toBe(true);
    expect(commandUsesWebGpu(['eval', '--base-url=http://x/v1'])).toBe(false);
    expect(commandUsesWebGpu(['grade', '--data', 'x'])).toBe(false);
    expect(commandUsesWebGpu(['merge', '--model', 'm'])).toBe(false);
    expect(commandUsesWebGpu(['bench', '--synthetic', 'qwen2.5-0.5b'])).toBe(true);
    expect(commandUsesWebGpu([])).toBe(false);
  });

  it("tries software-webgpu.sh's cached lavapipe first, SwiftShader first under AGENTARK_WEBGPU=swiftshader", () => {
    const cache = path.join(dir, 'cache');
    const lib = path.join(cache, 'lavapipe/usr/lib/x86_64-linux-gnu');
    fs.mkdirSync(lib, { recursive: true });
    fs.writeFileSync(path.join(lib, 'libvulkan_lvp.so'), '');
    fs.writeFileSync(path.join(cache, 'lvp_icd.json'), '{}');
    const drivers = findSoftwareDrivers({ ...plainEnv(), SOFTWARE_WEBGPU_CACHE: cache });
    expect(drivers[0]).toEqual({
      label: `Mesa lavapipe (${cache})`,
      icd: path.join(cache, 'lvp_icd.json'),
      libraryPath: lib,
    });
    const swift = findSoftwareDrivers({ ...plainEnv(), SOFTWARE_WEBGPU_CACHE: cache, AGENTARK_WEBGPU: 'swiftshader' });
    const firstLavapipe = swift.findIndex((d) => d.label.startsWith('Mesa lavapipe'));
    expect(swift.slice(0, firstLavapipe).every((d) => d.label.startsWith('SwiftShader'))).toBe(true);
    expect(swift).toHaveLength(drivers.length);
    // Without the cache folder it is not offered.
    expect(
      findSoftwareDrivers({ ...plainEnv(), SOFTWARE_WEBGPU_CACHE: path.join(dir, 'none') }).some((d) =>
        d.icd.startsWith(cache),
      ),
    ).toBe(false);
  });

  it('searches only when it must, and says what it tried when no driver works', () => {
    const env = plainEnv();
    const argv = ['generate', '--model', 'm', '--ids', '1'];
    expect(searchAdapter(argv, { ...env, VK_ICD_FILENAMES: '/mine.json' })).toEqual({ kind: 'as-is' });
    expect(searchAdapter([...argv, '--backend', 'cpu'], env)).toEqual({ kind: 'as-is' });
    expect(searchAdapter(argv, { ...env, [SOFTWARE_ADAPTER_ENV]: 'x' })).toEqual({ kind: 'as-is' });
    const missing = { label: 'nothing here', icd: path.join(dir, 'no-such-icd.json') };
    const search = searchAdapter(argv, env, [missing]);
    if (hasGpuDeviceNodes() && probeAdapter(env) !== null) expect(search).toEqual({ kind: 'as-is' });
    else expect(search).toEqual({ kind: 'none', tried: [`nothing here: ${missing.icd}`] });
    let err = '';
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
      err += String(s);
      return true;
    });
    try {
      reportNoAdapter([`nothing here: ${missing.icd}`]);
    } finally {
      spy.mockRestore();
    }
    expect(err).toBe(
      `agentark: no hardware WebGPU adapter, and no software one either (tried nothing here: ${missing.icd}). ` +
        '`bash scripts/software-webgpu.sh` sets one up (Mesa lavapipe); --backend cpu needs none.\n',
    );
  });

  it('`agentark generate` without VK_ICD_FILENAMES says once that it uses a software adapter, then succeeds', async () => {
    const env = plainEnv();
    const hardware = probeAdapter(env);
    const r = await runCli(['generate', '--model', model, '--ids', '1,2,3', '--max-tokens', '3', '--json'], env);
    expect(r.code, r.err).toBe(0);
    const result = JSON.parse(r.out);
    expect(result.generated).toHaveLength(3);
    expect(result.timings.backend).toMatch(/^webgpu /);
    const notices = r.err.match(/using the software adapter "([^"]+)".*will be slow/g) ?? [];
    if (hardware !== null) {
      // A machine with a real driver keeps it and says nothing.
      expect(notices).toHaveLength(0);
    } else {
      expect(notices).toHaveLength(1);
      const adapter = /using the software adapter "([^"]+)"/.exec(r.err)![1]!;
      expect(result.timings.backend).toContain(adapter);
    }
  });

  it('`--backend cpu` neither probes nor mentions an adapter', async () => {
    const r = await runCli(
      ['generate', '--model', model, '--ids', '1,2,3', '--max-tokens', '2', '--json', '--backend', 'cpu'],
      plainEnv(),
    );
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).generated).toHaveLength(2);
    expect(r.err).not.toMatch(/software adapter/);
  });
});
