// Causal grouped-query attention for many query tokens at once (prefill and training), the same
// op as attention.wgsl (and the same CPU twin) laid out the other way round: one invocation per
// (token, query head), WG consecutive tokens of one head per workgroup, and the keys and values of
// their slot streamed through workgroup memory in chunks of KC rows. Each invocation keeps its
// query row and its output accumulator in registers and runs a FlashAttention-style online
// softmax, so every (query, key) pair costs one dot product, one exp and one axpy — the
// one-workgroup-per-query kernel spends its 64 lanes on 24-dim rows and repeats each exp 64 times.
// HD (head dim) and KC (keys per chunk) are compiled in so the per-row loops unroll into registers.
// A tile whose tokens belong to several slots (packed sequences, or prefill mixed with decode) is
// served in one sub-pass per slot; each sub-pass reads that slot's keys up to the largest position
// among its tokens. Query head h reads kv head h / (heads / kvHeads), as in HF's repeat_kv.
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> cacheK: array<f32>;
@group(0) @binding(3) var<storage, read> cacheV: array<f32>;
@group(0) @binding(4) var<storage, read> slots: array<u32>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const TQ = WG;
const NONE = 0xffffffffu;
var<workgroup> ks: array<f32, KC * HD>;
var<workgroup> vs: array<f32, KC * HD>;
var<workgroup> pendingSlot: array<u32, TQ>; // slot of each tile token not served yet, else NONE
var<workgroup> curSlot: u32;
var<workgroup> curLast: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let id = wg.x + wg.y * nw.x;           // tile * heads + head (uniform across the workgroup)
  let h = id % p.heads;
  let t = (id / p.heads) * TQ + lid;
  let valid = t < p.tokens;
  let tc = min(t, p.tokens - 1u);
  let kvh = h / (p.heads / p.kvHeads);
  let kvDim = p.kvHeads * HD;
  let qBase = (tc * p.heads + h) * HD;
  let mySlot = slots[tc];
  let myLast = positions[tc];

  var qr: array<f32, HD>;
  var acc: array<f32, HD>;
  for (var d = 0u; d < HD; d++) {
    qr[d] = q[qBase + d] * p.scale;
    acc[d] = 0.0;
  }
  var m = -3.0e38;
  var l = 0.0;
  pendingSlot[lid] = select(NONE, mySlot, valid);

  loop {
    workgroupBarrier();
    if (lid == 0u) {
      var s = NONE;
      var last = 0u;
      for (var i = 0u; i < TQ; i++) {
        let si = pendingSlot[i];
        if (s == NONE) { s = si; }
        if (si != NONE && si == s) { last = max(last, positions[min((id / p.heads) * TQ + i, p.tokens - 1u)]); }
      }
      curSlot = s;
      curLast = last;
    }
    let slot = workgroupUniformLoad(&curSlot);
    if (slot == NONE) { break; }
    let last = workgroupUniformLoad(&curLast);
    let mine = valid && mySlot == slot;
    let cacheBase = slot * p.maxSeq * kvDim + kvh * HD;
    for (var c0 = 0u; c0 <= last; c0 += KC) {
      for (var e = lid; e < KC * HD; e += TQ) {
        let j = c0 + e / HD;
        let src = cacheBase + j * kvDim + e % HD;
        ks[e] = select(0.0, cacheK[src], j <= last);
        vs[e] = select(0.0, cacheV[src], j <= last);
      }
      workgroupBarrier();
      if (mine && c0 <= myLast) {
        let n = min(KC, myLast + 1u - c0);
        var s: array<f32, KC>;
        var cmax = m;
        for (var i = 0u; i < KC; i++) {
          var dotv = 0.0;
          for (var d = 0u; d < HD; d++) { dotv += qr[d] * ks[i * HD + d]; }
          s[i] = select(-3.0e38, dotv, i < n);
          cmax = max(cmax, s[i]);
        }
        let alpha = exp(m - cmax);
        l *= alpha;
        for (var d = 0u; d < HD; d++) { acc[d] *= alpha; }
        for (var i = 0u; i < KC; i++) {
          let w = select(0.0, exp(s[i] - cmax), i < n);
          l += w;
          for (var d = 0u; d < HD; d++) { acc[d] += w * vs[i * HD + d]; }
        }
        m = cmax;
      }
      workgroupBarrier();                // ks, vs are overwritten by the next chunk
    }
    if (mine) { pendingSlot[lid] = NONE; }
  }
  if (!valid) { return; }
  for (var d = 0u; d < HD; d++) { out[qBase + d] = acc[d] / l; }
}
