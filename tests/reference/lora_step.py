#!/usr/bin/env python3
"""Independent PyTorch oracle for LoRA training steps on a Hugging Face decoder LLM.

    /usr/bin/python3 tests/reference/lora_step.py --model DIR --adapter INIT_PEFT_DIR \
        --data ROWS.jsonl --out OUT_DIR --optimizer sgd|adamw --lr LR \
        [--steps N] [--weight-decay 0] [--betas 0.9,0.999] [--eps 1e-8] [--max-grad-norm 0]

The base model is loaded and run by hf_reference.py (imported as a module, so the forward pass
is the same audited code the logits oracle uses); every adapted projection computes

    y = W x + b + scale * B (A x)        scale = lora_alpha / r  (/ sqrt(r) with use_rslora)

with lora_dropout ignored (dropout 0). A and B are float32 leaf tensors with requires_grad; the
base weights are frozen. Rows are pre-tokenized `{"input_ids": [...], "labels"?: [...]}` (labels
default to input_ids, -100 = ignored). Step k uses row k mod len(rows) as a batch of one; by
default there is one step per row, in file order. Per step:

    loss = cross_entropy(logits[:-1], labels[1:], ignore_index=-100)   # mean over counted tokens
    loss.backward(); [clip_grad_norm_(max_grad_norm)]; optimizer.step(); optimizer.zero_grad()

with torch.optim.SGD(lr, weight_decay) or torch.optim.AdamW(lr, betas, eps, weight_decay).

Writes OUT_DIR/adapter_config.json (the input's, unchanged) and OUT_DIR/adapter_model.safetensors
(same keys, F32, written by hand: u64 LE header length, JSON header, data), and prints one JSON
object on stdout: {"losses": [per step, before its update], "grad_norms": [per step, total L2
norm of the LoRA gradients before clipping]}. Errors go to stderr with exit code 2.
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402

IGNORE_INDEX = -100


class LoraError(Exception):
    pass


# =============================================================================
# PEFT adapter with trainable A, B
# =============================================================================

def load_trainable_adapter(model, adapter_dir):
    """-> (acfg, modules) where modules maps the PEFT module name to a dict with the original
    tensor keys, trainable A [r, in] and B [out, r], and the scale."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        acfg = json.load(f)
    if acfg.get("peft_type", "LORA") != "LORA":
        raise LoraError(f"peft_type {acfg.get('peft_type')} not supported")
    for flag in ("use_dora", "fan_in_fan_out", "lora_bias"):
        if acfg.get(flag):
            raise LoraError(f"adapter {flag}=true not supported")
    if acfg.get("bias", "none") != "none":
        raise LoraError(f"adapter bias={acfg.get('bias')!r} not supported")
    if acfg.get("lora_dropout", 0):
        print(f"lora_step: note: lora_dropout={acfg['lora_dropout']} ignored (the oracle uses dropout 0)",
              file=sys.stderr)
    r = acfg["r"]
    alpha = acfg["lora_alpha"]
    use_rslora = bool(acfg.get("use_rslora", False))
    st = ref.SafetensorsFile(os.path.join(adapter_dir, "adapter_model.safetensors"))
    keys = {}
    for key in st.names():
        m = ref._LORA_KEY.match(key)
        if not m:
            raise LoraError(f"unsupported adapter tensor {key}")
        keys.setdefault(m.group("module"), {})[m.group("ab")] = key
    modules = {}
    for module, ab in sorted(keys.items()):
        if set(ab) != {"A", "B"}:
            raise LoraError(f"{module} lacks lora_A or lora_B")
        weight_name = module + ".weight"
        if weight_name not in model.weights or module == "lm_head":
            raise LoraError(f"adapter targets {module}, which is not a projection of the model")
        W = model.weights[weight_name]
        rank = ref.peft_pattern_value(acfg.get("rank_pattern"), module, r)
        a = ref.peft_pattern_value(acfg.get("alpha_pattern"), module, alpha)
        A = st.read_float32(ab["A"]).clone().requires_grad_(True)
        B = st.read_float32(ab["B"]).clone().requires_grad_(True)
        if tuple(A.shape) != (rank, W.shape[1]) or tuple(B.shape) != (W.shape[0], rank):
            raise LoraError(f"{module}: lora_A {tuple(A.shape)}, lora_B {tuple(B.shape)} do not fit "
                            f"weight {tuple(W.shape)} with r={rank}")
        modules[module] = {"keys": ab, "A": A, "B": B, "weight": W,
                           "scale": a / math.sqrt(rank) if use_rslora else a / rank}
    if not modules:
        raise LoraError("adapter has no LoRA tensors")
    return acfg, modules


def install_lora_forward(modules):
    """Makes hf_reference's `linear` add the LoRA branch for the adapted weights. hf_reference's
    layer functions look `linear` up in their module globals at call time, so replacing it there
    routes the unchanged forward pass through this function; a weight is recognised by identity
    (each projection's weight tensor is its own object in CausalLM.weights)."""
    by_weight = {id(m["weight"]): m for m in modules.values()}
    base_linear = ref.linear

    def lora_linear(x, weight, bias=None):
        y = base_linear(x, weight, bias)
        m = by_weight.get(id(weight))
        if m is not None:
            y = y + m["scale"] * F.linear(F.linear(x, m["A"]), m["B"])
        return y

    ref.linear = lora_linear
    return len(by_weight)


# =============================================================================
# Data, loss, output
# =============================================================================

def read_rows(path, vocab_size):
    rows = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            ids = row["input_ids"]
            labels = row.get("labels") or list(ids)
            if len(labels) != len(ids) or len(ids) < 2:
                raise LoraError(f"{path}:{line_no}: labels/input_ids lengths {len(labels)}/{len(ids)}")
            if any((not isinstance(t, int)) or t < 0 or t >= vocab_size for t in ids):
                raise LoraError(f"{path}:{line_no}: input id outside [0, {vocab_size})")
            if all(l == IGNORE_INDEX for l in labels[1:]):
                raise LoraError(f"{path}:{line_no}: no labelled token")
            rows.append((ids, labels))
    if not rows:
        raise LoraError(f"{path}: no rows")
    return rows


def causal_lm_loss(logits, labels):
    """transformers' ForCausalLMLoss for one sequence: predict labels[t+1] from logits[t], mean
    over the labels that are not -100."""
    target = torch.tensor(labels[1:], dtype=torch.int64)
    return F.cross_entropy(logits[:-1].float(), target, ignore_index=IGNORE_INDEX, reduction="mean")


def write_safetensors_f32(path, tensors):
    """tensors: dict name -> float32 tensor. Sorted names, header padded with spaces to 8 bytes."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name].detach().numpy(), dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header = {"__metadata__": {"format": "pt"}, **header}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for c in chunks:
            f.write(c)


def main(argv=None):
    ap = argparse.ArgumentParser(description="LoRA training-step oracle (PyTorch autograd).")
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", required=True, help="initial PEFT adapter directory")
    ap.add_argument("--data", required=True, help="JSONL of {input_ids, labels?}")
    ap.add_argument("--out", required=True, help="directory for the updated adapter")
    ap.add_argument("--optimizer", choices=["sgd", "adamw"], required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--steps", type=int, default=None, help="default: one per row")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--betas", default="0.9,0.999")
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--max-grad-norm", type=float, default=0.0, help="0 = no clipping")
    args = ap.parse_args(argv)
    try:
        betas = tuple(float(b) for b in args.betas.split(","))
        if len(betas) != 2:
            raise LoraError("--betas needs two numbers, e.g. 0.9,0.999")
        torch.manual_seed(0)
        model = ref.CausalLM(args.model)
        acfg, modules = load_trainable_adapter(model, args.adapter)
        install_lora_forward(modules)
        rows = read_rows(args.data, model.cfg.vocab_size)
        steps = len(rows) if args.steps is None else args.steps
        if steps < 1:
            raise LoraError("--steps must be >= 1")
        params = [t for m in modules.values() for t in (m["A"], m["B"])]
        if args.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=args.lr, weight_decay=args.weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=args.lr, betas=betas, eps=args.eps,
                                    weight_decay=args.weight_decay)
        losses, grad_norms = [], []
        for step in range(steps):
            ids, labels = rows[step % len(rows)]
            opt.zero_grad(set_to_none=True)
            loss = causal_lm_loss(model.forward(ids), labels)
            if not torch.isfinite(loss):
                raise LoraError(f"step {step}: non-finite loss {loss.item()}")
            loss.backward()
            grads = [p.grad for p in params if p.grad is not None]
            norm = torch.norm(torch.stack([torch.norm(g.detach(), 2) for g in grads]), 2).item()
            if args.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            opt.step()
            losses.append(loss.item())
            grad_norms.append(norm)
        os.makedirs(args.out, exist_ok=True)
        shutil.copyfile(os.path.join(args.adapter, "adapter_config.json"),
                        os.path.join(args.out, "adapter_config.json"))
        out = {}
        for m in modules.values():
            out[m["keys"]["A"]] = m["A"]
            out[m["keys"]["B"]] = m["B"]
        write_safetensors_f32(os.path.join(args.out, "adapter_model.safetensors"), out)
    except (LoraError, ref.OracleError, KeyError, ValueError, OSError) as e:
        print(f"lora_step: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps({"losses": losses, "grad_norms": grad_norms}, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
