/**
 * The Llama-family decoder as one ONNX graph in the interface transformers.js and Optimum use:
 * `input_ids`, `attention_mask`, `position_ids` and `past_key_values.N.key/value` in; `logits` and
 * `present.N.key/value` out (KV tensors [batch_size, kv_heads, seq, head_dim], f32). It always takes
 * past inputs (zero-length on the first step), as Optimum's merged decoders do.
 *
 * The graph uses onnxruntime's fused operators where they exist (SimplifiedLayerNormalization,
 * com.microsoft SkipSimplifiedLayerNormalization, RotaryEmbedding and GroupQueryAttention), as
 * onnxruntime-genai's builder does: they run on every onnxruntime execution provider, and ORT
 * fuses nothing for WebGPU by itself, so a graph of plain ops would handicap it as a benchmark peer.
 *
 * GroupQueryAttention reads the attention mask as a count of valid tokens per row (right padding,
 * onnxruntime-genai's convention): `seqlens_k = sum(mask) - 1`, total length = mask width.
 */
import type { ModelConfig } from '../formats/config';
import { toFloat32, type HostTensor } from '../formats/checkpoint';
import { ropeTables } from '../model/llama';
import { OnnxGraphBuilder } from './onnx-graph';

export const ONNX_OPSETS = { '': 17, 'com.microsoft': 1 } as const;

/** Positions the exported RoPE tables cover: the model's context (its sliding window, if smaller). */
export function exportedPositions(config: ModelConfig): number {
  return Math.min(config.maxPositionEmbeddings, config.slidingWindow ?? Infinity);
}

/** [rows, cols] row-major → [cols, rows]: HF linear weights are [out, in], ONNX MatMul wants [in, out]. */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[src + c];
  }
  return out;
}

export interface DecoderGraphOptions {
  /**
   * 'all' (the transformers.js / Optimum layout): logits of every fed position. 'last': only the
   * last position's (transformers' `logits_to_keep=1`), what generation reads after a prefill; the
   * benchmark peer uses it so that both runtimes' prefill does the work of time-to-first-token.
   */
  logits?: 'all' | 'last';
}

export function buildDecoderGraph(
  config: ModelConfig,
  tensors: Map<string, HostTensor>,
  opts: DecoderGraphOptions = {},
): OnnxGraphBuilder {
  const c = config;
  const g = new OnnxGraphBuilder('agentark_decoder');
  const take = (name: string): HostTensor => {
    const t = tensors.get(name);
    if (!t) throw new Error(`checkpoint is missing tensor ${name}`);
    return t;
  };
  const vec = (name: string) => g.floats(name, [take(name).shape[0]], toFloat32(take(name)));
  /** A linear layer's weight as a [in, out] initializer named after the HF tensor. */
  const linearWeight = (name: string) => {
    const t = take(name);
    const [out, inF] = t.shape;
    return g.floats(name, [inF, out], transpose(toFloat32(t), out, inF));
  };
  const linear = (x: string, weight: string, bias: string | null) => {
    const y = g.op('MatMul', [x, linearWeight(weight)]);
    return bias ? g.op('Add', [y, vec(bias)]) : y;
  };
  const eps = { float: c.rmsNormEps };

  // ---- interface ------------------------------------------------------------------------------
  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const mask = g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length']);
  const positionIds = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  const past: { key: string; value: string }[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const dims = ['batch_size', c.numKvHeads, 'past_sequence_length', c.headDim];
    past.push({
      key: g.input(`past_key_values.${i}.key`, 'float32', dims),
      value: g.input(`past_key_values.${i}.value`, 'float32', dims),
    });
  }

  // ---- sequence lengths for GroupQueryAttention (int32, as it requires) ------------------------
  const one = g.ints('/const/one', [], [1]);
  const axis1 = g.ints('/const/axis1', [1], [1]);
  const valid = g.op('ReduceSum', [mask, axis1], { keepdims: 0 });
  const seqlensK = g.op('Cast', [g.op('Sub', [valid, one])], { to: 6 /* INT32 */ });
  const maskShape = g.op('Shape', [mask]);
  const totalLength = g.op('Cast', [g.op('Gather', [maskShape, one], { axis: 0 })], { to: 6 });

  // ---- rope tables [positions, head_dim / 2], computed as our runtime computes them ------------
  const positions = exportedPositions(c);
  const { cos, sin } = ropeTables(c, positions);
  const cosCache = g.floats('rope.cos', [positions, c.headDim / 2], cos);
  const sinCache = g.floats('rope.sin', [positions, c.headDim / 2], sin);

  const embedName = 'model.embed_tokens.weight';
  const embed = take(embedName);
  const embedTable = g.floats(embedName, embed.shape, toFloat32(embed));
  let residual = g.op('Gather', [embedTable, inputIds], { axis: 0 });
  let h = g.op('SimplifiedLayerNormalization', [residual, vec('model.layers.0.input_layernorm.weight')], {
    axis: -1,
    epsilon: eps,
    stash_type: 1,
  });

  const headNorm = (x: string, heads: number, weight: string) => {
    const split = g.op('Reshape', [x, g.ints(g.fresh('shape'), [4], [0, 0, heads, c.headDim])]);
    const normed = g.op('SimplifiedLayerNormalization', [split, vec(weight)], {
      axis: -1,
      epsilon: eps,
      stash_type: 1,
    });
    return g.op('Reshape', [normed, g.ints(g.fresh('shape'), [3], [0, 0, heads * c.headDim])]);
  };

  for (let li = 0; li < c.numLayers; li++) {
    const p = `model.layers.${li}.`;
    // Attention block.
    let q = linear(h, `${p}self_attn.q_proj.weight`, c.attentionBias ? `${p}self_attn.q_proj.bias` : null);
    let k = linear(h, `${p}self_attn.k_proj.weight`, c.attentionBias ? `${p}self_attn.k_proj.bias` : null);
    const v = linear(h, `${p}self_attn.v_proj.weight`, c.attentionBias ? `${p}self_attn.v_proj.bias` : null);
    if (c.qkNorm) {
      q = headNorm(q, c.numHeads, `${p}self_attn.q_norm.weight`);
      k = headNorm(k, c.numKvHeads, `${p}self_attn.k_norm.weight`);
    }
    q = g.op(
      'RotaryEmbedding',
      [q, positionIds, cosCache, sinCache],
      { interleaved: 0, num_heads: c.numHeads },
      'com.microsoft',
    );
    k = g.op(
      'RotaryEmbedding',
      [k, positionIds, cosCache, sinCache],
      { interleaved: 0, num_heads: c.numKvHeads },
      'com.microsoft',
    );
    const [att] = g.node('GroupQueryAttention', [q, k, v, past[li].key, past[li].value, seqlensK, totalLength], {
      domain: 'com.microsoft',
      outputs: [g.fresh('attention'), `present.${li}.key`, `present.${li}.value`],
      attrs: { num_heads: c.numHeads, kv_num_heads: c.numKvHeads, scale: { float: 1 / Math.sqrt(c.headDim) } },
    });
    const o = linear(att, `${p}self_attn.o_proj.weight`, c.outputBias ? `${p}self_attn.o_proj.bias` : null);
    // residual += o; h = rmsnorm(residual) in one op.
    const postNormed = g.fresh('post_norm');
    const afterAttention = g.fresh('residual');
    g.node('SkipSimplifiedLayerNormalization', [o, residual, vec(`${p}post_attention_layernorm.weight`)], {
      domain: 'com.microsoft',
      outputs: [postNormed, '', '', afterAttention],
      attrs: { epsilon: eps },
    });
    // MLP block: down(silu(gate(h)) * up(h)).
    const gate = linear(postNormed, `${p}mlp.gate_proj.weight`, null);
    const up = linear(postNormed, `${p}mlp.up_proj.weight`, null);
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    const down = linear(act, `${p}mlp.down_proj.weight`, null);
    // residual += down; h = the next layer's input norm (or the final norm) of it.
    const nextNorm = li + 1 < c.numLayers ? `model.layers.${li + 1}.input_layernorm.weight` : 'model.norm.weight';
    h = g.fresh('norm');
    residual = g.fresh('residual');
    g.node('SkipSimplifiedLayerNormalization', [down, afterAttention, vec(nextNorm)], {
      domain: 'com.microsoft',
      outputs: [h, '', '', residual],
      attrs: { epsilon: eps },
    });
  }

  // lm_head: a tied head reuses the embedding through a Transpose, which onnxruntime folds into a
  // constant when it loads the model (so the file holds the table once).
  const head = c.tieWordEmbeddings ? g.op('Transpose', [embedTable], { perm: [1, 0] }) : linearWeight('lm_head.weight');
  if (opts.logits === 'last') {
    // h[:, -1:, :] — the final norm is per position, so slicing after it changes nothing else.
    const lastPosition = g.ints('/const/last_start', [1], [-1]);
    const end = g.ints('/const/last_end', [1], [2 ** 31 - 1]);
    h = g.op('Slice', [h, lastPosition, end, axis1]);
  }
  g.node('MatMul', [h, head], { outputs: ['logits'] });
  g.output('logits', 'float32', ['batch_size', opts.logits === 'last' ? 1 : 'sequence_length', c.vocabSize]);
  for (let i = 0; i < c.numLayers; i++) {
    const dims = ['batch_size', c.numKvHeads, 'total_sequence_length', c.headDim];
    g.output(`present.${i}.key`, 'float32', dims);
    g.output(`present.${i}.value`, 'float32', dims);
  }
  return g;
}
