// Causal GQA attention backward, pass 1 of 2: one workgroup per (token, query head) computes dq
// and the row's softmax statistics for pass 2 (attention_backward_dkv.wgsl). With
// s_j = scale * q.k_j, P = softmax(s) over keys 0..position[t] of slot[t] and dP_j = dout.v_j:
//   D = sum_j P_j dP_j (= dout.out),  dS_j = P_j (dP_j - D),  dq = scale * sum_j dS_j k_j.
// Sweep 1: each invocation keeps an online (max, sum exp, sum exp*dP) over its own keys j = lid
// (mod 64) — no barriers per chunk — and the 64 triples are merged once. Sweep 2: chunks of 64 keys
// compute dS (one key per invocation), then the invocations switch to owning head dims to
// accumulate dq, as the forward kernel does for the output.
// VEC4 (headDim % 4 == 0): K, V, q and dout are read as vec4 and each invocation owns 4 dims.
// stats (u32 words): [lse, D] per (token, head) as f32 bits, then [slot, position] per token, so
// pass 2 needs no more bindings than the limit of 8 storage buffers.
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
//#if VEC4
alias V = vec4<f32>;
const W = 4u;
//#else
alias V = f32;
const W = 1u;
//#endif
@group(0) @binding(1) var<storage, read> dout: array<V>;
@group(0) @binding(2) var<storage, read> q: array<V>;
@group(0) @binding(3) var<storage, read> cacheK: array<V>;
@group(0) @binding(4) var<storage, read> cacheV: array<V>;
@group(0) @binding(5) var<storage, read> slots: array<u32>;
@group(0) @binding(6) var<storage, read> positions: array<u32>;
@group(0) @binding(7) var<storage, read_write> dq: array<V>;
@group(0) @binding(8) var<storage, read_write> stats: array<u32>;

const CHUNK = 64u;
var<workgroup> qs: array<V, 256 / W>;
var<workgroup> dos: array<V, 256 / W>;
var<workgroup> rm: array<f32, 64>;
var<workgroup> rl: array<f32, 64>;
var<workgroup> ra: array<f32, 64>;
var<workgroup> dsc: array<f32, 64>;

fn vsum(v: V) -> f32 {
//#if VEC4
  return v.x + v.y + v.z + v.w;
//#else
  return v;
//#endif
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let th = wg.x + wg.y * nw.x;           // token * heads + head (uniform across the workgroup)
  let valid = th < p.tokens * p.heads;
  let t = min(th / p.heads, p.tokens - 1u);
  let h = th % p.heads;
  let kvh = h / (p.heads / p.kvHeads);
  let hd = p.headDim / W;                // in units of V
  let kvDim = p.kvHeads * hd;
  let qBase = min(th, p.tokens * p.heads - 1u) * hd;
  for (var d = lid; d < hd; d += CHUNK) {
    qs[d] = q[qBase + d];
    dos[d] = dout[qBase + d];
  }
  workgroupBarrier();
  let last = positions[t];
  let slot = slots[t];
  let cacheBase = slot * p.maxSeq * kvDim + kvh * hd;

  // Sweep 1: per-invocation online softmax statistics.
  var mi = -3.0e38;
  var li = 0.0;
  var ai = 0.0;
  for (var j = lid; j <= last; j += CHUNK) {
    let kb = cacheBase + j * kvDim;
    var s = V(0.0);
    var dp = V(0.0);
    for (var d = 0u; d < hd; d++) {
      s += qs[d] * cacheK[kb + d];
      dp += dos[d] * cacheV[kb + d];
    }
    let sj = vsum(s) * p.scale;
    if (sj > mi) {
      let alpha = exp(mi - sj);
      li *= alpha;
      ai *= alpha;
      mi = sj;
    }
    let e = exp(sj - mi);
    li += e;
    ai += e * vsum(dp);
  }
  rm[lid] = mi;
  rl[lid] = li;
  ra[lid] = ai;
  workgroupBarrier();
  var gm = -3.0e38;
  for (var i = 0u; i < CHUNK; i++) { gm = max(gm, rm[i]); }
  var gl = 0.0;
  var ga = 0.0;
  for (var i = 0u; i < CHUNK; i++) {
    let f = exp(rm[i] - gm);
    gl += rl[i] * f;
    ga += ra[i] * f;
  }
  let lse = gm + log(gl);
  let D = ga / gl;

  // Sweep 2: dS per key, then dq accumulated over dims (lid, lid + 64, ...) in units of V.
  var acc = array<V, 4>(V(0.0), V(0.0), V(0.0), V(0.0));
  for (var c0 = 0u; c0 <= last; c0 += CHUNK) {
    let j = c0 + lid;
    var ds = 0.0;
    if (j <= last) {
      let kb = cacheBase + j * kvDim;
      var s = V(0.0);
      var dp = V(0.0);
      for (var d = 0u; d < hd; d++) {
        s += qs[d] * cacheK[kb + d];
        dp += dos[d] * cacheV[kb + d];
      }
      let pj = exp(vsum(s) * p.scale - lse);
      ds = pj * (vsum(dp) - D);
    }
    dsc[lid] = ds;
    workgroupBarrier();
    let n = min(CHUNK, last + 1u - c0);
    for (var i = 0u; i < n; i++) {
      let w = dsc[i];
      let kb = cacheBase + (c0 + i) * kvDim;
      for (var r = 0u; r < 4u / W; r++) {
        let d = lid + r * CHUNK;
        if (d < hd) { acc[r] += w * cacheK[kb + d]; }
      }
    }
    workgroupBarrier();                  // dsc is overwritten by the next chunk
  }
  if (!valid) { return; }
  for (var r = 0u; r < 4u / W; r++) {
    let d = lid + r * CHUNK;
    if (d < hd) { dq[qBase + d] = acc[r] * p.scale; }
  }
  if (lid == 0u) {
    stats[th * 2u] = bitcast<u32>(lse);
    stats[th * 2u + 1u] = bitcast<u32>(D);
    if (h == 0u) {
      let seqInfo = p.tokens * p.heads * 2u;
      stats[seqInfo + t * 2u] = slot;
      stats[seqInfo + t * 2u + 1u] = last;
    }
  }
}
