/** src/util: the one FNV hash, PRNG, AbortError and chat-completion helper the layers share. */
import { describe, expect, it } from 'vitest';
import { complete } from '../../src/engine/complete';
import type { ChatCompletion, ChatEngine } from '../../src/engine/types';
import { AbortError, isAbortError } from '../../src/util/abort';
import { fmix32, fnv1a } from '../../src/util/hash';
import { mulberry32 } from '../../src/util/random';

describe('util', () => {
  it('fnv1a matches the published 32-bit FNV-1a test vectors; fmix32 is murmur3 fmix32', () => {
    expect(fnv1a('')).toBe(0x811c9dc5);
    expect(fnv1a('a')).toBe(0xe40c292c);
    expect(fnv1a('foobar')).toBe(0xbf9cf968);
    expect(fnv1a('a', 0)).toBe(Math.imul(0x61, 0x01000193) >>> 0);
    expect(fmix32(0)).toBe(0);
    expect(fmix32(1)).toBe(0x514e28b7);
  });

  it('mulberry32 is seeded and in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(mulberry32(43)()).not.toBe(xs[0]);
  });

  it('AbortError is named like the DOM abort, and isAbortError recognises both', () => {
    const e = new AbortError('stopped');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('AbortError');
    expect(isAbortError(e)).toBe(true);
    expect(isAbortError(new DOMException('x', 'AbortError'))).toBe(true);
    expect(isAbortError(new Error('x'))).toBe(false);
    expect(isAbortError(null)).toBe(false);
  });

  it('complete(): first choice, usage and time; abort and an empty answer are clear errors', async () => {
    const reply = (over: Partial<ChatCompletion>): ChatEngine => ({
      chat: {
        completions: {
          create: (async () => ({
            id: 'x',
            object: 'chat.completion',
            created: 0,
            model: 'm',
            choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
            usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
            ...over,
          })) as unknown as ChatEngine['chat']['completions']['create'],
        },
      },
      models: async () => ['m'],
    });
    const r = await complete(reply({}), { messages: [{ role: 'user', content: 'q' }] });
    expect(r).toMatchObject({ text: 'hi', finishReason: 'stop', usage: { prompt_tokens: 3, completion_tokens: 1 } });
    expect(r.latencyMs).toBeGreaterThanOrEqual(0);
    await expect(complete(reply({ choices: [] }), { messages: [] }, { label: 'question 7' })).rejects.toThrow(
      'engine returned no choices for question 7',
    );
    const aborted = reply({
      choices: [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'abort' }],
    });
    await expect(complete(aborted, { messages: [] })).rejects.toBeInstanceOf(AbortError);
    const ac = new AbortController();
    ac.abort();
    await expect(complete(reply({}), { messages: [] }, { signal: ac.signal, label: 'question 7' })).rejects.toThrow(
      /completion for question 7 aborted/,
    );
  });
});
