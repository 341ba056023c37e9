/** The WebLLM adapter: the prebuilt model list, and the ChatEngine mapping over a fake MLCEngine. */
import { describe, expect, it } from 'vitest';
import { startServer } from '../../src/engine/server';
import { OpenAIEngine, collectStream } from '../../src/teach/openai-engine';
import {
  WebLLMEngine,
  filterTeacherModels,
  runsWithoutShaderF16,
  webllmTeacherModels,
  type MLCEngineLike,
} from '../../src/teach/webllm-engine';

/** Shaped like WebLLM's MLCEngine: one generation at a time, interruptGenerate() stops it. */
function fakeMLC() {
  const calls: Record<string, unknown>[] = [];
  let running = 0;
  let overlap = false;
  let interrupted = false;
  const words = ['The', ' answer', ' is', ' 42.', '\n####', ' 42'];
  const mlc: MLCEngineLike & { calls: typeof calls; overlap: () => boolean; interrupts: number } = {
    calls,
    interrupts: 0,
    overlap: () => overlap,
    interruptGenerate() {
      mlc.interrupts++;
      interrupted = true;
    },
    chat: {
      completions: {
        async create(req: Record<string, unknown>) {
          calls.push(req);
          if (running) overlap = true;
          running++;
          interrupted = false;
          const n = typeof req.max_tokens === 'number' ? Math.min(req.max_tokens, words.length) : words.length;
          if (!req.stream) {
            for (let i = 0; i < 5 && !interrupted; i++) await new Promise((r) => setTimeout(r, 10));
            running--;
            return {
              id: 'chatcmpl-x',
              object: 'chat.completion',
              created: 1,
              model: 'ignored',
              choices: [
                {
                  index: 0,
                  message: { role: 'assistant', content: interrupted ? 'The' : words.slice(0, n).join('') },
                  finish_reason: interrupted ? 'abort' : n < words.length ? 'length' : 'stop',
                  logprobs: null,
                },
              ],
              usage: {
                prompt_tokens: 12,
                completion_tokens: interrupted ? 1 : n,
                total_tokens: 12 + (interrupted ? 1 : n),
                extra: { e2e_latency_s: 0.1 },
              },
            };
          }
          return (async function* () {
            let i = 0;
            for (; i < n && !interrupted; i++) {
              await new Promise((r) => setTimeout(r, 5));
              yield {
                id: 'c',
                object: 'chat.completion.chunk',
                created: 1,
                model: 'm',
                choices: [
                  { index: 0, delta: { role: 'assistant', content: words[i] }, finish_reason: null, logprobs: null },
                ],
              };
            }
            yield {
              id: 'c',
              object: 'chat.completion.chunk',
              created: 1,
              model: 'm',
              choices: [{ index: 0, delta: {}, finish_reason: interrupted ? 'abort' : 'stop', logprobs: null }],
            };
            if ((req.stream_options as { include_usage?: boolean } | undefined)?.include_usage) {
              yield {
                id: 'c',
                object: 'chat.completion.chunk',
                created: 1,
                model: 'm',
                choices: [],
                usage: { prompt_tokens: 12, completion_tokens: i, total_tokens: 12 + i },
              };
            }
            running--;
          })();
        },
      },
    },
  };
  return mlc;
}

describe('webllmTeacherModels', () => {
  it('lists prebuilt chat models, and only f32 ones without shader-f16 when asked', async () => {
    const all = await webllmTeacherModels();
    expect(all.length).toBeGreaterThan(50);
    expect(all).toContain('Llama-3.2-1B-Instruct-q4f32_1-MLC');
    expect(all).toContain('Llama-3.2-1B-Instruct-q4f16_1-MLC');
    expect(all.some((id) => /snowflake-arctic-embed/.test(id))).toBe(false); // embedding models
    expect(all.some((id) => /vision/i.test(id))).toBe(false);
    const f32 = await webllmTeacherModels({ withoutShaderF16: true });
    expect(f32.length).toBeGreaterThan(10);
    expect(f32.length).toBeLessThan(all.length);
    expect(f32).toContain('Llama-3.2-1B-Instruct-q4f32_1-MLC');
    expect(f32.every((id) => /q[04]f32/.test(id))).toBe(true);
    const small = await webllmTeacherModels({ withoutShaderF16: true, maxVramMB: 2000 });
    expect(small.length).toBeGreaterThan(0);
    expect(small.length).toBeLessThan(f32.length);
  });

  it('filters records by quantisation, features and type', () => {
    expect(runsWithoutShaderF16({ model_id: 'X-q4f32_1-MLC' })).toBe(true);
    expect(runsWithoutShaderF16({ model_id: 'X-q0f32-MLC' })).toBe(true);
    expect(runsWithoutShaderF16({ model_id: 'X-q4f16_1-MLC' })).toBe(false);
    expect(runsWithoutShaderF16({ model_id: 'X-q4f32_1-MLC', required_features: ['shader-f16'] })).toBe(false);
    expect(
      filterTeacherModels(
        [
          { model_id: 'a-q4f32_1-MLC', low_resource_required: true, vram_required_MB: 900 },
          { model_id: 'b-q4f16_1-MLC' },
          { model_id: 'c-q0f32-MLC-b4', model_type: 1 },
          { model_id: 'd-q4f32_1-MLC', vram_required_MB: 9000 },
        ],
        { withoutShaderF16: true, maxVramMB: 4000 },
      ),
    ).toEqual(['a-q4f32_1-MLC']);
  });
});

describe('WebLLMEngine', () => {
  const messages = [{ role: 'user' as const, content: 'What is 6 x 7?' }];

  it('maps non-streaming replies and strips unsupported fields', async () => {
    const mlc = fakeMLC();
    const e = new WebLLMEngine(mlc, 'Llama-3.2-1B-Instruct-q4f32_1-MLC');
    expect(await e.models()).toEqual(['Llama-3.2-1B-Instruct-q4f32_1-MLC']);
    const r = await e.chat.completions.create({ messages, top_k: 40, model: 'other', temperature: 0.5, seed: 3 });
    expect(r.choices[0]!.message).toEqual({ role: 'assistant', content: 'The answer is 42.\n#### 42' });
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.usage).toEqual({ prompt_tokens: 12, completion_tokens: 6, total_tokens: 18 });
    expect(r.model).toBe('Llama-3.2-1B-Instruct-q4f32_1-MLC');
    expect(mlc.calls[0]).toEqual({ messages, temperature: 0.5, seed: 3 });
    const t = await e.chat.completions.create({ messages, max_tokens: 2 });
    expect(t.choices[0]!.finish_reason).toBe('length');
  });

  it('streams with usage requested, serialises concurrent requests', async () => {
    const mlc = fakeMLC();
    const e = new WebLLMEngine(mlc, 'm');
    const [a, b] = await Promise.all([
      collectStream(await e.chat.completions.create({ messages, stream: true })),
      e.chat.completions.create({ messages, stream: false }),
    ]);
    expect(a.choices[0]!.message.content).toBe(b.choices[0]!.message.content);
    expect(a.usage).toEqual({ prompt_tokens: 12, completion_tokens: 6, total_tokens: 18 });
    expect(mlc.calls[0]!.stream_options).toEqual({ include_usage: true });
    expect(mlc.overlap()).toBe(false);
  });

  it('an AbortSignal calls interruptGenerate', async () => {
    const mlc = fakeMLC();
    const e = new WebLLMEngine(mlc, 'm');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 15);
    const r = await e.chat.completions.create({ messages }, { signal: ac.signal });
    expect(mlc.interrupts).toBe(1);
    expect(r.choices[0]!.finish_reason).toBe('abort');
    const pre = new AbortController();
    pre.abort();
    expect((await e.chat.completions.create({ messages }, { signal: pre.signal })).choices[0]!.finish_reason).toBe(
      'abort',
    );
    expect(mlc.calls).toHaveLength(1);
  });

  it('serves over HTTP like any other ChatEngine', async () => {
    const server = await startServer(new WebLLMEngine(fakeMLC(), 'webllm-model'));
    try {
      const c = new OpenAIEngine({ baseUrl: server.baseUrl, model: 'webllm-model' });
      expect(await c.models()).toEqual(['webllm-model']);
      const s = await collectStream(await c.chat.completions.create({ messages, stream: true }));
      expect(s.choices[0]!.message.content).toBe('The answer is 42.\n#### 42');
      expect(server.stats.completionTokens).toBe(6);
    } finally {
      await server.close();
    }
  });
});
