// Causal GQA attention backward, pass 2 of 2: one workgroup per (slot, block of WG key positions,
// kv head); invocation lid owns key position j = block * WG + lid and accumulates its dk, dv rows
// in registers, so there are no races and no atomics. The batch's tokens are streamed through
// workgroup memory QC at a time (their q and dout rows for the GQ query heads of this kv head,
// and lse, D from pass 1); for each token in this slot whose position reaches j:
//   P = exp(scale * q.k_j - lse),  dS = P (dout.v_j - D),  dk_j += scale * dS * q_h,  dv_j += P * dout_h.
// HD (head dim), GQ (query heads per kv head) and QC are compiled in so the row loops unroll.
// Every key position of the cache is written (zero where no query attends to it).
struct Params { tokens: u32, heads: u32, kvHeads: u32, headDim: u32, maxSeq: u32, slotCount: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> cacheK: array<f32>;
@group(0) @binding(4) var<storage, read> cacheV: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<u32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;

const BLOCK = WG;
var<workgroup> qs: array<f32, QC * GQ * HD>;
var<workgroup> dos: array<f32, QC * GQ * HD>;
var<workgroup> lses: array<f32, QC * GQ>;
var<workgroup> dts: array<f32, QC * GQ>;  // D of each (token, head)
var<workgroup> tokPos: array<u32, QC>;   // position of each chunk token in this slot, else NONE (QC <= 64)
const NONE = 0xffffffffu;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let id = wg.x + wg.y * nw.x;           // uniform across the workgroup
  let blocks = (p.maxSeq + BLOCK - 1u) / BLOCK;
  let kvh = id % p.kvHeads;
  let slot = id / p.kvHeads / blocks;
  if (slot >= p.slotCount) { return; }
  let j0 = (id / p.kvHeads) % blocks * BLOCK;
  let j = j0 + lid;
  let jv = j < p.maxSeq;
  let kvDim = p.kvHeads * HD;
  let kb = (slot * p.maxSeq + min(j, p.maxSeq - 1u)) * kvDim + kvh * HD;
  let seqInfo = p.tokens * p.heads * 2u;
  var kr: array<f32, HD>;
  var vr: array<f32, HD>;
  var dkAcc: array<f32, HD>;
  var dvAcc: array<f32, HD>;
  for (var d = 0u; d < HD; d++) {
    kr[d] = cacheK[kb + d] * p.scale;
    vr[d] = cacheV[kb + d];
    dkAcc[d] = 0.0;
    dvAcc[d] = 0.0;
  }
  for (var t0 = 0u; t0 < p.tokens; t0 += QC) {
    // Token info first (one word each), then the rows of the tokens that matter here.
    if (lid < QC) {
      let t = t0 + lid;
      var pos = NONE;
      if (t < p.tokens && stats[seqInfo + t * 2u] == slot) {
        let tp = stats[seqInfo + t * 2u + 1u];
        if (tp >= j0) { pos = tp; }
      }
      tokPos[lid] = pos;
    }
    workgroupBarrier();
    for (var e = lid; e < QC * GQ * HD; e += BLOCK) {
      let i = e / (GQ * HD);
      if (tokPos[i] != NONE) {
        let th = (t0 + i) * p.heads + kvh * GQ;
        let src = th * HD + e % (GQ * HD);  // the GQ heads of a kv head are consecutive rows
        qs[e] = q[src];
        dos[e] = dout[src];
      }
    }
    for (var e = lid; e < QC * GQ; e += BLOCK) {
      let i = e / GQ;
      if (tokPos[i] != NONE) {
        let th = (t0 + i) * p.heads + kvh * GQ + e % GQ;
        lses[e] = bitcast<f32>(stats[th * 2u]);
        dts[e] = bitcast<f32>(stats[th * 2u + 1u]);
      }
    }
    workgroupBarrier();
    if (jv) {
      for (var i = 0u; i < QC; i++) {
        let pos = tokPos[i];
        if (pos == NONE || j > pos) { continue; }
        for (var g = 0u; g < GQ; g++) {
          let r = (i * GQ + g) * HD;
          var s = 0.0;
          var dp = 0.0;
          for (var d = 0u; d < HD; d++) {
            s += qs[r + d] * kr[d];
            dp += dos[r + d] * vr[d];
          }
          let pj = exp(s - lses[i * GQ + g]);
          let dsj = pj * (dp - dts[i * GQ + g]) * p.scale;
          for (var d = 0u; d < HD; d++) {
            dkAcc[d] += dsj * qs[r + d];
            dvAcc[d] += pj * dos[r + d];
          }
        }
      }
    }
    workgroupBarrier();                  // the chunk's rows are overwritten by the next one
  }
  if (!jv) { return; }
  for (var d = 0u; d < HD; d++) {
    dk[kb + d] = dkAcc[d];
    dv[kb + d] = dvAcc[d];
  }
}
