// Decode's normed projections in one dispatch: Y_i[m, :] = (rmsnorm(X[m, :]) * g) · W_iᵀ — the
// RMSNorm that precedes a block's projections folded into the GEMV instead of its own dispatch.
// Few rows (the decode batch); K % 4 == 0 (vec4 loads). No bias.
//   default variant: up to three weights of the same input (q, k, v; or the LM head alone with
//     N1 = N2 = 0). Their column quads are laid end to end over one 1-D grid: invocation q serves
//     quad q of W0, then of W1, then of W2, so no quad straddles two weights whatever their N.
//   SWIGLU: two weights (gate W0, up W1, N0 == N1); Y0 = silu(X·W0ᵀ) * (X·W1ᵀ), the MLP's gating
//     in the epilogue, so gate and up never reach memory.
// The norm's sum of squares is accumulated in the same pass over the row as the dot products,
// and its factor applied to the finished sums: inverseSqrt(mean(x²) + eps) · Σ (x·g)·w. Each
// invocation does this for itself, so there is no workgroup memory and no barrier (barriers are
// what software adapters pay most for). It equals rmsnorm.wgsl then matmul.wgsl up to rounding.
// W_i are HF Linear weights ([out, in], row-major) stored as WT; accumulation is f32.
//#if F16
enable f16;
//#endif
struct Params { M: u32, K: u32, N0: u32, N1: u32, N2: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w0: array<vec4<WT>>;
@group(0) @binding(4) var<storage, read> w1: array<vec4<WT>>;
//#if SWIGLU
@group(0) @binding(5) var<storage, read_write> y0: array<f32>;
//#else
@group(0) @binding(5) var<storage, read> w2: array<vec4<WT>>;
@group(0) @binding(6) var<storage, read_write> y0: array<f32>;
@group(0) @binding(7) var<storage, read_write> y1: array<f32>;
@group(0) @binding(8) var<storage, read_write> y2: array<f32>;
//#endif

fn invRms(ss: f32) -> f32 { return inverseSqrt(ss / f32(p.K) + p.eps); }

fn quadCols(n0: u32, N: u32) -> vec4<u32> {
  return vec4<u32>(n0, min(n0 + 1u, N - 1u), min(n0 + 2u, N - 1u), min(n0 + 3u, N - 1u));
}

//#if SWIGLU
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let n0 = (gid.x + gid.y * nw.x * WG) * 4u;
  if (n0 >= p.N0) { return; }
  let n = quadCols(n0, p.N0);
  let kq = p.K / 4u;
  for (var m = 0u; m < p.M; m++) {
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    var ss = 0.0;
    for (var k = 0u; k < kq; k++) {
      let xk = x[m * kq + k];
      ss += dot(xk, xk);
      let xg = xk * g[k];
      a += vec4<f32>(dot(xg, vec4<f32>(w0[n.x * kq + k])), dot(xg, vec4<f32>(w0[n.y * kq + k])),
                     dot(xg, vec4<f32>(w0[n.z * kq + k])), dot(xg, vec4<f32>(w0[n.w * kq + k])));
      b += vec4<f32>(dot(xg, vec4<f32>(w1[n.x * kq + k])), dot(xg, vec4<f32>(w1[n.y * kq + k])),
                     dot(xg, vec4<f32>(w1[n.z * kq + k])), dot(xg, vec4<f32>(w1[n.w * kq + k])));
    }
    let inv = invRms(ss);
    a *= inv;
    b *= inv;
    let act = a / (1.0 + exp(-a)) * b;
    for (var j = 0u; j < 4u; j++) {
      if (n0 + j < p.N0) { y0[m * p.N0 + n0 + j] = act[j]; }
    }
  }
}
//#else
// One (row, column quad) per weight binding: WGSL cannot pass a storage array to a function, so
// the loop is written once per binding. Columns past N are clamped (computed, not stored).
fn dot0(m: u32, n: vec4<u32>) -> vec4<f32> {
  let kq = p.K / 4u;
  var a = vec4<f32>(0.0);
  var ss = 0.0;
  for (var k = 0u; k < kq; k++) {
    let xk = x[m * kq + k];
    ss += dot(xk, xk);
    let xg = xk * g[k];
    a += vec4<f32>(dot(xg, vec4<f32>(w0[n.x * kq + k])), dot(xg, vec4<f32>(w0[n.y * kq + k])),
                   dot(xg, vec4<f32>(w0[n.z * kq + k])), dot(xg, vec4<f32>(w0[n.w * kq + k])));
  }
  return a * invRms(ss);
}
fn dot1(m: u32, n: vec4<u32>) -> vec4<f32> {
  let kq = p.K / 4u;
  var a = vec4<f32>(0.0);
  var ss = 0.0;
  for (var k = 0u; k < kq; k++) {
    let xk = x[m * kq + k];
    ss += dot(xk, xk);
    let xg = xk * g[k];
    a += vec4<f32>(dot(xg, vec4<f32>(w1[n.x * kq + k])), dot(xg, vec4<f32>(w1[n.y * kq + k])),
                   dot(xg, vec4<f32>(w1[n.z * kq + k])), dot(xg, vec4<f32>(w1[n.w * kq + k])));
  }
  return a * invRms(ss);
}
fn dot2(m: u32, n: vec4<u32>) -> vec4<f32> {
  let kq = p.K / 4u;
  var a = vec4<f32>(0.0);
  var ss = 0.0;
  for (var k = 0u; k < kq; k++) {
    let xk = x[m * kq + k];
    ss += dot(xk, xk);
    let xg = xk * g[k];
    a += vec4<f32>(dot(xg, vec4<f32>(w2[n.x * kq + k])), dot(xg, vec4<f32>(w2[n.y * kq + k])),
                   dot(xg, vec4<f32>(w2[n.z * kq + k])), dot(xg, vec4<f32>(w2[n.w * kq + k])));
  }
  return a * invRms(ss);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let q = gid.x + gid.y * nw.x * WG;
  let q0 = (p.N0 + 3u) / 4u;
  let q1 = (p.N1 + 3u) / 4u;
  let q2 = (p.N2 + 3u) / 4u;
  if (q < q0) {
    let n0 = q * 4u;
    let n = quadCols(n0, p.N0);
    for (var m = 0u; m < p.M; m++) {
      let a = dot0(m, n);
      for (var j = 0u; j < 4u; j++) { if (n0 + j < p.N0) { y0[m * p.N0 + n0 + j] = a[j]; } }
    }
  } else if (q < q0 + q1) {
    let n0 = (q - q0) * 4u;
    let n = quadCols(n0, p.N1);
    for (var m = 0u; m < p.M; m++) {
      let a = dot1(m, n);
      for (var j = 0u; j < 4u; j++) { if (n0 + j < p.N1) { y1[m * p.N1 + n0 + j] = a[j]; } }
    }
  } else if (q < q0 + q1 + q2) {
    let n0 = (q - q0 - q1) * 4u;
    let n = quadCols(n0, p.N2);
    for (var m = 0u; m < p.M; m++) {
      let a = dot2(m, n);
      for (var j = 0u; j < 4u; j++) { if (n0 + j < p.N2) { y2[m * p.N2 + n0 + j] = a[j]; } }
    }
  }
}
//#endif
