// Causal grouped-query attention for many query tokens (prefill, training): the op of
// attention_prefill.wgsl (same CPU twin, same handling of tiles that mix slots) with each query
// served by LANES invocations that split the head dimension, FlashAttention-2 style. The keys and
// values of the slot stream through workgroup memory in chunks of KC rows; per chunk every lane
// computes partial q·k dot products over its dimensions (d = lane, lane + LANES, ...: adjacent
// lanes read adjacent floats), the partials meet in workgroup memory, every lane of a query adds
// them up and runs the same online softmax, and each lane updates its own slice of the output.
// Against attention_prefill.wgsl (one invocation holds a whole query row and output row), each
// invocation holds HD / LANES of each: fewer registers per invocation on GPUs where a 64..128-wide
// row spills, for one more barrier per chunk. TQ = WG / LANES queries of one head per workgroup.
// HD (head dim, any value: lanes past it idle), KC and LANES are compiled in.
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> cacheK: array<f32>;
@group(0) @binding(3) var<storage, read> cacheV: array<f32>;
@group(0) @binding(4) var<storage, read> slots: array<u32>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const TQ = WG / LANES;
const DS = (HD + LANES - 1u) / LANES; // dimensions per lane
const NONE = 0xffffffffu;
var<workgroup> ks: array<f32, KC * HD>;
var<workgroup> vs: array<f32, KC * HD>;
var<workgroup> partial: array<f32, TQ * KC * LANES>;
var<workgroup> pendingSlot: array<u32, TQ>; // slot of each tile query not served yet, else NONE
var<workgroup> curSlot: u32;
var<workgroup> curLast: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let id = wg.x + wg.y * nw.x;           // tile * heads + head (uniform across the workgroup)
  let h = id % p.heads;
  let qi = lid / LANES;
  let lane = lid % LANES;
  let t = (id / p.heads) * TQ + qi;
  let valid = t < p.tokens;
  let tc = min(t, p.tokens - 1u);
  let kvh = h / (p.heads / p.kvHeads);
  let kvDim = p.kvHeads * HD;
  let qBase = (tc * p.heads + h) * HD;
  let mySlot = slots[tc];
  let myLast = positions[tc];

  var qr: array<f32, DS>;
  var acc: array<f32, DS>;
  for (var j = 0u; j < DS; j++) {
    let d = lane + LANES * j;
    qr[j] = select(0.0, q[qBase + min(d, HD - 1u)] * p.scale, d < HD);
    acc[j] = 0.0;
  }
  var m = -3.0e38;
  var l = 0.0;
  if (lane == 0u) { pendingSlot[qi] = select(NONE, mySlot, valid); }

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
      for (var e = lid; e < KC * HD; e += WG) {
        let j = c0 + e / HD;
        let src = cacheBase + j * kvDim + e % HD;
        ks[e] = select(0.0, cacheK[src], j <= last);
        vs[e] = select(0.0, cacheV[src], j <= last);
      }
      workgroupBarrier();
      let inRange = mine && c0 <= myLast;
      if (inRange) {
        for (var i = 0u; i < KC; i++) {
          var dotv = 0.0;
          for (var j = 0u; j < DS; j++) {
            let d = lane + LANES * j;
            if (d < HD) { dotv += qr[j] * ks[i * HD + d]; }
          }
          partial[(qi * KC + i) * LANES + lane] = dotv;
        }
      }
      workgroupBarrier();                // the partials of every lane are in
      if (inRange) {
        let n = min(KC, myLast + 1u - c0);
        var s: array<f32, KC>;
        var cmax = m;
        for (var i = 0u; i < KC; i++) {
          var dotv = 0.0;
          for (var r = 0u; r < LANES; r++) { dotv += partial[(qi * KC + i) * LANES + r]; }
          s[i] = select(-3.0e38, dotv, i < n);
          cmax = max(cmax, s[i]);
        }
        let alpha = exp(m - cmax);
        l *= alpha;
        for (var j = 0u; j < DS; j++) { acc[j] *= alpha; }
        for (var i = 0u; i < KC; i++) {
          let w = select(0.0, exp(s[i] - cmax), i < n);
          l += w;
          for (var j = 0u; j < DS; j++) {
            let d = lane + LANES * j;
            if (d < HD) { acc[j] += w * vs[i * HD + d]; }
          }
        }
        m = cmax;
      }
      workgroupBarrier();                // ks, vs and partial are overwritten by the next chunk
    }
    if (mine && lane == 0u) { pendingSlot[qi] = NONE; }
  }
  if (!valid) { return; }
  for (var j = 0u; j < DS; j++) {
    let d = lane + LANES * j;
    if (d < HD) { out[qBase + d] = acc[j] / l; }
  }
}
