/**
 * The memory planner against measured peaks: the GPU layer's allocatedBytes high-water mark of a
 * real QLoRA step (fresh device) is within 15% of estimatePeakBytes for the same plan; and the
 * planner refuses a plan over budget naming what to change.
 */
import { describe, expect, it } from 'vitest';
import { PROJECTIONS, parseConfig } from '../../src/formats/config';
import { Gpu } from '../../src/gpu/device';
import { GpuBackend } from '../../src/kernels/gpu';
import { LlamaModel } from '../../src/model/llama';
import { checkMemoryPlan, estimatePeakBytes, type MemoryPlanOptions } from '../../src/model/memory';
import { syntheticConfigJson, syntheticTensors } from '../../src/model/synthetic';
import { quantizeWeights } from '../../src/quant/weights';
import { DEFAULT_TRAIN_OPTIONS, Trainer } from '../../src/train/trainer';
import { tinyModelConfig } from '../helpers/tiny-model';

const MiB = 2 ** 20;

/** Peak GPU bytes of one QLoRA step on a fresh device, measured by the GPU layer. */
async function measure(configJson: Record<string, unknown>, plan: MemoryPlanOptions): Promise<number> {
  const config = parseConfig(configJson);
  const t = plan.train!;
  const tensors = syntheticTensors(config, 3);
  const q =
    plan.weights === 'q8' || plan.weights === 'q4'
      ? await quantizeWeights(config, tensors, plan.weights, { cache: null })
      : null;
  const gpu = await Gpu.create();
  try {
    const be = await GpuBackend.create(gpu, 'f32');
    const model = LlamaModel.fromTensors(be, config, tensors, t.seqLen, q?.matrices);
    tensors.clear();
    const ids = Array.from({ length: t.seqLen }, (_, i) => (i * 7919) % config.vocabSize);
    const trainer = new Trainer(model, [{ inputIds: ids, labels: ids }], {
      ...DEFAULT_TRAIN_OPTIONS,
      rank: t.rank!,
      targets: t.targets!,
      batchSize: t.batch,
      steps: 1,
      recompute: t.recompute,
    });
    const micro = {
      inputIds: Uint32Array.from({ length: t.batch * t.seqLen }, (_, i) => ids[i % t.seqLen]),
      labels: Int32Array.from({ length: t.batch * t.seqLen }, (_, i) => ids[i % t.seqLen]),
      batch: t.batch,
      seqLen: t.seqLen,
    };
    await trainer.stepOn([micro]);
    return gpu.memoryStats().peakBytes;
  } finally {
    gpu.destroy();
  }
}

describe('memory planner', () => {
  const tiny = tinyModelConfig({
    arch: 'qwen2',
    tied: true,
    hidden: 96,
    heads: 4,
    kvHeads: 2,
    intermediate: 160,
    layers: 3,
    vocab: 2000,
  });
  for (const weights of ['q4', 'f32'] as const) {
    for (const recompute of [false, true]) {
      it(
        `estimate within 15% of the measured peak: tiny qwen2, ${weights}, ` +
          `batch 2 x 40, rank 8 on all linear layers${recompute ? ', --recompute' : ''}`,
        async () => {
          const plan: MemoryPlanOptions = {
            weights,
            train: { batch: 2, seqLen: 40, rank: 8, targets: [...PROJECTIONS], recompute },
          };
          const est = await estimatePeakBytes(parseConfig(tiny), plan);
          const measured = await measure(tiny, plan);
          console.log(
            `tiny ${weights}: estimated ${est.peakBytes} B, measured ${measured} B (${((est.peakBytes / measured - 1) * 100).toFixed(1)}%)`,
          );
          expect(Math.abs(est.peakBytes / measured - 1)).toBeLessThan(0.15);
        },
      );
    }
  }

  it("Qwen2.5-0.5B's config at 2 layers, q4, QLoRA rank 16 on all linear layers, batch 1 x 128: estimate within 15%, peak <= 256 MiB", async () => {
    const json = syntheticConfigJson('qwen2.5-0.5b', 2);
    const plan: MemoryPlanOptions = {
      weights: 'q4',
      train: { batch: 1, seqLen: 128, rank: 16, targets: [...PROJECTIONS] },
    };
    const est = await estimatePeakBytes(parseConfig(json), plan);
    const measured = await measure(json, plan);
    console.log(
      `qwen2.5-0.5b x2 q4: estimated ${(est.peakBytes / MiB).toFixed(1)} MiB, measured ${(measured / MiB).toFixed(1)} MiB; ` +
        `weights ${(est.weightBytes / MiB).toFixed(1)} MiB`,
    );
    expect(Math.abs(est.peakBytes / measured - 1)).toBeLessThan(0.15);
    expect(measured).toBeLessThanOrEqual(256 * MiB);
  }, 900_000);

  it('refuses a plan over budget, naming what to change', async () => {
    const config = parseConfig(syntheticConfigJson('qwen2.5-0.5b', 24));
    const plan: MemoryPlanOptions = {
      weights: 'f16',
      train: { batch: 4, seqLen: 512, rank: 16, targets: [...PROJECTIONS] },
    };
    const est = await estimatePeakBytes(config, plan);
    expect(est.weightBytes).toBeGreaterThan(900 * MiB);
    expect(() =>
      checkMemoryPlan(
        est,
        { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 31, budgetBytes: 1024 * MiB },
        plan,
      ),
    ).toThrow(/above the budget of 1024 MiB.*smaller --batch.*--recompute.*--quantize q4/);
    const q4 = await estimatePeakBytes(config, { weights: 'q4', contextLength: 2048 });
    expect(q4.weightBytes).toBeLessThan(300 * MiB);
    expect(() =>
      checkMemoryPlan(
        q4,
        { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 31, budgetBytes: 1024 * MiB },
        { weights: 'q4' },
      ),
    ).not.toThrow();
  });
});
