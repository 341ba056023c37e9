/**
 * The Distil & train page's memory plan (src/app/train-plan.ts): the planner's estimate of a LoRA
 * step on the loaded model plus its chat KV cache, in words when it fits, the planner's message
 * naming what to change when it does not.
 */
import { describe, expect, it } from 'vitest';
import { PROJECTIONS, parseConfig } from '../../src/formats/config';
import { estimatePeakBytes } from '../../src/model/memory';
import { syntheticConfigJson } from '../../src/model/synthetic';
import { kvCacheBytes, planTraining } from '../../src/app/train-plan';
import { tinyModelConfig } from '../helpers/tiny-model';

const MiB = 2 ** 20;
const roomy = { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 31 };
const settings = { rank: 8, targets: ['q_proj', 'v_proj'] as const, dropout: 0, batchSize: 2, recompute: false };

describe('training memory plan', () => {
  const config = parseConfig(tinyModelConfig({ arch: 'qwen2', layers: 3, vocab: 2000 }));

  it('fits: the step estimate plus the chat KV cache, in words', async () => {
    const input = {
      config,
      weights: 'f32' as const,
      contextLength: 64,
      cacheSlots: 4,
      seqLen: 40,
      settings: { ...settings, targets: [...settings.targets] },
      limits: roomy,
    };
    const plan = await planTraining(input);
    const step = await estimatePeakBytes(config, {
      weights: 'f32',
      contextLength: 64,
      train: { batch: 2, seqLen: 40, rank: 8, targets: ['q_proj', 'v_proj'], dropout: 0, recompute: false },
    });
    const cache = kvCacheBytes(config, 4, 64);
    expect(cache).toBeGreaterThanOrEqual(2 * 3 * 4 * 64 * config.numKvHeads * config.headDim * 4);
    expect(plan.fits).toBe(true);
    expect(plan.peakBytes).toBe(step.peakBytes + cache);
    expect(plan.text).toMatch(
      /^Memory plan: about [\d.]+ MB of GPU memory at the peak of a step \(weights [\d.]+ KB, chat KV cache [\d.]+ KB\) — /,
    );
    expect(plan.text).toMatch(/ — f32 weights, LoRA rank 8 on q_proj,v_proj, batch 2 x 40 tokens\.$/);
  });

  it('does not fit: the planner message naming the batch, --recompute and q4', async () => {
    const input = {
      config,
      weights: 'f32' as const,
      contextLength: 64,
      cacheSlots: 4,
      seqLen: 40,
      settings: { ...settings, targets: [...settings.targets] },
    };
    const overBudget = await planTraining({ ...input, limits: { ...roomy, budgetBytes: 1 * MiB } });
    expect(overBudget.fits).toBe(false);
    expect(overBudget.text).toMatch(
      /above the budget of 1\.00 MiB\. Try a smaller --batch \(now 2\), or --recompute.*--quantize q4/,
    );
    const smallBuffers = await planTraining({
      ...input,
      limits: { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 16 * 1024 },
    });
    expect(smallBuffers.fits).toBe(false);
    expect(smallBuffers.text).toMatch(/one activation buffer needs .* above this adapter's largest buffer/);
  });

  it("recompute lowers the plan of Qwen2.5-0.5B's config (24 layers, q4, rank 16 on all linear layers, 1 x 512)", async () => {
    const qwen = parseConfig(syntheticConfigJson('qwen2.5-0.5b', 24));
    const base = {
      config: qwen,
      weights: 'q4' as const,
      contextLength: 512,
      cacheSlots: 1,
      seqLen: 512,
      limits: roomy,
    };
    const all = { rank: 16, targets: [...PROJECTIONS], dropout: 0, batchSize: 1 };
    const plain = await planTraining({ ...base, settings: { ...all, recompute: false } });
    const recompute = await planTraining({ ...base, settings: { ...all, recompute: true } });
    expect(recompute.text).toContain('batch 1 x 512 tokens, --recompute');
    expect(recompute.peakBytes).toBeLessThan(plain.peakBytes / 2);
    console.log(
      `qwen2.5-0.5b q4 1x512 plan: ${(plain.peakBytes / MiB).toFixed(0)} MiB, with recompute ${(recompute.peakBytes / MiB).toFixed(0)} MiB`,
    );
  });
});
