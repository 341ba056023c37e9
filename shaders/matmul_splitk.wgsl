// Y[m, nOffset + n] = sum_k X[m, k] * W[n, k] (+ bias[n]) for few rows (decode, M <= 8): the
// GPU-class GEMV. One workgroup per output column: its WG invocations split K (adjacent invocations
// read adjacent elements of the weight row, so loads coalesce), keep one partial sum per row of X,
// and reduce them in workgroup memory (a tree; WG must be a power of two). W is one row-shard of
// an HF Linear weight ([out, in]) stored as WT; accumulation is f32. Loads are vec4 along K when
// K % 4 == 0 (VEC4). The register-tiled kernel in matmul.wgsl stays the other candidate; the
// autotuner (src/kernels/autotune.ts) picks per adapter and shape.
//#if F16
enable f16;
//#endif
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
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = wid.x + wid.y * nw.x;
  // No early return: every invocation must reach the barriers. Out-of-range columns compute a
  // clamped column and do not store it.
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
  for (var m = 0u; m < rows; m++) { partial[m * WG + lid] = acc[m]; }
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      for (var m = 0u; m < rows; m++) { partial[m * WG + lid] += partial[m * WG + lid + s]; }
    }
    workgroupBarrier();
  }
  if (n < p.N && lid < rows) {
    var v = partial[lid * WG];
    if (p.hasBias != 0u) { v += bias[col]; }
    y[lid * p.ldy + p.nOffset + col] = v;
  }
}
