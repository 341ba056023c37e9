// The inverse of kv_write's scatter: out[t, :] = cache[slots[t], positions[t], :] (e.g. dk/dv in
// cache layout back to token order for the k/v projections' backward).
struct Params { tokens: u32, kvDim: u32, maxSeq: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> cache: array<f32>;
@group(0) @binding(2) var<storage, read> slots: array<u32>;
@group(0) @binding(3) var<storage, read> positions: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= p.tokens * p.kvDim) { return; }
  let t = i / p.kvDim;
  let e = i % p.kvDim;
  out[i] = cache[(slots[t] * p.maxSeq + positions[t]) * p.kvDim + e];
}
