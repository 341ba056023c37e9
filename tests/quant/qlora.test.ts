/**
 * QLoRA: LoRA on a q8/q4 frozen base. The step on the quantized base equals the step on an f32
 * model holding the dequantized weights (the gradient flows through matmul_q_backward); the CLI
 * writes an ordinary PEFT adapter, and `merge --quantize` folds it into the dequantized base.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, toFloat32 } from '../../src/formats/checkpoint';
import { loadPeftAdapter } from '../../src/formats/peft';
import { Runtime } from '../../src/engine/local';
import { LlamaModel } from '../../src/model/llama';
import { GpuBackend } from '../../src/kernels/gpu';
import { CpuBackend } from '../../src/kernels/cpu';
import type { AnyBackend } from '../../src/kernels/backend';
import { DEFAULT_TRAIN_OPTIONS, Trainer } from '../../src/train/trainer';
import { dequantizeInto, quantizeWeights } from '../../src/quant/weights';
import type { QuantFormat } from '../../src/quant/quantize';
import { writeTinyModel } from '../helpers/tiny-model';
import { agentark } from '../helpers/reference';
import { testGpu } from '../helpers/gpu';
import { maxRelErr } from '../helpers/rng';
import type { Gpu } from '../../src/gpu/device';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
  process.env.AGENTARK_CACHE_DIR = mkdtempSync(path.join(tmpdir(), 'agentark-qcache-'));
});

const example = {
  inputIds: [5, 17, 99, 3, 250, 41, 7, 8, 120, 66, 2],
  labels: [-100, -100, -100, 3, 250, 41, 7, 8, 120, 66, 2],
};

async function trainedAdapter(dir: string, backend: AnyBackend, format: QuantFormat, quantizedBase: boolean) {
  const ckpt = await loadCheckpoint(dir);
  const q = await quantizeWeights(ckpt.config, ckpt.tensors, format, { cache: null });
  if (!quantizedBase) dequantizeInto(ckpt.tensors, q.matrices, 'F32');
  const model = LlamaModel.fromTensors(backend, ckpt.config, ckpt.tensors, 32, quantizedBase ? q.matrices : undefined);
  const trainer = new Trainer(model, [example], {
    ...DEFAULT_TRAIN_OPTIONS,
    rank: 4,
    alpha: 8,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    optimizer: 'sgd',
    lr: 0.5,
    steps: 2,
    batchSize: 1,
  });
  const reports = [await trainer.step(), await trainer.step()];
  const adapter = await trainer.adapter();
  trainer.dispose();
  model.dispose();
  return { adapter, losses: reports.map((r) => r.loss) };
}

describe('QLoRA', () => {
  for (const format of ['q8', 'q4'] as QuantFormat[]) {
    it(`${format}: two LoRA steps on the quantized base equal those on the dequantized f32 base (WebGPU and CPU twin)`, async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'agentark-qlora-'));
      writeTinyModel(dir, {
        arch: 'qwen2',
        dtype: 'BF16',
        tied: true,
        seed: 31,
        hidden: 72,
        heads: 4,
        kvHeads: 2,
        intermediate: 100,
      });
      const g = await GpuBackend.create(gpu, 'f32');
      const ref = await trainedAdapter(dir, g, format, false);
      for (const be of [g, new CpuBackend()]) {
        const got = await trainedAdapter(dir, be, format, true);
        expect(maxRelErr(Float32Array.from(got.losses), Float32Array.from(ref.losses))).toBeLessThan(1e-4);
        for (const p of got.adapter.pairs) {
          const r = ref.adapter.pairs.find((x) => x.layer === p.layer && x.module === p.module)!;
          expect(maxRelErr(p.a.data, r.a.data), `${be.name} ${p.layer}.${p.module}.A`).toBeLessThan(1e-3);
          expect(maxRelErr(p.b.data, r.b.data), `${be.name} ${p.layer}.${p.module}.B`).toBeLessThan(1e-3);
        }
        // B starts at zero: the steps moved it, so the comparison is not between untouched copies.
        expect(got.adapter.pairs.some((p) => p.b.data.some((v) => v !== 0))).toBe(true);
      }
    });
  }

  it('agentark train --quantize q4 writes a PEFT adapter; merge --quantize q4 folds it into the dequantized base', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-qlora-cli-'));
    writeTinyModel(dir, { arch: 'qwen2', dtype: 'BF16', tied: true, seed: 32 });
    const data = path.join(dir, 'rows.jsonl');
    writeFileSync(data, `${JSON.stringify({ input_ids: example.inputIds, labels: example.labels })}\n`);
    const out = path.join(dir, 'adapter');
    const refused = agentark(
      [
        'train',
        '--model',
        dir,
        '--data',
        data,
        '--out',
        path.join(dir, 'y'),
        '--quantize',
        'q4',
        '--memory-budget',
        '0.01',
      ],
      { allowFail: true },
    );
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/above the budget of 0.01 MiB\. Try .*--recompute/);
    const train = agentark([
      'train',
      '--model',
      dir,
      '--data',
      data,
      '--out',
      out,
      '--quantize',
      'q4',
      '--recompute',
      '--steps',
      '3',
      '--batch',
      '1',
      '--lr',
      '0.01',
      '--targets',
      'q_proj,v_proj,down_proj',
      '--quiet',
    ]);
    const summary = JSON.parse(train.stdout.trim().split('\n').pop()!);
    expect(summary.quantize).toBe('q4');
    expect(summary.finalLoss).toBeLessThan(summary.firstLoss);
    const adapter = await loadPeftAdapter(out);
    expect(adapter.config.targetModules.sort()).toEqual(['down_proj', 'q_proj', 'v_proj']);
    expect(
      agentark(
        ['train', '--model', dir, '--data', data, '--out', path.join(dir, 'x'), '--quantize', 'q4', '--mode', 'full'],
        { allowFail: true },
      ).stderr,
    ).toMatch(/needs --mode lora/);

    const merged = path.join(dir, 'merged');
    const m = JSON.parse(
      agentark(['merge', '--model', dir, '--adapter', out, '--out', merged, '--quantize', 'q4']).stdout.trim(),
    );
    expect(m).toMatchObject({ base: 'q4 dequantized', dtype: 'f32' });
    const mergedCkpt = await loadCheckpoint(merged);
    expect(toFloat32(mergedCkpt.tensors.get('model.layers.0.self_attn.q_proj.weight')!).length).toBeGreaterThan(0);
    expect(mergedCkpt.tensors.get('model.layers.0.self_attn.q_proj.weight')!.dtype).toBe('F32');
    // The merged f32 model computes what the q4 base plus the adapter computes.
    const a = await Runtime.fromCheckpoint(mergedCkpt, { gpu, dtype: 'f32', contextLength: 32, maxBatch: 1 });
    const b = await Runtime.fromCheckpoint(await loadCheckpoint(dir), {
      gpu,
      quantize: 'q4',
      quantCache: null,
      adapter: out,
      contextLength: 32,
      maxBatch: 1,
    });
    expect(maxRelErr(await b.logits(example.inputIds), await a.logits(example.inputIds))).toBeLessThan(1e-3);
    for (const r of [a, b]) r.generator.dispose();
  });
});
