/**
 * One forward for inference and training: recording activations must not change what the forward
 * computes, and must keep each layer's tensors as that layer left them.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/formats/checkpoint';
import { CpuBackend } from '../../src/kernels/cpu';
import { GpuBackend } from '../../src/kernels/gpu';
import type { Backend, WeightShape } from '../../src/kernels/backend';
import { Activations, LlamaModel, type AdapterWeights } from '../../src/model/llama';
import { writeTinyModel, type TinyArch } from '../helpers/tiny-model';
import { testGpu } from '../helpers/gpu';
import { maxRelErr, randn } from '../helpers/rng';

async function check<T, W extends WeightShape, I>(backend: Backend<T, W, I>, arch: TinyArch): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentark-record-'));
  writeTinyModel(dir, { arch, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 40, vocab: 320 });
  const ckpt = await loadCheckpoint(dir);
  const model = LlamaModel.fromTensors(backend, ckpt.config, ckpt.tensors, 16);
  const c = model.config;
  // An adapter on q and down, so the recorded LoRA path is exercised too.
  const adapter: AdapterWeights<W> = new Map();
  for (const [proj, w] of [
    ['q_proj', model.layers[1].q],
    ['down_proj', model.layers[0].down],
  ] as const) {
    const layer = proj === 'q_proj' ? 1 : 0;
    adapter.set(`${layer}.${proj}`, {
      a: backend.weight('a', randn(4 * w.cols, 1, 0.3), 4, w.cols),
      b: backend.weight('b', randn(w.rows * 4, 2, 0.3), w.rows, 4),
      rank: 4,
      scale: 2,
    });
  }
  model.setAdapter(adapter);
  const n = 10;
  const batch = {
    ids: Uint32Array.from({ length: n }, (_, i) => (i * 37 + 5) % c.vocabSize),
    positions: Uint32Array.from({ length: n }, (_, i) => i % 5),
    slots: Uint32Array.from({ length: n }, (_, i) => Math.floor(i / 5)),
    logitRows: 'all' as const,
  };
  const plainCache = model.createCache(2, 5);
  const plain = await model.forward(batch, plainCache);
  const recordedCache = model.createCache(2, 5);
  const acts = new Activations<T, I>();
  model.forwardOnDevice(batch, recordedCache, acts);
  const rec = acts.recorded();
  const recorded = await backend.toHost(rec.output, n * c.vocabSize);
  expect(maxRelErr(recorded, plain)).toBeLessThan(1e-6);
  expect(acts.layers.length).toBe(c.numLayers);
  // The residual stream is kept per layer: layer 1 starts from what layer 0 ended with, which is
  // x2 plus the MLP branch, not the embedding overwritten in place.
  const x0 = await backend.toHost(acts.layers[0].xIn, n * c.hiddenSize);
  const x1 = await backend.toHost(acts.layers[1].xIn, n * c.hiddenSize);
  const table = await backend.toHost(backend.weightAsTensor(model.embed), c.vocabSize * c.hiddenSize);
  const row = batch.ids[3];
  expect(Array.from(x0.subarray(3 * c.hiddenSize, 4 * c.hiddenSize))).toEqual(
    Array.from(table.subarray(row * c.hiddenSize, (row + 1) * c.hiddenSize)),
  );
  expect(maxRelErr(x1, x0)).toBeGreaterThan(1e-3);
  // Only the adapted projections recorded LoRA activations; Qwen3 keeps q and k before their norms.
  expect([...acts.layers[0].lora.keys()]).toEqual(['down_proj']);
  expect([...acts.layers[1].lora.keys()]).toEqual(['q_proj']);
  expect(acts.layers[0].qRaw !== null).toBe(c.qkNorm);
  acts.free(backend);
  expect(() => acts.recorded()).toThrow('no forward pass was recorded');
  model.freeCache(plainCache);
  model.freeCache(recordedCache);
}

describe('LlamaModel.forwardOnDevice with an activation recorder', () => {
  for (const arch of ['llama', 'qwen3'] as const) {
    it(`${arch}: the CPU twin computes the same logits with and without recording`, async () => {
      await check(new CpuBackend(), arch);
    });
    it(`${arch}: WebGPU computes the same logits with and without recording`, async () => {
      await check(await GpuBackend.create(await testGpu(), 'f32'), arch);
    });
  }
});
