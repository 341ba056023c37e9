/** --recompute: the same losses and gradients as keeping every activation, with a lower peak. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/formats/checkpoint';
import { PROJECTIONS, parseConfig } from '../../src/formats/config';
import { LlamaModel } from '../../src/model/llama';
import { GpuBackend } from '../../src/kernels/gpu';
import { CpuBackend } from '../../src/kernels/cpu';
import type { AnyBackend } from '../../src/kernels/backend';
import { estimatePeakBytes } from '../../src/model/memory';
import { syntheticConfigJson } from '../../src/model/synthetic';
import { quantizeWeights } from '../../src/quant/weights';
import { DEFAULT_TRAIN_OPTIONS, Trainer } from '../../src/train/trainer';
import { writeTinyModel } from '../helpers/tiny-model';
import { testGpu } from '../helpers/gpu';
import { maxRelErr } from '../helpers/rng';
import type { Gpu } from '../../src/gpu/device';

let gpu: Gpu;
let dir: string;
beforeAll(async () => {
  gpu = await testGpu();
  dir = mkdtempSync(path.join(tmpdir(), 'agentark-recompute-'));
  writeTinyModel(dir, { arch: 'qwen3', tied: false, seed: 12, layers: 3 });
});

const example = {
  inputIds: [5, 17, 99, 3, 250, 41, 7, 8, 120, 66, 2, 9, 10],
  labels: [-100, -100, 99, 3, 250, 41, 7, 8, 120, 66, 2, 9, 10],
};

async function twoSteps(be: AnyBackend, mode: 'lora' | 'full', recompute: boolean, quantized: boolean) {
  const ckpt = await loadCheckpoint(dir);
  const q = quantized ? await quantizeWeights(ckpt.config, ckpt.tensors, 'q4', { cache: null }) : null;
  const model = LlamaModel.fromTensors(be, ckpt.config, ckpt.tensors, 32, q?.matrices);
  const trainer = new Trainer(model, [example, example], {
    ...DEFAULT_TRAIN_OPTIONS,
    mode,
    rank: 4,
    alpha: 8,
    dropout: mode === 'lora' ? 0.1 : 0,
    targets: [...PROJECTIONS],
    optimizer: 'sgd',
    lr: 0.1,
    steps: 2,
    batchSize: 2,
    recompute,
  });
  const losses = [(await trainer.step()).loss, (await trainer.step()).loss];
  const snap = await trainer.snapshot();
  trainer.dispose();
  return { losses, snap };
}

describe('--recompute', () => {
  for (const [label, mode, quantized] of [
    ['QLoRA q4 with LoRA dropout', 'lora', true],
    ['full fine-tuning', 'full', false],
  ] as const) {
    it(`${label}: same losses and weights after two steps as without recomputation (WebGPU, CPU twin)`, async () => {
      for (const be of [await GpuBackend.create(gpu, 'f32'), new CpuBackend()] as AnyBackend[]) {
        const keep = await twoSteps(be, mode, false, quantized);
        const again = await twoSteps(be, mode, true, quantized);
        expect(maxRelErr(Float32Array.from(again.losses), Float32Array.from(keep.losses))).toBeLessThan(1e-6);
        for (const [name, v] of keep.snap)
          expect(maxRelErr(again.snap.get(name)!, v), `${be.name} ${name}`).toBeLessThan(1e-5);
      }
    });
  }

  it("estimates: Qwen2.5-0.5B's config, 24 layers, q4, QLoRA rank 16 on all linear layers, 1 x 512", async () => {
    const config = parseConfig(syntheticConfigJson('qwen2.5-0.5b'));
    const train = { batch: 1, seqLen: 512, rank: 16, targets: [...PROJECTIONS] };
    const keep = await estimatePeakBytes(config, { weights: 'q4', train });
    const recompute = await estimatePeakBytes(config, { weights: 'q4', train: { ...train, recompute: true } });
    console.log(
      `24 layers q4 QLoRA 1x512: peak ${(keep.peakBytes / 2 ** 20).toFixed(0)} MiB, with --recompute ${(recompute.peakBytes / 2 ** 20).toFixed(0)} MiB; ` +
        `weights ${(keep.weightBytes / 2 ** 20).toFixed(0)} MiB`,
    );
    expect(recompute.peakBytes).toBeLessThan(keep.peakBytes);
    expect(recompute.peakBytes).toBeLessThanOrEqual(1.2 * 2 ** 30);
    expect(keep.weightBytes).toBeLessThanOrEqual(300 * 2 ** 20);
  });
});
