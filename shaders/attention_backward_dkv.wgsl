// Causal GQA attention backward, pass 2 of 2: one workgroup per (slot, block of 64 key positions,
// kv head); invocation lid owns key position j = block * 64 + lid and accumulates its dk, dv rows
// in registers, so there are no races and no atomics. The workgroup walks the batch's tokens in
// order and, for those in its slot whose position reaches the block, over the kv group's query
// heads h: with P = exp(scale * q.k_j - lse) and dS = P (dout.v_j - D) (lse, D from pass 1),
//   dk_j += scale * dS * q_h,   dv_j += P * dout_h.
// Every key position of the cache is written (zero where no query attends to it).
// VEC4 (headDim % 4 == 0): rows are read as vec4. SMALL_HEAD_DIM (headDim <= 64): the key's own
// k_j, v_j rows are also kept in registers, so the inner loops read only workgroup memory.
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, slotCount: u32, scale: f32 }
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
@group(0) @binding(5) var<storage, read> stats: array<u32>;
@group(0) @binding(6) var<storage, read_write> dk: array<V>;
@group(0) @binding(7) var<storage, read_write> dv: array<V>;

const CHUNK = 64u;
//#if SMALL_HEAD_DIM
const MAXD = 64u / W;
//#else
const MAXD = 256u / W;
//#endif
var<workgroup> qs: array<V, MAXD>;
var<workgroup> dos: array<V, MAXD>;

fn vsum(v: V) -> f32 {
//#if VEC4
  return v.x + v.y + v.z + v.w;
//#else
  return v;
//#endif
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let id = wg.x + wg.y * nw.x;
  let blocks = (p.maxSeq + CHUNK - 1u) / CHUNK;
  let kvh = id % p.kvHeads;
  let slot = id / p.kvHeads / blocks;
  if (slot >= p.slotCount) { return; }
  let j0 = (id / p.kvHeads) % blocks * CHUNK;
  let j = j0 + lid;
  let jv = j < p.maxSeq;
  let group = p.heads / p.kvHeads;
  let hd = p.headDim / W;                // in units of V
  let kvDim = p.kvHeads * hd;
  let kb = (slot * p.maxSeq + min(j, p.maxSeq - 1u)) * kvDim + kvh * hd;
  let seqInfo = p.tokens * p.heads * 2u;
  var dkAcc: array<V, MAXD>;
  var dvAcc: array<V, MAXD>;
//#if SMALL_HEAD_DIM
  var kr: array<V, MAXD>;
  var vr: array<V, MAXD>;
  for (var d = 0u; d < hd; d++) { kr[d] = cacheK[kb + d]; vr[d] = cacheV[kb + d]; }
//#endif
  for (var t = 0u; t < p.tokens; t++) {
    let pos = stats[seqInfo + t * 2u + 1u];
    if (stats[seqInfo + t * 2u] != slot || pos < j0) { continue; }
    for (var hg = 0u; hg < group; hg++) {
      let th = t * p.heads + kvh * group + hg;
      workgroupBarrier();                // the previous head's qs/dos are no longer read
      for (var d = lid; d < hd; d += CHUNK) {
        qs[d] = q[th * hd + d];
        dos[d] = dout[th * hd + d];
      }
      workgroupBarrier();
      if (jv && j <= pos) {
        let lse = bitcast<f32>(stats[th * 2u]);
        let D = bitcast<f32>(stats[th * 2u + 1u]);
        var s = V(0.0);
        var dp = V(0.0);
        for (var d = 0u; d < hd; d++) {
//#if SMALL_HEAD_DIM
          s += qs[d] * kr[d];
          dp += dos[d] * vr[d];
//#else
          s += qs[d] * cacheK[kb + d];
          dp += dos[d] * cacheV[kb + d];
//#endif
        }
        let pj = exp(vsum(s) * p.scale - lse);
        let ds = pj * (vsum(dp) - D) * p.scale;
        for (var d = 0u; d < hd; d++) {
          dkAcc[d] += ds * qs[d];
          dvAcc[d] += pj * dos[d];
        }
      }
    }
  }
  if (!jv) { return; }
  for (var d = 0u; d < hd; d++) {
    dk[kb + d] = dkAcc[d];
    dv[kb + d] = dvAcc[d];
  }
}
