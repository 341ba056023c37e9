#!/usr/bin/env python3
"""Independent float32 PyTorch reference ("oracle") for Hugging Face decoder LLMs.

Supported architectures (config.json "architectures", or "model_type" as a fallback):
    LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM

This file deliberately does NOT import `transformers` or `safetensors`: it parses the
checkpoint itself and re-implements the forward pass from the published HF semantics
(modeling_llama.py / modeling_mistral.py / modeling_qwen2.py / modeling_qwen3.py and
modeling_rope_utils.py), one small function per HF piece, so it can be audited side by
side with those files. Everything is computed in float32 on the CPU, without a KV cache.

CLI contract (one JSON object on stdout, diagnostics on stderr, exit 0 on success):

    /usr/bin/python3 tests/reference/hf_reference.py --model DIR --ids 1,2,3 \
        [--greedy N] [--adapter PEFT_DIR]

    {"ids": [1, 2, 3],
     "logits": [[<vocab floats>] for each input position],   # float32 values
     "greedy": [<N new token ids>]}                          # only with --greedy

    /usr/bin/python3 tests/reference/hf_reference.py --selftest

--greedy N: argmax continuation of N tokens, recomputing the whole sequence from scratch
at every step (no cache), never stopping at EOS. Ties go to the lowest token id.
"""

import argparse
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F


def warn(msg):
    print(f"hf_reference: warning: {msg}", file=sys.stderr)


class OracleError(Exception):
    """A checkpoint/config this oracle refuses to interpret (never guess silently)."""


# =============================================================================
# safetensors reading (format: u64 LE header length, JSON header, data section)
# =============================================================================

SAFETENSORS_DTYPES = {
    # dtype name -> (numpy dtype of the stored element, bytes per element)
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2),  # raw bits, widened below
}


def bf16_bits_to_float32(u16):
    """BF16 is the top half of a float32: shift the 16 bits left by 16 and reinterpret."""
    u32 = u16.astype("<u4") << np.uint32(16)
    return u32.view("<f4")


class SafetensorsFile:
    def __init__(self, path):
        self.path = path
        file_size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw_len = f.read(8)
            if len(raw_len) != 8:
                raise OracleError(f"{path}: too short for a safetensors file")
            (header_len,) = struct.unpack("<Q", raw_len)
            if 8 + header_len > file_size:
                raise OracleError(f"{path}: header length {header_len} exceeds file size")
            header = json.loads(f.read(header_len).decode("utf-8"))
        self.data_start = 8 + header_len
        self.metadata = header.pop("__metadata__", None)
        self.entries = header
        data_size = file_size - self.data_start
        for name, e in self.entries.items():
            begin, end = e["data_offsets"]
            if not (0 <= begin <= end <= data_size):
                raise OracleError(f"{path}: tensor {name} offsets {begin}..{end} out of bounds")
            if e["dtype"] in SAFETENSORS_DTYPES:
                itemsize = SAFETENSORS_DTYPES[e["dtype"]][1]
                numel = int(np.prod(e["shape"], dtype=np.int64))
                if end - begin != numel * itemsize:
                    raise OracleError(
                        f"{path}: tensor {name} has {end - begin} bytes, expected {numel * itemsize}")

    def names(self):
        return list(self.entries.keys())

    def read_float32(self, name):
        e = self.entries[name]
        dtype = e["dtype"]
        if dtype not in SAFETENSORS_DTYPES:
            raise OracleError(f"{self.path}: tensor {name} has unsupported dtype {dtype}")
        begin, end = e["data_offsets"]
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            buf = f.read(end - begin)
        np_dtype, _ = SAFETENSORS_DTYPES[dtype]
        raw = np.frombuffer(buf, dtype=np_dtype)
        if dtype == "BF16":
            arr = bf16_bits_to_float32(raw)
        else:
            arr = raw.astype(np.float32)  # F16 -> F32 is exact; F32 makes a writable copy
        return torch.from_numpy(np.ascontiguousarray(arr.reshape(e["shape"])))


class CheckpointReader:
    """model.safetensors, or model.safetensors.index.json + shards."""

    def __init__(self, model_dir):
        index_path = os.path.join(model_dir, "model.safetensors.index.json")
        single_path = os.path.join(model_dir, "model.safetensors")
        self.files = {}
        self.location = {}  # tensor name -> SafetensorsFile
        if os.path.exists(index_path):
            with open(index_path) as f:
                weight_map = json.load(f)["weight_map"]
            for name, shard in weight_map.items():
                if shard not in self.files:
                    self.files[shard] = SafetensorsFile(os.path.join(model_dir, shard))
                if name not in self.files[shard].entries:
                    raise OracleError(f"index maps {name} to {shard}, which lacks it")
                self.location[name] = self.files[shard]
        elif os.path.exists(single_path):
            st = SafetensorsFile(single_path)
            self.files["model.safetensors"] = st
            for name in st.names():
                self.location[name] = st
        else:
            raise OracleError(
                f"{model_dir}: neither model.safetensors nor model.safetensors.index.json")

    def has(self, name):
        return name in self.location

    def names(self):
        return list(self.location.keys())

    def get(self, name):
        if name not in self.location:
            raise OracleError(f"checkpoint lacks tensor {name}")
        return self.location[name].read_float32(name)


# =============================================================================
# config.json -> resolved hyper-parameters (with each HF config class's defaults)
# =============================================================================

ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}


class ModelConfig:
    pass


def _get(raw, key, default):
    """config.json value, treating an explicit null like an absent key (as HF's configs do
    for the fields used here: head_dim, num_key_value_heads, rope_theta, ...)."""
    value = raw.get(key)
    return default if value is None else value


def resolve_rope_config(raw):
    """Returns (rope_theta, rope_type, params dict). Accepts the legacy layout
    (top-level rope_theta + rope_scaling) and the transformers-v5 layout (rope_parameters)."""
    rope_parameters = raw.get("rope_parameters")
    rope_scaling = raw.get("rope_scaling")
    if isinstance(rope_parameters, dict) and rope_parameters and all(
            isinstance(v, dict) for v in rope_parameters.values()):
        raise OracleError("per-layer-type rope_parameters are not supported")
    params = {}
    if isinstance(rope_scaling, dict):
        params.update(rope_scaling)
    if isinstance(rope_parameters, dict):
        params.update(rope_parameters)
        if isinstance(rope_scaling, dict):
            t_scaling = rope_scaling.get("rope_type", rope_scaling.get("type", "default"))
            t_params = rope_parameters.get("rope_type", rope_parameters.get("type", t_scaling))
            if t_scaling != t_params:
                raise OracleError(f"rope_scaling type {t_scaling} conflicts with rope_parameters {t_params}")
    rope_type = params.get("rope_type", params.get("type")) or "default"
    rope_theta = params.get("rope_theta")
    if rope_theta is None:
        rope_theta = _get(raw, "rope_theta", 10000.0)  # default of all four config classes
    partial = params.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0))
    if partial not in (None, 1, 1.0):
        raise OracleError(f"partial_rotary_factor={partial} not supported")
    if rope_type not in ("default", "linear", "llama3"):
        raise OracleError(f"rope type {rope_type!r} not supported (only default, linear, llama3)")
    return float(rope_theta), rope_type, params


def resolve_config(raw):
    arch = None
    for a in raw.get("architectures") or []:
        if a in ARCHITECTURES:
            arch = ARCHITECTURES[a]
            break
    if arch is None:
        mt = raw.get("model_type")
        if mt in ARCHITECTURES.values():
            arch = mt
        else:
            raise OracleError(
                f"unsupported architecture {raw.get('architectures')} / model_type {mt}")

    c = ModelConfig()
    c.arch = arch
    c.vocab_size = raw["vocab_size"]
    c.hidden_size = raw["hidden_size"]
    c.intermediate_size = raw["intermediate_size"]
    c.num_hidden_layers = raw["num_hidden_layers"]
    c.num_attention_heads = raw["num_attention_heads"]
    c.num_key_value_heads = _get(raw, "num_key_value_heads", c.num_attention_heads)
    if c.num_attention_heads % c.num_key_value_heads != 0:
        raise OracleError("num_attention_heads must be a multiple of num_key_value_heads")
    # Qwen3Config's head_dim defaults to 128 (a class default, NOT hidden/heads); the others
    # fall back to hidden_size // num_attention_heads.
    head_dim_default = 128 if arch == "qwen3" else c.hidden_size // c.num_attention_heads
    c.head_dim = _get(raw, "head_dim", head_dim_default)
    if c.head_dim % 2 != 0:
        raise OracleError("head_dim must be even for RoPE")
    c.rms_norm_eps = float(_get(raw, "rms_norm_eps", 1e-6))
    c.hidden_act = _get(raw, "hidden_act", "silu")
    if c.hidden_act != "silu":
        raise OracleError(f"hidden_act {c.hidden_act} not supported (only silu)")
    c.tie_word_embeddings = bool(_get(raw, "tie_word_embeddings", False))  # False in all four classes
    c.rope_theta, c.rope_type, c.rope_params = resolve_rope_config(raw)

    # Which linear layers carry a bias.
    if arch == "llama":
        attention_bias = bool(_get(raw, "attention_bias", False))
        c.qkv_bias = c.o_bias = attention_bias
        c.mlp_bias = bool(_get(raw, "mlp_bias", False))
    elif arch == "mistral":
        c.qkv_bias = c.o_bias = c.mlp_bias = False
    elif arch == "qwen2":
        c.qkv_bias, c.o_bias, c.mlp_bias = True, False, False
    else:  # qwen3
        attention_bias = bool(_get(raw, "attention_bias", False))
        c.qkv_bias = c.o_bias = attention_bias
        c.mlp_bias = False
    c.qk_norm = arch == "qwen3"

    # Per-layer sliding window (None = full causal attention).
    if arch == "llama":
        c.layer_sliding_window = [None] * c.num_hidden_layers
    elif arch == "mistral":
        # MistralConfig: sliding_window defaults to 4096 when the key is absent; null disables.
        sw = raw["sliding_window"] if "sliding_window" in raw else 4096
        c.layer_sliding_window = [sw] * c.num_hidden_layers
    else:
        # Qwen2Config / Qwen3Config: sliding_window only if use_sliding_window; then the
        # layers i >= max_window_layers are "sliding_attention" unless layer_types says otherwise.
        sw = (raw["sliding_window"] if "sliding_window" in raw else 4096) \
            if raw.get("use_sliding_window", False) else None
        layer_types = raw.get("layer_types")
        if layer_types is None:
            mwl = _get(raw, "max_window_layers", 28)
            layer_types = ["sliding_attention" if sw is not None and i >= mwl else "full_attention"
                           for i in range(c.num_hidden_layers)]
        c.layer_sliding_window = [sw if t == "sliding_attention" else None for t in layer_types]
    for sw in c.layer_sliding_window:
        if sw is not None and (not isinstance(sw, int) or sw < 1):
            raise OracleError(f"bad sliding_window {sw}")
    c.max_position_embeddings = raw.get("max_position_embeddings")
    return c


# =============================================================================
# Rotary position embedding (modeling_rope_utils.py + *RotaryEmbedding.forward)
# =============================================================================

def compute_default_rope_parameters(rope_theta, dim):
    """inv_freq = 1 / theta^(arange(0, dim, 2) / dim). Like HF this is a float32 tensor
    computation (arange as int64, cast to float32, float32 pow, then reciprocal)."""
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float32) / dim
    inv_freq = 1.0 / (rope_theta ** exponents)
    attention_factor = 1.0
    return inv_freq, attention_factor


def compute_linear_scaling_rope_parameters(rope_theta, dim, params):
    inv_freq, attention_factor = compute_default_rope_parameters(rope_theta, dim)
    inv_freq = inv_freq / params["factor"]
    return inv_freq, attention_factor


def compute_llama3_parameters(rope_theta, dim, params):
    """Llama 3.1 frequency smoothing, as transformers' _compute_llama3_parameters:
    wavelengths shorter than original_ctx/high_freq_factor keep their frequency, longer than
    original_ctx/low_freq_factor are divided by `factor`, and the band in between is linearly
    interpolated in (original_ctx / wavelen). Kept as float32 tensor expressions in the same
    order as HF so rounding matches."""
    inv_freq, attention_factor = compute_default_rope_parameters(rope_theta, dim)
    factor = params["factor"]
    low_freq_factor = params["low_freq_factor"]
    high_freq_factor = params["high_freq_factor"]
    old_context_len = params["original_max_position_embeddings"]

    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor

    wavelen = 2 * math.pi / inv_freq
    # Long wavelengths (low frequencies): divide by factor. Short ones: unchanged.
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    # Medium band: interpolate between scaled and unscaled.
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    inv_freq_llama = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    return inv_freq_llama, attention_factor


def compute_rope_parameters(cfg):
    if cfg.rope_type == "default":
        return compute_default_rope_parameters(cfg.rope_theta, cfg.head_dim)
    if cfg.rope_type == "linear":
        return compute_linear_scaling_rope_parameters(cfg.rope_theta, cfg.head_dim, cfg.rope_params)
    if cfg.rope_type == "llama3":
        return compute_llama3_parameters(cfg.rope_theta, cfg.head_dim, cfg.rope_params)
    raise OracleError(cfg.rope_type)


def rotary_embedding(inv_freq, attention_scaling, position_ids):
    """cos, sin of shape [T, head_dim]: freqs[t, i] = position[t] * inv_freq[i] (float32),
    emb = cat(freqs, freqs)."""
    freqs = torch.outer(position_ids.to(torch.float32), inv_freq.to(torch.float32))
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos() * attention_scaling
    sin = emb.sin() * attention_scaling
    return cos, sin


def rotate_half(x):
    """[x1, x2] -> [-x2, x1] on the last axis (first half / second half, NOT interleaved)."""
    half = x.shape[-1] // 2
    x1 = x[..., :half]
    x2 = x[..., half:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    """q, k: [heads, T, head_dim]; cos, sin: [T, head_dim] (broadcast over heads)."""
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


# =============================================================================
# Layers
# =============================================================================

def rms_norm(hidden_states, weight, eps):
    """LlamaRMSNorm: x * rsqrt(mean(x^2, -1) + eps) in float32, then weight * x."""
    hidden_states = hidden_states.to(torch.float32)
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    hidden_states = hidden_states * torch.rsqrt(variance + eps)
    return weight * hidden_states


def linear(x, weight, bias=None):
    """nn.Linear: x @ weight.T + bias, weight stored [out_features, in_features]."""
    return F.linear(x, weight, bias)


def repeat_kv(hidden_states, n_rep):
    """[kv_heads, T, d] -> [kv_heads * n_rep, T, d]; kv head j serves query heads
    j*n_rep .. (j+1)*n_rep - 1 (repeat_interleave on the head axis)."""
    if n_rep == 1:
        return hidden_states
    return torch.repeat_interleave(hidden_states, n_rep, dim=0)


def make_attention_mask(seq_len, sliding_window):
    """Boolean [T, T], True = may attend. Causal: kv <= q. Sliding window overlay
    (masking_utils.sliding_window_overlay): additionally kv > q - sliding_window."""
    q_idx = torch.arange(seq_len)[:, None]
    kv_idx = torch.arange(seq_len)[None, :]
    allowed = kv_idx <= q_idx
    if sliding_window is not None:
        allowed = allowed & (kv_idx > q_idx - sliding_window)
    return allowed


def eager_attention_forward(query, key, value, attention_mask, scaling, num_key_value_groups):
    """softmax(q k^T * scaling + mask) v, softmax in float32. Masked scores are set to -inf
    (HF adds finfo.min; both give exactly 0 probability)."""
    key_states = repeat_kv(key, num_key_value_groups)
    value_states = repeat_kv(value, num_key_value_groups)
    attn_weights = torch.matmul(query, key_states.transpose(-1, -2)) * scaling
    attn_weights = attn_weights.masked_fill(~attention_mask, float("-inf"))
    attn_weights = torch.softmax(attn_weights, dim=-1, dtype=torch.float32)
    attn_output = torch.matmul(attn_weights, value_states)  # [heads, T, d]
    return attn_output.transpose(0, 1).contiguous()  # [T, heads, d]


def self_attention(cfg, w, prefix, hidden_states, cos, sin, attention_mask):
    seq_len = hidden_states.shape[0]
    hd = cfg.head_dim
    q = linear(hidden_states, w[prefix + "q_proj.weight"], w.get(prefix + "q_proj.bias"))
    k = linear(hidden_states, w[prefix + "k_proj.weight"], w.get(prefix + "k_proj.bias"))
    v = linear(hidden_states, w[prefix + "v_proj.weight"], w.get(prefix + "v_proj.bias"))
    q = q.view(seq_len, cfg.num_attention_heads, hd)
    k = k.view(seq_len, cfg.num_key_value_heads, hd)
    v = v.view(seq_len, cfg.num_key_value_heads, hd)
    if cfg.qk_norm:
        # Qwen3: RMSNorm over head_dim of every head, after the projection, before RoPE.
        q = rms_norm(q, w[prefix + "q_norm.weight"], cfg.rms_norm_eps)
        k = rms_norm(k, w[prefix + "k_norm.weight"], cfg.rms_norm_eps)
    q = q.transpose(0, 1)  # [heads, T, hd]
    k = k.transpose(0, 1)
    v = v.transpose(0, 1)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    attn_output = eager_attention_forward(
        q, k, v, attention_mask,
        scaling=hd ** -0.5,
        num_key_value_groups=cfg.num_attention_heads // cfg.num_key_value_heads)
    attn_output = attn_output.reshape(seq_len, cfg.num_attention_heads * hd)
    return linear(attn_output, w[prefix + "o_proj.weight"], w.get(prefix + "o_proj.bias"))


def mlp(w, prefix, x):
    """SwiGLU: down(silu(gate(x)) * up(x))."""
    gate = linear(x, w[prefix + "gate_proj.weight"], w.get(prefix + "gate_proj.bias"))
    up = linear(x, w[prefix + "up_proj.weight"], w.get(prefix + "up_proj.bias"))
    return linear(F.silu(gate) * up, w[prefix + "down_proj.weight"], w.get(prefix + "down_proj.bias"))


def decoder_layer(cfg, w, i, hidden_states, cos, sin, attention_mask):
    p = f"model.layers.{i}."
    residual = hidden_states
    hidden_states = rms_norm(hidden_states, w[p + "input_layernorm.weight"], cfg.rms_norm_eps)
    hidden_states = self_attention(cfg, w, p + "self_attn.", hidden_states, cos, sin, attention_mask)
    hidden_states = residual + hidden_states
    residual = hidden_states
    hidden_states = rms_norm(hidden_states, w[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
    hidden_states = mlp(w, p + "mlp.", hidden_states)
    return residual + hidden_states


# =============================================================================
# Model
# =============================================================================

def expected_weight_names(cfg):
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        names += [p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            names.append(p + f"self_attn.{proj}.weight")
            if (cfg.o_bias if proj == "o_proj" else cfg.qkv_bias):
                names.append(p + f"self_attn.{proj}.bias")
        if cfg.qk_norm:
            names += [p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight"]
        for proj in ("gate_proj", "up_proj", "down_proj"):
            names.append(p + f"mlp.{proj}.weight")
            if cfg.mlp_bias:
                names.append(p + f"mlp.{proj}.bias")
    return names


def check_shapes(cfg, w):
    H, KV, hd, D, I = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim,
                       cfg.hidden_size, cfg.intermediate_size)
    want = {"model.norm.weight": (D,)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        want.update({
            p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
            p + "self_attn.q_proj.weight": (H * hd, D), p + "self_attn.k_proj.weight": (KV * hd, D),
            p + "self_attn.v_proj.weight": (KV * hd, D), p + "self_attn.o_proj.weight": (D, H * hd),
            p + "self_attn.q_proj.bias": (H * hd,), p + "self_attn.k_proj.bias": (KV * hd,),
            p + "self_attn.v_proj.bias": (KV * hd,), p + "self_attn.o_proj.bias": (D,),
            p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,),
            p + "mlp.gate_proj.weight": (I, D), p + "mlp.up_proj.weight": (I, D),
            p + "mlp.down_proj.weight": (D, I), p + "mlp.gate_proj.bias": (I,),
            p + "mlp.up_proj.bias": (I,), p + "mlp.down_proj.bias": (D,),
        })
    for name, shape in want.items():
        if name in w and tuple(w[name].shape) != shape:
            raise OracleError(f"{name}: shape {tuple(w[name].shape)}, expected {shape}")
    emb = w["model.embed_tokens.weight"]
    if emb.dim() != 2 or emb.shape[1] != D:
        raise OracleError(f"embed_tokens shape {tuple(emb.shape)}")
    if w["lm_head.weight"].dim() != 2 or w["lm_head.weight"].shape[1] != D:
        raise OracleError(f"lm_head shape {tuple(w['lm_head.weight'].shape)}")


class CausalLM:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.raw_config = json.load(f)
        self.cfg = resolve_config(self.raw_config)
        reader = CheckpointReader(model_dir)
        w = {}
        for name in expected_weight_names(self.cfg):
            w[name] = reader.get(name)
        # lm_head: tied to embed_tokens when tie_word_embeddings, or when absent from the file.
        if self.cfg.tie_word_embeddings or not reader.has("lm_head.weight"):
            if not self.cfg.tie_word_embeddings:
                warn("lm_head.weight absent and tie_word_embeddings false: tying to embed_tokens")
            w["lm_head.weight"] = w["model.embed_tokens.weight"]
            self.lm_head_tied = True
        else:
            w["lm_head.weight"] = reader.get("lm_head.weight")
            self.lm_head_tied = False
        unused = [n for n in reader.names() if n not in w and not n.endswith("rotary_emb.inv_freq")]
        if unused:
            warn(f"{len(unused)} checkpoint tensors unused, e.g. {unused[:5]}")
        check_shapes(self.cfg, w)
        self.weights = w
        self.inv_freq, self.attention_scaling = compute_rope_parameters(self.cfg)

    def forward(self, input_ids):
        """input_ids: list[int] -> logits float32 tensor [T, vocab]. Full recompute, no cache."""
        cfg, w = self.cfg, self.weights
        seq_len = len(input_ids)
        if seq_len == 0:
            raise OracleError("empty input")
        ids = torch.tensor(input_ids, dtype=torch.int64)
        embed = w["model.embed_tokens.weight"]
        if int(ids.min()) < 0 or int(ids.max()) >= embed.shape[0]:
            raise OracleError(f"token id out of range [0, {embed.shape[0]})")
        hidden_states = embed[ids]
        position_ids = torch.arange(seq_len, dtype=torch.int64)
        cos, sin = rotary_embedding(self.inv_freq, self.attention_scaling, position_ids)
        masks = {}
        for i in range(cfg.num_hidden_layers):
            sw = cfg.layer_sliding_window[i]
            if sw not in masks:
                masks[sw] = make_attention_mask(seq_len, sw)
            hidden_states = decoder_layer(cfg, w, i, hidden_states, cos, sin, masks[sw])
        hidden_states = rms_norm(hidden_states, w["model.norm.weight"], cfg.rms_norm_eps)
        return linear(hidden_states, w["lm_head.weight"])

    def greedy(self, input_ids, max_new_tokens, first_logits=None):
        """Greedy decoding by full recomputation at every step; ties -> lowest id; no EOS stop."""
        seq = list(input_ids)
        out = []
        for step in range(max_new_tokens):
            logits = first_logits if (step == 0 and first_logits is not None) else self.forward(seq)
            next_id = int(np.argmax(logits[-1].numpy()))  # numpy: first maximal index
            out.append(next_id)
            seq.append(next_id)
        return out


# =============================================================================
# PEFT LoRA adapter: W_eff = W + scaling * (B @ A)
# =============================================================================

_LORA_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[A-Za-z0-9_\-]+)?\.weight$")


def peft_pattern_value(patterns, module_name, default):
    """rank_pattern / alpha_pattern lookup as PEFT's get_pattern_key: the first pattern key
    p such that re.match(rf"(.*\\.)?({p})$", module_name)."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module_name):
            return value
    return default


def module_is_targeted(target_modules, module_name):
    if target_modules is None:
        return True
    if isinstance(target_modules, str):
        return target_modules == "all-linear" or re.fullmatch(target_modules, module_name) is not None
    return any(module_name == t or module_name.endswith("." + t) for t in target_modules)


def apply_lora_adapter(model, adapter_dir):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        acfg = json.load(f)
    if acfg.get("peft_type", "LORA") != "LORA":
        raise OracleError(f"peft_type {acfg.get('peft_type')} not supported")
    for flag in ("use_dora", "fan_in_fan_out", "lora_bias"):
        if acfg.get(flag):
            raise OracleError(f"adapter {flag}=true not supported")
    r = acfg["r"]
    lora_alpha = acfg["lora_alpha"]
    use_rslora = bool(acfg.get("use_rslora", False))
    path = os.path.join(adapter_dir, "adapter_model.safetensors")
    if not os.path.exists(path):
        raise OracleError(f"{path} missing (only safetensors adapters are supported)")
    st = SafetensorsFile(path)
    pairs = {}
    for key in st.names():
        m = _LORA_KEY.match(key)
        if not m:
            raise OracleError(f"unsupported adapter tensor {key} (only lora_A/lora_B weights)")
        pairs.setdefault(m.group("module"), {})[m.group("ab")] = key
    w = model.weights
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise OracleError(f"adapter module {module} lacks lora_A or lora_B")
        target = module + ".weight"
        if target not in w:
            raise OracleError(f"adapter targets {module}, which is not a linear weight of the model")
        if not module_is_targeted(acfg.get("target_modules"), module):
            warn(f"adapter has weights for {module}, not matched by target_modules; applying anyway")
        lora_A = st.read_float32(ab["A"])  # [r, in]
        lora_B = st.read_float32(ab["B"])  # [out, r]
        rank = peft_pattern_value(acfg.get("rank_pattern"), module, r)
        alpha = peft_pattern_value(acfg.get("alpha_pattern"), module, lora_alpha)
        W = w[target]
        if lora_A.shape != (rank, W.shape[1]) or lora_B.shape != (W.shape[0], rank):
            raise OracleError(
                f"{module}: lora_A {tuple(lora_A.shape)}, lora_B {tuple(lora_B.shape)} "
                f"do not fit weight {tuple(W.shape)} with r={rank}")
        scaling = alpha / math.sqrt(rank) if use_rslora else alpha / rank
        # New tensor (never in place): a tied lm_head adapted by LoRA must not change embed_tokens.
        w[target] = W + (lora_B @ lora_A) * scaling
    return len(pairs)


# =============================================================================
# CLI
# =============================================================================

def parse_ids(text):
    ids = [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    if not ids:
        raise OracleError("--ids is empty")
    return ids


def run(model_dir, ids, greedy=None, adapter=None):
    model = CausalLM(model_dir)
    if adapter:
        apply_lora_adapter(model, adapter)
    with torch.no_grad():
        logits = model.forward(ids)
        if not bool(torch.isfinite(logits).all()):
            raise OracleError("non-finite logits")
        out = {"ids": list(ids), "logits": logits.tolist()}
        if greedy is not None:
            out["greedy"] = model.greedy(ids, greedy, first_logits=logits)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="Independent float32 HF decoder-LLM reference.")
    ap.add_argument("--model", help="HF model directory (config.json + safetensors)")
    ap.add_argument("--ids", help="comma-separated input token ids, e.g. 1,2,3")
    ap.add_argument("--greedy", type=int, default=None, metavar="N",
                    help="also emit N greedy tokens (full recompute each step, no EOS stop)")
    ap.add_argument("--adapter", default=None, help="PEFT LoRA adapter directory")
    ap.add_argument("--selftest", action="store_true", help="run the built-in self tests")
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest()
    if not args.model or args.ids is None:
        ap.error("--model and --ids are required (or --selftest)")
    if args.greedy is not None and args.greedy < 0:
        ap.error("--greedy must be >= 0")
    try:
        out = run(args.model, parse_ids(args.ids), args.greedy, args.adapter)
    except (OracleError, KeyError, ValueError, OSError) as e:
        print(f"hf_reference: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(out, allow_nan=False))
    sys.stdout.write("\n")
    return 0


# =============================================================================
# Self test: tiny random checkpoints written by our own safetensors writer, checked
# against a deliberately different float64 numpy formulation (loops over positions and
# heads, pairwise rotation, scalar RoPE math) plus structural invariants.
# =============================================================================

def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """tensors: dict name -> float32 numpy array. dtype F32 / F16 / BF16 (BF16 truncates;
    the self test only writes bf16-representable values)."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            data = a.astype("<f4").tobytes()
        elif dtype == "F16":
            data = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            data = (a.view("<u4") >> np.uint32(16)).astype("<u2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)  # the reference writer pads with spaces to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def round_to_bf16(a):
    return (a.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


def make_random_model(raw_config, seed, include_lm_head=True):
    """Random float32 weights for raw_config (every tensor is exactly bf16-representable)."""
    cfg = resolve_config(raw_config)
    rng = np.random.default_rng(seed)
    H, KV, hd, D, I, V = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim,
                          cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size)
    t = {"model.embed_tokens.weight": rng.normal(0, 1.0, (V, D)),
         "model.norm.weight": rng.normal(1.0, 0.2, (D,))}
    if include_lm_head:
        t["lm_head.weight"] = rng.normal(0, 0.3, (V, D))
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = rng.normal(1.0, 0.2, (D,))
        t[p + "post_attention_layernorm.weight"] = rng.normal(1.0, 0.2, (D,))
        for proj, shape in (("q_proj", (H * hd, D)), ("k_proj", (KV * hd, D)),
                            ("v_proj", (KV * hd, D)), ("o_proj", (D, H * hd))):
            t[p + f"self_attn.{proj}.weight"] = rng.normal(0, 0.8 / math.sqrt(shape[1]), shape)
            if (cfg.o_bias if proj == "o_proj" else cfg.qkv_bias):
                t[p + f"self_attn.{proj}.bias"] = rng.normal(0, 0.3, (shape[0],))
        if cfg.qk_norm:
            t[p + "self_attn.q_norm.weight"] = rng.normal(1.0, 0.3, (hd,))
            t[p + "self_attn.k_norm.weight"] = rng.normal(1.0, 0.3, (hd,))
        for proj, shape in (("gate_proj", (I, D)), ("up_proj", (I, D)), ("down_proj", (D, I))):
            t[p + f"mlp.{proj}.weight"] = rng.normal(0, 1.0 / math.sqrt(shape[1]), shape)
            if cfg.mlp_bias:
                t[p + f"mlp.{proj}.bias"] = rng.normal(0, 0.2, (shape[0],))
    return {k: round_to_bf16(v.astype(np.float32)) for k, v in t.items()}


def write_model_dir(path, raw_config, tensors, dtype="F32", shards=1):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(raw_config, f)
    if shards == 1:
        write_safetensors(os.path.join(path, "model.safetensors"), tensors, dtype, {"format": "pt"})
        return path
    names = sorted(tensors)
    weight_map = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        write_safetensors(os.path.join(path, fname), part, dtype, {"format": "pt"})
        weight_map.update({n: fname for n in part})
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
    return path


def write_adapter_dir(path, adapter_config, lora):
    """lora: dict module_name -> (A [r,in], B [out,r]) float32 arrays."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump(adapter_config, f)
    t = {}
    for module, (A, B) in lora.items():
        t[f"base_model.model.{module}.lora_A.weight"] = A
        t[f"base_model.model.{module}.lora_B.weight"] = B
    write_safetensors(os.path.join(path, "adapter_model.safetensors"), t, "F32")
    return path


def naive_inv_freq(raw_config, head_dim):
    """Scalar float64 RoPE frequencies, written independently (branching per frequency)."""
    theta, rope_type, params = resolve_rope_config(raw_config)
    inv = [1.0 / theta ** (2 * i / head_dim) for i in range(head_dim // 2)]
    if rope_type == "linear":
        inv = [f / params["factor"] for f in inv]
    elif rope_type == "llama3":
        factor, lo, hi = params["factor"], params["low_freq_factor"], params["high_freq_factor"]
        ctx = params["original_max_position_embeddings"]
        out = []
        for f in inv:
            wavelen = 2 * math.pi / f
            if wavelen < ctx / hi:
                out.append(f)
            elif wavelen > ctx / lo:
                out.append(f / factor)
            else:
                s = (ctx / wavelen - lo) / (hi - lo)
                out.append((1 - s) * f / factor + s * f)
        inv = out
    return inv


def naive_forward(raw_config, tensors, ids, lora=None, lora_scaling=None):
    """float64 numpy, position-by-position and head-by-head. `lora`: module -> (A, B),
    applied UNMERGED as x W^T + scaling * (x A^T) B^T (how PEFT runs an unmerged adapter)."""
    cfg = resolve_config(raw_config)
    t = {k: v.astype(np.float64) for k, v in tensors.items()}
    if "lm_head.weight" not in t or cfg.tie_word_embeddings:
        t["lm_head.weight"] = t["model.embed_tokens.weight"]
    H, KV, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    group = H // KV
    half = hd // 2
    eps = cfg.rms_norm_eps
    inv = naive_inv_freq(raw_config, hd)

    def lin(x, module):
        y = t[module + ".weight"] @ x
        if module + ".bias" in t:
            y = y + t[module + ".bias"]
        if lora and module in lora:
            A, B = lora[module]
            y = y + lora_scaling[module] * (B.astype(np.float64) @ (A.astype(np.float64) @ x))
        return y

    def norm(x, wname):
        return x / math.sqrt(float(np.mean(x * x)) + eps) * t[wname]

    def rope(x, pos):
        y = np.empty_like(x)
        for i in range(half):
            c, s = math.cos(pos * inv[i]), math.sin(pos * inv[i])
            y[i] = x[i] * c - x[i + half] * s
            y[i + half] = x[i + half] * c + x[i] * s
        return y

    T = len(ids)
    xs = [t["model.embed_tokens.weight"][tok].copy() for tok in ids]
    for layer in range(cfg.num_hidden_layers):
        p = f"model.layers.{layer}."
        sw = cfg.layer_sliding_window[layer]
        qs, ks, vs = [], [], []
        for pos in range(T):
            h = norm(xs[pos], p + "input_layernorm.weight")
            q = lin(h, p + "self_attn.q_proj").reshape(H, hd)
            k = lin(h, p + "self_attn.k_proj").reshape(KV, hd)
            v = lin(h, p + "self_attn.v_proj").reshape(KV, hd)
            if cfg.qk_norm:
                q = np.stack([norm(q[j], p + "self_attn.q_norm.weight") for j in range(H)])
                k = np.stack([norm(k[j], p + "self_attn.k_norm.weight") for j in range(KV)])
            qs.append(np.stack([rope(q[j], pos) for j in range(H)]))
            ks.append(np.stack([rope(k[j], pos) for j in range(KV)]))
            vs.append(v)
        new_xs = []
        for pos in range(T):
            visible = [s for s in range(pos + 1) if sw is None or pos - s < sw]
            heads = []
            for j in range(H):
                kvh = j // group
                scores = np.array([qs[pos][j] @ ks[s][kvh] / math.sqrt(hd) for s in visible])
                e = np.exp(scores - scores.max())
                probs = e / e.sum()
                heads.append(sum(pr * vs[s][kvh] for pr, s in zip(probs, visible)))
            x = xs[pos] + lin(np.concatenate(heads), p + "self_attn.o_proj")
            h = norm(x, p + "post_attention_layernorm.weight")
            g = lin(h, p + "mlp.gate_proj")
            u = lin(h, p + "mlp.up_proj")
            x = x + lin(g / (1.0 + np.exp(-g)) * u, p + "mlp.down_proj")
            new_xs.append(x)
        xs = new_xs
    return np.stack([lin(norm(x, "model.norm.weight"), "lm_head") for x in xs])


class SelfTest:
    def __init__(self):
        self.failures = 0
        self.count = 0

    def check(self, ok, what):
        self.count += 1
        status = "ok  " if ok else "FAIL"
        print(f"  [{status}] {what}", file=sys.stderr)
        if not ok:
            self.failures += 1

    def close(self, a, b, what, atol=1e-4, rtol=1e-4):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        ok = a.shape == b.shape and np.allclose(a, b, atol=atol, rtol=rtol)
        diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("nan")
        self.check(ok, f"{what} (max|diff|={diff:.2e})")

    def equal(self, a, b, what):
        a, b = np.asarray(a), np.asarray(b)
        self.check(a.shape == b.shape and np.array_equal(a, b), f"{what} (bit-exact)")


def base_config(arch, **overrides):
    c = {"architectures": [arch], "vocab_size": 96, "hidden_size": 32, "intermediate_size": 48,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "rms_norm_eps": 1e-5, "max_position_embeddings": 2048, "hidden_act": "silu"}
    c.update(overrides)
    return c


def selftest():
    torch.manual_seed(0)
    st = SelfTest()
    tmp = tempfile.mkdtemp(prefix="hf_reference_selftest_")
    ids = [3, 17, 42, 5, 88, 0, 61, 29, 7, 50, 13]
    try:
        cases = [
            ("llama GQA, attention_bias+mlp_bias, explicit lm_head",
             base_config("LlamaForCausalLM", attention_bias=True, mlp_bias=True, rope_theta=10000.0,
                         tie_word_embeddings=False), True),
            ("llama3 rope_scaling (all three bands), tied lm_head",
             base_config("LlamaForCausalLM", hidden_size=64, num_attention_heads=4, num_key_value_heads=1,
                         rope_theta=10000.0, tie_word_embeddings=True,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 1024}),
             False),
            ("mistral sliding_window=3",
             base_config("MistralForCausalLM", sliding_window=3, head_dim=None, rope_theta=1e6), True),
            ("qwen2 (qkv bias, no o bias), tied, theta 1e6",
             base_config("Qwen2ForCausalLM", rope_theta=1e6, tie_word_embeddings=True,
                         use_sliding_window=False, sliding_window=4), False),
            ("qwen3 head_dim=16 != hidden/heads, q_norm/k_norm, v5 rope_parameters",
             base_config("Qwen3ForCausalLM", head_dim=16, rope_parameters={"rope_type": "default",
                                                                          "rope_theta": 1e6},
                         tie_word_embeddings=False), True),
            ("qwen3 use_sliding_window (layer 1 only, window 4), attention_bias",
             base_config("Qwen3ForCausalLM", head_dim=8, rope_theta=1e6, attention_bias=True,
                         use_sliding_window=True, sliding_window=4, max_window_layers=1), True),
        ]
        for n, (name, raw, with_head) in enumerate(cases):
            print(f"case: {name}", file=sys.stderr)
            tensors = make_random_model(raw, seed=100 + n, include_lm_head=with_head)
            mdir = write_model_dir(os.path.join(tmp, f"case{n}"), raw, tensors)
            model = CausalLM(mdir)
            with torch.no_grad():
                full = model.forward(ids)
                st.close(full.numpy(), naive_forward(raw, tensors, ids),
                         "matches float64 loop reference (all positions)")
                inc = torch.stack([model.forward(ids[:t + 1])[-1] for t in range(len(ids))])
                st.close(inc.numpy(), full.numpy(), "prefix recompute == full pass, every position",
                         atol=3e-5, rtol=1e-5)
                for cut in (1, 5):
                    changed = ids[:cut] + [(x * 7 + 1) % raw["vocab_size"] for x in ids[cut:]]
                    other = model.forward(changed)
                    st.close(other[:cut].numpy(), full[:cut].numpy(),
                             f"causality: positions < {cut} unaffected by later tokens", atol=1e-6, rtol=1e-6)
                    st.check(not torch.allclose(other[cut:], full[cut:]),
                             f"later positions do change when tokens from {cut} change")
                greedy = model.greedy(ids[:4], 5)
                seq = ids[:4]
                naive_greedy = []
                for _ in range(5):
                    nxt = int(np.argmax(naive_forward(raw, tensors, seq)[-1]))
                    naive_greedy.append(nxt)
                    seq = seq + [nxt]
                st.check(greedy == naive_greedy, f"greedy {greedy} == float64 loop greedy {naive_greedy}")

        # config.json resolution (defaults of the HF config classes).
        print("case: config resolution", file=sys.stderr)
        sw = [resolve_config(c[1]).layer_sliding_window for c in cases]
        st.check(sw == [[None, None], [None, None], [3, 3], [None, None], [None, None], [None, 4]],
                 f"per-layer sliding windows resolved as HF {sw}")
        mis = base_config("MistralForCausalLM")
        st.check(resolve_config(mis).layer_sliding_window == [4096, 4096], "Mistral sliding_window absent -> 4096")
        st.check(resolve_config(dict(mis, sliding_window=None)).layer_sliding_window == [None, None],
                 "Mistral sliding_window null -> full attention")
        q3 = {k: v for k, v in base_config("Qwen3ForCausalLM").items() if k != "head_dim"}
        st.check(resolve_config(q3).head_dim == 128, "Qwen3 head_dim absent -> 128 (Qwen3Config default)")
        ll = resolve_config(base_config("LlamaForCausalLM", num_key_value_heads=None, head_dim=None))
        st.check((ll.head_dim, ll.num_key_value_heads) == (8, 4), "Llama null head_dim/num_key_value_heads -> defaults")
        q2 = resolve_config(base_config("Qwen2ForCausalLM", attention_bias=False))
        st.check((q2.qkv_bias, q2.o_bias, q2.mlp_bias) == (True, False, False), "Qwen2 qkv bias always, o/mlp never")
        for bad in (dict(rope_scaling={"rope_type": "yarn", "factor": 4.0}), dict(hidden_act="gelu"),
                    dict(architectures=["GPT2LMHeadModel"], model_type="gpt2")):
            try:
                resolve_config(base_config("LlamaForCausalLM", **bad))
                st.check(False, f"refuses {bad}")
            except OracleError:
                st.check(True, f"refuses {bad}")

        # RoPE building blocks.
        print("case: RoPE building blocks", file=sys.stderr)
        raw3 = cases[1][1]
        inv_t, _ = compute_rope_parameters(resolve_config(raw3))
        st.close(inv_t.numpy(), naive_inv_freq(raw3, 16), "llama3 inv_freq vs scalar float64 formula",
                 atol=0, rtol=1e-6)
        base_inv, _ = compute_default_rope_parameters(10000.0, 16)
        wl = (2 * math.pi / base_inv).numpy()
        bands = (int((wl < 256).sum()), int(((wl >= 256) & (wl <= 1024)).sum()), int((wl > 1024).sum()))
        st.check(all(b > 0 for b in bands), f"llama3 test covers high/medium/low bands {bands}")
        x = torch.randn(3, 5, 16)
        cos, sin = rotary_embedding(base_inv, 1.0, torch.arange(5))
        rot, _ = apply_rotary_pos_emb(x, x, cos, sin)
        ang = torch.outer(torch.arange(5, dtype=torch.float64), base_inv.double())
        z = torch.complex(x[..., :8].double(), x[..., 8:].double()) * torch.polar(torch.ones_like(ang), ang)
        st.close(rot.numpy(), torch.cat((z.real, z.imag), -1).numpy(),
                 "rotate_half RoPE == complex rotation of pairs (i, i+hd/2)", atol=1e-5)
        st.close(torch.norm(rot, dim=-1).numpy(), torch.norm(x, dim=-1).numpy(), "RoPE preserves norm",
                 atol=1e-5)
        kv = torch.arange(2.0).view(2, 1, 1)
        st.equal(repeat_kv(kv, 3).flatten().numpy(), [0, 0, 0, 1, 1, 1],
                 "repeat_kv: kv head j serves query heads j*g..(j+1)*g-1")

        # Storage: tie, dtypes, shards, header metadata.
        print("case: checkpoint storage", file=sys.stderr)
        raw = base_config("LlamaForCausalLM", tie_word_embeddings=True)
        tensors = make_random_model(raw, seed=7, include_lm_head=False)
        tied = CausalLM(write_model_dir(os.path.join(tmp, "tied"), raw, tensors)).forward(ids)
        raw_untied = dict(raw, tie_word_embeddings=False)
        explicit = dict(tensors, **{"lm_head.weight": tensors["model.embed_tokens.weight"].copy()})
        untied = CausalLM(write_model_dir(os.path.join(tmp, "untied"), raw_untied, explicit)).forward(ids)
        st.equal(tied.numpy(), untied.numpy(), "tied lm_head == explicit lm_head with same weights")
        raw_absent = {k: v for k, v in raw.items() if k != "tie_word_embeddings"}
        absent = CausalLM(write_model_dir(os.path.join(tmp, "absent"), raw_absent, tensors)).forward(ids)
        st.equal(absent.numpy(), tied.numpy(), "lm_head absent from file -> tied to embed_tokens")
        raw_t = dict(raw, tie_word_embeddings=True)
        other_head = dict(tensors, **{"lm_head.weight": tensors["model.embed_tokens.weight"] * 0.5})
        tie_wins = CausalLM(write_model_dir(os.path.join(tmp, "tiewins"), raw_t, other_head)).forward(ids)
        st.equal(tie_wins.numpy(), tied.numpy(), "tie_word_embeddings=true ignores a stored lm_head")

        raw = base_config("Qwen3ForCausalLM", head_dim=16, rope_theta=1e6)
        tensors = make_random_model(raw, seed=8)
        f32 = CausalLM(write_model_dir(os.path.join(tmp, "f32"), raw, tensors, "F32")).forward(ids)
        bf16 = CausalLM(write_model_dir(os.path.join(tmp, "bf16"), raw, tensors, "BF16")).forward(ids)
        st.equal(bf16.numpy(), f32.numpy(), "BF16 file == F32 file (bf16-representable weights)")
        sharded = CausalLM(write_model_dir(os.path.join(tmp, "shard"), raw, tensors, "F32", shards=3)).forward(ids)
        st.equal(sharded.numpy(), f32.numpy(), "3-shard index.json checkpoint == single file")
        t16 = {k: v.astype(np.float16).astype(np.float32) for k, v in tensors.items()}
        a16 = CausalLM(write_model_dir(os.path.join(tmp, "f16"), raw, t16, "F16")).forward(ids)
        b16 = CausalLM(write_model_dir(os.path.join(tmp, "f16as32"), raw, t16, "F32")).forward(ids)
        st.equal(a16.numpy(), b16.numpy(), "F16 file == F32 file (f16-representable weights)")
        bits = np.array([0x3F80, 0xC000, 0x7F7F, 0x0001, 0x8000], dtype="<u2")
        st.equal(bf16_bits_to_float32(bits), np.array([1.0, -2.0, 3.3895313892515355e38,
                                                       9.183549615799121e-41, -0.0], dtype=np.float32),
                 "BF16 bit conversion of known values")

        # LoRA adapters.
        print("case: PEFT LoRA adapters", file=sys.stderr)
        for use_rslora, raw in ((False, base_config("Qwen2ForCausalLM", rope_theta=1e6,
                                                    tie_word_embeddings=True)),
                                (True, base_config("LlamaForCausalLM", tie_word_embeddings=False))):
            tensors = make_random_model(raw, seed=9, include_lm_head=not raw["tie_word_embeddings"])
            cfg = resolve_config(raw)
            mdir = write_model_dir(os.path.join(tmp, f"lora_base_{use_rslora}"), raw, tensors)
            rng = np.random.default_rng(11)
            r, alpha = 4, 8
            modules = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                       "model.layers.1.self_attn.o_proj", "model.layers.1.mlp.down_proj", "lm_head"]
            rank_pattern = {"down_proj": 2}
            alpha_pattern = {"model.layers.1.self_attn.o_proj": 3}
            lora, scaling = {}, {}
            for m in modules:
                W = tensors[m + ".weight"] if m + ".weight" in tensors else tensors["model.embed_tokens.weight"]
                rr = peft_pattern_value(rank_pattern, m, r)
                aa = peft_pattern_value(alpha_pattern, m, alpha)
                lora[m] = (rng.normal(0, 0.3, (rr, W.shape[1])).astype(np.float32),
                           rng.normal(0, 0.3, (W.shape[0], rr)).astype(np.float32))
                scaling[m] = aa / math.sqrt(rr) if use_rslora else aa / rr
            adir = write_adapter_dir(os.path.join(tmp, f"lora_{use_rslora}"), {
                "peft_type": "LORA", "r": r, "lora_alpha": alpha, "use_rslora": use_rslora,
                "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj", "lm_head"],
                "rank_pattern": rank_pattern, "alpha_pattern": alpha_pattern}, lora)
            out = run(mdir, ids, greedy=3, adapter=adir)
            label = "rslora alpha/sqrt(r)" if use_rslora else "alpha/r"
            st.close(out["logits"], naive_forward(raw, tensors, ids, lora, scaling),
                     f"LoRA ({label}, rank/alpha patterns, lm_head) vs unmerged float64 reference")
            base_out = run(mdir, ids)
            st.check(not np.allclose(out["logits"], base_out["logits"]), "adapter changes the logits")
            if cfg.tie_word_embeddings:
                m = CausalLM(mdir)
                apply_lora_adapter(m, adir)
                st.equal(m.weights["model.embed_tokens.weight"].numpy(), tensors["model.embed_tokens.weight"],
                         "LoRA on tied lm_head leaves embed_tokens untouched")

        # The CLI itself, end to end.
        print("case: CLI", file=sys.stderr)
        raw = cases[4][1]
        mdir = os.path.join(tmp, "case4")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--model", mdir,
                               "--ids", ",".join(map(str, ids[:6])), "--greedy", "4"],
                              capture_output=True, text=True)
        st.check(proc.returncode == 0, f"CLI exit code {proc.returncode} {proc.stderr.strip()[:200]}")
        if proc.returncode == 0:
            out = json.loads(proc.stdout)
            st.check(sorted(out) == ["greedy", "ids", "logits"] and out["ids"] == ids[:6]
                     and len(out["logits"]) == 6 and len(out["logits"][0]) == raw["vocab_size"]
                     and len(out["greedy"]) == 4, "CLI JSON shape {ids, logits[T][V], greedy[N]}")
            inproc = CausalLM(mdir)
            st.equal(np.array(out["logits"], dtype=np.float32), inproc.forward(ids[:6]).numpy(),
                     "CLI JSON floats round-trip to the exact float32 logits")
            st.check(out["greedy"] == inproc.greedy(ids[:6], 4), "CLI greedy == in-process greedy")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--model", mdir, "--ids", "1,2"],
                              capture_output=True, text=True)
        st.check(proc.returncode == 0 and "greedy" not in json.loads(proc.stdout or "{}"),
                 "no 'greedy' key without --greedy")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"selftest: {st.count - st.failures}/{st.count} checks passed", file=sys.stderr)
    return 1 if st.failures else 0


if __name__ == "__main__":
    sys.exit(main())
