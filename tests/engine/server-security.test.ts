/**
 * The local server cannot be turned against its user: CORS off by default, Host checked on a
 * loopback bind (DNS rebinding), JSON-only POSTs, Bearer auth when a key is set (and a key required
 * beyond loopback), OpenAI error codes for unknown models and over-long prompts, request timeouts
 * and a connection cap. Good paths go through the official `openai` npm client.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalEngine, Runtime } from '../../src/engine/local';
import { isLoopbackHost, startServer, type RunningServer, type ServerOptions } from '../../src/engine/server';
import { serveEngine } from '../../src/cli/serve-http';
import { createFakeEngine } from '../helpers/fake-engine';
import { writeTinyModel } from '../helpers/tiny-model';

const servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(opts: ServerOptions = {}, engine = createFakeEngine()) {
  const s = await startServer(engine, { modelId: 'fake-model', ...opts });
  servers.push(s);
  return s;
}

const messages = [{ role: 'user' as const, content: 'What is 2 + 2?' }];

/** A raw request with full control of the headers (fetch will not let us forge Host). */
function rawRequest(
  port: number,
  opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/v1/models',
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const errorOf = (body: string) =>
  (JSON.parse(body) as { error: { message: string; type: string; code: string | null; param: string | null } }).error;

describe('isLoopbackHost', () => {
  it('knows loopback names and addresses', () => {
    for (const h of [
      'localhost',
      'LOCALHOST',
      'app.localhost',
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      '::ffff:127.0.0.1',
    ])
      expect(isLoopbackHost(h), h).toBe(true);
    for (const h of [
      '0.0.0.0',
      '::',
      '192.168.1.5',
      'example.com',
      'localhost.example.com',
      '127.0.0.1.nip.io',
      '10.0.0.1',
    ])
      expect(isLoopbackHost(h), h).toBe(false);
  });
});

describe('server access control', () => {
  it('the official openai client works end to end with an API key; missing or wrong keys get 401', async () => {
    const s = await serve({ apiKey: 'sk-local-test' });
    const client = new OpenAI({ baseURL: s.baseUrl, apiKey: 'sk-local-test', maxRetries: 0 });
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['fake-model']);
    const plain = await client.chat.completions.create({ model: 'fake-model', messages, seed: 2, temperature: 0.5 });
    expect(plain.choices[0]!.message.content).toMatch(/#### \d/);
    expect(plain.usage!.total_tokens).toBe(plain.usage!.prompt_tokens + plain.usage!.completion_tokens);
    const stream = await client.chat.completions.create({
      model: 'fake-model',
      messages,
      seed: 2,
      temperature: 0.5,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(plain.choices[0]!.message.content);
    expect(usage).toEqual(plain.usage);

    const wrong = new OpenAI({ baseURL: s.baseUrl, apiKey: 'sk-wrong', maxRetries: 0 });
    const e = await wrong.chat.completions.create({ model: 'fake-model', messages }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((e as InstanceType<typeof OpenAI.APIError>).code).toBe('invalid_api_key');
    const none = await rawRequest(s.port, {});
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(errorOf(none.body).message).toMatch(/Authorization: Bearer/);
    // Liveness needs no key.
    expect((await rawRequest(s.port, { path: '/health' })).status).toBe(200);
  });

  it('unknown model → 404 model_not_found (openai NotFoundError); no model field → the served one', async () => {
    const engine = createFakeEngine();
    const s = await serve({}, engine);
    const client = new OpenAI({ baseURL: s.baseUrl, apiKey: 'unused', maxRetries: 0 });
    const e = await client.chat.completions.create({ model: 'gpt-4o', messages }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    const err = e as InstanceType<typeof OpenAI.APIError>;
    expect(err.code).toBe('model_not_found');
    expect(err.param).toBe('model');
    expect(err.message).toMatch(/gpt-4o.*fake-model/);
    expect(engine.calls).toBe(0);
    const res = await rawRequest(s.port, {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages }),
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).model).toBe('fake-model');
  });

  it('CORS is off by default: any Origin is refused with 403 and no allow-origin header', async () => {
    const s = await serve();
    const pre = await rawRequest(s.port, {
      method: 'OPTIONS',
      path: '/v1/chat/completions',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(pre.status).toBe(403);
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    const get = await rawRequest(s.port, { headers: { origin: 'https://evil.example' } });
    expect(get.status).toBe(403);
    expect(errorOf(get.body)).toMatchObject({
      code: 'origin_not_allowed',
      message: expect.stringContaining('--cors https://evil.example'),
    });
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('--cors ORIGIN allows exactly the listed origins (preflight and answers)', async () => {
    const s = await serve({ cors: ['http://localhost:5173', 'https://chat.example'] });
    const pre = await rawRequest(s.port, {
      method: 'OPTIONS',
      path: '/v1/chat/completions',
      headers: {
        origin: 'http://localhost:5173',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(pre.headers['access-control-allow-headers']).toContain('content-type');
    expect(pre.headers.vary).toBe('Origin');
    const post = await rawRequest(s.port, {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { origin: 'https://chat.example', 'content-type': 'application/json' },
      body: JSON.stringify({ messages }),
    });
    expect(post.status).toBe(200);
    expect(post.headers['access-control-allow-origin']).toBe('https://chat.example');
    const other = await rawRequest(s.port, { headers: { origin: 'http://localhost:5174' } });
    expect(other.status).toBe(403);
    await expect(startServer(createFakeEngine(), { cors: ['localhost:5173/path'] })).rejects.toThrow(
      /expected an origin/,
    );
  });

  it('a loopback bind answers only loopback Host values (DNS rebinding is refused)', async () => {
    const s = await serve();
    for (const host of [`127.0.0.1:${s.port}`, `localhost:${s.port}`, `[::1]:${s.port}`, 'localhost']) {
      expect((await rawRequest(s.port, { headers: { host } })).status, host).toBe(200);
    }
    for (const host of [`evil.example:${s.port}`, 'attacker.test', `192.168.0.10:${s.port}`]) {
      const r = await rawRequest(s.port, { headers: { host } });
      expect(r.status, host).toBe(403);
      expect(errorOf(r.body).code).toBe('host_not_allowed');
    }
  });

  it('POSTs must be application/json (a text/plain "simple" request is refused with 415)', async () => {
    const engine = createFakeEngine();
    const s = await serve({}, engine);
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const r = await rawRequest(s.port, {
        method: 'POST',
        path: '/v1/chat/completions',
        headers: { 'content-type': type },
        body: JSON.stringify({ messages }),
      });
      expect(r.status, type).toBe(415);
      expect(errorOf(r.body).message).toMatch(/application\/json/);
    }
    const noType = await rawRequest(s.port, {
      method: 'POST',
      path: '/v1/chat/completions',
      body: JSON.stringify({ messages }),
    });
    expect(noType.status).toBe(415);
    const ok = await rawRequest(s.port, {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'Application/JSON; charset=utf-8' },
      body: JSON.stringify({ messages }),
    });
    expect(ok.status).toBe(200);
    expect(engine.calls).toBe(1);
  });

  it('binding beyond loopback needs an API key; with one, the key is enforced there', async () => {
    await expect(startServer(createFakeEngine(), { host: '0.0.0.0' })).rejects.toThrow(/without an API key/);
    const s = await serve({ host: '0.0.0.0', apiKey: 'k1' });
    // No Host restriction off loopback (the key is the protection), but the key is required.
    expect((await rawRequest(s.port, { headers: { host: 'my-box.lan' } })).status).toBe(401);
    expect((await rawRequest(s.port, { headers: { host: 'my-box.lan', authorization: 'Bearer k1' } })).status).toBe(
      200,
    );
  });

  it('a request whose body never finishes is cut off (408) after the request timeout', async () => {
    const s = await serve({ requestTimeoutMs: 300 });
    const sock = net.connect(s.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    let got = '';
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => (got += c));
    const closed = new Promise<number>((r) => {
      const t0 = Date.now();
      sock.once('close', () => r(Date.now() - t0));
    });
    sock.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"messa`,
    );
    const ms = await closed;
    expect(got).toMatch(/^HTTP\/1\.1 408/);
    expect(ms).toBeLessThan(5000);
  });

  it('connections beyond the cap are dropped', async () => {
    const s = await serve({ maxConnections: 2 });
    const open = async () => {
      const sock = net.connect(s.port, '127.0.0.1');
      await new Promise<void>((r) => sock.once('connect', () => r()));
      return sock;
    };
    const a = await open();
    const b = await open();
    const c = await open();
    const closedC = await new Promise<boolean>((r) => {
      c.once('close', () => r(true));
      setTimeout(() => r(false), 2000);
    });
    expect(closedC).toBe(true);
    expect(a.destroyed || b.destroyed).toBe(false);
    a.destroy();
    b.destroy();
  });
});

describe('serveEngine (agentark serve) passes the access flags through', () => {
  it('--api-key and --cors reach the server; the access line is printed', async () => {
    const ac = new AbortController();
    let err = '';
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write;
    const checks: Promise<void>[] = [];
    const outWrite = process.stdout.write.bind(process.stdout);
    process.stdout.write = (() => true) as typeof process.stdout.write;
    try {
      const code = await serveEngine(createFakeEngine(), {
        port: 0,
        modelId: 'm',
        apiKey: 'secret',
        cors: ['http://localhost:5173'],
        signal: ac.signal,
        onListening: (s) => {
          checks.push(
            (async () => {
              expect((await rawRequest(s.port, {})).status).toBe(401);
              const ok = await rawRequest(s.port, {
                headers: { authorization: 'Bearer secret', origin: 'http://localhost:5173' },
              });
              expect(ok.status).toBe(200);
              expect(ok.headers['access-control-allow-origin']).toBe('http://localhost:5173');
            })().finally(() => ac.abort()),
          );
        },
      });
      await Promise.all(checks);
      expect(code).toBe(0);
    } finally {
      process.stderr.write = write;
      process.stdout.write = outWrite;
    }
    expect(err).toContain('access: API key required; browser origins: http://localhost:5173');
  });
});

describe('server + LocalEngine', () => {
  let dir: string;
  let runtime: Runtime;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-serve-ctx-'));
    writeTinyModel(dir, { arch: 'llama' });
    runtime = await Runtime.load(dir, { backend: 'cpu', maxBatch: 1, contextLength: 32 });
  });
  afterAll(() => {
    runtime?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a prompt longer than the context → 400 context_length_exceeded (openai BadRequestError)', async () => {
    const s = await startServer(new LocalEngine(runtime), { modelId: 'tiny' });
    servers.push(s);
    const client = new OpenAI({ baseURL: s.baseUrl, apiKey: 'unused', maxRetries: 0 });
    const e = await client.chat.completions
      .create({ model: 'tiny', messages: [{ role: 'user', content: 'many words '.repeat(40) }] })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    const err = e as InstanceType<typeof OpenAI.APIError>;
    expect(err.code).toBe('context_length_exceeded');
    expect(err.message).toMatch(/maximum context length is 32 tokens/);
    const ok = await client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
      temperature: 0,
    });
    expect(ok.choices[0]!.finish_reason).toMatch(/stop|length/);
  });
});
