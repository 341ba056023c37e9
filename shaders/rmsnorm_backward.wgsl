// Backward of y = x * r * w with r = inverseSqrt(mean(x^2) + eps) (HF's LlamaRMSNorm), in f32.
// With g = dy * w:  dx = r * g - x * r^3 * sum(g * x) / dim.
// Default entry: one workgroup per row computes dx and stores r in rstd[row].
// DWEIGHT: one invocation per column, dweight[d] += sum_rows dy[row, d] * x[row, d] * rstd[row]
// (a second pass, so the column sum needs no atomics).
//#if F16
enable f16;
//#endif
struct Params { rows: u32, dim: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
//#if DWEIGHT
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dweight: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let d = g.x + g.y * nw.x * WG;
  if (d >= p.dim) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += dy[r * p.dim + d] * x[r * p.dim + d] * rstd[r]; }
  dweight[d] += s;
}
//#else
@group(0) @binding(3) var<storage, read> weight: array<WT>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
var<workgroup> ss: array<f32, WG>;
var<workgroup> gx: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * nw.x;
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  var s = 0.0;
  var t = 0.0;
  for (var d = lid; d < p.dim; d += WG) {
    let v = x[base + d];
    s += v * v;
    t += dy[base + d] * f32(weight[d]) * v;
  }
  ss[lid] = s;
  gx[lid] = t;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      ss[lid] += ss[lid + stride];
      gx[lid] += gx[lid + stride];
    }
    workgroupBarrier();
  }
  let r = inverseSqrt(ss[0] / f32(p.dim) + p.eps);
  let c = r * r * r * gx[0] / f32(p.dim);
  for (var d = lid; d < p.dim; d += WG) {
    dx[base + d] = r * dy[base + d] * f32(weight[d]) - x[base + d] * c;
  }
  if (lid == 0u) { rstd[row] = r; }
}
//#endif
