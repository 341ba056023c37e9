// Y[m, nOffset + n] = sum_k X[m, k] * W[n, k] (+ bias[n]) for few rows (decode, M <= 8): the
// GEMV of matmul_splitk.wgsl (one workgroup per output column, its WG invocations splitting K with
// adjacent invocations reading adjacent weights) with the reduction done by subgroupAdd inside each
// subgroup, then one pass over the subgroups' sums in workgroup memory: one barrier instead of
// log2(WG) + 1. Needs the adapter's `subgroups` feature. Neither the subgroup size (4 to 128 by
// adapter) nor how subgroups map to local indices is assumed: each invocation stores its
// subgroup's sum if it is lane 0 and a zero otherwise, and the final pass adds all WG slots.
// W is one row-shard of an HF Linear weight ([out, in]) stored as WT; accumulation is f32. Loads
// are vec4 along K when K % 4 == 0 (VEC4).
//#if F16
enable f16;
//#endif
enable subgroups;
struct Params { M: u32, N: u32, K: u32, nOffset: u32, ldy: u32, hasBias: u32 }
@group(0) @binding(0) var<uniform> p: Params;
//#if VEC4
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<WT>>;
//#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<WT>;
//#endif
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const MAX_M = 8u;
var<workgroup> partial: array<f32, 8u * WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sgLane: u32) {
  let n = wid.x + wid.y * nw.x;
  // No early return: every invocation must reach subgroupAdd and the barrier. Out-of-range
  // columns compute a clamped column and do not store it.
  let col = min(n, p.N - 1u);
  let rows = min(p.M, MAX_M);
  var acc: array<f32, 8>;
//#if VEC4
  let k4 = p.K / 4u;
  for (var k = lid; k < k4; k += WG) {
    let wk = vec4<f32>(w[col * k4 + k]);
    for (var m = 0u; m < rows; m++) { acc[m] += dot(x[m * k4 + k], wk); }
  }
//#else
  for (var k = lid; k < p.K; k += WG) {
    let wk = f32(w[col * p.K + k]);
    for (var m = 0u; m < rows; m++) { acc[m] += x[m * p.K + k] * wk; }
  }
//#endif
  for (var m = 0u; m < rows; m++) {
    // `rows` comes from the uniform buffer, so this loop (and subgroupAdd in it) is uniform.
    let s = subgroupAdd(acc[m]);
    partial[m * WG + lid] = select(0.0, s, sgLane == 0u);
  }
  workgroupBarrier();
  if (n < p.N && lid < rows) {
    var v = 0.0;
    for (var i = 0u; i < WG; i++) { v += partial[lid * WG + i]; }
    if (p.hasBias != 0u) { v += bias[col]; }
    y[lid * p.ldy + p.nOffset + col] = v;
  }
}
