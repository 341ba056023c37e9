// Causal grouped-query attention for a few query tokens (decode steps, each usually in its own
// slot): the same op as attention.wgsl (and the same CPU twin) with one invocation per (token,
// query head) that walks its slot's keys and values straight from the cache, keeping its query
// row and output accumulator in registers under an online softmax. No workgroup memory and no
// barrier: a decode step has only tokens x heads queries, so attention.wgsl's workgroup per query
// leaves most of its lanes idle while paying a barrier per chunk of keys and 64 copies of every
// exp, and on CPU adapters barriers are what costs most. On a GPU with long contexts the lanes it
// leaves idle can cost more than that; the autotuner times both (family attention_decode).
// HD (head dim) is compiled in so the per-row loops unroll. Query head h reads kv head
// h / (heads / kvHeads), as in HF's repeat_kv.
//   ROPE_KV: rope_kv_write.wgsl folded in, for tokens in distinct slots each at its newest
//     position: q and this token's k arrive unrotated and are rotated here (cos and sin
//     interleaved as there); the first query head of each kv head writes the rotated k and v to
//     the cache, and every query head takes its own token's key and value from registers rather
//     than from the cache another invocation is writing. The result overwrites q in place (each
//     invocation reads only its own q row), which keeps the op within WebGPU's guaranteed 8
//     storage bindings.
//#if ROPE_KV
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, scale: f32, maxPos: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> slots: array<u32>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;
@group(0) @binding(6) var<storage, read> cosSin: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> cacheK: array<f32>;
@group(0) @binding(8) var<storage, read_write> cacheV: array<f32>;
//#else
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> cacheK: array<f32>;
@group(0) @binding(3) var<storage, read> cacheV: array<f32>;
@group(0) @binding(4) var<storage, read> slots: array<u32>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
//#endif

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let th = gid.x + gid.y * nw.x * WG;    // token * heads + head
  if (th >= p.tokens * p.heads) { return; }
  let t = th / p.heads;
  let h = th % p.heads;
  let kvh = h / (p.heads / p.kvHeads);
  let kvDim = p.kvHeads * HD;
  let qBase = th * HD;
  let last = positions[t];               // attend to 0..last inclusive
  let cacheBase = slots[t] * p.maxSeq * kvDim + kvh * HD;

  var qr: array<f32, HD>;
  var acc: array<f32, HD>;
  for (var d = 0u; d < HD; d++) {
    qr[d] = q[qBase + d] * p.scale;
    acc[d] = 0.0;
  }
//#if ROPE_KV
  // RoPE (rotate-half) of q (the scale commutes with it) and of this token's k.
  const HALF = HD / 2u;
  var kr: array<f32, HD>;
  var vr: array<f32, HD>;
  let kBase = (t * p.kvHeads + kvh) * HD;
  for (var j = 0u; j < HALF; j++) {
    let cs = cosSin[last * HALF + j];
    let q1 = qr[j];
    let q2 = qr[j + HALF];
    qr[j] = q1 * cs.x - q2 * cs.y;
    qr[j + HALF] = q2 * cs.x + q1 * cs.y;
    let k1 = k[kBase + j];
    let k2 = k[kBase + j + HALF];
    kr[j] = k1 * cs.x - k2 * cs.y;
    kr[j + HALF] = k2 * cs.x + k1 * cs.y;
  }
  for (var d = 0u; d < HD; d++) { vr[d] = v[kBase + d]; }
  if (h % (p.heads / p.kvHeads) == 0u) {
    let dst = cacheBase + last * kvDim;
    for (var d = 0u; d < HD; d++) {
      cacheK[dst + d] = kr[d];
      cacheV[dst + d] = vr[d];
    }
  }
  // This token's own key is in registers; the cache supplies the ones before it.
  var own = 0.0;
  for (var d = 0u; d < HD; d++) { own += qr[d] * kr[d]; }
  var m = own;
  var l = 1.0;
  for (var d = 0u; d < HD; d++) { acc[d] = vr[d]; }
  let cached = last;
//#else
  var m = -3.0e38;
  var l = 0.0;
  let cached = last + 1u;
//#endif
  for (var j = 0u; j < cached; j++) {
    let kb = cacheBase + j * kvDim;
    var s = 0.0;
    for (var d = 0u; d < HD; d++) { s += qr[d] * cacheK[kb + d]; }
    // A new maximum rescales what was summed so far; otherwise one exp per key.
    if (s > m) {
      let alpha = exp(m - s);
      l *= alpha;
      for (var d = 0u; d < HD; d++) { acc[d] *= alpha; }
      m = s;
    }
    let w = exp(s - m);
    l += w;
    for (var d = 0u; d < HD; d++) { acc[d] += w * cacheV[kb + d]; }
  }
//#if ROPE_KV
  for (var d = 0u; d < HD; d++) { q[qBase + d] = acc[d] / l; }
//#else
  for (var d = 0u; d < HD; d++) { out[qBase + d] = acc[d] / l; }
//#endif
}
