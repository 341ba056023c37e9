/** The LM head + cross-entropy in row chunks equals the one-chunk computation; chunked log-probs equal full-logits ones. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/formats/checkpoint';
import { Runtime } from '../../src/engine/local';
import { LlamaModel } from '../../src/model/llama';
import { chunkedLossHead, lossChunkRows } from '../../src/model/loss-head';
import { GpuBackend } from '../../src/kernels/gpu';
import { CpuBackend } from '../../src/kernels/cpu';
import { IGNORE_INDEX } from '../../src/kernels/train-backend';
import { tokenLogprobs } from '../../src/engine/sampling';
import type { AnyBackend } from '../../src/kernels/backend';
import { writeTinyModel } from '../helpers/tiny-model';
import { testGpu } from '../helpers/gpu';
import { maxRelErr, randn } from '../helpers/rng';
import type { Gpu } from '../../src/gpu/device';

let gpu: Gpu;
let dir: string;
beforeAll(async () => {
  gpu = await testGpu();
  dir = mkdtempSync(path.join(tmpdir(), 'agentark-head-'));
  writeTinyModel(dir, { arch: 'llama', tied: false, seed: 4 });
});

describe('chunked LM head loss', () => {
  it('chunk rows follow the byte budget', () => {
    expect(lossChunkRows(151936, 512)).toBe(27); // 16 MiB / (151936 * 4 B)
    expect(lossChunkRows(320, 5)).toBe(5);
    expect(lossChunkRows(10 ** 9, 5)).toBe(1);
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

  it('Runtime.tokenLogprobs (chunked) equals log-softmax of the full logits', async () => {
    const runtime = await Runtime.load(dir, { gpu, contextLength: 32, maxBatch: 1 });
    const ids = [3, 9, 27, 81, 243, 100, 5, 6, 7];
    const want = tokenLogprobs(await runtime.logits(ids), ids, runtime.model.config.vocabSize);
    const got = await runtime.tokenLogprobs(ids);
    expect(maxRelErr(got, want)).toBeLessThan(1e-5);
    runtime.generator.dispose();
  });
});
