/**
 * Files from strangers: each hostile input found by hand fails fast with an error naming the
 * problem, instead of hanging, exhausting memory or reading outside the model folder.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, shardFilesOfIndex, firstNonFinite } from '../../src/formats/checkpoint';
import { checkPlannedBytes, parameterCount, parseConfig } from '../../src/formats/config';
import { f32ToBf16Bits, f32ToF16Bits } from '../../src/formats/dtype';
import { readSafetensors, writeSafetensors } from '../../src/formats/safetensors';
import { HttpSource, LocalDirectorySource, unsafeFileNameReason } from '../../src/formats/source';
import { randomInitTensors } from '../../src/train/init';
import { tinyModelConfig, writeTinyModel } from '../helpers/tiny-model';

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-untrusted-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const base = () => tinyModelConfig({ arch: 'llama' });

describe('config.json numbers are bounded', () => {
  it('rejects huge sizes at once, naming the field', () => {
    const cases: [string, unknown, RegExp][] = [
      ['num_hidden_layers', 1e9, /"num_hidden_layers" is 1000000000, above the supported maximum 1024/],
      ['hidden_size', 1e6, /"hidden_size" is 1000000, above the supported maximum 65536/],
      ['vocab_size', 2 ** 40, /"vocab_size" is .* above the supported maximum/],
      ['max_position_embeddings', 1e12, /"max_position_embeddings"/],
      ['intermediate_size', 1e7, /"intermediate_size"/],
      ['num_attention_heads', 5000, /"num_attention_heads"/],
      ['rms_norm_eps', 5, /"rms_norm_eps" must be below 1/],
      ['eos_token_id', 2 ** 40, /"eos_token_id" must be a non-negative integer/],
    ];
    for (const [key, value, re] of cases) {
      const t0 = performance.now();
      expect(() => parseConfig({ ...base(), [key]: value }), key).toThrow(re);
      expect(performance.now() - t0).toBeLessThan(50);
    }
  });

  it('bounds the implied parameter count even when every field is individually allowed', () => {
    const big = { ...base(), vocab_size: 1 << 21, hidden_size: 1 << 16, intermediate_size: 1 << 18, num_hidden_layers: 1024, num_attention_heads: 512, num_key_value_heads: 512, head_dim: 128 };
    expect(() => parseConfig(big)).toThrow(/implies .* parameters, above the supported maximum/);
  });

  it('parameterCount matches the expected tensors; a from-scratch init beyond memory is refused before allocating', () => {
    const cfg = parseConfig(base());
    const tensors = randomInitTensors(cfg, 1);
    let n = 0;
    for (const t of tensors.values()) n += t.shape.reduce((a, b) => a * b, 1);
    expect(parameterCount(cfg)).toBe(n);
    // ~100 GB of F32: refused in milliseconds.
    const huge = parseConfig({ ...base(), vocab_size: 150000, hidden_size: 8192, intermediate_size: 28672, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8 });
    const t0 = performance.now();
    expect(() => randomInitTensors(huge, 1)).toThrow(/random initialisation of .* needs \d+\.\d+ GiB, more than the .* GiB this machine can give it; refusing before allocating/);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(() => checkPlannedBytes(2048, 'x', 1024)).toThrow(/x needs 0\.00 GiB/);
    expect(() => checkPlannedBytes(512, 'x', 1024)).not.toThrow();
  });
});

describe('sharded index file names stay inside the model folder', () => {
  it('rejects traversal, absolute paths, URLs and odd names', () => {
    const index = (file: string) => ({ weight_map: { 'model.embed_tokens.weight': file } });
    for (const bad of ['../../../../etc/passwd', '/etc/passwd', 'a/../../b.safetensors', './model.safetensors', 'C:\\x.safetensors', 'https://evil.example/x', 'sub\\..\\x', 'a//b', 'x\u0000y']) {
      expect(() => shardFilesOfIndex(index(bad)), bad).toThrow(/shard file name .* shards must be files inside the model folder/);
    }
    expect(shardFilesOfIndex(index('model-00001-of-00002.safetensors'))).toEqual(['model-00001-of-00002.safetensors']);
    expect(shardFilesOfIndex(index('weights/model-00001.safetensors'))).toEqual(['weights/model-00001.safetensors']);
  });

  it('a model folder whose index names ../secret never opens it', async () => {
    const dir = path.join(root, 'traversal');
    writeTinyModel(dir, { arch: 'llama', sharded: true });
    const secret = path.join(root, 'secret.safetensors');
    fs.copyFileSync(path.join(dir, 'model-00001-of-00002.safetensors'), secret);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    for (const k of Object.keys(index.weight_map)) if (index.weight_map[k] === 'model-00001-of-00002.safetensors') index.weight_map[k] = '../secret.safetensors';
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    await expect(loadCheckpoint(dir)).rejects.toThrow(/"\.\.\/secret\.safetensors" has an empty, '\.' or '\.\.' path segment/);
  });

  it('sources themselves refuse names that leave the folder or repo', async () => {
    expect(unsafeFileNameReason('config.json')).toBeNull();
    await expect(new LocalDirectorySource(root).readText('../etc/passwd')).rejects.toThrow(/refusing to read/);
    expect(() => new HttpSource('https://huggingface.co/a/b/resolve/main/').url('../../c/d/resolve/main/x')).toThrow(/refusing to fetch/);
  });
});

describe('non-finite weights are found at load', () => {
  it('names the tensor and the element for F32, F16 and BF16', async () => {
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        const dir = path.join(root, `nan-${dtype}-${bad}`);
        writeTinyModel(dir, { arch: 'llama', dtype });
        const file = path.join(dir, 'model.safetensors');
        const bytes = new Uint8Array(fs.readFileSync(file));
        const tensors = readSafetensors(bytes).tensors.map((t) => ({ ...t, data: t.data.slice() }));
        const target = tensors.find((t) => t.name === 'model.layers.1.mlp.up_proj.weight')!;
        const value = new Float32Array([bad]);
        const encoded = dtype === 'F32' ? new Uint8Array(value.buffer) : new Uint8Array((dtype === 'F16' ? f32ToF16Bits(value) : f32ToBf16Bits(value)).buffer);
        target.data.set(encoded, 5 * encoded.length);
        fs.writeFileSync(file, writeSafetensors(tensors));
        const expected = Number.isNaN(bad) ? 'NaN' : String(bad);
        await expect(loadCheckpoint(dir), `${dtype} ${bad}`).rejects.toThrow(
          new RegExp(`model\\.layers\\.1\\.mlp\\.up_proj\\.weight \\(in model\\.safetensors\\) holds non-finite values \\(${expected} at element 5 of`),
        );
      }
    }
  });

  it('finite extremes pass', () => {
    const f = new Float32Array([3.4e38, -3.4e38, 0, -0, 1e-45]);
    expect(firstNonFinite({ name: 'x', dtype: 'F32', shape: [5], data: new Uint8Array(f.buffer) })).toBeNull();
    const h = f32ToF16Bits(new Float32Array([65504, -65504, 6e-8]));
    expect(firstNonFinite({ name: 'x', dtype: 'F16', shape: [3], data: new Uint8Array(h.buffer) })).toBeNull();
  });
});
