/** KV-cache decode vs full forward, batching vs alone, sampling controls, the ChatEngine shape. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalEngine, Runtime } from '../../src/engine/local';
import type { ChatCompletion, ChatCompletionChunk } from '../../src/engine/types';
import { Generator, type GenerationResult } from '../../src/engine/generator';
import { writeTinyModel } from '../helpers/tiny-model';
import { testGpu } from '../helpers/gpu';
import { maxRelErr } from '../helpers/rng';

let dir: string;
let runtime: Runtime;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'agentark-gen-'));
  writeTinyModel(dir, { arch: 'qwen2', dtype: 'F32', tied: true, seed: 3 });
  runtime = await Runtime.load(dir, { gpu: await testGpu(), maxBatch: 4, contextLength: 96 });
});

afterAll(() => runtime?.generator.dispose());

describe('generation on WebGPU', () => {
  it('incremental decode through the KV cache gives the logits of one full forward pass', async () => {
    const ids = [7, 19, 250, 3, 88, 41, 120, 9, 60, 2, 77];
    const full = await runtime.logits(ids);
    const V = runtime.model.config.vocabSize;
    const prefix = 4;
    const rows: Float32Array[] = [];
    await runtime.generator.exclusive(async (cache) => {
      const slot = 2; // a non-zero slot, to exercise slot addressing
      const pre = await runtime.model.forward(
        {
          ids: Uint32Array.from(ids.slice(0, prefix)),
          positions: Uint32Array.from({ length: prefix }, (_, i) => i),
          slots: new Uint32Array(prefix).fill(slot),
          logitRows: 'all',
        },
        cache,
      );
      for (let t = 0; t < prefix; t++) rows.push(pre.subarray(t * V, (t + 1) * V));
      for (let t = prefix; t < ids.length; t++) {
        rows.push(
          await runtime.model.forward(
            { ids: Uint32Array.of(ids[t]), positions: Uint32Array.of(t), slots: Uint32Array.of(slot), logitRows: [0] },
            cache,
          ),
        );
      }
    });
    for (let t = 0; t < ids.length; t++)
      expect(maxRelErr(rows[t], full.subarray(t * V, (t + 1) * V)), `position ${t}`).toBeLessThan(1e-5);
  });

  it('a batch of sequences of different lengths and settings gives the same tokens as each alone', async () => {
    const reqs = [
      { prompt: [5, 6, 7], maxTokens: 12, sampling: { temperature: 0 } },
      {
        prompt: [100, 200, 30, 40, 50, 60, 70, 80, 90],
        maxTokens: 7,
        sampling: { temperature: 0.9, topK: 20, seed: 4 },
      },
      { prompt: [11], maxTokens: 15, sampling: { temperature: 1.2, topP: 0.8, seed: 9, repetitionPenalty: 1.3 } },
      { prompt: [42, 43], maxTokens: 5, sampling: { temperature: 0.7, seed: 1 } },
    ];
    const alone: GenerationResult[] = [];
    for (const r of reqs) alone.push(await runtime.generate({ ...r, ignoreEos: true }));
    const together = await Promise.all(reqs.map((r) => runtime.generate({ ...r, ignoreEos: true })));
    for (let i = 0; i < reqs.length; i++) {
      expect(together[i].tokens, `sequence ${i}`).toEqual(alone[i].tokens);
      expect(together[i].tokens.length).toBe(reqs[i].maxTokens);
      expect(together[i].finishReason).toBe('length');
    }
    // More requests than slots: the extra ones queue and still match.
    const many = await Promise.all([...reqs, ...reqs].map((r) => runtime.generate({ ...r, ignoreEos: true })));
    many.forEach((m, i) => expect(m.tokens).toEqual(alone[i % reqs.length].tokens));
  });

  it('greedy bursts on the device give the tokens of step-by-step decoding, stops and limits included', async () => {
    const stepwise = new Generator(runtime.model, runtime.tokenizer, {
      maxBatch: 4,
      contextLength: 40,
      greedyBurst: 1,
    });
    const bursts = new Generator(runtime.model, runtime.tokenizer, { maxBatch: 4, contextLength: 40, greedyBurst: 5 });
    try {
      const greedy = { temperature: 0 };
      const base = await stepwise.generate({ prompt: [4, 5, 6], maxTokens: 12, sampling: greedy, ignoreEos: true });
      const reqs = [
        { prompt: [4, 5, 6], maxTokens: 12, sampling: greedy, ignoreEos: true },
        // Ends on an EOS id in the middle of a burst.
        { prompt: [4, 5, 6], maxTokens: 12, sampling: greedy, eosTokenIds: [base.tokens[6]] },
        // Budgets that are not multiples of the burst, and one that runs into the context (40).
        { prompt: [70, 71, 72, 73, 74, 75, 76], maxTokens: 3, sampling: greedy, ignoreEos: true },
        {
          prompt: Array.from({ length: 30 }, (_, i) => (i * 37) % 250),
          maxTokens: 50,
          sampling: greedy,
          ignoreEos: true,
        },
      ];
      const a = await Promise.all(reqs.map((r) => stepwise.generate(r)));
      const b = await Promise.all(reqs.map((r) => bursts.generate(r)));
      for (let i = 0; i < reqs.length; i++) {
        expect(b[i].tokens, `request ${i}`).toEqual(a[i].tokens);
        expect(b[i].text).toBe(a[i].text);
        expect(b[i].finishReason).toBe(a[i].finishReason);
      }
      expect(a[1].finishReason).toBe('stop');
      expect(a[1].tokens.length).toBe(base.tokens.indexOf(base.tokens[6]) + 1);
      expect(a[2].tokens.length).toBe(3);
      expect(a[3].tokens.length).toBe(10); // 30 prompt tokens + 10 = the context of 40
    } finally {
      stepwise.dispose();
      bursts.dispose();
    }
  });

  it('greedyDecode refuses to run past the context or outside the vocabulary, naming it', async () => {
    await runtime.generator.exclusive(async (cache) => {
      const batch = { ids: Uint32Array.of(3), positions: Uint32Array.of(90), slots: Uint32Array.of(0) };
      await expect(runtime.model.greedyDecode(batch, cache, 8)).rejects.toThrow(
        /8 steps from position 90 run past the context length \(96\)/,
      );
      const vocab = runtime.model.config.vocabSize;
      const outside = { ...batch, ids: Uint32Array.of(vocab), positions: Uint32Array.of(0) };
      await expect(runtime.model.greedyDecode(outside, cache, 2)).rejects.toThrow(
        new RegExp(`token id ${vocab} is outside the vocabulary \\(${vocab}\\)`),
      );
    });
  });

  it('seeded sampling is reproducible; top_k 1 is greedy; different seeds differ', async () => {
    const prompt = [9, 8, 7, 6];
    const greedy = await runtime.generate({ prompt, maxTokens: 10, sampling: { temperature: 0 }, ignoreEos: true });
    const topk1 = await runtime.generate({
      prompt,
      maxTokens: 10,
      sampling: { temperature: 1, topK: 1, seed: 5 },
      ignoreEos: true,
    });
    expect(topk1.tokens).toEqual(greedy.tokens);
    const a = await runtime.generate({
      prompt,
      maxTokens: 10,
      sampling: { temperature: 1.5, seed: 5 },
      ignoreEos: true,
    });
    const b = await runtime.generate({
      prompt,
      maxTokens: 10,
      sampling: { temperature: 1.5, seed: 5 },
      ignoreEos: true,
    });
    const c = await runtime.generate({
      prompt,
      maxTokens: 10,
      sampling: { temperature: 1.5, seed: 6 },
      ignoreEos: true,
    });
    expect(a.tokens).toEqual(b.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it('streams deltas that add up to the text, stops at EOS and at stop strings, and aborts', async () => {
    const prompt = [1, 2, 3];
    const deltas: string[] = [];
    const streamed = await runtime.generate({
      prompt,
      maxTokens: 20,
      sampling: { temperature: 0 },
      ignoreEos: true,
      onToken: (_id, d) => deltas.push(d),
    });
    expect(deltas.join('')).toBe(streamed.text);
    // Stop at the first token the greedy run produced as EOS: generation ends there, EOS not in text.
    const eosId = streamed.tokens[3];
    const eos = await runtime.generate({ prompt, maxTokens: 20, sampling: { temperature: 0 }, eosTokenIds: [eosId] });
    expect(eos.finishReason).toBe('stop');
    expect(eos.tokens[eos.tokens.length - 1]).toBe(eosId);
    expect(eos.tokens.length).toBe(streamed.tokens.indexOf(eosId) + 1);
    // A stop string taken from the middle of the greedy text cuts the text just before it.
    const text = streamed.text;
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
    const stopped = await runtime.generate({
      prompt,
      maxTokens: 20,
      sampling: { temperature: 0 },
      ignoreEos: true,
      stop: [stop],
    });
    expect(stopped.finishReason).toBe('stop');
    expect(stopped.text).toBe(text.slice(0, text.indexOf(stop)));
    const ctrl = new AbortController();
    let n = 0;
    const aborted = await runtime.generate({
      prompt,
      maxTokens: 50,
      sampling: { temperature: 0 },
      ignoreEos: true,
      signal: ctrl.signal,
      onToken: () => ++n === 3 && ctrl.abort(),
    });
    expect(aborted.finishReason).toBe('abort');
    expect(aborted.tokens.length).toBe(3);
  });

  it('rejects an empty prompt and a prompt longer than the context, clearly', async () => {
    await expect(runtime.generate({ prompt: [], maxTokens: 3 })).rejects.toThrow(/prompt is empty/);
    await expect(runtime.generate({ prompt: new Array(200).fill(1), maxTokens: 3 })).rejects.toThrow(
      /200 tokens; the context holds 96/,
    );
  });

  it('serves the OpenAI chat-completions shape, streaming and not, with usage', async () => {
    const engine = new LocalEngine(runtime);
    const req = { messages: [{ role: 'user' as const, content: 'What is 2 + 3?' }], max_tokens: 8, temperature: 0 };
    const full = (await engine.chat.completions.create(req)) as ChatCompletion;
    expect(full.object).toBe('chat.completion');
    expect(full.choices[0].message.role).toBe('assistant');
    expect(full.usage.prompt_tokens).toBe(runtime.promptIds(req.messages).length);
    expect(full.usage.completion_tokens).toBeGreaterThan(0);
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of (await engine.chat.completions.create({
      ...req,
      stream: true,
    })) as AsyncIterable<ChatCompletionChunk>)
      chunks.push(c);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(full.choices[0].message.content);
    expect(chunks[chunks.length - 1].usage).toEqual(full.usage);
    const n3 = (await engine.chat.completions.create({ ...req, n: 3, temperature: 1, seed: 1 })) as ChatCompletion;
    expect(n3.choices.length).toBe(3);
  });

  it('the CPU twin backend gives the same logits as WebGPU for the whole model', async () => {
    const cpu = await Runtime.load(dir, { backend: 'cpu', maxBatch: 1, contextLength: 32 });
    const ids = [3, 14, 15, 92, 65];
    expect(maxRelErr(await cpu.logits(ids), await runtime.logits(ids))).toBeLessThan(1e-5);
    // Greedy bursts on the CPU twin (argmaxRows there) give WebGPU's tokens.
    const req = { prompt: ids, maxTokens: 11, sampling: { temperature: 0 }, ignoreEos: true };
    expect((await cpu.generate(req)).tokens).toEqual((await runtime.generate(req)).tokens);
  });
});
