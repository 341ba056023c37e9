/** The chat history fitted to the context (src/app/worker/chat.ts), on a stand-in runtime that counts one token per word. */
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/engine/local';
import type { ChatMessage } from '../../src/engine/types';
import { fitToContext } from '../../src/app/worker/chat';

/** A runtime whose chat template costs 2 tokens per message plus one per word. */
function runtime(contextLength: number): Runtime {
  const promptIds = (messages: ChatMessage[]) =>
    Array.from(
      { length: messages.reduce((a, m) => a + 2 + m.content.split(/\s+/).filter(Boolean).length, 0) },
      () => 1,
    );
  return { generator: { contextLength }, promptIds } as unknown as Runtime;
}

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');
const conversation = (turns: number): ChatMessage[] => [
  { role: 'system', content: words(8) },
  ...Array.from({ length: turns }, (_, i): ChatMessage[] => [
    { role: 'user', content: `q${i} ${words(9)}` },
    { role: 'assistant', content: `a${i} ${words(19)}` },
  ]).flat(),
  { role: 'user', content: `last ${words(9)}` },
];

describe('fitToContext', () => {
  it('keeps everything that fits, with room for the reply', () => {
    const msgs = conversation(2);
    const r = fitToContext(runtime(512), msgs, 64);
    expect(r.dropped).toBe(0);
    expect(r.messages).toEqual(msgs);
    expect(r.promptTokens).toBe(10 + 2 * (12 + 22) + 12);
  });

  it('drops the oldest whole turns first and keeps the system prompt and the last message', () => {
    const msgs = conversation(6); // 10 + 6·34 + 12 = 226 tokens
    const r = fitToContext(runtime(160), msgs, 64); // 160 − 40 (a quarter kept for the reply) = 120
    expect(r.promptTokens).toBeLessThanOrEqual(120);
    expect(r.messages[0]).toEqual(msgs[0]);
    expect(r.messages.at(-1)).toEqual(msgs.at(-1));
    expect(r.messages[1]!.role).toBe('user');
    expect(r.dropped % 2).toBe(0);
    expect(r.messages.slice(1)).toEqual(msgs.slice(1 + r.dropped));
    // As many recent turns as fit: one more would not.
    expect(r.messages.length).toBe(2 + 2 * 2 + 0);
  });

  it('says clearly what to do when even the last message does not fit', () => {
    const msgs: ChatMessage[] = [
      { role: 'system', content: words(50) },
      { role: 'user', content: words(60) },
    ];
    expect(() => fitToContext(runtime(128), msgs, 32)).toThrow(
      /take 114 tokens; the context holds 128, with 32 kept for the reply\. Shorten the message or the system prompt/,
    );
  });
});
