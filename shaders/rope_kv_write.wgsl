// Decode's RoPE and KV-cache write in one dispatch: rotate-half RoPE (as rope.wgsl) of this step's
// q in place, and of its k written straight to cacheK[slot[t], position[t], :], with v copied to
// cacheV (as kv_write.wgsl). The k buffer is left unrotated: attention reads keys only from the
// cache. cos and sin come interleaved, one vec2 (cos, sin) per [position, pair] of the host-computed
// tables, so the op fits WebGPU's guaranteed 8 storage bindings.
// Invocations: one per (token, q head, pair index j) rotating elements j and j + headDim/2 of q,
// then one per (token, kv head, j) moving those elements of k and v.
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxPos: u32, maxSeq: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> slots: array<u32>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;
@group(0) @binding(6) var<storage, read> cosSin: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> cacheK: array<f32>;
@group(0) @binding(8) var<storage, read_write> cacheV: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let half = p.headDim / 2u;
  let i = gid.x + gid.y * nw.x * WG;
  let qPairs = p.tokens * p.heads * half;
  if (i < qPairs) {
    let j = i % half;
    let th = i / half;          // token * heads + head
    let cs = cosSin[positions[th / p.heads] * half + j];
    let base = th * p.headDim + j;
    let x1 = q[base];
    let x2 = q[base + half];
    q[base] = x1 * cs.x - x2 * cs.y;
    q[base + half] = x2 * cs.x + x1 * cs.y;
    return;
  }
  let e = i - qPairs;
  if (e >= p.tokens * p.kvHeads * half) { return; }
  let j = e % half;
  let th = e / half;            // token * kvHeads + head
  let t = th / p.kvHeads;
  let pos = positions[t];
  let cs = cosSin[pos * half + j];
  let src = th * p.headDim + j;
  let dst = (slots[t] * p.maxSeq + pos) * p.kvHeads * p.headDim + (th % p.kvHeads) * p.headDim + j;
  let k1 = k[src];
  let k2 = k[src + half];
  cacheK[dst] = k1 * cs.x - k2 * cs.y;
  cacheK[dst + half] = k2 * cs.x + k1 * cs.y;
  cacheV[dst] = v[src];
  cacheV[dst + half] = v[src + half];
}
