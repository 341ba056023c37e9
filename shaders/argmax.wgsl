// Greedy decoding on the device: next[r] = argmax_v logits[r, v] for each row (one workgroup a
// row), also stored at tokens[outOffset + r] so a burst of decode steps keeps every step's tokens
// and reads them back once. Ties go to the lower id, as the host's argmax (sampling.ts) does.
// Each invocation scans a strided share of the row; a tree in workgroup memory then reduces the
// WG candidates (WG a power of two). Rows holding NaN (a broken model) may pick another id than
// the host.
//   EMBED variant: the workgroup then copies the winner's row of the embedding table to
//   embedded[r, :], the next step's input, so a greedy burst's step needs no embedding dispatch
//   (on software adapters each dispatch costs more than this copy). Equal to embedding.wgsl on
//   next[r].
//#if F16
enable f16;
//#endif
//#if EMBED
struct Params { rows: u32, vocab: u32, outOffset: u32, dim: u32 }
//#else
struct Params { rows: u32, vocab: u32, outOffset: u32 }
//#endif
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> next: array<u32>;
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;
//#if EMBED
@group(0) @binding(4) var<storage, read> table: array<WT>;
@group(0) @binding(5) var<storage, read_write> embedded: array<f32>;
//#endif

var<workgroup> bestVal: array<f32, WG>;
var<workgroup> bestId: array<u32, WG>;

// (v, i) beats (bv, bi): larger, or equal with a lower id. An id of 0xffffffff marks "none yet".
fn beats(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return bi == 0xffffffffu || v > bv || (v == bv && i < bi);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wid.x;
  let base = r * p.vocab;
  var bv = 0.0;
  var bi = 0xffffffffu;
  for (var v = lid; v < p.vocab; v += WG) {
    let x = logits[base + v];
    if (bi == 0xffffffffu || x > bv) { bv = x; bi = v; }
  }
  bestVal[lid] = bv;
  bestId[lid] = bi;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      let ov = bestVal[lid + half];
      let oi = bestId[lid + half];
      if (oi != 0xffffffffu && beats(ov, oi, bestVal[lid], bestId[lid])) {
        bestVal[lid] = ov;
        bestId[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u && r < p.rows) {
    next[r] = bestId[0];
    tokens[p.outOffset + r] = bestId[0];
  }
//#if EMBED
  // Every invocation passed the reduction's last barrier, so bestId[0] is final for all.
  let id = bestId[0];
  if (r < p.rows && id != 0xffffffffu) {
    for (var d = lid; d < p.dim; d += WG) { embedded[r * p.dim + d] = f32(table[id * p.dim + d]); }
  }
//#endif
}
