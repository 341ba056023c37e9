// Decode's normed projections in one dispatch: Y_i[m, :] = (rmsnorm(X[m, :]) * g) · W_iᵀ — the
// RMSNorm that precedes a block's projections folded into the GEMV instead of its own dispatch.
// Few rows (the decode batch); K % 4 == 0 (vec4 loads). No bias.
//   default variant: up to three weights of the same input (q, k, v; or the LM head alone with
//     N1 = N2 = 0). Their column quads are laid end to end over one 1-D grid: invocation q serves
//     quad q of W0, then of W1, then of W2, so no quad straddles two weights whatever their N.
//   SWIGLU: two weights (gate W0, up W1, N0 == N1); Y0 = silu(X·W0ᵀ) * (X·W1ᵀ), the MLP's gating
//     in the epilogue, so gate and up never reach memory.
//   SWIGLU + RESIDUAL: the attention's output projection and residual add in the prologue too:
//     X = Xin + A·Woᵀ (A [M, KO], Wo [K, KO]) is computed by every workgroup into workgroup
//     memory (XQ = M·K/4 vec4s and MR = M, per-dispatch defines) and written to Xout by workgroup 0 only
//     (the others still read Xin, so it cannot be updated in place). One dispatch instead of
//     gemv_residual + this kernel, for the price of the product repeated in every workgroup: a
//     win where dispatches cost more than that (tiny models, software adapters), so the autotuner
//     chooses ('mlp_decode' in autotune.ts).
// Rows go in blocks of 4 sharing each weight load (as matmul.wgsl's GEMV), then one at a time.
// The norm's sum of squares is accumulated in the same pass over the row as the dot products,
// and its factor applied to the finished sums: inverseSqrt(mean(x²) + eps) · Σ (x·g)·w. Each
// invocation does this for itself, so there is no workgroup memory and no barrier (barriers are
// what software adapters pay most for). It equals rmsnorm.wgsl then matmul.wgsl up to rounding.
// W_i are HF Linear weights ([out, in], row-major) stored as WT; accumulation is f32.
//#if F16
enable f16;
//#endif
//#if RESIDUAL
struct Params { M: u32, K: u32, N0: u32, N1: u32, N2: u32, eps: f32, KO: u32 }
//#else
struct Params { M: u32, K: u32, N0: u32, N1: u32, N2: u32, eps: f32 }
//#endif
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w0: array<vec4<WT>>;
@group(0) @binding(4) var<storage, read> w1: array<vec4<WT>>;
//#if SWIGLU
@group(0) @binding(5) var<storage, read_write> y0: array<f32>;
//#if RESIDUAL
@group(0) @binding(6) var<storage, read> att: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> wo: array<vec4<WT>>;
@group(0) @binding(8) var<storage, read_write> xOut: array<vec4<f32>>;
//#endif
//#else
@group(0) @binding(5) var<storage, read> w2: array<vec4<WT>>;
@group(0) @binding(6) var<storage, read_write> y0: array<f32>;
@group(0) @binding(7) var<storage, read_write> y1: array<f32>;
@group(0) @binding(8) var<storage, read_write> y2: array<f32>;
//#endif

// Four weight rows at k (vec4 along K) as the columns of a matrix: v * m is their 4 dot products
// with v. One loader per binding (WGSL cannot pass a storage array to a function).
fn w0m(n: vec4<u32>, k: u32) -> mat4x4<f32> {
  let kq = p.K / 4u;
  return mat4x4<f32>(vec4<f32>(w0[n.x * kq + k]), vec4<f32>(w0[n.y * kq + k]), vec4<f32>(w0[n.z * kq + k]), vec4<f32>(w0[n.w * kq + k]));
}
fn w1m(n: vec4<u32>, k: u32) -> mat4x4<f32> {
  let kq = p.K / 4u;
  return mat4x4<f32>(vec4<f32>(w1[n.x * kq + k]), vec4<f32>(w1[n.y * kq + k]), vec4<f32>(w1[n.z * kq + k]), vec4<f32>(w1[n.w * kq + k]));
}

fn invRms(ss: vec4<f32>) -> vec4<f32> { return inverseSqrt(ss / f32(p.K) + p.eps); }

// Columns n0.. of a weight with N rows; the ones past N are clamped (computed, not stored).
fn quadCols(n0: u32, N: u32) -> vec4<u32> {
  return vec4<u32>(n0, min(n0 + 1u, N - 1u), min(n0 + 2u, N - 1u), min(n0 + 3u, N - 1u));
}

//#if SWIGLU
fn act(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> { return a / (1.0 + exp(-a)) * b; }

//#if RESIDUAL
var<workgroup> xs: array<vec4<f32>, XQ>;

// The normed input: the residual stream after the output projection, in workgroup memory.
fn xq(i: u32) -> vec4<f32> { return xs[i]; }

fn wom(n: vec4<u32>, k: u32) -> mat4x4<f32> {
  let kq = p.KO / 4u;
  return mat4x4<f32>(vec4<f32>(wo[n.x * kq + k]), vec4<f32>(wo[n.y * kq + k]), vec4<f32>(wo[n.z * kq + k]), vec4<f32>(wo[n.w * kq + k]));
}

// xs = Xin + A·Woᵀ, one column quad of the residual row per invocation and turn (K % 4 == 0, so
// every quad is whole); the quad's weight load is shared by the rows. Sums as gemv_residual.wgsl.
fn residualPrologue(lid: u32, first: bool) {
  let kq = p.K / 4u;
  let koq = p.KO / 4u;
  for (var q = lid; q < kq; q += WG) {
    let n = vec4<u32>(4u * q, 4u * q + 1u, 4u * q + 2u, 4u * q + 3u);
    // Zeroed explicitly: a bare declaration in a loop body (zero by WGSL's rules) kept the previous
    // turn's sums on lavapipe (hidden sizes over 4·WG take a second turn). MR = M, compiled in.
    var acc: array<vec4<f32>, MR>;
    for (var m = 0u; m < MR; m++) { acc[m] = vec4<f32>(0.0); }
    for (var k = 0u; k < koq; k++) {
      let w = wom(n, k);
      for (var m = 0u; m < MR; m++) { acc[m] += att[m * koq + k] * w; }
    }
    for (var m = 0u; m < MR; m++) {
      let v = x[m * kq + q] + acc[m];
      xs[m * kq + q] = v;
      if (first) { xOut[m * kq + q] = v; }
    }
  }
  workgroupBarrier();
}
//#else
fn xq(i: u32) -> vec4<f32> { return x[i]; }
//#endif

fn store(m: u32, n0: u32, v: vec4<f32>) {
  for (var j = 0u; j < 4u; j++) { if (n0 + j < p.N0) { y0[m * p.N0 + n0 + j] = v[j]; } }
}

@compute @workgroup_size(WG)
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
) {
//#if RESIDUAL
  residualPrologue(lid, wid.x == 0u && wid.y == 0u);
//#endif
  let n0 = (gid.x + gid.y * nw.x * WG) * 4u;
  if (n0 >= p.N0) { return; }
  let n = quadCols(n0, p.N0);
  let kq = p.K / 4u;
  var m0 = 0u;
  for (; m0 + 4u <= p.M; m0 += 4u) {
    var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0); var b1 = vec4<f32>(0.0); var b2 = vec4<f32>(0.0); var b3 = vec4<f32>(0.0);
    var ss = vec4<f32>(0.0);
    for (var k = 0u; k < kq; k++) {
      let x0 = xq(m0 * kq + k); let x1 = xq((m0 + 1u) * kq + k); let x2 = xq((m0 + 2u) * kq + k); let x3 = xq((m0 + 3u) * kq + k);
      ss += vec4<f32>(dot(x0, x0), dot(x1, x1), dot(x2, x2), dot(x3, x3));
      let gk = g[k];
      let wa = w0m(n, k);
      let wb = w1m(n, k);
      a0 += (x0 * gk) * wa; a1 += (x1 * gk) * wa; a2 += (x2 * gk) * wa; a3 += (x3 * gk) * wa;
      b0 += (x0 * gk) * wb; b1 += (x1 * gk) * wb; b2 += (x2 * gk) * wb; b3 += (x3 * gk) * wb;
    }
    let inv = invRms(ss);
    store(m0, n0, act(a0 * inv.x, b0 * inv.x));
    store(m0 + 1u, n0, act(a1 * inv.y, b1 * inv.y));
    store(m0 + 2u, n0, act(a2 * inv.z, b2 * inv.z));
    store(m0 + 3u, n0, act(a3 * inv.w, b3 * inv.w));
  }
  for (; m0 < p.M; m0++) {
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    var ss = 0.0;
    for (var k = 0u; k < kq; k++) {
      let xk = xq(m0 * kq + k);
      ss += dot(xk, xk);
      let xg = xk * g[k];
      a += xg * w0m(n, k);
      b += xg * w1m(n, k);
    }
    let inv = invRms(vec4<f32>(ss)).x;
    store(m0, n0, act(a * inv, b * inv));
  }
}
//#else
fn w2m(n: vec4<u32>, k: u32) -> mat4x4<f32> {
  let kq = p.K / 4u;
  return mat4x4<f32>(vec4<f32>(w2[n.x * kq + k]), vec4<f32>(w2[n.y * kq + k]), vec4<f32>(w2[n.z * kq + k]), vec4<f32>(w2[n.w * kq + k]));
}

// Four rows' products with one weight quad, and the rows' sums of squares.
struct Tile { a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>, ss: vec4<f32> }

// The k loops, once per weight binding: a branch on the binding inside the loop costs software
// adapters every branch's loads (SwiftShader runs both sides of a divergent-looking branch).
fn tile0(m0: u32, n: vec4<u32>) -> Tile {
  let kq = p.K / 4u;
  var t = Tile(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  for (var k = 0u; k < kq; k++) {
    let x0 = x[m0 * kq + k]; let x1 = x[(m0 + 1u) * kq + k]; let x2 = x[(m0 + 2u) * kq + k]; let x3 = x[(m0 + 3u) * kq + k];
    t.ss += vec4<f32>(dot(x0, x0), dot(x1, x1), dot(x2, x2), dot(x3, x3));
    let gk = g[k];
    let w = w0m(n, k);
    t.a0 += (x0 * gk) * w; t.a1 += (x1 * gk) * w; t.a2 += (x2 * gk) * w; t.a3 += (x3 * gk) * w;
  }
  return t;
}
fn tile1(m0: u32, n: vec4<u32>) -> Tile {
  let kq = p.K / 4u;
  var t = Tile(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  for (var k = 0u; k < kq; k++) {
    let x0 = x[m0 * kq + k]; let x1 = x[(m0 + 1u) * kq + k]; let x2 = x[(m0 + 2u) * kq + k]; let x3 = x[(m0 + 3u) * kq + k];
    t.ss += vec4<f32>(dot(x0, x0), dot(x1, x1), dot(x2, x2), dot(x3, x3));
    let gk = g[k];
    let w = w1m(n, k);
    t.a0 += (x0 * gk) * w; t.a1 += (x1 * gk) * w; t.a2 += (x2 * gk) * w; t.a3 += (x3 * gk) * w;
  }
  return t;
}
fn tile2(m0: u32, n: vec4<u32>) -> Tile {
  let kq = p.K / 4u;
  var t = Tile(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  for (var k = 0u; k < kq; k++) {
    let x0 = x[m0 * kq + k]; let x1 = x[(m0 + 1u) * kq + k]; let x2 = x[(m0 + 2u) * kq + k]; let x3 = x[(m0 + 3u) * kq + k];
    t.ss += vec4<f32>(dot(x0, x0), dot(x1, x1), dot(x2, x2), dot(x3, x3));
    let gk = g[k];
    let w = w2m(n, k);
    t.a0 += (x0 * gk) * w; t.a1 += (x1 * gk) * w; t.a2 += (x2 * gk) * w; t.a3 += (x3 * gk) * w;
  }
  return t;
}
// One row: the product (normed) with one weight quad.
fn one0(m: u32, n: vec4<u32>) -> vec4<f32> {
  let kq = p.K / 4u;
  var a = vec4<f32>(0.0);
  var ss = 0.0;
  for (var k = 0u; k < kq; k++) { let xk = x[m * kq + k]; ss += dot(xk, xk); a += (xk * g[k]) * w0m(n, k); }
  return a * invRms(vec4<f32>(ss)).x;
}
fn one1(m: u32, n: vec4<u32>) -> vec4<f32> {
  let kq = p.K / 4u;
  var a = vec4<f32>(0.0);
  var ss = 0.0;
  for (var k = 0u; k < kq; k++) { let xk = x[m * kq + k]; ss += dot(xk, xk); a += (xk * g[k]) * w1m(n, k); }
  return a * invRms(vec4<f32>(ss)).x;
}
fn one2(m: u32, n: vec4<u32>) -> vec4<f32> {
  let kq = p.K / 4u;
  var a = vec4<f32>(0.0);
  var ss = 0.0;
  for (var k = 0u; k < kq; k++) { let xk = x[m * kq + k]; ss += dot(xk, xk); a += (xk * g[k]) * w2m(n, k); }
  return a * invRms(vec4<f32>(ss)).x;
}

fn store0(m: u32, n0: u32, v: vec4<f32>) {
  for (var j = 0u; j < 4u; j++) { if (n0 + j < p.N0) { y0[m * p.N0 + n0 + j] = v[j]; } }
}
fn store1(m: u32, n0: u32, v: vec4<f32>) {
  for (var j = 0u; j < 4u; j++) { if (n0 + j < p.N1) { y1[m * p.N1 + n0 + j] = v[j]; } }
}
fn store2(m: u32, n0: u32, v: vec4<f32>) {
  for (var j = 0u; j < 4u; j++) { if (n0 + j < p.N2) { y2[m * p.N2 + n0 + j] = v[j]; } }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let q = gid.x + gid.y * nw.x * WG;
  let q0 = (p.N0 + 3u) / 4u;
  let q1 = (p.N1 + 3u) / 4u;
  let q2 = (p.N2 + 3u) / 4u;
  let blocks = p.M / 4u;
  if (q < q0) {
    let n0 = q * 4u;
    let n = quadCols(n0, p.N0);
    for (var b = 0u; b < blocks; b++) {
      let t = tile0(4u * b, n);
      let inv = invRms(t.ss);
      store0(4u * b, n0, t.a0 * inv.x); store0(4u * b + 1u, n0, t.a1 * inv.y);
      store0(4u * b + 2u, n0, t.a2 * inv.z); store0(4u * b + 3u, n0, t.a3 * inv.w);
    }
    for (var m = 4u * blocks; m < p.M; m++) { store0(m, n0, one0(m, n)); }
  } else if (q < q0 + q1) {
    let n0 = (q - q0) * 4u;
    let n = quadCols(n0, p.N1);
    for (var b = 0u; b < blocks; b++) {
      let t = tile1(4u * b, n);
      let inv = invRms(t.ss);
      store1(4u * b, n0, t.a0 * inv.x); store1(4u * b + 1u, n0, t.a1 * inv.y);
      store1(4u * b + 2u, n0, t.a2 * inv.z); store1(4u * b + 3u, n0, t.a3 * inv.w);
    }
    for (var m = 4u * blocks; m < p.M; m++) { store1(m, n0, one1(m, n)); }
  } else if (q < q0 + q1 + q2) {
    let n0 = (q - q0 - q1) * 4u;
    let n = quadCols(n0, p.N2);
    for (var b = 0u; b < blocks; b++) {
      let t = tile2(4u * b, n);
      let inv = invRms(t.ss);
      store2(4u * b, n0, t.a0 * inv.x); store2(4u * b + 1u, n0, t.a1 * inv.y);
      store2(4u * b + 2u, n0, t.a2 * inv.z); store2(4u * b + 3u, n0, t.a3 * inv.w);
    }
    for (var m = 4u * blocks; m < p.M; m++) { store2(m, n0, one2(m, n)); }
  }
}
//#endif
