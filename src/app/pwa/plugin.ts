/**
 * Installable and offline (vite.config.ts): the build emits a web app manifest, the app's icons
 * (drawn here: the ark logo, SVG and PNG) and a service worker (service-worker.js) whose precache
 * list is this build's own files plus the embedded model, its adapter and the shipped data in the
 * public dir. The dev server serves the manifest and icons (no service worker in dev).
 *
 * Whether there is a service worker to register comes from this plugin too (virtual:agentark-pwa),
 * not from import.meta.env.PROD: that follows NODE_ENV, and a build run with NODE_ENV set to
 * anything but "production" (vitest sets "test") still emits sw.js but compiled its registration out.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import type { Plugin } from 'vite';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ACCENT = '#2f5fd0';
const PRECACHE_MAX_BYTES = 3 * 1024 * 1024;

/** The ark: a hull carrying three agents (the header's logo), on a rounded square. */
export const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#ffffff"/>' +
  `<path d="M3 17h26l-4.5 8.5a3 3 0 0 1-2.6 1.5H10.1a3 3 0 0 1-2.6-1.5z" fill="${ACCENT}"/>` +
  `<circle cx="10" cy="12" r="3" fill="${ACCENT}" opacity=".55"/><circle cx="16" cy="9" r="3.4" fill="${ACCENT}" opacity=".8"/>` +
  `<circle cx="22" cy="12" r="3" fill="${ACCENT}" opacity=".55"/></svg>`;

/** The same drawing rasterised (4×4 supersampling) to an RGBA PNG of size×size. */
export function iconPng(size: number): Buffer {
  const accent = [0x2f, 0x5f, 0xd0];
  const inHull = (x: number, y: number) => {
    if (y < 17 || y > 27) return false;
    const t = (y - 17) / 10; // the sides slope in by 4.5 units over the hull's height
    return x >= 3 + 4.5 * t && x <= 29 - 4.5 * t;
  };
  const circles: [number, number, number, number][] = [
    [10, 12, 3, 0.55],
    [16, 9, 3.4, 0.8],
    [22, 12, 3, 0.55],
  ];
  const rows: Buffer[] = [];
  const ss = 4;
  for (let py = 0; py < size; py++) {
    const row = Buffer.alloc(1 + size * 4);
    for (let px = 0; px < size; px++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let sy = 0; sy < ss; sy++) {
        for (let sx = 0; sx < ss; sx++) {
          const x = ((px + (sx + 0.5) / ss) / size) * 32;
          const y = ((py + (sy + 0.5) / ss) / size) * 32;
          let c = [255, 255, 255];
          let a = 0;
          if (inHull(x, y)) a = 1;
          else for (const [cx, cy, rad, op] of circles) if ((x - cx) ** 2 + (y - cy) ** 2 <= rad * rad) a = op;
          c = c.map((v, i) => v * (1 - a) + accent[i]! * a);
          r += c[0]!;
          g += c[1]!;
          b += c[2]!;
        }
      }
      const n = ss * ss;
      row.set([Math.round(r / n), Math.round(g / n), Math.round(b / n), 255], 1 + px * 4);
    }
    rows.push(row);
  }
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

export const MANIFEST = {
  name: 'AgentArk Web',
  short_name: 'AgentArk',
  description:
    'Distil a multi-agent LLM debate into one small student model that runs and trains on WebGPU in your browser.',
  start_url: './',
  scope: './',
  display: 'standalone',
  background_color: '#ffffff',
  theme_color: ACCENT,
  icons: [
    { src: 'icon.svg', sizes: 'any', type: 'image/svg+xml' },
    { src: 'icon-192.png', sizes: '192x192', type: 'image/png' },
    { src: 'icon-512.png', sizes: '512x512', type: 'image/png' },
    { src: 'icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
  ],
};

/** The PWA files by name (what the build emits and the dev server serves). */
function pwaFiles(): Record<string, { body: string | Buffer; type: string }> {
  return {
    'manifest.webmanifest': { body: `${JSON.stringify(MANIFEST, null, 2)}\n`, type: 'application/manifest+json' },
    'icon.svg': { body: ICON_SVG, type: 'image/svg+xml' },
    'icon-192.png': { body: iconPng(192), type: 'image/png' },
    'icon-512.png': { body: iconPng(512), type: 'image/png' },
  };
}

/** Files of the public dir the app uses offline: the embedded model (with its adapter) and the shipped data. */
export function publicPrecache(publicDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(dir, e.name), r);
      else out.push(r);
    }
  };
  walk(path.join(publicDir, 'models', 'default'), 'models/default');
  // Notes for people (the model card, the training log) and agentark.json (read at build time) are not fetched by the app.
  for (let i = out.length - 1; i >= 0; i--) if (/\.(md|txt)$|(^|\/)agentark\.json$/.test(out[i]!)) out.splice(i, 1);
  const data = path.join(publicDir, 'data');
  if (fs.existsSync(data)) for (const f of fs.readdirSync(data)) if (/\.(jsonl|json)$/.test(f)) out.push(`data/${f}`);
  return out.sort();
}

export function pwa(): Plugin {
  let publicDir = path.resolve('public');
  let isBuild = false;
  const id = 'virtual:agentark-pwa';
  const resolved = `\0${id}`;
  return {
    name: 'agentark-pwa',
    configResolved(config) {
      if (config.publicDir) publicDir = config.publicDir;
      isBuild = config.command === 'build';
    },
    resolveId(source) {
      return source === id ? resolved : null;
    },
    load(loadId) {
      if (loadId !== resolved) return null;
      // generateBundle below emits sw.js in every build (whatever NODE_ENV) and never in dev.
      return `export const serviceWorker = ${JSON.stringify(isBuild ? 'sw.js' : null)};\n`;
    },
    configureServer(server) {
      const files = pwaFiles();
      server.middlewares.use((req, res, next) => {
        const name = (req.url ?? '').split('?')[0]!.replace(/^\//, '');
        const f = files[name];
        if (!f) return next();
        res.setHeader('Content-Type', f.type);
        res.end(f.body);
      });
    },
    generateBundle(_options, bundle) {
      for (const [fileName, f] of Object.entries(pwaFiles()))
        this.emitFile({ type: 'asset', fileName, source: f.body });
      // Large lazily loaded chunks (WebLLM, which needs the network for its models anyway) are
      // cached on first use instead of on install.
      const size = (o: (typeof bundle)[string]) =>
        o.type === 'chunk' ? o.code.length : typeof o.source === 'string' ? o.source.length : o.source.byteLength;
      const built = Object.entries(bundle)
        // KaTeX ships each font as woff2, woff and ttf; every browser that has WebGPU takes woff2.
        .filter(([f, o]) => !f.endsWith('.map') && !/\.(woff|ttf)$/.test(f) && size(o) <= PRECACHE_MAX_BYTES)
        .map(([f]) => f);
      const precache = ['./', ...new Set([...built, ...Object.keys(pwaFiles()), ...publicPrecache(publicDir)])].filter(
        (f) => f !== 'index.html',
      );
      const hash = crypto.createHash('sha256');
      for (const f of precache) hash.update(f);
      for (const f of publicPrecache(publicDir)) hash.update(String(fs.statSync(path.join(publicDir, f)).mtimeMs));
      for (const [f, out] of Object.entries(bundle)) if (out.type === 'chunk') hash.update(f + out.code.length);
      const version = hash.digest('hex').slice(0, 12);
      const source = fs.readFileSync(path.join(HERE, 'service-worker.js'), 'utf8');
      this.emitFile({
        type: 'asset',
        fileName: 'sw.js',
        source: `const VERSION = ${JSON.stringify(version)};\nconst PRECACHE = ${JSON.stringify(precache)};\n${source}`,
      });
    },
  };
}
