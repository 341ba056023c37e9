import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/engine/server';
import type { ChatCompletion } from '../../src/engine/types';
import { OpenAIEngine, SSEParser, collectStream } from '../../src/teach/openai-engine';
import { createFakeEngine } from '../helpers/fake-engine';

const servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(engine = createFakeEngine(), modelId = 'fake-model') {
  const s = await startServer(engine, { modelId });
  servers.push(s);
  return { s, engine };
}

const post = (url: string, body: unknown, init: RequestInit = {}) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });

const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'What is 2 + 2?' },
];

describe('startServer', () => {
  it('listens on 127.0.0.1 with a free port and serves /v1/models', async () => {
    const { s } = await serve();
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(s.port).toBeGreaterThan(0);
    const res = await fetch(`${s.baseUrl}/models`);
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull(); // CORS off by default
    const j = (await res.json()) as { object: string; data: { id: string; object: string }[] };
    expect(j.object).toBe('list');
    expect(j.data.map((m) => m.id)).toEqual(['fake-model']);
    expect(j.data[0]!.object).toBe('model');
  });

  it('non-streaming completion: OpenAI shape, usage, and stats', async () => {
    const { s, engine } = await serve();
    const res = await post(`${s.baseUrl}/chat/completions`, {
      model: 'fake-model',
      messages,
      temperature: 0.3,
      seed: 4,
      max_tokens: 50,
    });
    expect(res.status).toBe(200);
    const j = (await res.json()) as ChatCompletion;
    expect(j.object).toBe('chat.completion');
    expect(j.model).toBe('fake-model');
    expect(j.choices[0]!.message.role).toBe('assistant');
    expect(j.choices[0]!.message.content).toMatch(/#### \d/);
    expect(j.usage.total_tokens).toBe(j.usage.prompt_tokens + j.usage.completion_tokens);
    // Parameters reach the engine.
    expect(engine.requests[0]).toMatchObject({ temperature: 0.3, seed: 4, max_tokens: 50, model: 'fake-model' });
    expect(s.stats).toMatchObject({
      requests: 1,
      completions: 1,
      streamed: 0,
      promptTokens: j.usage.prompt_tokens,
      completionTokens: j.usage.completion_tokens,
    });
  });

  it('SSE streaming yields the same content as non-streaming, then [DONE]; usage chunk only when asked', async () => {
    const { s } = await serve();
    const body = { messages, temperature: 0.9, seed: 11 };
    const plain = (await (await post(`${s.baseUrl}/chat/completions`, body)).json()) as ChatCompletion;

    const res = await post(`${s.baseUrl}/chat/completions`, {
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const raw = await res.text();
    const events = raw.split('\n\n').filter(Boolean);
    expect(events.every((e) => e.startsWith('data: '))).toBe(true);
    expect(events[events.length - 1]).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    expect(chunks.length).toBeGreaterThan(3);
    const content = chunks
      .flatMap((c) => c.choices.map((ch: { delta: { content?: string } }) => ch.delta.content ?? ''))
      .join('');
    expect(content).toBe(plain.choices[0]!.message.content);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'fake-model')).toBe(true);
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(plain.usage);
    expect(chunks.slice(0, -1).every((c) => c.usage === undefined)).toBe(true);
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'stop')).toBe(true);

    const noUsage = await (await post(`${s.baseUrl}/chat/completions`, { ...body, stream: true })).text();
    expect(noUsage).not.toContain('"usage"');
    expect(noUsage.trimEnd().endsWith('data: [DONE]')).toBe(true);
    // Streams are counted with their tokens even when the client did not ask for usage.
    expect(s.stats).toMatchObject({
      completions: 3,
      streamed: 2,
      promptTokens: 3 * plain.usage.prompt_tokens,
      completionTokens: 3 * plain.usage.completion_tokens,
    });
  });

  it('OpenAIEngine streaming through the server matches its non-streaming result', async () => {
    const { s } = await serve();
    const client = new OpenAIEngine({ baseUrl: s.baseUrl, model: 'fake-model' });
    const req = { messages: messages as { role: 'system' | 'user'; content: string }[], seed: 3, temperature: 0.5 };
    const a = await client.chat.completions.create({ ...req, stream: false });
    const b = await collectStream(await client.chat.completions.create({ ...req, stream: true }));
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content);
    expect(b.choices[0]!.finish_reason).toBe(a.choices[0]!.finish_reason);
    expect(b.usage).toEqual(a.usage);
  });

  it('validates bodies with OpenAI-style 400 errors', async () => {
    const { s, engine } = await serve();
    const url = `${s.baseUrl}/chat/completions`;
    const check = async (body: unknown, re: RegExp, status = 400) => {
      const res = await post(url, body);
      expect(res.status).toBe(status);
      const j = (await res.json()) as { error: { message: string; type: string } };
      expect(j.error.type).toBe('invalid_request_error');
      expect(j.error.message).toMatch(re);
    };
    await check('{not json', /not valid JSON/);
    await check([1, 2], /must be a JSON object/);
    await check({}, /'messages' is required/);
    await check({ messages: [] }, /'messages' must not be empty/);
    await check({ messages: [{ role: 'robot', content: 'x' }] }, /messages\[0\]\.role/);
    await check({ messages: [{ role: 'user', content: 5 }] }, /messages\[0\]\.content/);
    await check({ messages, temperature: 'hot' }, /'temperature' must be a number/);
    await check({ messages, temperature: 7 }, /'temperature'/);
    await check({ messages, max_tokens: 0 }, /'max_tokens' must be an integer/);
    await check({ messages, max_tokens: 1.5 }, /'max_tokens'/);
    await check({ messages, stream: 'yes' }, /'stream' must be a boolean/);
    await check({ messages, stop: [1] }, /'stop'/);
    expect(engine.calls).toBe(0);
    expect(s.stats.badRequests).toBe(12);
    // Text-part arrays are accepted.
    const ok = await post(url, { messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] });
    expect(ok.status).toBe(200);
    expect(engine.requests[0]!.messages[0]!.content).toBe('hi');
  });

  it('404 and 405', async () => {
    const { s } = await serve();
    const nf = await fetch(`${s.url}/v1/nope`);
    expect(nf.status).toBe(404);
    expect(((await nf.json()) as { error: { message: string } }).error.message).toContain('/v1/nope');
    const na = await fetch(`${s.baseUrl}/chat/completions`);
    expect(na.status).toBe(405);
  });

  it('engine errors become 500 with an error body', async () => {
    const engine = createFakeEngine();
    engine.chat.completions.create = (async () => {
      throw new Error('GPU fell over');
    }) as typeof engine.chat.completions.create;
    const { s } = await serve(engine);
    const res = await post(`${s.baseUrl}/chat/completions`, { messages });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { message: string; type: string } }).error).toMatchObject({
      type: 'server_error',
      message: expect.stringContaining('GPU fell over'),
    });
    expect(s.stats.errors).toBe(1);
  });

  it('a client disconnect aborts the generation through the AbortSignal', async () => {
    const engine = createFakeEngine({
      streamDelayMs: 40,
      reply: () => Array.from({ length: 100 }, (_, i) => `w${i}`).join(' '),
    });
    const { s } = await serve(engine);
    const ac = new AbortController();
    const res = await post(`${s.baseUrl}/chat/completions`, { messages, stream: true }, { signal: ac.signal });
    const reader = res.body!.getReader();
    const parser = new SSEParser('test');
    let got = 0;
    while (got < 3) {
      const r = await reader.read();
      if (r.done) break;
      got += parser.push(r.value).length;
    }
    ac.abort();
    for (let i = 0; i < 100 && engine.aborted === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(engine.aborted).toBe(1);
    for (let i = 0; i < 100 && s.stats.aborted === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.stats.aborted).toBe(1);
    expect(s.stats.completions).toBe(0);
    expect(s.stats.completionTokens).toBe(0);

    // Same for a non-streaming request.
    const slow = createFakeEngine({ delayMs: 5000 });
    const { s: s2 } = await serve(slow);
    const ac2 = new AbortController();
    const p = post(`${s2.baseUrl}/chat/completions`, { messages }, { signal: ac2.signal }).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 100));
    ac2.abort();
    expect(await p).toBeInstanceOf(Error);
    for (let i = 0; i < 100 && slow.aborted === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(slow.aborted).toBe(1);
  });

  it('close() stops listening', async () => {
    const s = await startServer(createFakeEngine());
    await s.close();
    await expect(fetch(`${s.baseUrl}/models`)).rejects.toThrow();
  });
});
