import { describe, expect, it } from 'vitest';
import { ConfigError, expectedTensors, parseConfig, ropeInvFreq } from '../../src/formats/config';
import { tinyModelConfig } from '../helpers/tiny-model';

/** Verbatim (trimmed of irrelevant keys) from the Hub. */
const QWEN25_05B_INSTRUCT = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const LLAMA32_1B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  vocab_size: 128256,
};

const QWEN3_06B = {
  architectures: ['Qwen3ForCausalLM'],
  attention_bias: false,
  bos_token_id: 151643,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: 'silu',
  hidden_size: 1024,
  intermediate_size: 3072,
  max_position_embeddings: 40960,
  num_attention_heads: 16,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_sliding_window: false,
  vocab_size: 151936,
};

const MISTRAL_7B_V01 = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: 32000,
};

describe('parseConfig', () => {
  it('normalizes Qwen2.5-0.5B-Instruct', () => {
    expect(parseConfig(QWEN25_05B_INSTRUCT)).toEqual({
      architecture: 'qwen2',
      hfArchitecture: 'Qwen2ForCausalLM',
      vocabSize: 151936,
      hiddenSize: 896,
      intermediateSize: 4864,
      numLayers: 24,
      numHeads: 14,
      numKvHeads: 2,
      headDim: 64,
      rmsNormEps: 1e-6,
      ropeTheta: 1e6,
      ropeScaling: null,
      maxPositionEmbeddings: 32768,
      tieWordEmbeddings: true,
      attentionBias: true,
      outputBias: false,
      qkNorm: false,
      bosTokenId: 151643,
      eosTokenIds: [151645],
      slidingWindow: null, // present in the file but switched off by use_sliding_window
      torchDtype: 'bfloat16',
    });
  });

  it('normalizes Llama-3.2-1B with llama3 rope scaling and an eos list', () => {
    const cfg = parseConfig(LLAMA32_1B);
    expect(cfg.architecture).toBe('llama');
    expect(cfg.headDim).toBe(64);
    expect(cfg.eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(cfg.ropeScaling).toEqual({
      type: 'llama3',
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    });
    expect(cfg.attentionBias).toBe(false);
    expect(cfg.qkNorm).toBe(false);
  });

  it('normalizes Qwen3-0.6B: explicit head_dim differs from hidden/heads, q/k norm', () => {
    const cfg = parseConfig(QWEN3_06B);
    expect(cfg.headDim).toBe(128);
    expect(cfg.hiddenSize / cfg.numHeads).toBe(64);
    expect(cfg.qkNorm).toBe(true);
    expect(cfg.attentionBias).toBe(false);
  });

  it('keeps Mistral v0.1 sliding window; defaults kv heads and head_dim', () => {
    const cfg = parseConfig(MISTRAL_7B_V01);
    expect(cfg.slidingWindow).toBe(4096);
    expect(cfg.headDim).toBe(128);
    const noKv = parseConfig({ ...MISTRAL_7B_V01, num_key_value_heads: undefined });
    expect(noKv.numKvHeads).toBe(32);
  });

  it('accepts the newer rope_parameters form and "dtype"', () => {
    const { rope_theta: _, torch_dtype: __, ...rest } = QWEN3_06B;
    const cfg = parseConfig({ ...rest, dtype: 'bfloat16', rope_parameters: { rope_type: 'default', rope_theta: 5e6 } });
    expect(cfg.ropeTheta).toBe(5e6);
    expect(cfg.ropeScaling).toBeNull();
    expect(cfg.torchDtype).toBe('bfloat16');
    const llama = parseConfig({
      ...LLAMA32_1B,
      rope_scaling: undefined,
      rope_theta: undefined,
      rope_parameters: { ...LLAMA32_1B.rope_scaling, rope_theta: 500000 },
    });
    expect(llama.ropeScaling?.factor).toBe(32);
    expect(llama.ropeTheta).toBe(500000);
    expect(parseConfig({ ...QWEN3_06B, rope_scaling: { type: 'default' } }).ropeScaling).toBeNull();
  });

  it('parses every tiny fixture', () => {
    for (const arch of ['llama', 'mistral', 'qwen2', 'qwen3'] as const) {
      const cfg = parseConfig(tinyModelConfig({ arch }));
      expect(cfg.architecture).toBe(arch);
      expect(cfg.numHeads % cfg.numKvHeads).toBe(0);
    }
    expect(parseConfig(tinyModelConfig({ arch: 'qwen3' })).headDim).toBe(24);
  });

  it('rejects unknown architectures, naming it and the supported ones', () => {
    expect(() => parseConfig({ ...QWEN3_06B, architectures: ['GPT2LMHeadModel'] })).toThrow(
      /unsupported architecture "GPT2LMHeadModel"; supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM/,
    );
    expect(() => parseConfig({ ...QWEN3_06B, architectures: undefined })).toThrow(/missing "architectures"/);
    expect(() => parseConfig([1, 2])).toThrow(ConfigError);
  });

  it('rejects invalid sizes with the field name', () => {
    expect(() => parseConfig({ ...QWEN3_06B, hidden_size: undefined })).toThrow(/missing required field "hidden_size"/);
    expect(() => parseConfig({ ...QWEN3_06B, num_hidden_layers: 0 })).toThrow(
      /"num_hidden_layers" must be a positive integer, got 0/,
    );
    expect(() => parseConfig({ ...QWEN3_06B, vocab_size: 1.5 })).toThrow(/"vocab_size" must be a positive integer/);
    expect(() => parseConfig({ ...QWEN3_06B, num_key_value_heads: 6 })).toThrow(
      /num_attention_heads \(16\) must be a multiple of num_key_value_heads \(6\)/,
    );
    expect(() => parseConfig({ ...MISTRAL_7B_V01, hidden_size: 4000, num_attention_heads: 48 })).toThrow(
      /not divisible/,
    );
    expect(() => parseConfig({ ...QWEN3_06B, eos_token_id: 'x' })).toThrow(/eos_token_id/);
    expect(() => parseConfig({ ...QWEN3_06B, rms_norm_eps: -1 })).toThrow(/rms_norm_eps/);
  });

  it('rejects unsupported rope scaling clearly', () => {
    expect(() => parseConfig({ ...QWEN3_06B, rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(
      /unsupported RoPE scaling type "yarn"/,
    );
    expect(() => parseConfig({ ...LLAMA32_1B, rope_scaling: { type: 'linear', factor: 2 } })).toThrow(/"linear"/);
    expect(() => parseConfig({ ...LLAMA32_1B, rope_scaling: { rope_type: 'llama3', factor: 8 } })).toThrow(
      /missing required field "rope_scaling.low_freq_factor"/,
    );
  });

  it('gives Llama/Qwen3 attention_bias all four projection biases, Qwen2 only q/k/v', () => {
    const llama = parseConfig({ ...LLAMA32_1B, attention_bias: true });
    expect([llama.attentionBias, llama.outputBias]).toEqual([true, true]);
    const names = [...expectedTensors(llama).keys()];
    expect(names).toContain('model.layers.0.self_attn.o_proj.bias');
    const qwen2 = parseConfig(QWEN25_05B_INSTRUCT);
    expect([qwen2.attentionBias, qwen2.outputBias]).toEqual([true, false]);
    expect(parseConfig({ ...MISTRAL_7B_V01, attention_bias: true }).attentionBias).toBe(false);
  });
});

describe('ropeInvFreq', () => {
  it('is theta^(-2i/d) without scaling', () => {
    const cfg = parseConfig(QWEN3_06B);
    const inv = ropeInvFreq(cfg);
    expect(inv.length).toBe(64);
    expect(inv[0]).toBe(1);
    // Values printed by PyTorch for HF's float32 computation:
    // 1.0 / (1e6 ** (torch.arange(0, 128, 2, dtype=torch.int64).float() / 128))
    expect([inv[1], inv[17], inv[63]]).toEqual([0.8058422207832336, 0.025482967495918274, 1.2409377632138785e-6]);
  });

  it('applies llama3 scaling per band (Llama-3.2 parameters)', () => {
    const cfg = parseConfig(LLAMA32_1B);
    const inv = ropeInvFreq(cfg);
    expect(inv.length).toBe(32);
    const base = (i: number) => 1 / 500000 ** ((2 * i) / 64);
    const wavelen = (i: number) => (2 * Math.PI) / base(i);
    // High frequencies (wavelength < 8192/4) are untouched.
    expect(wavelen(10)).toBeLessThan(2048);
    expect(inv[10]).toBeCloseTo(base(10), 6);
    // Low frequencies (wavelength > 8192) are divided by the factor.
    expect(wavelen(31)).toBeGreaterThan(8192);
    expect(inv[31] / (base(31) / 32)).toBeCloseTo(1, 6);
    // In between, a linear blend in 1/wavelength.
    const mid = [...Array(32).keys()].find((i) => wavelen(i) >= 2048 && wavelen(i) <= 8192)!;
    const smooth = (8192 / wavelen(mid) - 1) / (4 - 1);
    expect(inv[mid] / (((1 - smooth) * base(mid)) / 32 + smooth * base(mid))).toBeCloseTo(1, 6);
    // And the result decreases monotonically.
    for (let i = 1; i < 32; i++) expect(inv[i]).toBeLessThan(inv[i - 1]);
  });
});

describe('expectedTensors', () => {
  it('lists Qwen2.5-0.5B tensors with HF names and shapes', () => {
    const t = expectedTensors(parseConfig(QWEN25_05B_INSTRUCT));
    expect(t.size).toBe(1 + 24 * 12 + 1); // tied: no lm_head
    expect(t.get('model.embed_tokens.weight')).toEqual([151936, 896]);
    expect(t.get('model.layers.3.self_attn.q_proj.weight')).toEqual([896, 896]);
    expect(t.get('model.layers.3.self_attn.k_proj.weight')).toEqual([128, 896]);
    expect(t.get('model.layers.3.self_attn.v_proj.bias')).toEqual([128]);
    expect(t.get('model.layers.23.mlp.down_proj.weight')).toEqual([896, 4864]);
    expect(t.has('lm_head.weight')).toBe(false);
  });

  it('lists Qwen3 q/k norms and o_proj from heads*head_dim', () => {
    const t = expectedTensors(parseConfig({ ...QWEN3_06B, tie_word_embeddings: false }));
    expect(t.get('model.layers.0.self_attn.q_proj.weight')).toEqual([2048, 1024]);
    expect(t.get('model.layers.0.self_attn.o_proj.weight')).toEqual([1024, 2048]);
    expect(t.get('model.layers.0.self_attn.q_norm.weight')).toEqual([128]);
    expect(t.get('model.layers.0.self_attn.k_norm.weight')).toEqual([128]);
    expect(t.has('model.layers.0.self_attn.q_proj.bias')).toBe(false);
    expect(t.get('lm_head.weight')).toEqual([151936, 1024]);
  });
});
