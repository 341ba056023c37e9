/**
 * The memory check before generation (Runtime.load, so `agentark generate`/`serve` and the app's
 * model load): the planner's estimate of weights + KV cache + a whole-context prefill is refused
 * over a budget with a message naming what to change, and a plan that fits loads, its estimate
 * within 15% of the peak measured while generating from a near-full context.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../../src/engine/local';
import { MemoryPlanError } from '../../src/model/memory';
import { writeTinyModel } from '../helpers/tiny-model';
import { agentark } from '../helpers/reference';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'agentark-genplan-'));
  writeTinyModel(dir, { arch: 'qwen2', tied: true, seed: 9 });
});

describe('generation memory plan', () => {
  it('a budget below the plan refuses the load, naming the batch, q4 and the context length', async () => {
    const err = await Runtime.load(dir, {
      contextLength: 64,
      maxBatch: 4,
      memoryBudgetBytes: 2 ** 16,
      quantCache: null,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MemoryPlanError);
    const message = (err as Error).message;
    expect(message).toMatch(/^f32 weights, KV cache 4 x 64 positions, prefill 64 tokens: needs about [\d.]+ MiB/);
    expect(message).toMatch(/above the budget of 0\.06 MiB/);
    expect(message).toContain('--quantize q4 (weights are f32)');
    expect(message).toContain('fewer sequences at once (--max-batch, now 4)');
    expect(message).toContain('a shorter context (--context-length, now 64)');
  });

  it('a plan within the budget loads; the estimate is within 15% of the measured generation peak', async () => {
    const contextLength = 48;
    const runtime = await Runtime.load(dir, { contextLength, maxBatch: 2, memoryBudgetBytes: 64 * 2 ** 20 });
    try {
      const plan = runtime.memoryPlan!;
      expect(plan.describe).toBe('f32 weights, KV cache 2 x 48 positions, prefill 48 tokens');
      expect(plan.peakBytes).toBeGreaterThan(plan.weightBytes);
      const prompt = Array.from({ length: contextLength - 2 }, (_, i) => (i * 31 + 7) % 300);
      const result = await runtime.generate({ prompt, maxTokens: 2, ignoreEos: true });
      expect(result.tokens.length).toBe(2);
      const measured = runtime.gpu!.memoryStats().peakBytes;
      console.log(`generation plan ${plan.peakBytes} B, measured ${measured} B`);
      expect(Math.abs(plan.peakBytes / measured - 1)).toBeLessThan(0.15);
    } finally {
      runtime.dispose();
    }
  });

  it('agentark generate --memory-budget too low: the planner message, exit 1, before any upload', () => {
    const r = agentark(['generate', '--model', dir, '--ids', '1,2,3', '--memory-budget', '0.01'], { allowFail: true });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /agentark generate: f32 weights, KV cache 1 x \d+ positions.*above the budget of 0\.01 MiB/,
    );
    expect(r.stderr).toContain('a shorter context (--context-length, now ');
    expect(r.stderr).not.toContain('--max-batch');
    expect(
      agentark(['generate', '--model', dir, '--ids', '1,2', '--memory-budget', '-1'], { allowFail: true }).stderr,
    ).toMatch(/--memory-budget/);
  });
});
