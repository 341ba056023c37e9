// A decode step's MLP half-layer in one workgroup, in place on the residual stream X [M, K]:
//   X2 = X + A·Woᵀ                                  (the attention's output projection)
//   X  = X2 + (silu(rmsnorm(X2)·Wgᵀ) * (rmsnorm(X2)·Wuᵀ))·Wdᵀ
// = gemv_residual.wgsl, norm_gemv.wgsl SWIGLU and gemv_residual.wgsl again, as one dispatch:
// X2 and the SwiGLU output never leave workgroup memory. Why one workgroup: the norm needs the
// whole X2 row and the down projection the whole SwiGLU row, dependencies across workgroups that
// would otherwise each cost a dispatch; with one workgroup a barrier is enough, and X can be
// updated in place (each invocation reads and writes only its own column quads of X, and every
// read comes before the barriers). Its price is parallelism: the half-layer runs on one compute
// unit, so it pays only where a dispatch costs more than that (tiny models, software adapters),
// and the autotuner chooses ('mlp_decode' in autotune.ts).
// Few rows (M <= 8); K, KO and N (the intermediate size) % 4 == 0 (vec4 loads; every column quad
// whole). Per-dispatch defines: MR = M (a constant bound lets the per-row loops unroll and the
// per-row sums stay in registers: 1.6-2x faster on lavapipe than looping to p.M), XQ = M·K/4 and
// HQ = M·N/4 (the rows' vec4s in workgroup memory). Weights are HF
// Linear weights ([out, in], row-major) stored as WT; accumulation is f32. The norm's factor is
// applied to the finished sums, inverseSqrt(mean(x²) + eps) · Σ (x·g)·w, as norm_gemv.wgsl does.
//#if F16
enable f16;
//#endif
struct Params { M: u32, K: u32, N: u32, KO: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> att: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> wo: array<vec4<WT>>;
@group(0) @binding(4) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> wg: array<vec4<WT>>;
@group(0) @binding(6) var<storage, read> wu: array<vec4<WT>>;
@group(0) @binding(7) var<storage, read> wd: array<vec4<WT>>;

var<workgroup> xs: array<vec4<f32>, XQ>;
var<workgroup> hs: array<vec4<f32>, HQ>;
var<workgroup> invRms: array<f32, MR>;

// Four weight rows at k (vec4 along their inputs) as the columns of a matrix: v * m is their 4
// dot products with v. One loader per binding (WGSL cannot pass a storage array to a function).
fn wom(n: vec4<u32>, k: u32) -> mat4x4<f32> {
  let s = p.KO / 4u;
  return mat4x4<f32>(vec4<f32>(wo[n.x * s + k]), vec4<f32>(wo[n.y * s + k]), vec4<f32>(wo[n.z * s + k]), vec4<f32>(wo[n.w * s + k]));
}
fn wgm(n: vec4<u32>, k: u32) -> mat4x4<f32> {
  let s = p.K / 4u;
  return mat4x4<f32>(vec4<f32>(wg[n.x * s + k]), vec4<f32>(wg[n.y * s + k]), vec4<f32>(wg[n.z * s + k]), vec4<f32>(wg[n.w * s + k]));
}
fn wum(n: vec4<u32>, k: u32) -> mat4x4<f32> {
  let s = p.K / 4u;
  return mat4x4<f32>(vec4<f32>(wu[n.x * s + k]), vec4<f32>(wu[n.y * s + k]), vec4<f32>(wu[n.z * s + k]), vec4<f32>(wu[n.w * s + k]));
}
fn wdm(n: vec4<u32>, k: u32) -> mat4x4<f32> {
  let s = p.N / 4u;
  return mat4x4<f32>(vec4<f32>(wd[n.x * s + k]), vec4<f32>(wd[n.y * s + k]), vec4<f32>(wd[n.z * s + k]), vec4<f32>(wd[n.w * s + k]));
}

// Per-row sums, zeroed explicitly: a bare declaration in a loop body (zero by WGSL's rules) kept
// the previous turn's sums on lavapipe.
fn zeros() -> array<vec4<f32>, MR> {
  var z: array<vec4<f32>, MR>;
  for (var m = 0u; m < MR; m++) { z[m] = vec4<f32>(0.0); }
  return z;
}

fn quad(q: u32) -> vec4<u32> { return vec4<u32>(4u * q, 4u * q + 1u, 4u * q + 2u, 4u * q + 3u); }

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  let kq = p.K / 4u;
  let koq = p.KO / 4u;
  let nq = p.N / 4u;
  // 1. xs = X + A·Woᵀ, a column quad per invocation and turn; the quad's weights shared by the rows.
  for (var q = lid; q < kq; q += WG) {
    let n = quad(q);
    var acc = zeros();
    for (var k = 0u; k < koq; k++) {
      let w = wom(n, k);
      for (var m = 0u; m < MR; m++) { acc[m] += att[m * koq + k] * w; }
    }
    for (var m = 0u; m < MR; m++) { xs[m * kq + q] = x[m * kq + q] + acc[m]; }
  }
  workgroupBarrier();
  // 2. Each row's inverse RMS, one invocation a row.
  if (lid < MR) {
    var ss = 0.0;
    for (var k = 0u; k < kq; k++) { let v = xs[lid * kq + k]; ss += dot(v, v); }
    invRms[lid] = inverseSqrt(ss / f32(p.K) + p.eps);
  }
  workgroupBarrier();
  // 3. hs = silu(rmsnorm(xs)·Wgᵀ) * (rmsnorm(xs)·Wuᵀ), a quad of the intermediate per invocation and turn.
  for (var q = lid; q < nq; q += WG) {
    let n = quad(q);
    var a = zeros();
    var b = zeros();
    for (var k = 0u; k < kq; k++) {
      let wa = wgm(n, k);
      let wb = wum(n, k);
      let gk = g[k];
      for (var m = 0u; m < MR; m++) {
        let xg = xs[m * kq + k] * gk;
        a[m] += xg * wa;
        b[m] += xg * wb;
      }
    }
    for (var m = 0u; m < MR; m++) {
      let s = invRms[m];
      let av = a[m] * s;
      hs[m * nq + q] = av / (1.0 + exp(-av)) * (b[m] * s);
    }
  }
  workgroupBarrier();
  // 4. X = xs + hs·Wdᵀ
  for (var q = lid; q < kq; q += WG) {
    let n = quad(q);
    var acc = zeros();
    for (var k = 0u; k < nq; k++) {
      let w = wdm(n, k);
      for (var m = 0u; m < MR; m++) { acc[m] += hs[m * nq + k] * w; }
    }
    for (var m = 0u; m < MR; m++) { x[m * kq + q] = xs[m * kq + q] + acc[m]; }
  }
}
