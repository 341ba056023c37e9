// Decode's keys into the KV cache in one dispatch: rotate-half RoPE on this step's k (as rope.wgsl,
// from the host-computed cos/sin table [position, headDim/2]) written straight to
// cacheK[slot[t], position[t], :], and v copied to cacheV (as kv_write.wgsl). The k buffer is
// left unrotated; attention reads keys only from the cache. One invocation per (token, kv head,
// pair index j), moving elements j and j + headDim/2 of k and of v.
struct Params { tokens: u32, kvHeads: u32, headDim: u32, maxPos: u32, maxSeq: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> slots: array<u32>;
@group(0) @binding(4) var<storage, read> positions: array<u32>;
@group(0) @binding(5) var<storage, read> cosTable: array<f32>;
@group(0) @binding(6) var<storage, read> sinTable: array<f32>;
@group(0) @binding(7) var<storage, read_write> cacheK: array<f32>;
@group(0) @binding(8) var<storage, read_write> cacheV: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let half = p.headDim / 2u;
  let i = gid.x + gid.y * nw.x * WG;
  if (i >= p.tokens * p.kvHeads * half) { return; }
  let j = i % half;
  let th = i / half;            // token * kvHeads + head
  let t = th / p.kvHeads;
  let kvDim = p.kvHeads * p.headDim;
  let pos = positions[t];
  let c = cosTable[pos * half + j];
  let s = sinTable[pos * half + j];
  let src = th * p.headDim + j;
  let dst = (slots[t] * p.maxSeq + pos) * kvDim + (th % p.kvHeads) * p.headDim + j;
  let k1 = k[src];
  let k2 = k[src + half];
  cacheK[dst] = k1 * c - k2 * s;
  cacheK[dst + half] = k2 * c + k1 * s;
  cacheV[dst] = v[src];
  cacheV[dst + half] = v[src + half];
}
