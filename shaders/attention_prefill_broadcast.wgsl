// Causal grouped-query attention for many query tokens (prefill, training), laid out like
// attention_prefill.wgsl — one invocation per (token, query head), WG consecutive tokens of one head
// per workgroup, a FlashAttention-style online softmax over blocks of KB keys, one sub-pass per
// slot among the tile's tokens — but for adapters with the `subgroups` feature: the key and value
// rows every invocation of the workgroup reads are not staged in workgroup memory and re-read by
// every lane; lanes 0-3 of each subgroup read a quarter of a row each (vec4 chunks c with
// c % 4 == lane) and subgroupBroadcast hands the chunks to all lanes. On CPU adapters, where each
// load is a per-lane gather, a key then costs a lane HD/8 vec4 loads instead of 2 HD scalar ones.
// subgroupBroadcast needs uniform control flow, so no invocation branches on its own token: every
// lane runs every key of the sub-pass and masks (scores of keys past its position, or of a token
// of another slot, weigh 0). HD (head dim, a multiple of 4) and KB are compiled in.
// Query head h reads kv head h / (heads / kvHeads), as in HF's repeat_kv.
enable subgroups;
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> cacheK: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> cacheV: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> slots: array<u32>;
@group(0) @binding(5) var<storage, read> positions: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const TQ = WG;
const NONE = 0xffffffffu;
const HDV = HD / 4u;           // vec4 chunks of a row
const PER = (HDV + 3u) / 4u;   // chunks a lane holds (lane j: chunks j, j + 4, ...)
const KB = 8u;                 // keys per softmax block
var<workgroup> pendingSlot: array<u32, TQ>; // slot of each tile token not served yet, else NONE
var<workgroup> curSlot: u32;
var<workgroup> curLast: u32;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) lane: u32,
) {
  let id = wg.x + wg.y * nw.x;           // tile * heads + head (uniform across the workgroup)
  let h = id % p.heads;
  let t = (id / p.heads) * TQ + lid;
  let valid = t < p.tokens;
  let tc = min(t, p.tokens - 1u);
  let kvh = h / (p.heads / p.kvHeads);
  let kvDimV = p.kvHeads * HDV;
  let qBase = (tc * p.heads + h) * HD;
  let mySlot = slots[tc];
  let myLast = positions[tc];
  let quarter = lane % 4u;

  // The query row (scaled) in chunks padded to 4 PER with zeros; the output accumulator.
  var qr: array<vec4<f32>, 4u * PER>;
  var acc: array<vec4<f32>, HDV>;
  for (var c = 0u; c < 4u * PER; c++) {
    let d = c * 4u;
    if (c < HDV) {
      qr[c] = vec4<f32>(q[qBase + d], q[qBase + d + 1u], q[qBase + d + 2u], q[qBase + d + 3u]) * p.scale;
      acc[c] = vec4<f32>(0.0);
    } else {
      qr[c] = vec4<f32>(0.0);
    }
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
    let rowBase = slot * p.maxSeq * kvDimV + kvh * HDV; // vec4 index of key 0 of this kv head
    for (var j0 = 0u; j0 <= last; j0 += KB) {
      var s: array<f32, KB>;
      var cmax = m;
      for (var i = 0u; i < KB; i++) {
        let j = min(j0 + i, last);
        let kRow = rowBase + j * kvDimV;
        var dotv = 0.0;
        for (var r = 0u; r < PER; r++) {
          let mineChunk = select(vec4<f32>(0.0), cacheK[kRow + min(4u * r + quarter, HDV - 1u)], 4u * r + quarter < HDV);
          dotv += dot(qr[4u * r], subgroupBroadcast(mineChunk, 0u)) + dot(qr[4u * r + 1u], subgroupBroadcast(mineChunk, 1u))
            + dot(qr[4u * r + 2u], subgroupBroadcast(mineChunk, 2u)) + dot(qr[4u * r + 3u], subgroupBroadcast(mineChunk, 3u));
        }
        s[i] = select(-3.0e38, dotv, mine && j0 + i <= min(last, myLast));
        cmax = max(cmax, s[i]);
      }
      let alpha = exp(m - cmax);
      l *= alpha;
      for (var c = 0u; c < HDV; c++) { acc[c] *= alpha; }
      for (var i = 0u; i < KB; i++) {
        let j = min(j0 + i, last);
        let vRow = rowBase + j * kvDimV;
        let w = select(0.0, exp(s[i] - cmax), mine && j0 + i <= min(last, myLast));
        l += w;
        for (var r = 0u; r < PER; r++) {
          let mineChunk = select(vec4<f32>(0.0), cacheV[vRow + min(4u * r + quarter, HDV - 1u)], 4u * r + quarter < HDV);
          let v0 = subgroupBroadcast(mineChunk, 0u);
          let v1 = subgroupBroadcast(mineChunk, 1u);
          let v2 = subgroupBroadcast(mineChunk, 2u);
          let v3 = subgroupBroadcast(mineChunk, 3u);
          // Chunks past HDV are zeros: the clamped indices add nothing there.
          acc[min(4u * r, HDV - 1u)] += select(vec4<f32>(0.0), w * v0, 4u * r < HDV);
          acc[min(4u * r + 1u, HDV - 1u)] += select(vec4<f32>(0.0), w * v1, 4u * r + 1u < HDV);
          acc[min(4u * r + 2u, HDV - 1u)] += select(vec4<f32>(0.0), w * v2, 4u * r + 2u < HDV);
          acc[min(4u * r + 3u, HDV - 1u)] += select(vec4<f32>(0.0), w * v3, 4u * r + 3u < HDV);
        }
      }
      m = cmax;
    }
    if (mine) { pendingSlot[lid] = NONE; }
  }
  if (!valid) { return; }
  for (var c = 0u; c < HDV; c++) {
    let o = acc[c] / l;
    let d = qBase + c * 4u;
    out[d] = o.x; out[d + 1u] = o.y; out[d + 2u] = o.z; out[d + 3u] = o.w;
  }
}
