// Append this step's keys/values to the KV cache: cache[slot[t], position[t], :] = kv[t, :].
// Layout of a cache: [slots, maxSeq, kvHeads * headDim].
struct Params { tokens: u32, kvDim: u32, maxSeq: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> slots: array<u32>;
@group(0) @binding(4) var<storage, read> positions: array<u32>;
@group(0) @binding(5) var<storage, read_write> cacheK: array<f32>;
@group(0) @binding(6) var<storage, read_write> cacheV: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= p.tokens * p.kvDim) { return; }
  let t = i / p.kvDim;
  let e = i % p.kvDim;
  let dst = (slots[t] * p.maxSeq + positions[t]) * p.kvDim + e;
  cacheK[dst] = k[i];
  cacheV[dst] = v[i];
}
