/**
 * `agentark export --format onnx`: the exported decoder, run by onnxruntime-web (wasm EP) in Node,
 * gives our runtime's logits within 1e-3 on a prompt and on cached decode steps, for each
 * architecture, with a merged LoRA adapter and with external data.
 */
import { mkdtempSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint, readModelSideFiles } from '../../src/formats/checkpoint';
import { openSource } from '../../src/formats/source';
import { CpuBackend } from '../../src/kernels/cpu';
import { LlamaModel } from '../../src/model/llama';
import { uploadAdapter } from '../../src/engine/adapters';
import { onnxExportFiles, writeExport } from '../../src/export/onnx';
import { OrtDecoder } from '../../src/export/ort';
import { buildDecoderGraph, ONNX_OPSETS } from '../../src/export/onnx-decoder';
import type { PeftAdapter } from '../../src/formats/peft';
import { writeTinyModel, type TinyModelOptions } from '../helpers/tiny-model';
import { randomPeftAdapter } from '../helpers/peft-fixture';
import { agentark } from '../helpers/reference';

const PROMPT = [7, 19, 250, 3, 88, 41, 120, 9];
const DECODE = [60, 2, 77];

async function ourLogits(dir: string, adapter: PeftAdapter | null): Promise<Float32Array[]> {
  const ckpt = await loadCheckpoint(dir);
  const be = new CpuBackend();
  const model = LlamaModel.fromTensors(be, ckpt.config, ckpt.tensors, 64);
  if (adapter) model.setAdapter(uploadAdapter(be, ckpt.config, adapter) as never);
  const cache = model.createCache(1, 64);
  const V = ckpt.config.vocabSize;
  const ids = [...PROMPT, ...DECODE];
  const all = await model.forward(
    {
      ids: Uint32Array.from(ids),
      positions: Uint32Array.from(ids, (_, i) => i),
      slots: new Uint32Array(ids.length),
      logitRows: 'all',
    },
    cache,
  );
  return ids.map((_, t) => all.subarray(t * V, (t + 1) * V));
}

/** Max |Δ| between ORT's logits (prefill, then one token at a time through present → past) and ours. */
async function ortError(
  dir: string,
  onnxDir: string,
  adapter: PeftAdapter | null,
): Promise<{ prefill: number; decode: number }> {
  const ckpt = await loadCheckpoint(dir, { loadTokenizer: false });
  const c = ckpt.config;
  const ours = await ourLogits(dir, adapter);
  const onnxFiles = readdirSync(path.join(onnxDir, 'onnx'));
  const externalData = onnxFiles
    .filter((f) => f.startsWith('model.onnx_data'))
    .map((f) => ({ path: f, data: new Uint8Array(readFileSync(path.join(onnxDir, 'onnx', f))) }));
  const decoder = await OrtDecoder.create(
    new Uint8Array(readFileSync(path.join(onnxDir, 'onnx/model.onnx'))),
    { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, vocabSize: c.vocabSize },
    'wasm',
    externalData,
  );
  const V = c.vocabSize;
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
  let { logits, present } = await decoder.run(PROMPT, decoder.emptyPast());
  let prefill = 0;
  for (let t = 0; t < PROMPT.length; t++)
    prefill = Math.max(prefill, maxDiff(logits.subarray(t * V, (t + 1) * V), ours[t]));
  let decode = 0;
  for (let s = 0; s < DECODE.length; s++) {
    ({ logits, present } = await decoder.run([DECODE[s]], present));
    expect(logits.length).toBe(V);
    decode = Math.max(decode, maxDiff(logits, ours[PROMPT.length + s]));
  }
  expect(present.length).toBe(PROMPT.length + DECODE.length);
  await decoder.release();
  return { prefill, decode };
}

async function exportTo(
  dir: string,
  out: string,
  opts: { adapter?: PeftAdapter; externalData?: 'always'; chunkBytes?: number } = {},
) {
  const source = openSource(dir);
  const ckpt = await loadCheckpoint(source);
  const result = onnxExportFiles(ckpt, await readModelSideFiles(source), opts);
  await writeExport(out, result.files);
  return result;
}

describe('ONNX export checked with onnxruntime-web (wasm)', () => {
  const cases: [string, TinyModelOptions][] = [
    ['llama (untied head, GQA)', { arch: 'llama', tied: false, kvHeads: 2, heads: 4, seed: 11 }],
    ['qwen2 (q/k/v biases, tied)', { arch: 'qwen2', seed: 12 }],
    ['qwen3 (per-head q/k norms, head_dim != hidden/heads)', { arch: 'qwen3', seed: 13 }],
  ];
  for (const [label, opts] of cases) {
    it(`${label}: logits within 1e-3 without and with past key values`, async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'agentark-onnx-'));
      writeTinyModel(path.join(dir, 'model'), opts);
      await exportTo(path.join(dir, 'model'), path.join(dir, 'onnx'));
      const err = await ortError(path.join(dir, 'model'), path.join(dir, 'onnx'), null);
      expect(err.prefill).toBeLessThan(1e-3);
      expect(err.decode).toBeLessThan(1e-3);
    });
  }

  it("the last-position graph (logits_to_keep = 1, the bench peer's) gives the prompt's last row only", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-onnx-'));
    writeTinyModel(path.join(dir, 'model'), { arch: 'qwen2', seed: 14 });
    const ckpt = await loadCheckpoint(path.join(dir, 'model'), { loadTokenizer: false });
    const c = ckpt.config;
    const ours = await ourLogits(path.join(dir, 'model'), null);
    const { model } = buildDecoderGraph(c, ckpt.tensors, { logits: 'last' }).serialize(ONNX_OPSETS, {
      producer: 'agentark-web test',
    });
    const shape = { numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, vocabSize: c.vocabSize };
    const decoder = await OrtDecoder.create(model, shape, 'wasm');
    let { logits, present } = await decoder.run(PROMPT, decoder.emptyPast());
    expect(logits.length).toBe(c.vocabSize);
    let diff = logits.reduce((m, x, i) => Math.max(m, Math.abs(x - ours[PROMPT.length - 1][i])), 0);
    expect(diff).toBeLessThan(1e-3);
    ({ logits, present } = await decoder.run([DECODE[0]], present));
    diff = logits.reduce((m, x, i) => Math.max(m, Math.abs(x - ours[PROMPT.length][i])), 0);
    expect(diff).toBeLessThan(1e-3);
    expect(present.length).toBe(PROMPT.length + 1);
    await decoder.release();
  });

  it('merges a LoRA adapter, and moves weights to chunked external data files when asked', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-onnx-'));
    const config = writeTinyModel(path.join(dir, 'model'), { arch: 'llama', seed: 21 });
    const adapter = randomPeftAdapter(config, { r: 4, alpha: 8, seed: 5, bStd: 0.3 });
    const result = await exportTo(path.join(dir, 'model'), path.join(dir, 'onnx'), {
      adapter,
      externalData: 'always',
      chunkBytes: 64 * 1024,
    });
    expect(result.externalDataFiles.length).toBeGreaterThan(1);
    expect(result.mergedModules).toBe(adapter.pairs.length);
    const files = readdirSync(path.join(dir, 'onnx', 'onnx')).sort();
    expect(files).toEqual(['model.onnx', ...result.externalDataFiles].sort());
    expect(result.externalDataFiles[0]).toBe('model.onnx_data');
    const cfg = JSON.parse(readFileSync(path.join(dir, 'onnx', 'config.json'), 'utf8'));
    expect(cfg['transformers.js_config']).toMatchObject({
      dtype: 'fp32',
      use_external_data_format: result.externalDataFiles.length,
    });
    expect(cfg.head_dim).toBeGreaterThan(0);
    const err = await ortError(path.join(dir, 'model'), path.join(dir, 'onnx'), adapter);
    expect(err.prefill).toBeLessThan(1e-3);
    expect(err.decode).toBeLessThan(1e-3);
    // Without the adapter the ONNX model disagrees: the merge really happened.
    const unmerged = await ortError(path.join(dir, 'model'), path.join(dir, 'onnx'), null);
    expect(unmerged.prefill).toBeGreaterThan(1e-2);
  });

  it('agentark export writes the transformers.js folder and rejects bad input clearly', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-onnx-'));
    writeTinyModel(path.join(dir, 'model'), { arch: 'qwen2', seed: 3 });
    const out = path.join(dir, 'out');
    const r = agentark(['export', '--model', path.join(dir, 'model'), '--format', 'onnx', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    for (const f of [
      'onnx/model.onnx',
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ])
      expect(existsSync(path.join(out, f)), f).toBe(true);
    const bad = agentark(['export', '--model', path.join(dir, 'model'), '--format', 'tflite', '--out', out], {
      allowFail: true,
    });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--format must be onnx/);
    // The earlier export is untouched by the failed one.
    expect(existsSync(path.join(out, 'onnx/model.onnx'))).toBe(true);
  });
});
