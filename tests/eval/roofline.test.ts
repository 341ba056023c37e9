/**
 * What the Benchmark page renders beside the speed tables: the roofline fractions (eval/roofline.ts)
 * and the rows of our runtime against onnxruntime-web (views/bench.ts peerRows), from reports built
 * here; and one real copy-bandwidth measurement on the test adapter.
 */
import { describe, expect, it } from 'vitest';
import { benchConfig, BENCH_SIZES, type SpeedReport } from '../../src/eval/speed';
import { decodeBytes, measureCopyBandwidth, prefillFlops, rooflineRows } from '../../src/eval/roofline';
import type { PeerResult } from '../../src/eval/ort-peer';
import { peerRows } from '../../src/app/views/bench';
import { randomInitTensors } from '../../src/train/init';
import { testGpu } from '../helpers/gpu';

const small = BENCH_SIZES[1];

describe('roofline', () => {
  it('decode bytes are every weight of the checkpoint once (plus the embedding row read) and the KV cache', () => {
    let params = 0;
    for (const t of randomInitTensors(benchConfig(small), 1).values()) params += t.shape.reduce((a, b) => a * b, 1);
    const kvDim = small.kvHeads * (small.hidden / small.heads);
    const position = 40;
    // The tied embedding is read twice: its row for the token and whole as the LM head.
    const expected = 4 * (params + small.hidden + small.layers * 2 * kvDim * (position + 2));
    expect(decodeBytes(small, position)).toBe(expected);
  });

  it('prefill FLOPs: 2 per weight per token, the LM head once, causal attention', () => {
    const s = { name: 'x', hidden: 8, layers: 1, heads: 2, kvHeads: 1, intermediate: 12, vocab: 10 };
    // q 8x8, k 4x8, v 4x8, o 8x8, gate/up 12x8, down 8x12 = 64+32+32+64+96+96+96 = 480 weights.
    const tokens = 3;
    const attention = 4 * 4 * 2 * (1 + 2 + 3);
    expect(prefillFlops(s, tokens)).toBe(2 * 480 * tokens + attention + 2 * 10 * 8);
  });

  it('rows: WebGPU models only, fractions of the best GEMM and of the copy bandwidth', () => {
    const report: SpeedReport = {
      adapter: 'test',
      kernels: [
        { kernel: 'matmul (gemv)', shape: '1x256x256', webgpuGflops: 9, cpuGflops: 1 },
        { kernel: 'matmul (gemm)', shape: '64x256x256', webgpuGflops: 2, cpuGflops: 1 },
        { kernel: 'matmul (gemm)', shape: '128x512x512', webgpuGflops: 4, cpuGflops: 1 },
      ],
      models: [
        {
          model: small.name,
          params: 0,
          backend: 'webgpu',
          prefillTokens: 64,
          prefillTokensPerS: 100,
          decodeTokensPerS: 10,
          decodeSteps: 16,
        },
        {
          model: small.name,
          params: 0,
          backend: 'cpu',
          prefillTokens: 64,
          prefillTokensPerS: 100,
          decodeTokensPerS: 10,
        },
      ],
      training: [],
      copyBandwidth: { bytes: 1, bytesPerS: 2e9 },
    };
    const rows = rooflineRows(report);
    expect(rows).toHaveLength(1);
    const [r] = rows;
    expect(r.bestGemmFlopsPerS).toBe(4e9); // GEMV results are not the prefill roofline
    expect(r.prefillFlopsPerS).toBeCloseTo((prefillFlops(small, 64) * 100) / 64, 0);
    expect(r.prefillFraction).toBeCloseTo(r.prefillFlopsPerS / 4e9, 12);
    expect(r.decodeBytesPerS).toBe(decodeBytes(small, 72) * 10);
    expect(r.decodeFraction).toBeCloseTo(r.decodeBytesPerS / 2e9, 12);
    const bare = rooflineRows({ ...report, kernels: [], copyBandwidth: undefined });
    expect(bare[0].prefillFraction).toBeNull();
    expect(bare[0].decodeFraction).toBeNull();
  });

  it('measures a copy bandwidth on this adapter', async () => {
    const bw = await measureCopyBandwidth(await testGpu(), 2 ** 20, 2);
    expect(bw.bytes).toBe(2 ** 20);
    expect(Number.isFinite(bw.bytesPerS) && bw.bytesPerS > 0).toBe(true);
  });
});

describe('ours beside onnxruntime-web: the page rows', () => {
  it('one prefill and one decode row per model, ratio = its time / ours', () => {
    const peer = {
      model: 'tiny-0.11M',
      prefillTokens: 32,
      ours: { prefillMs: 10, decodeMsPerToken: 2 },
      ort: { prefillMs: 30, decodeMsPerToken: 1 },
      prefillRatio: 3,
      decodeRatio: 0.5,
    } as PeerResult;
    expect(peerRows([peer])).toEqual([
      { model: 'tiny-0.11M', phase: 'prefill 32', unit: 'ms', ours: 10, ort: 30, ratio: 3 },
      { model: 'tiny-0.11M', phase: 'decode', unit: 'ms/token', ours: 2, ort: 1, ratio: 0.5 },
    ]);
  });
});
