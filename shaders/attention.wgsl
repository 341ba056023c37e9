// Causal grouped-query attention over the KV cache, one workgroup per (token, query head).
// Token t attends to cache positions 0..position[t] of its own slot, so one kernel serves prefill
// (many tokens of one sequence), single-token decode and a batch of sequences of different
// lengths. Keys are scanned in chunks of WG (the workgroup size) with an online softmax, so context length is bounded
// by the cache, not by workgroup memory. Query head h reads kv head h / (heads / kvHeads), as in
// HF's repeat_kv.
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> cacheK: array<f32>;
@group(0) @binding(3) var<storage, read> cacheV: array<f32>;
@group(0) @binding(4) var<storage, read> slots: array<u32>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const CHUNK = WG;
const MAX_HEAD_DIM = 256u;
var<workgroup> qs: array<f32, 256>;
var<workgroup> scores: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let th = wg.x + wg.y * nw.x;           // token * heads + head (uniform across the workgroup)
  let valid = th < p.tokens * p.heads;
  let t = min(th / p.heads, p.tokens - 1u);
  let h = th % p.heads;
  let kvh = h / (p.heads / p.kvHeads);
  let kvDim = p.kvHeads * p.headDim;
  let qBase = th * p.headDim;
  for (var d = lid; d < p.headDim; d += CHUNK) { qs[d] = select(0.0, q[qBase + d], valid); }
  workgroupBarrier();
  let last = positions[t];               // attend to 0..last inclusive
  let cacheBase = slots[t] * p.maxSeq * kvDim + kvh * p.headDim;
  var m = -3.0e38;
  var l = 0.0;
  var acc = vec4<f32>(0.0);              // dims lid, lid+WG, lid+2WG, lid+3WG (head_dim <= 4 WG)
  for (var c0 = 0u; c0 <= last; c0 += CHUNK) {
    let j = c0 + lid;
    var s = -3.0e38;
    if (j <= last) {
      let kb = cacheBase + j * kvDim;
      var dotv = 0.0;
      for (var d = 0u; d < p.headDim; d++) { dotv += qs[d] * cacheK[kb + d]; }
      s = dotv * p.scale;
    }
    scores[lid] = s;
    workgroupBarrier();
    let n = min(CHUNK, last + 1u - c0);
    var cmax = m;
    for (var i = 0u; i < n; i++) { cmax = max(cmax, scores[i]); }
    let alpha = exp(m - cmax);
    l *= alpha;
    acc *= alpha;
    for (var i = 0u; i < n; i++) {
      let w = exp(scores[i] - cmax);
      l += w;
      let vb = cacheBase + (c0 + i) * kvDim;
      for (var r = 0u; r < 4u; r++) {
        let d = lid + r * CHUNK;
        if (d < p.headDim) { acc[r] += w * cacheV[vb + d]; }
      }
    }
    m = cmax;
    workgroupBarrier();                  // scores are overwritten by the next chunk
  }
  if (!valid) { return; }
  for (var r = 0u; r < 4u; r++) {
    let d = lid + r * CHUNK;
    if (d < p.headDim) { out[qBase + d] = acc[r] / l; }
  }
}
