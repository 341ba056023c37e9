import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECTIONS, parseConfig, type ModelConfig } from '../../src/formats/config';
import { f32ToBf16Bits, f32ToF16Bits, bf16ToF32, f16ToF32 } from '../../src/formats/dtype';
import {
  initLoraPair,
  loadPeftAdapter,
  loraScale,
  parsePeftKey,
  peftKey,
  projectionShape,
  savePeftAdapter,
  serializePeftAdapter,
  validateAdapter,
  type LoraConfig,
  type PeftAdapter,
} from '../../src/formats/peft';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../../src/formats/safetensors';
import { BlobSource } from '../../src/formats/source';
import { randomPeftAdapter, writeRandomPeftAdapter } from '../helpers/peft-fixture';
import { REPO_ROOT } from '../helpers/reference';
import { rng } from '../helpers/rng';
import { tinyModelConfig, writeTinyModel } from '../helpers/tiny-model';

const PYTHON = process.env.AGENTARK_TORCH_PYTHON ?? '/usr/bin/python3';

// GQA (4 heads, 2 kv heads) and head_dim 24 ≠ hidden/heads, so every projection has its own shape.
const QWEN3: ModelConfig = parseConfig(tinyModelConfig({ arch: 'qwen3' }));

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-peft-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function blobs(files: Record<string, string | Uint8Array>): BlobSource {
  return new BlobSource(new Map(Object.entries(files).map(([k, v]) => [k, new Blob([v as BlobPart])])), 'test adapter');
}

function baseConfig(patch: Partial<LoraConfig> = {}): LoraConfig {
  return {
    r: 4,
    loraAlpha: 8,
    loraDropout: 0,
    targetModules: ['q_proj', 'v_proj'],
    useRslora: false,
    baseModelNameOrPath: null,
    bias: 'none',
    ...patch,
  };
}

function pairTensors(adapter: PeftAdapter, dtype: 'F32' | 'F16' | 'BF16' = 'F32'): TensorToWrite[] {
  const encode = (f: Float32Array) => {
    const typed = dtype === 'F32' ? f : dtype === 'F16' ? f32ToF16Bits(f) : f32ToBf16Bits(f);
    return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  };
  return adapter.pairs.flatMap((p) => [
    { name: peftKey(p.layer, p.module, 'A'), dtype, shape: [...p.a.shape], data: encode(p.a.data) },
    { name: peftKey(p.layer, p.module, 'B'), dtype, shape: [...p.b.shape], data: encode(p.b.data) },
  ]);
}

describe('PEFT keys and adapter_config.json', () => {
  it("names tensors exactly as PEFT's save_pretrained does", () => {
    expect(peftKey(0, 'q_proj', 'A')).toBe('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
    expect(peftKey(11, 'o_proj', 'B')).toBe('base_model.model.model.layers.11.self_attn.o_proj.lora_B.weight');
    expect(peftKey(3, 'gate_proj', 'A')).toBe('base_model.model.model.layers.3.mlp.gate_proj.lora_A.weight');
    expect(peftKey(3, 'down_proj', 'B')).toBe('base_model.model.model.layers.3.mlp.down_proj.lora_B.weight');
    for (const module of PROJECTIONS) {
      for (const which of ['A', 'B'] as const)
        expect(parsePeftKey(peftKey(7, module, which))).toEqual({ layer: 7, module, which });
    }
    expect(parsePeftKey('base_model.model.model.layers.2.self_attn.k_proj.lora_A.default.weight')).toEqual({
      layer: 2,
      module: 'k_proj',
      which: 'A',
    });
    expect(parsePeftKey('base_model.model.lm_head.lora_A.weight')).toBeNull();
    expect(parsePeftKey('base_model.model.model.layers.0.mlp.q_proj.lora_A.weight')).toBeNull();
    expect(parsePeftKey('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector')).toBeNull();
    expect(parsePeftKey('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight')).toBeNull();
  });

  it('serializes the files PEFT writes: every key, F32 tensors, {"format": "pt"} metadata', () => {
    const adapter = randomPeftAdapter(QWEN3, {
      r: 4,
      alpha: 16,
      targets: ['q_proj', 'up_proj'],
      seed: 1,
      baseModelNameOrPath: 'Qwen/Qwen3-0.6B',
    });
    const files = serializePeftAdapter(adapter);
    const config = JSON.parse(files['adapter_config.json']);
    expect(config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 16,
      lora_dropout: 0,
      target_modules: ['q_proj', 'up_proj'],
      bias: 'none',
      fan_in_fan_out: false,
      use_rslora: false,
      use_dora: false,
      init_lora_weights: true,
      base_model_name_or_path: 'Qwen/Qwen3-0.6B',
      inference_mode: true,
      modules_to_save: null,
      revision: null,
      layers_to_transform: null,
      layers_pattern: null,
      rank_pattern: {},
      alpha_pattern: {},
    });
    expect(Object.keys(config)).toEqual([...Object.keys(config)].sort()); // json.dumps(sort_keys=True)
    const { tensors, metadata } = readSafetensors(files['adapter_model.safetensors']);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.map((t) => t.name).sort()).toEqual(
      [0, 1]
        .flatMap((l) =>
          ['q_proj', 'up_proj'].flatMap((m) => ['A', 'B'].map((w) => peftKey(l, m as 'q_proj', w as 'A'))),
        )
        .sort(),
    );
    expect(new Set(tensors.map((t) => t.dtype))).toEqual(new Set(['F32']));
    const q = tensors.find((t) => t.name === peftKey(1, 'q_proj', 'B'))!;
    expect(q.shape).toEqual([QWEN3.numHeads * QWEN3.headDim, 4]);
    const up = tensors.find((t) => t.name === peftKey(0, 'up_proj', 'A'))!;
    expect(up.shape).toEqual([4, QWEN3.hiddenSize]);
  });

  it('round-trips through save/load (directory and in-memory source) bit-exactly', async () => {
    const adapter = randomPeftAdapter(QWEN3, { r: 3, alpha: 5, seed: 2, useRslora: true, loraDropout: 0.05 });
    const dir = path.join(tmp, 'roundtrip');
    await savePeftAdapter(dir, adapter);
    expect(fs.readdirSync(dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const fromDir = await loadPeftAdapter(dir);
    expect(fromDir).toEqual(adapter);
    expect(await loadPeftAdapter(blobs(serializePeftAdapter(adapter)))).toEqual(adapter);
    validateAdapter(fromDir, QWEN3);
  });

  it('loads F16 and BF16 tensors as float32', async () => {
    const adapter = randomPeftAdapter(QWEN3, { r: 2, alpha: 4, targets: ['k_proj'], seed: 3 });
    const config = serializePeftAdapter(adapter)['adapter_config.json'];
    for (const [dtype, widen] of [
      ['F16', (f: Float32Array) => f16ToF32(f32ToF16Bits(f))],
      ['BF16', (f: Float32Array) => bf16ToF32(f32ToBf16Bits(f))],
    ] as const) {
      const loaded = await loadPeftAdapter(
        blobs({
          'adapter_config.json': config,
          'adapter_model.safetensors': writeSafetensors(pairTensors(adapter, dtype)),
        }),
      );
      loaded.pairs.forEach((p, i) => {
        expect(p.a.data).toEqual(widen(adapter.pairs[i].a.data));
        expect(p.b.data).toEqual(widen(adapter.pairs[i].b.data));
      });
    }
  });
});

describe('loadPeftAdapter: target_modules forms and unsupported features', () => {
  const adapter = randomPeftAdapter(QWEN3, { r: 2, alpha: 4, targets: ['q_proj', 'v_proj'], seed: 4 });
  const weights = serializePeftAdapter(adapter)['adapter_model.safetensors'];
  const withConfig = (patch: Record<string, unknown>, tensors: Uint8Array = weights) => {
    const json = { ...JSON.parse(serializePeftAdapter(adapter)['adapter_config.json']), ...patch };
    return loadPeftAdapter(
      blobs({ 'adapter_config.json': JSON.stringify(json), 'adapter_model.safetensors': tensors }),
    );
  };

  it('accepts a regex string (re.fullmatch on the module name) and writes it back', async () => {
    const regex = String.raw`.*\.(q_proj|v_proj)`;
    const loaded = await withConfig({ target_modules: regex });
    expect(loaded.config.targetModules).toEqual(['q_proj', 'v_proj']);
    expect(loaded.config.targetModulesRegex).toBe(regex);
    validateAdapter(loaded, QWEN3);
    expect(JSON.parse(serializePeftAdapter(loaded)['adapter_config.json']).target_modules).toBe(regex);
    // Layer-restricted regexes work too, as long as they match every module in the file.
    const layers = String.raw`model\.layers\.[01]\.self_attn\.(q|v)_proj`;
    expect((await withConfig({ target_modules: layers })).config.targetModules).toEqual(['q_proj', 'v_proj']);
    await expect(withConfig({ target_modules: String.raw`.*\.q_proj` })).rejects.toThrow(
      /model\.layers\.0\.self_attn\.v_proj, which target_modules ".*\\\\.q_proj" does not match/,
    );
    await expect(withConfig({ target_modules: '(unclosed' })).rejects.toThrow(/does not compile/);
    expect((await withConfig({ target_modules: 'all-linear' })).config.targetModules).toEqual([...PROJECTIONS]);
    // Absent (hand-written configs): the modules present in the file.
    expect((await withConfig({ target_modules: undefined })).config.targetModules).toEqual(['q_proj', 'v_proj']);
    await expect(withConfig({ target_modules: 7 })).rejects.toThrow(
      /"target_modules" must be a list of module names or a regex string, got 7/,
    );
  });

  it('accepts qualified list entries as PEFT matches them (suffix after a dot)', async () => {
    const loaded = await withConfig({ target_modules: ['self_attn.q_proj', 'v_proj'] });
    validateAdapter(loaded, QWEN3);
  });

  it('refuses rank_pattern/alpha_pattern, DoRA, bias, modules_to_save, pickle-only folders', async () => {
    await expect(withConfig({ rank_pattern: { q_proj: 8 } })).rejects.toThrow(/"rank_pattern" .* is not supported/);
    await expect(withConfig({ alpha_pattern: { q_proj: 8 } })).rejects.toThrow(/"alpha_pattern" .* is not supported/);
    await expect(withConfig({ rank_pattern: null, alpha_pattern: {} })).resolves.toBeTruthy();
    await expect(withConfig({ use_dora: true })).rejects.toThrow(/DoRA/);
    await expect(withConfig({ bias: 'all' })).rejects.toThrow(/bias "all" is not supported/);
    await expect(withConfig({ modules_to_save: ['lm_head'] })).rejects.toThrow(/modules_to_save/);
    await expect(withConfig({ peft_type: 'IA3' })).rejects.toThrow(/peft_type "IA3" is not supported/);
    await expect(loadPeftAdapter(blobs({ 'adapter_config.json': '{}', 'adapter_model.bin': 'x' }))).rejects.toThrow(
      /adapter_model\.bin, the pickle format, is not supported/,
    );
    await expect(loadPeftAdapter(blobs({ 'adapter_model.safetensors': weights }))).rejects.toThrow(
      /no adapter_config\.json/,
    );
  });

  it('refuses lm_head / embedding LoRA tensors and missing pair halves, naming the tensor', async () => {
    const extra = (name: string, shape: number[]) => ({
      name,
      dtype: 'F32',
      shape,
      data: new Uint8Array(4 * shape[0] * shape[1]),
    });
    const base = pairTensors(adapter);
    await expect(
      withConfig({}, writeSafetensors([...base, extra('base_model.model.lm_head.lora_A.weight', [2, 64])])),
    ).rejects.toThrow(/base_model\.model\.lm_head\.lora_A\.weight: LoRA on lm_head is not supported/);
    await expect(
      withConfig(
        {},
        writeSafetensors([...base, extra('base_model.model.model.embed_tokens.lora_embedding_A', [2, 320])]),
      ),
    ).rejects.toThrow(/token embedding/);
    const withoutB = base.filter((t) => t.name !== peftKey(1, 'v_proj', 'B'));
    await expect(withConfig({}, writeSafetensors(withoutB))).rejects.toThrow(
      /model\.layers\.1\.self_attn\.v_proj\.lora_B\.weight is missing/,
    );
  });
});

describe('validateAdapter', () => {
  const good = () => randomPeftAdapter(QWEN3, { r: 4, alpha: 8, targets: ['q_proj', 'o_proj', 'down_proj'], seed: 6 });

  it('accepts a fitting adapter', () => {
    expect(() => validateAdapter(good(), QWEN3)).not.toThrow();
  });

  it('names the tensor, expected and actual shape on a mismatch', () => {
    // An adapter made for a model with another hidden size.
    const other = parseConfig(tinyModelConfig({ arch: 'qwen3', hidden: 32 }));
    const wrong = randomPeftAdapter(other, { r: 4, alpha: 8, targets: ['q_proj'], seed: 6 });
    expect(() => validateAdapter(wrong, QWEN3)).toThrow(
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight has shape [4, 32], expected [4, 64] (',
    );
    const transposed = good();
    const b = transposed.pairs[1].b; // layer 0 o_proj: [64, 4]
    transposed.pairs[1].b = { shape: [b.shape[1], b.shape[0]], data: b.data };
    expect(() => validateAdapter(transposed, QWEN3)).toThrow(
      /layers\.0\.self_attn\.o_proj\.lora_B\.weight has shape \[4, 64\], expected \[64, 4\]/,
    );
    const rank = good();
    rank.config.r = 8;
    expect(() => validateAdapter(rank, QWEN3)).toThrow(
      /q_proj\.lora_A\.weight has shape \[4, 64\], expected \[8, 64\]/,
    );
  });

  it('rejects rank 0 / negative, layers the model lacks, and target modules the model lacks', () => {
    for (const r of [0, -2, 1.5]) {
      const a = good();
      a.config.r = r;
      expect(() => validateAdapter(a, QWEN3)).toThrow(/"r" must be a positive integer/);
    }
    const deep = good();
    deep.pairs[0] = { ...deep.pairs[0], layer: 5 };
    expect(() => validateAdapter(deep, QWEN3)).toThrow(
      /model\.layers\.5\.self_attn\.q_proj, but the model has only 2 layers/,
    );
    const gpt2 = good();
    gpt2.config.targetModules = ['c_attn'];
    expect(() => validateAdapter(gpt2, QWEN3)).toThrow(
      /target module "c_attn" is not a linear projection of Qwen3ForCausalLM/,
    );
    const head = good();
    head.config.targetModules = ['q_proj', 'o_proj', 'down_proj', 'lm_head'];
    expect(() => validateAdapter(head, QWEN3)).toThrow(/LoRA on lm_head is not supported/);
    const embed = good();
    embed.config.targetModules = ['embed_tokens', 'q_proj'];
    expect(() => validateAdapter(embed, QWEN3)).toThrow(/token embedding \(embed_tokens\) is not supported/);
    const untargeted = good();
    untargeted.config.targetModules = ['q_proj', 'o_proj'];
    expect(() => validateAdapter(untargeted, QWEN3)).toThrow(
      /mlp\.down_proj, but target_modules \(q_proj, o_proj\) does not include down_proj/,
    );
  });
});

describe('LoRA scale and initialization', () => {
  it('scale is alpha/r, or alpha/sqrt(r) with use_rslora', () => {
    expect(loraScale(baseConfig({ r: 16, loraAlpha: 32 }))).toBe(2);
    expect(loraScale(baseConfig({ r: 16, loraAlpha: 32, useRslora: true }))).toBe(8);
    expect(loraScale(baseConfig({ r: 8, loraAlpha: 16, useRslora: true }))).toBeCloseTo(16 / Math.sqrt(8), 12);
  });

  it('A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_, a=sqrt(5)), B = 0, shapes [r, in] / [out, r]', () => {
    const { inFeatures, outFeatures } = projectionShape(QWEN3, 'down_proj');
    expect([inFeatures, outFeatures]).toEqual([QWEN3.intermediateSize, QWEN3.hiddenSize]);
    const r = 64;
    const pair = initLoraPair(1, 'down_proj', r, inFeatures, outFeatures, rng(9));
    expect(pair.a.shape).toEqual([r, inFeatures]);
    expect(pair.b.shape).toEqual([outFeatures, r]);
    expect(pair.b.data.every((v) => v === 0)).toBe(true);
    const bound = 1 / Math.sqrt(inFeatures);
    const a = pair.a.data;
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    let sumSq = 0;
    for (const v of a) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
      sumSq += v * v;
    }
    expect(min).toBeGreaterThanOrEqual(-bound);
    expect(max).toBeLessThanOrEqual(bound);
    expect(max).toBeGreaterThan(0.99 * bound); // fills the interval
    expect(min).toBeLessThan(-0.99 * bound);
    const mean = sum / a.length;
    const variance = sumSq / a.length - mean * mean;
    expect(Math.abs(mean)).toBeLessThan(0.05 * bound);
    expect(variance / ((bound * bound) / 3)).toBeCloseTo(1, 1); // U(-b, b) has variance b²/3
  });
});

describe('adapters written by PyTorch (tests/reference/lora_step.py)', () => {
  it('load, validate, and show an AdamW first step (|Δ| ≈ lr wherever the gradient is non-zero)', async () => {
    const modelDir = path.join(tmp, 'model');
    const raw = writeTinyModel(modelDir, { arch: 'llama', seed: 1, layers: 1 });
    const config = parseConfig(raw);
    const initDir = path.join(tmp, 'init');
    const init = writeRandomPeftAdapter(initDir, raw, {
      r: 2,
      alpha: 4,
      targets: ['k_proj', 'gate_proj', 'up_proj'],
      seed: 7,
      useRslora: true,
    });
    const data = path.join(tmp, 'rows.jsonl');
    fs.writeFileSync(
      data,
      `${JSON.stringify({ input_ids: [300, 12, 40, 7, 99, 256, 3], labels: [-100, -100, 40, 7, 99, 256, 3] })}\n`,
    );
    const outDir = path.join(tmp, 'out');
    const lr = 1e-3;
    const stdout = execFileSync(
      PYTHON,
      [
        path.join(REPO_ROOT, 'tests/reference/lora_step.py'),
        '--model',
        modelDir,
        '--adapter',
        initDir,
        '--data',
        data,
        '--out',
        outDir,
        '--optimizer',
        'adamw',
        '--lr',
        String(lr),
        '--steps',
        '1',
      ],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(stdout).losses.every(Number.isFinite)).toBe(true);
    const after = await loadPeftAdapter(outDir);
    expect(after.config).toEqual(init.config);
    validateAdapter(after, config);
    const bytes = fs.readFileSync(path.join(outDir, 'adapter_model.safetensors'));
    const written = readSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    expect(written.tensors.map((t) => t.name).sort()).toEqual(
      pairTensors(init)
        .map((t) => t.name)
        .sort(),
    );
    expect(written.metadata).toEqual({ format: 'pt' });
    // AdamW's first step moves each parameter by lr·g/(|g|+eps) ≈ ±lr (weight decay 0).
    let moved = 0;
    after.pairs.forEach((p, i) => {
      for (const [x, y] of [
        [p.a.data, init.pairs[i].a.data],
        [p.b.data, init.pairs[i].b.data],
      ] as const) {
        for (let j = 0; j < x.length; j++) {
          const d = Math.abs(x[j] - y[j]);
          expect(d).toBeLessThan(lr * 1.001 + 1e-7);
          if (d > 0.5 * lr) moved++;
        }
      }
    });
    const total = init.pairs.reduce((s, p) => s + p.a.data.length + p.b.data.length, 0);
    expect(moved / total).toBeGreaterThan(0.9);
  });
});
