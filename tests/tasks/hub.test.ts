/**
 * Hugging Face dataset ids, offline: a local server answers the Hub's tree API (two pages, linked
 * by a `Link: rel="next"` header) and serves the files; Parquet shards written by the test-only
 * writer. Covers config/split resolution, shard order, progress, the download cache, the offline
 * fallback to cached files, and `agentark eval --data owner/name --config --split`.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run as evalRun } from '../../src/cli/eval';
import { startServer } from '../../src/engine/server';
import { loadQuestions } from '../../src/tasks/datasets';
import { isHubDatasetSpec, pickSplitFiles } from '../../src/tasks/hub';
import { createFakeEngine } from '../helpers/fake-engine';
import { writeParquet } from '../helpers/parquet-writer';

const FIELDS = [
  { name: 'question', type: 'string' as const },
  { name: 'answer', type: 'string' as const },
];
const shard = (from: number, n: number, codec: 'snappy' | 'zstd') =>
  writeParquet(
    FIELDS,
    Array.from({ length: n }, (_, i) => ({
      question: `What is ${from + i} + 1?`,
      answer: `${from + i} + 1 = ${from + i + 1}\n#### ${from + i + 1}`,
    })),
    { codec, rowGroupSize: 2 },
  );

const FILES: Record<string, Uint8Array> = {
  '.gitattributes': new TextEncoder().encode('*.parquet filter=lfs'),
  'README.md': new TextEncoder().encode('# gsm8k'),
  'main/train-00000-of-00001.parquet': shard(100, 3, 'snappy'),
  'main/test-00000-of-00002.parquet': shard(1, 3, 'snappy'),
  'main/test-00001-of-00002.parquet': shard(4, 2, 'zstd'),
  'socratic/test-00000-of-00001.parquet': shard(50, 2, 'zstd'),
};

const CONVERTED_FILE = shard(70, 2, 'snappy');

let server: Server;
let endpoint: string;
const requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    requests.push(url.pathname + url.search);
    const paths = Object.keys(FILES);
    if (url.pathname === '/api/datasets/openai/gsm8k/tree/main') {
      const page = url.searchParams.get('cursor') === '2' ? 2 : 1;
      const entries = (page === 1 ? paths.slice(0, 3) : paths.slice(3)).map((p) => ({
        type: 'file',
        path: p,
        size: FILES[p]!.length,
      }));
      if (page === 1) entries.unshift({ type: 'directory', path: 'main', size: 0 } as never);
      if (page === 1)
        res.setHeader('Link', `<${endpoint}/api/datasets/openai/gsm8k/tree/main?recursive=true&cursor=2>; rel="next"`);
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(entries));
      return;
    }
    // A dataset built by a loading script: no data files on main, Parquet on refs/convert/parquet.
    const plainPath = decodeURIComponent(url.pathname);
    if (plainPath === '/api/datasets/x/scripted/tree/main') {
      res.end(
        JSON.stringify(
          ['scripted.py', 'README.md', 'dataset_infos.json'].map((p) => ({ type: 'file', path: p, size: 10 })),
        ),
      );
      return;
    }
    if (plainPath === '/api/datasets/x/scripted/tree/refs/convert/parquet') {
      res.end(JSON.stringify([{ type: 'file', path: 'default/test/0000.parquet', size: CONVERTED_FILE.length }]));
      return;
    }
    if (plainPath === '/datasets/x/scripted/resolve/refs/convert/parquet/default/test/0000.parquet') {
      res.end(CONVERTED_FILE);
      return;
    }
    const m = /^\/datasets\/openai\/gsm8k\/resolve\/main\/(.+)$/.exec(url.pathname);
    if (m && FILES[decodeURIComponent(m[1]!)]) {
      const body = FILES[decodeURIComponent(m[1]!)]!;
      res.setHeader('Content-Length', String(body.length));
      res.end(body);
      return;
    }
    res.statusCode = 404;
    res.end('not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  vi.stubEnv('AGENTARK_HF_ENDPOINT', endpoint);
  vi.stubEnv('AGENTARK_CACHE', mkdtempSync(path.join(tmpdir(), 'agentark-hub-cache-')));
});

afterAll(async () => {
  vi.unstubAllEnvs();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('Hub dataset ids', () => {
  it('tells ids from paths', async () => {
    expect(await isHubDatasetSpec('openai/gsm8k')).toBe(true);
    expect(await isHubDatasetSpec('hf://datasets/openai/gsm8k')).toBe(true);
    expect(await isHubDatasetSpec('data/test.jsonl')).toBe(false);
    expect(await isHubDatasetSpec('public/data')).toBe(false); // an existing directory
    expect(await isHubDatasetSpec('a/b/c')).toBe(false);
  });

  it('picks a config and split from the file listing', () => {
    const files = Object.keys(FILES).map((p) => ({ path: p, size: 1 }));
    expect(pickSplitFiles('openai/gsm8k', files, { config: 'main', split: 'test' }).map((f) => f.path)).toEqual([
      'main/test-00000-of-00002.parquet',
      'main/test-00001-of-00002.parquet',
    ]);
    expect(() => pickSplitFiles('openai/gsm8k', files, { split: 'test' })).toThrow(
      /several configs with a "test" split: main, socratic; give --config/,
    );
    expect(pickSplitFiles('openai/gsm8k', files, { split: 'train' }).map((f) => f.path)).toEqual([
      'main/train-00000-of-00001.parquet',
    ]);
    expect(() => pickSplitFiles('openai/gsm8k', files, { config: 'main', split: 'validation' })).toThrow(
      /no data files for config "main", split "validation"/,
    );
    // A dataset without configs: data/ files, Parquet preferred over JSONL.
    const flat = ['data/test-00000-of-00001.parquet', 'data/test.jsonl', 'data/train-00000-of-00001.parquet'].map(
      (p) => ({ path: p, size: 1 }),
    );
    expect(pickSplitFiles('x/y', flat, {}).map((f) => f.path)).toEqual(['data/test-00000-of-00001.parquet']);
  });

  it('loads both shards of main/test in order with progress, then from the cache, then offline', async () => {
    const progress: number[] = [];
    const qs = await loadQuestions('openai/gsm8k', 'gsm8k', {
      config: 'main',
      split: 'test',
      onProgress: (e) => progress.push(e.done),
    });
    expect(qs.map((q) => q.question)).toEqual([
      'What is 1 + 1?',
      'What is 2 + 1?',
      'What is 3 + 1?',
      'What is 4 + 1?',
      'What is 5 + 1?',
    ]);
    expect(qs.map((q) => q.id)).toEqual([1, 2, 3, 4, 5].map((i) => `test#${i}`));
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[progress.length - 1]).toBe(
      FILES['main/test-00000-of-00002.parquet']!.length + FILES['main/test-00001-of-00002.parquet']!.length,
    );
    // The listing was paginated.
    expect(requests.filter((r) => r.startsWith('/api/')).length).toBe(2);
    const downloads = () => requests.filter((r) => r.startsWith('/datasets/')).length;
    expect(downloads()).toBe(2);
    // Again: listed, but served from the cache.
    expect((await loadQuestions('openai/gsm8k', 'gsm8k', { config: 'main', split: 'test', limit: 4 })).length).toBe(4);
    expect(downloads()).toBe(2);
    // Offline: the listing cannot connect; the cached files of the split are used.
    vi.stubEnv('AGENTARK_HF_ENDPOINT', 'http://127.0.0.1:9');
    try {
      expect((await loadQuestions('openai/gsm8k', 'gsm8k', { config: 'main', split: 'test' })).length).toBe(5);
      await expect(loadQuestions('openai/gsm8k', 'gsm8k', { config: 'socratic', split: 'test' })).rejects.toThrow(
        /no data files|fetch failed/,
      );
    } finally {
      vi.stubEnv('AGENTARK_HF_ENDPOINT', endpoint);
    }
  });

  it("a dataset without data files on main is read from the Hub's Parquet conversion", async () => {
    const qs = await loadQuestions('x/scripted', 'gsm8k', { split: 'test' });
    expect(qs.map((q) => q.question)).toEqual(['What is 70 + 1?', 'What is 71 + 1?']);
    expect(requests).toContain('/datasets/x/scripted/resolve/refs%2Fconvert%2Fparquet/default/test/0000.parquet');
  });

  it('agentark eval --data owner/name --config --split', async () => {
    const engine = createFakeEngine({
      reply: (req) => `#### ${Number(/What is (\d+)/.exec(req.messages.at(-1)!.content)![1]) + 1}`,
    });
    const api = await startServer(engine);
    const out = path.join(mkdtempSync(path.join(tmpdir(), 'agentark-hub-eval-')), 'r.json');
    let err = '';
    const o = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const e = vi
      .spyOn(process.stderr, 'write')
      .mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
    try {
      const code = await evalRun([
        '--data',
        'openai/gsm8k',
        '--config',
        'socratic',
        '--split',
        'test',
        '--base-url',
        api.baseUrl,
        '--api-model',
        'fake-model',
        '--systems',
        'single',
        '--decoding',
        'greedy',
        '--no-self-correction',
        '--no-robustness',
        '--out',
        out,
        '--quiet',
      ]);
      expect(err).toBe('');
      expect(code).toBe(0);
      const report = JSON.parse(await (await import('node:fs/promises')).readFile(out, 'utf8'));
      expect(report).toMatchObject({
        dataset: 'openai/gsm8k',
        questions: 2,
        systems: [{ name: 'single', correct: 2 }],
      });
      const bad = await evalRun(['--data', 'openai/gsm8k', '--cop-base', '2', '--base-url', api.baseUrl, '--out', out]);
      expect(bad).toBe(2);
      expect(err).toMatch(/--cop-base must be 0 or 1/);
    } finally {
      o.mockRestore();
      e.mockRestore();
      await api.close();
    }
  });
});
