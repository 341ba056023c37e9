/**
 * LoRA adapters at inference: upload a PEFT adapter's A/B matrices next to the frozen base and
 * attach them to the model's projections (y += scale · B·A·x), swap them without reloading the
 * base, or merge one into a copy of the base weights for export as HF safetensors.
 */
import type { AnyBackend } from '../kernels/backend';
import type { AdapterWeights, LlamaModel } from '../model/llama';
import type { ModelConfig } from '../formats/config';
import { loadPeftAdapter, loraScale, validateAdapter, type PeftAdapter } from '../formats/peft';
import type { HostTensor } from '../formats/checkpoint';
import { toFloat32 } from '../formats/checkpoint';
import { f32ToBf16Bits, f32ToF16Bits } from '../formats/dtype';
import { hfName } from '../model/backward';

/** Upload an adapter's matrices (f32) for `model`, after checking they fit it. */
export function uploadAdapter(backend: AnyBackend, config: ModelConfig, adapter: PeftAdapter): AdapterWeights<unknown> {
  validateAdapter(adapter, config);
  const scale = loraScale(adapter.config);
  const out: AdapterWeights<unknown> = new Map();
  for (const p of adapter.pairs) {
    out.set(`${p.layer}.${p.module}`, {
      a: backend.weight(`lora.${p.layer}.${p.module}.A`, p.a.data, p.a.shape[0], p.a.shape[1]),
      b: backend.weight(`lora.${p.layer}.${p.module}.B`, p.b.data, p.b.shape[0], p.b.shape[1]),
      rank: p.a.shape[0],
      scale,
    });
  }
  return out;
}

export function freeAdapter(backend: AnyBackend, weights: AdapterWeights<unknown>): void {
  for (const d of weights.values()) {
    backend.freeWeight(d.a);
    backend.freeWeight(d.b);
  }
}

/** Named adapters resident on the device; one (or none) is active at a time. */
export class AdapterRegistry {
  private readonly loaded = new Map<string, AdapterWeights<unknown>>();
  private active: string | null = null;

  constructor(private readonly model: LlamaModel) {}

  async load(name: string, spec: string | PeftAdapter): Promise<void> {
    const adapter = typeof spec === 'string' ? await loadPeftAdapter(spec) : spec;
    const weights = uploadAdapter(this.model.backend, this.model.config, adapter);
    const old = this.loaded.get(name);
    this.loaded.set(name, weights);
    if (this.active === name) this.model.setAdapter(weights as never);
    if (old) freeAdapter(this.model.backend, old);
  }

  /** Switch the active adapter (null = the base model). Takes effect at the next forward pass. */
  activate(name: string | null): void {
    if (name !== null && !this.loaded.has(name))
      throw new Error(`adapter '${name}' is not loaded (loaded: ${[...this.loaded.keys()].join(', ') || 'none'})`);
    this.active = name;
    this.model.setAdapter(name === null ? null : (this.loaded.get(name)! as never));
  }

  unload(name: string): void {
    const w = this.loaded.get(name);
    if (!w) return;
    if (this.active === name) this.activate(null);
    this.loaded.delete(name);
    freeAdapter(this.model.backend, w);
  }

  names(): string[] {
    return [...this.loaded.keys()];
  }

  activeName(): string | null {
    return this.active;
  }
}

/**
 * W' = W + scale · B·A for every adapted projection, on host tensors; the result keeps each
 * tensor's file dtype (F32 / F16 / BF16) so the merged checkpoint looks like the base.
 */
export function mergeAdapter(
  config: ModelConfig,
  tensors: Map<string, HostTensor>,
  adapter: PeftAdapter,
): Map<string, HostTensor> {
  validateAdapter(adapter, config);
  const scale = loraScale(adapter.config);
  const out = new Map(tensors);
  for (const p of adapter.pairs) {
    const name = hfName(p.layer, p.module);
    const base = tensors.get(name);
    if (!base) throw new Error(`base checkpoint has no tensor ${name} to merge into`);
    const w = toFloat32(base).slice();
    const [r, inF] = p.a.shape;
    const outF = p.b.shape[0];
    for (let o = 0; o < outF; o++) {
      for (let i = 0; i < inF; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += p.b.data[o * r + k] * p.a.data[k * inF + i];
        w[o * inF + i] += scale * s;
      }
    }
    const bytes =
      base.dtype === 'F32'
        ? new Uint8Array(w.buffer)
        : new Uint8Array((base.dtype === 'BF16' ? f32ToBf16Bits(w) : f32ToF16Bits(w)).buffer);
    out.set(name, { ...base, data: bytes });
  }
  return out;
}
