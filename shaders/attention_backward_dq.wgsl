// Causal GQA attention backward, pass 1 of 2: dq and each query row's softmax statistics for
// pass 2 (attention_backward_dkv.wgsl). With s_j = scale * q.k_j, P = softmax(s) over keys
// 0..position[t] of slot[t] and dP_j = dout.v_j:
//   D = sum_j P_j dP_j (= dout.out),  dS_j = P_j (dP_j - D),  dq = scale * sum_j dS_j k_j.
// One workgroup per (4 consecutive tokens, query head). Queries of those tokens that share a slot
// are processed together (a packed sequence: every K/V row read serves 4 queries); tokens of
// different slots take separate sub-passes. Per-query values are vec4 lanes (one per query).
// Sweep 1: each invocation keeps an online (max, sum exp, sum exp*dP) over its own keys j = lid
// (mod 64) — no barriers per chunk — and the 64 partial triples are merged once. Sweep 2: chunks
// of 64 keys compute dS (one key per invocation), then the invocations switch to owning
// (query, head dim) elements to accumulate dq.
// VEC4 (headDim % 4 == 0): rows are read as vec4 (V) and an element is 4 dims.
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
const QT = 4u;                           // queries (tokens) per workgroup
const MAXD = 256u / W;                   // head dim in units of V
const NACC = QT * MAXD / CHUNK;          // dq elements per invocation
var<workgroup> qs: array<array<V, MAXD>, QT>;
var<workgroup> dos: array<array<V, MAXD>, QT>;
var<workgroup> rm: array<vec4<f32>, 64>;
var<workgroup> rl: array<vec4<f32>, 64>;
var<workgroup> ra: array<vec4<f32>, 64>;
var<workgroup> dsc: array<vec4<f32>, 64>;

fn vsum(v: V) -> f32 {
//#if VEC4
  return v.x + v.y + v.z + v.w;
//#else
  return v;
//#endif
}

// Scores s = scale * q_i.k_j and dP = dout_i.v_j of the 4 queries for the key row at kb.
fn scores(kb: u32, hd: u32) -> array<vec4<f32>, 2> {
  var s0 = V(0.0); var s1 = V(0.0); var s2 = V(0.0); var s3 = V(0.0);
  var d0 = V(0.0); var d1 = V(0.0); var d2 = V(0.0); var d3 = V(0.0);
  for (var d = 0u; d < hd; d++) {
    let kd = cacheK[kb + d];
    let vd = cacheV[kb + d];
    s0 += qs[0][d] * kd; s1 += qs[1][d] * kd; s2 += qs[2][d] * kd; s3 += qs[3][d] * kd;
    d0 += dos[0][d] * vd; d1 += dos[1][d] * vd; d2 += dos[2][d] * vd; d3 += dos[3][d] * vd;
  }
  return array<vec4<f32>, 2>(vec4<f32>(vsum(s0), vsum(s1), vsum(s2), vsum(s3)) * p.scale, vec4<f32>(vsum(d0), vsum(d1), vsum(d2), vsum(d3)));
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let id = wg.x + wg.y * nw.x;           // uniform across the workgroup
  let h = id % p.heads;
  let t0 = (id / p.heads) * QT;
  if (t0 >= p.tokens) { return; }
  let kvh = h / (p.heads / p.kvHeads);
  let hd = p.headDim / W;
  let kvDim = p.kvHeads * hd;
  let tv = vec4<u32>(t0, t0 + 1u, t0 + 2u, t0 + 3u);
  let valid = tv < vec4<u32>(p.tokens);
  let tc = min(tv, vec4<u32>(p.tokens - 1u));
  let lastv = vec4<u32>(positions[tc.x], positions[tc.y], positions[tc.z], positions[tc.w]);
  let slotv = vec4<u32>(slots[tc.x], slots[tc.y], slots[tc.z], slots[tc.w]);
  for (var e = lid; e < QT * hd; e += CHUNK) {
    let i = e / hd;
    let d = e % hd;
    let b = (tc[i] * p.heads + h) * hd + d;
    qs[i][d] = q[b];
    dos[i][d] = dout[b];
  }
  workgroupBarrier();

  var acc: array<V, NACC>;
  var lseAll = vec4<f32>(0.0);
  var dAll = vec4<f32>(0.0);
  var done = !valid;
  loop {
    if (all(done)) { break; }
    var slot = slotv.w;
    for (var i = 3u; i > 0u; i--) { if (!done[i - 1u]) { slot = slotv[i - 1u]; } }
    let act = !done & (slotv == vec4<u32>(slot));
    done = done | act;
    let lm = select(vec4<u32>(0u), lastv, act);
    let last = max(max(lm.x, lm.y), max(lm.z, lm.w));
    let cacheBase = slot * p.maxSeq * kvDim + kvh * hd;

    // Sweep 1: per-invocation online softmax statistics of the active queries.
    var mi = vec4<f32>(-3.0e38);
    var li = vec4<f32>(0.0);
    var ai = vec4<f32>(0.0);
    for (var j = lid; j <= last; j += CHUNK) {
      let sd = scores(cacheBase + j * kvDim, hd);
      let ok = act & (vec4<u32>(j) <= lastv);
      let mn = max(mi, select(vec4<f32>(-3.0e38), sd[0], ok));
      let alpha = exp(mi - mn);
      let e = select(vec4<f32>(0.0), exp(sd[0] - mn), ok);
      li = li * alpha + e;
      ai = ai * alpha + e * sd[1];
      mi = mn;
    }
    rm[lid] = mi;
    rl[lid] = li;
    ra[lid] = ai;
    workgroupBarrier();
    var gm = vec4<f32>(-3.0e38);
    for (var i = 0u; i < CHUNK; i++) { gm = max(gm, rm[i]); }
    var gl = vec4<f32>(0.0);
    var ga = vec4<f32>(0.0);
    for (var i = 0u; i < CHUNK; i++) {
      let f = exp(rm[i] - gm);
      gl += rl[i] * f;
      ga += ra[i] * f;
    }
    gl = select(vec4<f32>(1.0), gl, act);
    let lse = gm + log(gl);
    let D = ga / gl;
    lseAll = select(lseAll, lse, act);
    dAll = select(dAll, D, act);

    // Sweep 2: dS per key (one key per invocation), then dq over (query, dim) elements.
    for (var c0 = 0u; c0 <= last; c0 += CHUNK) {
      let j = c0 + lid;
      var ds = vec4<f32>(0.0);
      if (j <= last) {
        let sd = scores(cacheBase + j * kvDim, hd);
        let ok = act & (vec4<u32>(j) <= lastv);
        ds = select(vec4<f32>(0.0), exp(sd[0] - lse) * (sd[1] - D), ok);
      }
      dsc[lid] = ds;
      workgroupBarrier();
      let n = min(CHUNK, last + 1u - c0);
      for (var r = 0u; r < NACC; r++) {
        let e = lid + r * CHUNK;
        if (e >= QT * hd) { break; }
        let i = e / hd;
        if (!act[i]) { continue; }
        let d = e % hd;
        var a = acc[r];
        for (var k = 0u; k < n; k++) { a += dsc[k][i] * cacheK[cacheBase + (c0 + k) * kvDim + d]; }
        acc[r] = a;
      }
      workgroupBarrier();                // dsc is overwritten by the next chunk; rm by the next sub-pass
    }
  }

  for (var r = 0u; r < NACC; r++) {
    let e = lid + r * CHUNK;
    if (e >= QT * hd) { break; }
    let i = e / hd;
    if (valid[i]) { dq[(tv[i] * p.heads + h) * hd + e % hd] = acc[r] * p.scale; }
  }
  if (lid == 0u) {
    let seqInfo = p.tokens * p.heads * 2u;
    for (var i = 0u; i < QT; i++) {
      if (!valid[i]) { continue; }
      let th = tv[i] * p.heads + h;
      stats[th * 2u] = bitcast<u32>(lseAll[i]);
      stats[th * 2u + 1u] = bitcast<u32>(dAll[i]);
      if (h == 0u) {
        stats[seqInfo + tv[i] * 2u] = slotv[i];
        stats[seqInfo + tv[i] * 2u + 1u] = lastv[i];
      }
    }
  }
}
