/**
 * The LM head + cross-entropy in row chunks and in vocabulary column chunks (online log-sum-exp)
 * equals the one-chunk computation, on the CPU twin and WebGPU, f32 and q4 heads, a head split in
 * row shards that the column chunks cross; chunked log-probs equal full-logits ones.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/formats/checkpoint';
import { Runtime } from '../../src/engine/local';
import { LlamaModel } from '../../src/model/llama';
import { chunkedLossHead, chunkedTokenLogprobs, lossChunks } from '../../src/model/loss-head';
import { GpuBackend } from '../../src/kernels/gpu';
import { CpuBackend } from '../../src/kernels/cpu';
import { IGNORE_INDEX } from '../../src/kernels/train-backend';
import { tokenLogprobs } from '../../src/engine/sampling';
import type { AnyBackend } from '../../src/kernels/backend';
import { writeTinyModel } from '../helpers/tiny-model';
import { testGpu } from '../helpers/gpu';
import { maxRelErr, randn } from '../helpers/rng';
import { Gpu } from '../../src/gpu/device';
import { quantizeWeights } from '../../src/quant/weights';

let gpu: Gpu;
let dir: string;
let dir700: string;
beforeAll(async () => {
  gpu = await testGpu();
  dir = mkdtempSync(path.join(tmpdir(), 'agentark-head-'));
  writeTinyModel(dir, { arch: 'llama', tied: false, seed: 4 });
  dir700 = mkdtempSync(path.join(tmpdir(), 'agentark-head700-'));
  writeTinyModel(dir700, { arch: 'llama', tied: false, seed: 5, vocab: 700 });
});

describe('chunked LM head loss', () => {
  it('chunk rows follow the byte budget', () => {
    expect(lossChunks(151936, 512)).toEqual({ rows: 128, cols: 32768 }); // 16 MiB / (32768 * 4 B)
    expect(lossChunks(151936, 512, 16 * 2 ** 20, 2 ** 22)).toEqual({ rows: 27, cols: 151936 });
    expect(lossChunks(320, 5)).toEqual({ rows: 5, cols: 320 });
    expect(lossChunks(10 ** 9, 5, 1024)).toEqual({ rows: 1, cols: 32768 });
    expect(() => lossChunks(320, 5, 1024, 100)).toThrow(/multiple of 128/);
  });

  for (const backendName of ['webgpu', 'cpu']) {
    it(`${backendName}: losses, d(hidden), head gradient and the policy-gradient path equal the one-chunk result`, async () => {
      const be: AnyBackend = backendName === 'cpu' ? new CpuBackend() : await GpuBackend.create(gpu, 'f32');
      const ops = be.createTrainOps();
      const ckpt = await loadCheckpoint(dir);
      const model = LlamaModel.fromTensors(be, ckpt.config, ckpt.tensors, 16);
      const { hiddenSize: H, vocabSize: V } = model.config;
      const n = 11;
      const normed = be.fromHost(randn(n * H, 3));
      const labels = Uint32Array.from({ length: n }, (_, i) => (i % 4 === 3 ? IGNORE_INDEX : (i * 37) % V));
      const run = async (chunkBytes: number, pg: boolean) => {
        const headGrad = be.fromHost(new Float32Array(V * H));
        const policyGradient = pg
          ? (logp: Float32Array) => logp.map((l, i) => (i % 2 ? 0.5 : -0.25) + 0 * l)
          : undefined;
        const r = await chunkedLossHead(be, ops, model as never, normed, labels, 0.1, {
          headGrad,
          chunkBytes,
          policyGradient,
        });
        return { losses: r.losses, dn: await be.toHost(r.dnormed, n * H), dw: await be.toHost(headGrad, V * H) };
      };
      for (const pg of [false, true]) {
        const whole = await run(n * V * 4, pg);
        const parts = await run(4 * V * 4, pg); // 4 rows a chunk: chunks of 4, 4, 3
        expect(maxRelErr(parts.losses, whole.losses)).toBeLessThan(1e-6);
        expect(maxRelErr(parts.dn, whole.dn)).toBeLessThan(1e-5);
        expect(maxRelErr(parts.dw, whole.dw)).toBeLessThan(1e-5);
        expect(whole.losses[3]).toBe(0);
        expect(whole.dn.some((v) => v !== 0)).toBe(true);
      }
    });
  }

  for (const [backendName, format] of [
    ['cpu', 'f32'],
    ['cpu', 'q4'],
    ['webgpu', 'f32'],
    ['webgpu', 'q4'],
  ] as const) {
    it(`${backendName}, ${format} head: vocabulary column chunks (700 in 384s and in 128s) equal the whole-vocabulary result`, async () => {
      // f32 on WebGPU: the head in 256-row shards, so a 384-column chunk spans two shards and the
      // next one starts inside a shard.
      const shardedGpu = backendName === 'webgpu' ? await Gpu.create({ weightShardBytes: 256 * 64 * 4 }) : null;
      try {
        const be: AnyBackend = shardedGpu ? await GpuBackend.create(shardedGpu, 'f32') : new CpuBackend();
        const ops = be.createTrainOps();
        const ckpt = await loadCheckpoint(dir700);
        const q = format === 'q4' ? await quantizeWeights(ckpt.config, ckpt.tensors, 'q4', { cache: null }) : null;
        const model = LlamaModel.fromTensors(be, ckpt.config, ckpt.tensors, 16, q?.matrices);
        const { hiddenSize: H, vocabSize: V } = model.config;
        expect(V).toBe(700);
        const n = 11;
        const hostNormed = randn(n * H, 7);
        const normed = be.fromHost(hostNormed);
        // Labels in every column chunk, the last (partial) one included, and ignored rows.
        const labels = Uint32Array.from({ length: n }, (_, i) => (i % 5 === 2 ? IGNORE_INDEX : (i * 251 + 699) % V));
        const run = async (chunkBytes: number, chunkColumns: number, pg: boolean) => {
          const headGrad = be.fromHost(new Float32Array(V * H).fill(0.01));
          const policyGradient = pg
            ? (logp: Float32Array) => logp.map((l, i) => (i % 3 ? 0.5 : -0.25) * (1 + l / 10))
            : undefined;
          const r = await chunkedLossHead(be, ops, model as never, normed, labels, 0.1, {
            headGrad,
            chunkBytes,
            chunkColumns,
            policyGradient,
          });
          const out = { losses: r.losses, dn: await be.toHost(r.dnormed, n * H), dw: await be.toHost(headGrad, V * H) };
          be.free(r.dnormed);
          be.free(headGrad);
          return out;
        };
        for (const pg of [false, true]) {
          const whole = await run(n * V * 4, 1024, pg); // one chunk of rows, the whole vocabulary
          expect(whole.losses[2]).toBe(0);
          expect(whole.losses.every((l, i) => i % 5 === 2 || l > 0)).toBe(true);
          for (const cols of [384, 128]) {
            const parts = await run(4 * cols * 4, cols, pg); // 4 rows a chunk: 4, 4, 3
            expect(maxRelErr(parts.losses, whole.losses)).toBeLessThan(2e-6);
            expect(maxRelErr(parts.dn, whole.dn)).toBeLessThan(1e-5);
            expect(maxRelErr(parts.dw, whole.dw)).toBeLessThan(1e-5);
          }
        }
        // Token log-probabilities (PRM features, RL reference) in column chunks.
        const ids = Array.from({ length: n }, (_, i) => (i * 97 + 650) % V);
        const lpWhole = await chunkedTokenLogprobs(be, ops, model as never, hostNormed, ids, n * V * 4, 1024);
        const lpParts = await chunkedTokenLogprobs(be, ops, model as never, hostNormed, ids, 3 * 128 * 4, 128);
        expect(lpWhole[0]).toBe(0);
        expect(lpWhole.subarray(1).every((l) => l < 0)).toBe(true);
        expect(maxRelErr(lpParts, lpWhole)).toBeLessThan(2e-6);
      } finally {
        shardedGpu?.destroy();
      }
    });
  }

  it('Runtime.tokenLogprobs (chunked) equals log-softmax of the full logits', async () => {
    const runtime = await Runtime.load(dir, { gpu, contextLength: 32, maxBatch: 1 });
    const ids = [3, 9, 27, 81, 243, 100, 5, 6, 7];
    const want = tokenLogprobs(await runtime.logits(ids), ids, runtime.model.config.vocabSize);
    const got = await runtime.tokenLogprobs(ids);
    expect(maxRelErr(got, want)).toBeLessThan(1e-5);
    runtime.generator.dispose();
  });
});
