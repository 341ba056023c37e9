/**
 * Lets `agentark` run on a Linux machine with no GPU driver: before Dawn (the `webgpu` package)
 * loads, check in a throwaway child process whether the current environment gives a WebGPU
 * adapter; if not, look for a software Vulkan driver the way scripts/software-webgpu.sh sets one
 * up (its cached Mesa lavapipe, an installed lavapipe, Chromium's SwiftShader), check each the same
 * way, and re-run the command with the first that works. The driver is chosen through
 * VK_ICD_FILENAMES and its libraries through LD_LIBRARY_PATH, which the dynamic loader reads only
 * at process start: hence a fresh process rather than setting them here.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

/** Set in the re-run process to the adapter it was started for (so it does not search again). */
export const SOFTWARE_ADAPTER_ENV = 'AGENTARK_SOFTWARE_ADAPTER';

export interface SoftwareDriver {
  /** What it is, for the notice: "Mesa lavapipe (software-webgpu.sh cache)". */
  label: string;
  /** Vulkan ICD manifest. */
  icd: string;
  /** Folder with the driver's own libraries, when they are not installed system-wide. */
  libraryPath?: string;
}

/** Commands that open a WebGPU device with these flags (the rest never touch the GPU). */
export function commandUsesWebGpu(argv: string[]): boolean {
  const [command, ...rest] = argv;
  const has = (flag: string) => rest.some((a) => a === flag || a.startsWith(`${flag}=`));
  const value = (flag: string) => {
    const i = rest.indexOf(flag);
    if (i >= 0) return rest[i + 1];
    return rest.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
  };
  if (has('--help') || rest.includes('-h')) return false;
  if (value('--backend') === 'cpu') return false;
  switch (command) {
    case 'generate':
    case 'logits':
    case 'serve':
    case 'train':
    case 'prm':
    case 'rl':
    case 'bench':
      return true;
    case 'debate':
      return value('--engine') !== 'openai' && !has('--base-url');
    case 'eval':
      return !has('--base-url');
    default:
      return false;
  }
}

/** Software Vulkan drivers present on this machine, in the order to try them. */
export function findSoftwareDrivers(env: NodeJS.ProcessEnv = process.env): SoftwareDriver[] {
  const exists = (p: string) => {
    try {
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  };
  const home = env.HOME ?? os.homedir();
  const cache = env.SOFTWARE_WEBGPU_CACHE ?? path.join(home, '.cache/software-webgpu');
  const lavapipe: SoftwareDriver[] = [];
  // Mesa 25 lavapipe unpacked by scripts/software-webgpu.sh (Debian 12's own is too old for Dawn).
  const cachedLib = path.join(cache, 'lavapipe/usr/lib/x86_64-linux-gnu');
  if (exists(path.join(cache, 'lvp_icd.json')) && exists(path.join(cachedLib, 'libvulkan_lvp.so'))) {
    lavapipe.push({ label: `Mesa lavapipe (${cache})`, icd: path.join(cache, 'lvp_icd.json'), libraryPath: cachedLib });
  }
  for (const dir of ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d']) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {}
    for (const n of names.filter((n) => /^lvp_icd.*\.json$/.test(n)).sort()) {
      lavapipe.push({ label: 'Mesa lavapipe (installed)', icd: path.join(dir, n) });
    }
  }
  const swiftshader: SoftwareDriver[] = [];
  const chromiumDirs = [
    '/usr/lib/chromium',
    '/usr/lib/chromium-browser',
    '/usr/lib64/chromium-browser',
    '/opt/google/chrome',
  ];
  const playwright = path.join(home, '.cache/ms-playwright');
  try {
    for (const d of fs
      .readdirSync(playwright)
      .filter((d) => d.startsWith('chromium'))
      .sort()
      .reverse()) {
      for (const sub of ['chrome-linux', 'chrome-linux64']) chromiumDirs.push(path.join(playwright, d, sub));
    }
  } catch {}
  for (const dir of chromiumDirs) {
    const icd = path.join(dir, 'vk_swiftshader_icd.json');
    if (exists(icd)) swiftshader.push({ label: `SwiftShader (${dir})`, icd });
  }
  // Same choice as scripts/with-webgpu.sh: lavapipe (faster, has f16) unless AGENTARK_WEBGPU=swiftshader.
  return env.AGENTARK_WEBGPU === 'swiftshader' ? [...swiftshader, ...lavapipe] : [...lavapipe, ...swiftshader];
}

/** The environment a process needs to use `driver`. */
export function driverEnv(driver: SoftwareDriver, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, VK_ICD_FILENAMES: driver.icd };
  if (driver.libraryPath)
    out.LD_LIBRARY_PATH = env.LD_LIBRARY_PATH ? `${driver.libraryPath}:${env.LD_LIBRARY_PATH}` : driver.libraryPath;
  return out;
}

/**
 * Whether a fresh process with `env` finds a WebGPU adapter, and its description. Runs in a child
 * so that Dawn's own warnings about drivers it rejects stay out of the user's terminal.
 */
export function probeAdapter(env: NodeJS.ProcessEnv): string | null {
  const webgpu = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  const script = `const { create } = await import(${JSON.stringify(webgpu)});
const adapter = await create([]).requestAdapter({ powerPreference: 'high-performance' });
const i = adapter?.info;
process.stdout.write(JSON.stringify(adapter ? i.description || [i.vendor, i.architecture].filter(Boolean).join(' ') || 'unknown adapter' : null));
process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) return null;
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? 'null') as string | null;
  } catch {
    return null;
  }
}

/**
 * Whether the kernel exposes a GPU to user space at all (DRM render nodes, NVIDIA's devices): a
 * hardware Vulkan driver needs one, so without them the (half-second) hardware probe is skipped.
 */
export function hasGpuDeviceNodes(): boolean {
  const list = (dir: string) => {
    try {
      return fs.readdirSync(dir);
    } catch {
      return [];
    }
  };
  return list('/dev/dri').some((n) => n.startsWith('renderD')) || list('/dev').some((n) => /^nvidia\d/.test(n));
}

/** What the search before Dawn starts decided. */
export type AdapterSearch =
  /** Run as is: no WebGPU needed, the user chose a driver, this is the re-run, or a GPU answered. */
  | { kind: 'as-is' }
  /** No adapter of any kind: run as is (the GPU layer then fails) after saying what was tried. */
  | { kind: 'none'; tried: string[] }
  | { kind: 'software'; driver: SoftwareDriver; adapter: string };

/**
 * Whether `argv` should run as is or be re-run with a software driver: the first software driver
 * (`drivers`, by default the ones on this machine) a fresh process finds an adapter with.
 */
export function searchAdapter(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  drivers?: SoftwareDriver[],
): AdapterSearch {
  if (process.platform !== 'linux' || env.VK_ICD_FILENAMES || env[SOFTWARE_ADAPTER_ENV] || !commandUsesWebGpu(argv))
    return { kind: 'as-is' };
  if (hasGpuDeviceNodes() && probeAdapter(env) !== null) return { kind: 'as-is' };
  const candidates = drivers ?? findSoftwareDrivers(env);
  for (const driver of candidates) {
    const adapter = probeAdapter(driverEnv(driver, env));
    if (adapter !== null) return { kind: 'software', driver, adapter };
  }
  return { kind: 'none', tried: candidates.map((d) => `${d.label}: ${d.icd}`) };
}

/** Says on stderr that no software adapter worked either, what was tried and how to get one. */
export function reportNoAdapter(tried: string[]): void {
  const what = tried.length ? `tried ${tried.join('; ')}` : 'found no Mesa lavapipe or SwiftShader Vulkan driver';
  process.stderr.write(
    `agentark: no hardware WebGPU adapter, and no software one either (${what}). ` +
      '`bash scripts/software-webgpu.sh` sets one up (Mesa lavapipe); --backend cpu needs none.\n',
  );
}

/**
 * Runs the CLI again in a child process with `driver`'s environment, after saying once on stderr
 * that the software adapter will be slow. Resolves to the child's exit code.
 */
export function rerunWithSoftwareDriver(driver: SoftwareDriver, adapter: string): Promise<number> {
  process.stderr.write(
    `agentark: no hardware WebGPU adapter; using the software adapter "${adapter}" (${driver.label}). ` +
      'It runs on the CPU and will be slow.\n',
  );
  const env = { ...driverEnv(driver), [SOFTWARE_ADAPTER_ENV]: adapter };
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { env, stdio: 'inherit' });
  // The child owns the work: Ctrl-C reaches it through the terminal; a SIGTERM sent to this
  // process alone is passed on.
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const onInt = () => {};
  const onTerm = forward('SIGTERM');
  const onHup = forward('SIGHUP');
  process.on('SIGINT', onInt).on('SIGTERM', onTerm).on('SIGHUP', onHup);
  return new Promise((resolve) => {
    child.on('error', (e) => {
      process.stderr.write(`agentark: could not re-run with the software adapter: ${e.message}\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => {
      process.off('SIGINT', onInt).off('SIGTERM', onTerm).off('SIGHUP', onHup);
      resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1));
    });
  });
}
