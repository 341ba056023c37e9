// Causal GQA attention backward, pass 1 of 2: dq and each query row's softmax statistics for
// pass 2 (attention_backward_dkv.wgsl). With s_j = scale * q.k_j, P = softmax(s) over keys
// 0..position[t] of slot[t] and dP_j = dout.v_j:
//   D = sum_j P_j dP_j (= dout.out),  dS_j = P_j (dP_j - D),  dq = scale * sum_j dS_j k_j.
// Laid out like attention_prefill.wgsl: one invocation per (token, query head), WG consecutive
// tokens of one head per workgroup, the slot's K and V rows streamed through workgroup memory in
// chunks of KC, and the query, dout and dq rows in registers (HD, the head dim, and KC are
// compiled in so those loops unroll). Sweep 1 runs an online (max, sum exp, sum exp*dP) for lse
// and D; sweep 2 accumulates dq. Tiles mixing slots are served in one sub-pass per slot.
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

const TQ = WG;
const NONE = 0xffffffffu;
var<workgroup> ks: array<f32, KC * HD>;
var<workgroup> vs: array<f32, KC * HD>;
var<workgroup> pendingSlot: array<u32, TQ>; // slot of each tile token not served yet, else NONE
var<workgroup> curSlot: u32;
var<workgroup> curLast: u32;

// Copy keys and values c0..c0+KC-1 (zero past `last`) of the slot's kv head into ks, vs.
fn loadChunk(cacheBase: u32, kvDim: u32, c0: u32, last: u32, lid: u32) {
  for (var e = lid; e < KC * HD; e += TQ) {
    let j = c0 + e / HD;
    let src = cacheBase + j * kvDim + e % HD;
    ks[e] = select(0.0, cacheK[src], j <= last);
    vs[e] = select(0.0, cacheV[src], j <= last);
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let id = wg.x + wg.y * nw.x;           // tile * heads + head (uniform across the workgroup)
  let h = id % p.heads;
  let tile0 = (id / p.heads) * TQ;
  let t = tile0 + lid;
  let valid = t < p.tokens;
  let tc = min(t, p.tokens - 1u);
  let kvh = h / (p.heads / p.kvHeads);
  let kvDim = p.kvHeads * HD;
  let rowBase = (tc * p.heads + h) * HD;
  let mySlot = slots[tc];
  let myLast = positions[tc];

  var qr: array<f32, HD>;
  var dor: array<f32, HD>;
  var acc: array<f32, HD>;
  for (var d = 0u; d < HD; d++) {
    qr[d] = q[rowBase + d] * p.scale;
    dor[d] = dout[rowBase + d];
    acc[d] = 0.0;
  }
  var lse = 0.0;
  var D = 0.0;
  pendingSlot[lid] = select(NONE, mySlot, valid);

  loop {
    workgroupBarrier();
    if (lid == 0u) {
      var s = NONE;
      var last = 0u;
      for (var i = 0u; i < TQ; i++) {
        let si = pendingSlot[i];
        if (s == NONE) { s = si; }
        if (si != NONE && si == s) { last = max(last, positions[min(tile0 + i, p.tokens - 1u)]); }
      }
      curSlot = s;
      curLast = last;
    }
    let slot = workgroupUniformLoad(&curSlot);
    if (slot == NONE) { break; }
    let last = workgroupUniformLoad(&curLast);
    let mine = valid && mySlot == slot;
    let cacheBase = slot * p.maxSeq * kvDim + kvh * HD;

    // Sweep 1: lse and D.
    var m = -3.0e38;
    var l = 0.0;
    var a = 0.0;
    for (var c0 = 0u; c0 <= last; c0 += KC) {
      loadChunk(cacheBase, kvDim, c0, last, lid);
      workgroupBarrier();
      if (mine && c0 <= myLast) {
        let n = min(KC, myLast + 1u - c0);
        var s: array<f32, KC>;
        var dp: array<f32, KC>;
        var cmax = m;
        for (var i = 0u; i < KC; i++) {
          var sv = 0.0;
          var pv = 0.0;
          for (var d = 0u; d < HD; d++) {
            sv += qr[d] * ks[i * HD + d];
            pv += dor[d] * vs[i * HD + d];
          }
          s[i] = select(-3.0e38, sv, i < n);
          dp[i] = pv;
          cmax = max(cmax, s[i]);
        }
        let alpha = exp(m - cmax);
        l *= alpha;
        a *= alpha;
        for (var i = 0u; i < KC; i++) {
          let w = select(0.0, exp(s[i] - cmax), i < n);
          l += w;
          a += w * dp[i];
        }
        m = cmax;
      }
      workgroupBarrier();                // ks, vs are overwritten by the next chunk
    }
    if (mine) {
      lse = m + log(l);
      D = a / l;
    }

    // Sweep 2: dq = scale * sum_j P_j (dP_j - D) k_j. The (s, dP) loop repeats sweep 1's on
    // purpose: a shared helper taking the register rows by pointer measured about 25% slower here.
    for (var c0 = 0u; c0 <= last; c0 += KC) {
      loadChunk(cacheBase, kvDim, c0, last, lid);
      workgroupBarrier();
      if (mine && c0 <= myLast) {
        let n = min(KC, myLast + 1u - c0);
        for (var i = 0u; i < KC; i++) {
          var sv = 0.0;
          var pv = 0.0;
          for (var d = 0u; d < HD; d++) {
            sv += qr[d] * ks[i * HD + d];
            pv += dor[d] * vs[i * HD + d];
          }
          let ds = select(0.0, exp(sv - lse) * (pv - D), i < n);
          for (var d = 0u; d < HD; d++) { acc[d] += ds * ks[i * HD + d]; }
        }
      }
      workgroupBarrier();
    }
    if (mine) { pendingSlot[lid] = NONE; }
  }
  if (!valid) { return; }
  for (var d = 0u; d < HD; d++) { dq[rowBase + d] = acc[d] * p.scale; }
  let th = t * p.heads + h;
  stats[th * 2u] = bitcast<u32>(lse);
  stats[th * 2u + 1u] = bitcast<u32>(D);
  if (h == 0u) {
    let seqInfo = p.tokens * p.heads * 2u;
    stats[seqInfo + t * 2u] = mySlot;
    stats[seqInfo + t * 2u + 1u] = myLast;
  }
}
