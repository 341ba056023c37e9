// Causal GQA attention backward, pass 1 of 2: one workgroup per (token, query head) computes dq
// and the row's softmax statistics for pass 2 (attention_backward_dkv.wgsl). With
// s_j = scale * q.k_j, P = softmax(s) over keys 0..position[t] of slot[t] and dP_j = dout.v_j:
//   D = sum_j P_j dP_j (= dout.out),  dS_j = P_j (dP_j - D),  dq = scale * sum_j dS_j k_j.
// Sweep 1: each invocation keeps an online (max, sum exp, sum exp*dP) over its own keys j = lid
// (mod 64) — no barriers per chunk — and the 64 triples are merged once. Sweep 2: chunks of 64 keys
// compute dS (one key per invocation), then the invocations switch to owning head dims
// (lid, lid+64, ...) to accumulate dq, as the forward kernel does for the output.
// stats (u32 words): [lse, D] per (token, head) as f32 bits, then [slot, position] per token, so
// pass 2 needs no more bindings than the limit of 8 storage buffers.
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> cacheK: array<f32>;
@group(0) @binding(4) var<storage, read> cacheV: array<f32>;
@group(0) @binding(5) var<storage, read> slots: array<u32>;
@group(0) @binding(6) var<storage, read> positions: array<u32>;
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;
@group(0) @binding(8) var<storage, read_write> stats: array<u32>;

const CHUNK = 64u;
var<workgroup> qs: array<f32, 256>;
var<workgroup> dos: array<f32, 256>;
var<workgroup> rm: array<f32, 64>;
var<workgroup> rl: array<f32, 64>;
var<workgroup> ra: array<f32, 64>;
var<workgroup> dsc: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let th = wg.x + wg.y * nw.x;           // token * heads + head (uniform across the workgroup)
  let valid = th < p.tokens * p.heads;
  let t = min(th / p.heads, p.tokens - 1u);
  let h = th % p.heads;
  let kvh = h / (p.heads / p.kvHeads);
  let kvDim = p.kvHeads * p.headDim;
  let qBase = min(th, p.tokens * p.heads - 1u) * p.headDim;
  for (var d = lid; d < p.headDim; d += CHUNK) {
    qs[d] = q[qBase + d];
    dos[d] = dout[qBase + d];
  }
  workgroupBarrier();
  let last = positions[t];
  let slot = slots[t];
  let cacheBase = slot * p.maxSeq * kvDim + kvh * p.headDim;

  // Sweep 1: per-invocation online softmax statistics.
  var mi = -3.0e38;
  var li = 0.0;
  var ai = 0.0;
  for (var j = lid; j <= last; j += CHUNK) {
    let kb = cacheBase + j * kvDim;
    var s = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < p.headDim; d++) {
      s += qs[d] * cacheK[kb + d];
      dp += dos[d] * cacheV[kb + d];
    }
    s *= p.scale;
    if (s > mi) {
      let alpha = exp(mi - s);
      li *= alpha;
      ai *= alpha;
      mi = s;
    }
    let e = exp(s - mi);
    li += e;
    ai += e * dp;
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

  // Sweep 2: dS per key, then dq accumulated over dims.
  var acc = vec4<f32>(0.0);              // dims lid, lid+64, lid+128, lid+192
  for (var c0 = 0u; c0 <= last; c0 += CHUNK) {
    let j = c0 + lid;
    var ds = 0.0;
    if (j <= last) {
      let kb = cacheBase + j * kvDim;
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < p.headDim; d++) {
        s += qs[d] * cacheK[kb + d];
        dp += dos[d] * cacheV[kb + d];
      }
      let pj = exp(s * p.scale - lse);
      ds = pj * (dp - D);
    }
    dsc[lid] = ds;
    workgroupBarrier();
    let n = min(CHUNK, last + 1u - c0);
    for (var i = 0u; i < n; i++) {
      let w = dsc[i];
      let kb = cacheBase + (c0 + i) * kvDim;
      for (var r = 0u; r < 4u; r++) {
        let d = lid + r * CHUNK;
        if (d < p.headDim) { acc[r] += w * cacheK[kb + d]; }
      }
    }
    workgroupBarrier();                  // dsc is overwritten by the next chunk
  }
  if (!valid) { return; }
  for (var r = 0u; r < 4u; r++) {
    let d = lid + r * CHUNK;
    if (d < p.headDim) { dq[qBase + d] = acc[r] * p.scale; }
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
