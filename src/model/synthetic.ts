/**
 * Checkpoints with a real model's exact configuration and random weights, for measuring memory and
 * speed at that size without downloading it: `agentark bench --synthetic qwen2.5-0.5b --layers N`,
 * and the tests. Weights ~ uniform with the std of HF's init (0.02), norms 1, biases small.
 */
import type { HostTensor } from '../formats/checkpoint';
import { expectedTensors, parseConfig, type ModelConfig } from '../formats/config';
import { f32ToBf16Bits } from '../formats/dtype';
import { writeSafetensors } from '../formats/safetensors';

/** config.json of Qwen/Qwen2.5-0.5B-Instruct, field for field. */
export const QWEN2_5_0_5B_INSTRUCT_CONFIG = {
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
  transformers_version: '4.43.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
} as const;

export const SYNTHETIC_CONFIGS: Record<string, Record<string, unknown>> = {
  'qwen2.5-0.5b': QWEN2_5_0_5B_INSTRUCT_CONFIG,
};

/** The config JSON with `layers` blocks instead of the original count. */
export function syntheticConfigJson(name: string, layers?: number): Record<string, unknown> {
  const base = SYNTHETIC_CONFIGS[name];
  if (!base) throw new Error(`unknown synthetic model '${name}'; known: ${Object.keys(SYNTHETIC_CONFIGS).join(', ')}`);
  return layers === undefined ? { ...base } : { ...base, num_hidden_layers: layers };
}

/** Random BF16 (or F32) tensors for every weight `config` expects, from a seeded xorshift. */
export function syntheticTensors(
  config: ModelConfig,
  seed = 1,
  dtype: 'BF16' | 'F32' = 'BF16',
): Map<string, HostTensor> {
  let s = (seed * 2654435761) >>> 0 || 1;
  const half = 0.02 * Math.sqrt(3); // uniform(-a, a) has std a / sqrt(3)
  const chunk = new Float32Array(1 << 16);
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of expectedTensors(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const bytes = new Uint8Array(n * (dtype === 'BF16' ? 2 : 4));
    const u16 = new Uint16Array(bytes.buffer);
    const f32 = new Float32Array(bytes.buffer, 0, dtype === 'F32' ? n : 0);
    const isNorm = name.endsWith('norm.weight');
    const amp = name.endsWith('.bias') ? half * 0.1 : half;
    for (let i = 0; i < n; i += chunk.length) {
      const m = Math.min(chunk.length, n - i);
      for (let j = 0; j < m; j++) {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        chunk[j] = isNorm ? 1 : ((s >>> 0) / 4294967296 - 0.5) * 2 * amp;
      }
      if (dtype === 'BF16') u16.set(f32ToBf16Bits(chunk.subarray(0, m)), i);
      else f32.set(chunk.subarray(0, m), i);
    }
    out.set(name, { name, dtype, shape, data: bytes });
  }
  return out;
}

/** Write config.json, generation_config.json and model.safetensors of a synthetic model into `dir`. */
export async function writeSyntheticCheckpoint(
  dir: string,
  name: string,
  opts: { layers?: number; seed?: number } = {},
): Promise<ModelConfig> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const json = syntheticConfigJson(name, opts.layers);
  const config = parseConfig(json);
  const tensors = syntheticTensors(config, opts.seed ?? 1);
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(json, null, 2));
  await fs.writeFile(
    path.join(dir, 'generation_config.json'),
    JSON.stringify({ bos_token_id: json.bos_token_id, eos_token_id: json.eos_token_id }),
  );
  await fs.writeFile(path.join(dir, 'model.safetensors'), writeSafetensors([...tensors.values()], { format: 'pt' }));
  return config;
}
