/**
 * The web app (index.html + src/app). `npm start` serves it on 127.0.0.1; `npx vite build` writes dist/.
 *
 * - COOP/COEP headers on every response (dev and preview), so the page is crossOriginIsolated.
 * - The engine runs in an ES-module Web Worker (src/app/worker.ts).
 * - Node-only modules reached from src/ (node:fs, node:path, the `webgpu` npm package) are only
 *   used behind runtime checks. In the browser they resolve to stubs whose exports throw when
 *   used, so a static `import { promises } from 'node:fs'` in shared code (src/teach/trajectory.ts)
 *   loads in dev and build alike instead of failing at import time.
 * - `virtual:agentark-public` tells the app what ships in public/ (so it never fetches a file that
 *   is not there): the question sets public/data/*.jsonl, whether the embedded model
 *   public/models/default/ exists (and its files, so the loader probes no optional file), its LoRA adapter public/models/default/adapter/ (PEFT files,
 *   named by an optional agentark.json) and the demo's report public/data/demo-report.json.
 * - appType 'mpa': a missing file is a 404 (the model loader probes optional files), never the
 *   SPA fallback's index.html.
 * - Installable and offline: a web app manifest, icons and a service worker that precaches the
 *   build and the embedded model (src/app/pwa/plugin.ts).
 * - AGENTARK_PUBLIC_DIR points the public dir elsewhere (default public/), e.g. a temporary folder
 *   with a tiny model in the end-to-end tests.
 */
import * as fs from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import * as path from 'node:path';
import { defineConfig, type Plugin } from 'vite';
import { pwa } from './src/app/pwa/plugin';

const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** npm packages only Node paths import, with the names they export. */
const NODE_ONLY_PACKAGES: Record<string, string[]> = { webgpu: ['create', 'globals'] };

/** Browser stand-ins for Node built-ins and Node-only packages: every export throws when touched. */
function nodeStubs(): Plugin {
  const prefix = '\0agentark-node-stub:';
  const require = createRequire(import.meta.url);
  const builtins = new Set(builtinModules);
  const exportNames = (mod: string): string[] => {
    if (NODE_ONLY_PACKAGES[mod]) return NODE_ONLY_PACKAGES[mod];
    try {
      return Object.keys(require(`node:${mod}`) as object).filter(
        (k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== 'default',
      );
    } catch {
      return [];
    }
  };
  return {
    name: 'agentark-node-stubs',
    enforce: 'pre',
    applyToEnvironment: (env) => env.config.consumer === 'client',
    resolveId(source) {
      if (Object.hasOwn(NODE_ONLY_PACKAGES, source)) return prefix + source;
      if (source.startsWith('node:') && builtins.has(source.slice(5))) return prefix + source.slice(5);
      return null;
    },
    load(id) {
      if (!id.startsWith(prefix)) return null;
      const mod = id.slice(prefix.length);
      const lines = [
        `const fail = (name) => { throw new Error(${JSON.stringify(mod)} + ': ' + name + ' is only available in Node, not in the browser'); };`,
        'const stub = (name) => new Proxy(function () {}, {',
        "  get: (_, key) => (key === 'then' || typeof key === 'symbol' ? undefined : fail(name + '.' + String(key))),",
        '  apply: () => fail(name),',
        '  construct: () => fail(name),',
        '});',
        "export default stub('default');",
        ...exportNames(mod).map((k) => `export const ${k} = stub(${JSON.stringify(k)});`),
      ];
      return lines.join('\n');
    },
  };
}

/** What public/ holds, as the app sees it (virtual:agentark-public; see src/app/virtual.d.ts). */
interface PublicContents {
  shippedData: string[];
  defaultModel: string | null;
  defaultModelFiles: string[];
  defaultAdapter: { path: string; name: string; strategy: string | null } | null;
  demoReport: string | null;
}

/** The adapter's display name when agentark.json is missing or gives none. */
const DEFAULT_ADAPTER_NAME = 'demo adapter';

function scanPublic(publicDir: string): PublicContents {
  const dataDir = path.join(publicDir, 'data');
  const data = fs.existsSync(dataDir)
    ? fs
        .readdirSync(dataDir)
        .filter((f) => f.endsWith('.jsonl'))
        .sort()
    : [];
  const modelDir = path.join(publicDir, 'models', 'default');
  const defaultModel = fs.existsSync(path.join(modelDir, 'config.json'));
  const defaultModelFiles = defaultModel
    ? fs
        .readdirSync(modelDir, { withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => e.name)
        .sort()
    : [];
  const adapterDir = path.join(modelDir, 'adapter');
  let defaultAdapter: PublicContents['defaultAdapter'] = null;
  if (
    defaultModel &&
    ['adapter_config.json', 'adapter_model.safetensors'].every((f) => fs.existsSync(path.join(adapterDir, f)))
  ) {
    let meta: Record<string, unknown> = {};
    try {
      const m = JSON.parse(fs.readFileSync(path.join(adapterDir, 'agentark.json'), 'utf8')) as unknown;
      if (m && typeof m === 'object' && !Array.isArray(m)) meta = m as Record<string, unknown>;
    } catch {
      // No (or unreadable) agentark.json: the default name.
    }
    const name = typeof meta.name === 'string' && meta.name.trim() ? meta.name.trim() : DEFAULT_ADAPTER_NAME;
    defaultAdapter = {
      path: 'models/default/adapter/',
      name,
      strategy: typeof meta.strategy === 'string' ? meta.strategy : null,
    };
  }
  const demoReport = fs.existsSync(path.join(dataDir, 'demo-report.json')) ? 'data/demo-report.json' : null;
  return {
    shippedData: data.map((f) => `data/${f}`),
    defaultModel: defaultModel ? 'models/default/' : null,
    defaultModelFiles,
    defaultAdapter,
    demoReport,
  };
}

function publicContents(): Plugin {
  const id = 'virtual:agentark-public';
  const resolved = `\0${id}`;
  let publicDir = path.resolve('public');
  return {
    name: 'agentark-public-contents',
    configResolved(config) {
      if (config.publicDir) publicDir = config.publicDir;
    },
    resolveId(source) {
      return source === id ? resolved : null;
    },
    load(loadId) {
      if (loadId !== resolved) return null;
      const c = scanPublic(publicDir);
      return Object.entries(c)
        .map(([k, v]) => `export const ${k} = ${JSON.stringify(v)};\n`)
        .join('');
    },
    configureServer(server) {
      const refresh = (file: string) => {
        if (!path.resolve(file).startsWith(publicDir)) return;
        const mod = server.moduleGraph.getModuleById(resolved);
        if (mod) server.moduleGraph.invalidateModule(mod);
      };
      server.watcher.on('add', refresh);
      server.watcher.on('unlink', refresh);
      server.watcher.on('change', (file) => {
        if (path.basename(file) === 'agentark.json') refresh(file);
      });
    },
  };
}

export default defineConfig({
  publicDir: process.env.AGENTARK_PUBLIC_DIR ? path.resolve(process.env.AGENTARK_PUBLIC_DIR) : 'public',
  plugins: [nodeStubs(), publicContents(), pwa()],
  // Pages are routed by #hash, so no SPA fallback: a missing file (a model's optional
  // model.safetensors.index.json, say) must be a 404, not index.html with 200.
  appType: 'mpa',
  server: { host: '127.0.0.1', headers: isolation },
  preview: { host: '127.0.0.1', headers: isolation },
  // The stubs are shared by a static import (trajectory.ts) and dynamic ones (source.ts): expected.
  worker: {
    format: 'es',
    plugins: () => [nodeStubs()],
    rolldownOptions: { checks: { ineffectiveDynamicImport: false } },
  },
  optimizeDeps: {
    // onnxruntime-web finds its wasm beside its own module (new URL(..., import.meta.url)): served
    // from node_modules as is, not pre-bundled away from it. The build emits that wasm as an asset
    // of this origin (the Benchmark page's peer imports it lazily; no CDN).
    exclude: [...Object.keys(NODE_ONLY_PACKAGES), 'onnxruntime-web'],
    // Everything the worker imports, so the dev server never re-optimizes (and reloads) mid-session.
    include: [
      'comlink',
      'marked',
      'dompurify',
      'katex',
      'marked-katex-extension',
      '@huggingface/tokenizers',
      '@huggingface/jinja',
      '@mlc-ai/web-llm',
    ],
  },
  build: {
    target: 'es2022',
    chunkSizeWarningLimit: 8000, // @mlc-ai/web-llm is one large, lazily loaded chunk
    rolldownOptions: { checks: { ineffectiveDynamicImport: false } },
  },
});
