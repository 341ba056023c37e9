/**
 * The web app (index.html + src/app). `npm start` serves it on 127.0.0.1; `npx vite build` writes dist/.
 *
 * - COOP/COEP headers on every response (dev and preview), so the page is crossOriginIsolated.
 * - The engine runs in an ES-module Web Worker (src/app/worker.ts).
 * - Node-only modules reached from src/ (node:fs, node:path, the `webgpu` npm package) sit behind
 *   dynamic imports and runtime checks; they are left out of the browser bundle.
 * - `virtual:agentark-public` tells the app what ships in public/: the question sets
 *   public/data/*.jsonl and whether the embedded model public/models/default/ exists.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defineConfig, type Plugin } from 'vite';

const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** Modules only Node paths import (always dynamically, behind a runtime check). */
const nodeOnly = ['webgpu'];

function publicContents(): Plugin {
  const id = 'virtual:agentark-public';
  const resolved = '\0' + id;
  let publicDir = path.resolve('public');
  const scan = () => {
    const dataDir = path.join(publicDir, 'data');
    const data = fs.existsSync(dataDir) ? fs.readdirSync(dataDir).filter((f) => f.endsWith('.jsonl')).sort() : [];
    const defaultModel = fs.existsSync(path.join(publicDir, 'models', 'default', 'config.json'));
    return { data: data.map((f) => `data/${f}`), defaultModel: defaultModel ? 'models/default/' : null };
  };
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
      const { data, defaultModel } = scan();
      return `export const shippedData = ${JSON.stringify(data)};\nexport const defaultModel = ${JSON.stringify(defaultModel)};\n`;
    },
    configureServer(server) {
      const refresh = (file: string) => {
        if (!path.resolve(file).startsWith(publicDir)) return;
        const mod = server.moduleGraph.getModuleById(resolved);
        if (mod) server.moduleGraph.invalidateModule(mod);
      };
      server.watcher.on('add', refresh);
      server.watcher.on('unlink', refresh);
    },
  };
}

export default defineConfig({
  plugins: [publicContents()],
  server: { host: '127.0.0.1', headers: isolation },
  preview: { host: '127.0.0.1', headers: isolation },
  worker: { format: 'es', rolldownOptions: { external: nodeOnly } },
  optimizeDeps: {
    exclude: nodeOnly,
    // Everything the worker imports, so the dev server never re-optimizes (and reloads) mid-session.
    include: ['comlink', 'marked', 'dompurify', 'katex', 'marked-katex-extension', '@huggingface/tokenizers', '@huggingface/jinja'],
  },
  build: {
    target: 'es2022',
    chunkSizeWarningLimit: 8000, // @mlc-ai/web-llm is one large, lazily loaded chunk
    rolldownOptions: { external: nodeOnly },
  },
});
