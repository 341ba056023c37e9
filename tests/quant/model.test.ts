/**
 * q8/q4 models end to end: logits and greedy tokens of the quantized model equal those of an f32
 * model holding the dequantized weights; the second load reads the cache instead of quantizing.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, type Checkpoint } from '../../src/formats/checkpoint';
import { Runtime } from '../../src/engine/local';
import { nodeQuantCache, type QuantCache } from '../../src/quant/cache';
import { dequantize, type QuantFormat } from '../../src/quant/quantize';
import { quantizedTensorNames, quantizeWeights } from '../../src/quant/weights';
import { writeTinyModel, type TinyModelOptions } from '../helpers/tiny-model';
import { testGpu } from '../helpers/gpu';
import { maxRelErr } from '../helpers/rng';
import type { Gpu } from '../../src/gpu/device';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

/** The checkpoint with every quantized tensor replaced by its dequantized f32 values. */
async function dequantizedCheckpoint(dir: string, format: QuantFormat): Promise<Checkpoint> {
  const ckpt = await loadCheckpoint(dir);
  const q = await quantizeWeights(ckpt.config, ckpt.tensors, format, { cache: null });
  for (const name of quantizedTensorNames(ckpt.config)) {
    const m = q.matrices.get(name)!;
    ckpt.tensors.set(name, { name, dtype: 'F32', shape: [m.rows, m.cols], data: new Uint8Array(dequantize(m).buffer) });
  }
  return ckpt;
}

const prompt = [5, 17, 240, 33, 8, 101, 64];

const models: [string, TinyModelOptions][] = [
  // hidden 72 and intermediate 100: rows whose last group of 32 is short.
  [
    'qwen2 tied, hidden 72',
    { arch: 'qwen2', dtype: 'BF16', tied: true, seed: 5, hidden: 72, heads: 4, kvHeads: 2, intermediate: 100 },
  ],
  ['llama untied lm_head', { arch: 'llama', dtype: 'F32', tied: false, seed: 6 }],
];

describe('quantized models: logits and tokens vs the dequantized-f32 model', () => {
  for (const [label, opts] of models) {
    for (const format of ['q8', 'q4'] as QuantFormat[]) {
      it(`${format}, ${label}: WebGPU and CPU twin`, async () => {
        const dir = mkdtempSync(path.join(tmpdir(), 'agentark-quant-'));
        writeTinyModel(dir, opts);
        const cache = await nodeQuantCache(path.join(dir, 'qcache'));
        const ref = await Runtime.fromCheckpoint(await dequantizedCheckpoint(dir, format), {
          gpu,
          dtype: 'f32',
          contextLength: 32,
          maxBatch: 1,
        });
        const quant = await Runtime.fromCheckpoint(await loadCheckpoint(dir), {
          gpu,
          quantize: format,
          quantCache: cache,
          contextLength: 32,
          maxBatch: 1,
        });
        const quantCpu = await Runtime.fromCheckpoint(await loadCheckpoint(dir), {
          backend: 'cpu',
          quantize: format,
          quantCache: cache,
          contextLength: 32,
          maxBatch: 1,
        });
        expect(quant.describeBackend()).toContain(`${format} weights`);
        const want = await ref.logits(prompt);
        const V = ref.model.config.vocabSize;
        const got = await quant.logits(prompt);
        const gotCpu = await quantCpu.logits(prompt);
        for (let t = 0; t < prompt.length; t++) {
          const row = want.subarray(t * V, (t + 1) * V);
          expect(maxRelErr(got.subarray(t * V, (t + 1) * V), row)).toBeLessThan(1e-3);
          expect(maxRelErr(gotCpu.subarray(t * V, (t + 1) * V), row)).toBeLessThan(1e-3);
        }
        const greedy = { prompt, maxTokens: 8, sampling: { temperature: 0 }, stop: [], ignoreEos: true };
        const a = await ref.generate(greedy);
        const b = await quant.generate(greedy);
        expect(b.tokens).toEqual(a.tokens);
        // The quantized weights were written once and read back by the CPU load.
        expect(readdirSync(path.join(dir, 'qcache')).filter((f) => f.endsWith('.bin'))).toHaveLength(1);
        for (const r of [ref, quant, quantCpu]) {
          r.generator.dispose();
          r.model.dispose();
        }
      });
    }
  }

  it('a second load reads the cache (no quantization) and gives the same matrices', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-quant-'));
    writeTinyModel(dir, { arch: 'qwen2', dtype: 'F16', tied: true, seed: 9 });
    let puts = 0;
    const disk = await nodeQuantCache(path.join(dir, 'qcache'));
    const cache: QuantCache = { where: disk.where, get: (k) => disk.get(k), put: (k, d) => (puts++, disk.put(k, d)) };
    const ckpt = await loadCheckpoint(dir);
    const first = await quantizeWeights(ckpt.config, ckpt.tensors, 'q4', { cache });
    const second = await quantizeWeights(ckpt.config, ckpt.tensors, 'q4', { cache });
    expect([first.fromCache, second.fromCache, puts]).toEqual([false, true, 1]);
    for (const [name, m] of first.matrices) {
      const n = second.matrices.get(name)!;
      expect(Array.from(n.quants)).toEqual(Array.from(m.quants));
      expect(Array.from(n.scales)).toEqual(Array.from(m.scales));
    }
    // Another format, or changed weights, is another key.
    expect((await quantizeWeights(ckpt.config, ckpt.tensors, 'q8', { cache })).fromCache).toBe(false);
    const t = ckpt.tensors.get('model.layers.0.mlp.up_proj.weight')!;
    t.data[0] ^= 1;
    expect((await quantizeWeights(ckpt.config, ckpt.tensors, 'q4', { cache })).fromCache).toBe(false);
  });

  it('full fine-tuning of a quantized model is refused with a clear message', async () => {
    const { CpuBackend } = await import('../../src/kernels/cpu');
    const be = new CpuBackend();
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-quant-'));
    writeTinyModel(dir, { arch: 'qwen2', seed: 2 });
    const ckpt = await loadCheckpoint(dir);
    const q = await quantizeWeights(ckpt.config, ckpt.tensors, 'q8', { cache: null });
    expect(() => be.weightAsTensor(be.quantizedWeight('w', q.matrices.get('model.embed_tokens.weight')!))).toThrow(
      /frozen.*LoRA/,
    );
  });
});
