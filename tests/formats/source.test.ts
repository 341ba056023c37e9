import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  BlobSource,
  HttpSource,
  LocalDirectorySource,
  looksLikeHfRepoId,
  openSource,
  type FileSource,
} from '../../src/formats/source';
import { serveDirectory, type ServedDirectory } from '../helpers/tiny-model';

let dir: string;
const payload = new Uint8Array(300_000).map((_, i) => (i * 31 + 7) & 0xff);

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-source-'));
  fs.writeFileSync(path.join(dir, 'config.json'), '{"hello": "wörld"}');
  fs.writeFileSync(path.join(dir, 'model.safetensors'), payload);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function collect(source: FileSource, name: string, progress?: number[]): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of source.stream(name, (received) => progress?.push(received))) chunks.push(chunk.slice());
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** The same contract, whatever the origin. */
async function checkContract(source: FileSource) {
  expect(await source.exists('config.json')).toBe(true);
  expect(await source.exists('nope.json')).toBe(false);
  expect(JSON.parse(await source.readText('config.json'))).toEqual({ hello: 'wörld' });
  expect(await source.size('model.safetensors')).toBe(payload.length);
  expect(Array.from(await source.readRange('model.safetensors', 1000, 1010))).toEqual(
    Array.from(payload.subarray(1000, 1010)),
  );
  const progress: number[] = [];
  const all = await collect(source, 'model.safetensors', progress);
  expect(all.length).toBe(payload.length);
  expect(Buffer.from(all).equals(Buffer.from(payload))).toBe(true);
  expect(progress[progress.length - 1]).toBe(payload.length);
  for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThan(progress[i - 1]);
  await expect(source.readText('nope.json')).rejects.toThrow(/nope\.json/);
  await expect(source.readRange('config.json', 0, 1000)).rejects.toThrow(
    /config\.json.*wanted bytes \[0, 1000\)|config\.json: wanted bytes/,
  );
}

describe('local directory', () => {
  it('implements the FileSource contract', async () => {
    const source = openSource(dir);
    expect(source).toBeInstanceOf(LocalDirectorySource);
    await checkContract(source);
    await expect(source.readText('missing.json')).rejects.toThrow(`missing.json not found in ${dir}`);
  });

  it('stops on abort', async () => {
    const controller = new AbortController();
    const iterate = async () => {
      for await (const _ of new LocalDirectorySource(dir).stream('model.safetensors', undefined, {
        signal: controller.signal,
      })) {
        controller.abort();
      }
    };
    await expect(iterate()).rejects.toThrow(/abort/i);
  });
});

describe('blobs', () => {
  it('implements the FileSource contract', async () => {
    const source = new BlobSource(
      new Map<string, Blob>([
        ['config.json', new Blob(['{"hello": "wörld"}'])],
        ['model.safetensors', new Blob([payload])],
      ]),
    );
    await checkContract(source);
  });
});

describe('http', () => {
  let server: ServedDirectory;
  const savedEndpoint = process.env.AGENTARK_HF_ENDPOINT;
  afterEach(async () => {
    await server?.close();
    if (savedEndpoint === undefined) delete process.env.AGENTARK_HF_ENDPOINT;
    else process.env.AGENTARK_HF_ENDPOINT = savedEndpoint;
  });

  it('implements the FileSource contract over a base URL, using Range for partial reads', async () => {
    server = await serveDirectory(dir);
    const source = openSource(`${server.url}/`);
    expect(source).toBeInstanceOf(HttpSource);
    await checkContract(source);
    expect(server.requests.some((r) => r.range === 'bytes=1000-1009')).toBe(true);
  });

  it('works against a server that ignores Range', async () => {
    server = await serveDirectory(dir, { noRange: true });
    await checkContract(openSource(server.url));
  });

  it('resolves a Hugging Face repo id against AGENTARK_HF_ENDPOINT', async () => {
    server = await serveDirectory(dir);
    process.env.AGENTARK_HF_ENDPOINT = server.url;
    const source = openSource('tiny-org/tiny-model');
    expect(source.location).toBe('tiny-org/tiny-model');
    expect(source.describe('config.json')).toBe(`${server.url}/tiny-org/tiny-model/resolve/main/config.json`);
    await checkContract(source);
    const pinned = openSource('tiny-org/tiny-model@v1.0');
    expect(pinned.describe('config.json')).toBe(`${server.url}/tiny-org/tiny-model/resolve/v1.0/config.json`);
  });

  it('names file, URL and status on HTTP errors', async () => {
    server = await serveDirectory(dir);
    const source = openSource(server.url);
    await expect(source.readText('missing.json')).rejects.toThrow(
      `missing.json: HTTP 404 Not Found from ${server.url}/missing.json`,
    );
    await expect(source.size('missing.json')).rejects.toThrow(/missing\.json: HTTP 404/);
  });

  it('reports a connection that dies mid-download', async () => {
    server = await serveDirectory(dir, { dieAfterBytes: 100_000 });
    const source = openSource(server.url);
    await expect(collect(source, 'model.safetensors')).rejects.toThrow(
      new RegExp(
        `download of model\\.safetensors from ${server.url}/model\\.safetensors interrupted after \\d+ of 300000 bytes`,
      ),
    );
  });

  it('asks again when a range answer is longer than its own Content-Length, and fails on a second bad answer', async () => {
    // Node's HTTP client stops at Content-Length, so the garbled answer (seen in Chromium) is a
    // stand-in fetch: 206 with the right Content-Length and Content-Range, and 10 bytes too many.
    let garbledAnswers = 1;
    const requests: RequestInit[] = [];
    const realFetch = globalThis.fetch;
    globalThis.fetch = (async (_url: string | URL | Request, init?: RequestInit) => {
      requests.push(init ?? {});
      const m = /bytes=(\d+)-(\d+)/.exec(String((init?.headers as Record<string, string>)?.Range));
      const [a, b] = [Number(m![1]), Number(m![2])];
      const body = payload.subarray(a, b + 1);
      const bytes = garbledAnswers-- > 0 ? new Uint8Array([...body, ...new Uint8Array(10).fill(0xee)]) : body;
      return new Response(bytes, {
        status: 206,
        headers: { 'content-length': String(body.length), 'content-range': `bytes ${a}-${b}/${payload.length}` },
      });
    }) as typeof fetch;
    try {
      const source = new HttpSource('http://example.invalid');
      expect(Array.from(await source.readRange('model.safetensors', 5000, 5100))).toEqual(
        Array.from(payload.subarray(5000, 5100)),
      );
      expect(requests.length).toBe(2);
      garbledAnswers = 2;
      await expect(source.readRange('model.safetensors', 0, 64)).rejects.toThrow(
        /model\.safetensors.*interrupted after \d+ of 64 bytes \(server sent more bytes than announced\)/,
      );
      expect(requests.length).toBe(4);
    } finally {
      globalThis.fetch = realFetch;
    }
  });

  it('reports an unreachable server with the URL', async () => {
    server = await serveDirectory(dir);
    const url = server.url;
    await server.close();
    await expect(openSource(url).readText('config.json')).rejects.toThrow(
      `fetching config.json from ${url}/config.json failed`,
    );
  });
});

describe('spec resolution', () => {
  it('recognizes repo ids', () => {
    expect(looksLikeHfRepoId('Qwen/Qwen2.5-0.5B-Instruct')).toBe(true);
    expect(looksLikeHfRepoId('meta-llama/Llama-3.2-1B@main')).toBe(true);
    expect(looksLikeHfRepoId('./models/qwen')).toBe(false);
    expect(looksLikeHfRepoId('/abs/path')).toBe(false);
    expect(looksLikeHfRepoId('a/b/c')).toBe(false);
    expect(looksLikeHfRepoId('../x')).toBe(false);
  });

  it('treats explicit paths as local and URLs as HTTP', () => {
    expect(openSource('./models/qwen')).toBeInstanceOf(LocalDirectorySource);
    expect(openSource('/tmp/x')).toBeInstanceOf(LocalDirectorySource);
    expect(openSource('https://example.com/m/')).toBeInstanceOf(HttpSource);
    expect(openSource('https://example.com/m').describe('config.json')).toBe('https://example.com/m/config.json');
  });
});
