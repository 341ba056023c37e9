// Y[m, nOffset + n] = sum_k X[m, k] * W[n, k] (+ bias[n]) — tiled GEMM for prefill.
// W is one row-shard of an HF Linear weight ([out, in], row-major), stored as WT (f16 or f32);
// accumulation is always f32. Each invocation owns a 4x4 register tile: on CPU adapters register
// tiling beats shared-memory tiling by 5-10x. Loads are vec4 along K when K % 4 == 0 (VEC4 variant).
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

//#if VEC4
fn xv(row: u32, k: u32) -> vec4<f32> { return x[(row * p.K + k) / 4u]; }
fn wv(row: u32, k: u32) -> vec4<f32> { return vec4<f32>(w[(row * p.K + k) / 4u]); }
//#else
fn xv(row: u32, k: u32) -> vec4<f32> {
  let b = row * p.K + k;
  return vec4<f32>(x[b], x[b + 1u], x[b + 2u], x[b + 3u]);
}
fn wv(row: u32, k: u32) -> vec4<f32> {
  let b = row * p.K + k;
  return vec4<f32>(f32(w[b]), f32(w[b + 1u]), f32(w[b + 2u]), f32(w[b + 3u]));
}
//#endif

fn tile(m0: u32, n0: u32) {
  // Clamp indices so every load is in bounds; out-of-range rows/cols are computed but not stored.
  let m = vec4<u32>(m0, min(m0 + 1u, p.M - 1u), min(m0 + 2u, p.M - 1u), min(m0 + 3u, p.M - 1u));
  let n = vec4<u32>(n0, min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u));
  var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
  let k4 = p.K & ~3u;
  for (var k = 0u; k < k4; k += 4u) {
    let x0 = xv(m.x, k); let x1 = xv(m.y, k); let x2 = xv(m.z, k); let x3 = xv(m.w, k);
    let w0 = wv(n.x, k); let w1 = wv(n.y, k); let w2 = wv(n.z, k); let w3 = wv(n.w, k);
    a0 += vec4<f32>(dot(x0, w0), dot(x0, w1), dot(x0, w2), dot(x0, w3));
    a1 += vec4<f32>(dot(x1, w0), dot(x1, w1), dot(x1, w2), dot(x1, w3));
    a2 += vec4<f32>(dot(x2, w0), dot(x2, w1), dot(x2, w2), dot(x2, w3));
    a3 += vec4<f32>(dot(x3, w0), dot(x3, w1), dot(x3, w2), dot(x3, w3));
  }
//#if !VEC4
  for (var k = k4; k < p.K; k++) {
    let xs = vec4<f32>(x[m.x * p.K + k], x[m.y * p.K + k], x[m.z * p.K + k], x[m.w * p.K + k]);
    let ws = vec4<f32>(f32(w[n.x * p.K + k]), f32(w[n.y * p.K + k]), f32(w[n.z * p.K + k]), f32(w[n.w * p.K + k]));
    a0 += xs.x * ws; a1 += xs.y * ws; a2 += xs.z * ws; a3 += xs.w * ws;
  }
//#endif
  var b = vec4<f32>(0.0);
  if (p.hasBias != 0u) { b = vec4<f32>(bias[n.x], bias[n.y], bias[n.z], bias[n.w]); }
  let rows = array<vec4<f32>, 4>(a0 + b, a1 + b, a2 + b, a3 + b);
  for (var i = 0u; i < 4u; i++) {
    let mi = m0 + i;
    if (mi >= p.M) { break; }
    let base = mi * p.ldy + p.nOffset;
    for (var j = 0u; j < 4u; j++) {
      if (n0 + j < p.N) { y[base + n0 + j] = rows[i][j]; }
    }
  }
}

//#if GEMV
// One row by four columns: the remainder rows of a decode batch (no wasted clamped rows).
fn row1(m: u32, n0: u32) {
  let n = vec4<u32>(n0, min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u));
  var a = vec4<f32>(0.0);
  let k4 = p.K & ~3u;
  for (var k = 0u; k < k4; k += 4u) {
    let xk = xv(m, k);
    a += vec4<f32>(dot(xk, wv(n.x, k)), dot(xk, wv(n.y, k)), dot(xk, wv(n.z, k)), dot(xk, wv(n.w, k)));
  }
//#if !VEC4
  for (var k = k4; k < p.K; k++) {
    let ws = vec4<f32>(f32(w[n.x * p.K + k]), f32(w[n.y * p.K + k]), f32(w[n.z * p.K + k]), f32(w[n.w * p.K + k]));
    a += x[m * p.K + k] * ws;
  }
//#endif
  if (p.hasBias != 0u) { a += vec4<f32>(bias[n.x], bias[n.y], bias[n.z], bias[n.w]); }
  let base = m * p.ldy + p.nOffset;
  for (var j = 0u; j < 4u; j++) {
    if (n0 + j < p.N) { y[base + n0 + j] = a[j]; }
  }
}

// Decode path: few rows (the batch), many columns. A 1-D grid over column quads; each invocation
// walks the rows in blocks of 4 (then single rows), so a weight row is streamed once per 4 sequences.
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let n0 = (g.x + g.y * nw.x * WG) * 4u;
  if (n0 >= p.N) { return; }
  var m0 = 0u;
  for (; m0 + 4u <= p.M; m0 += 4u) { tile(m0, n0); }
  for (; m0 < p.M; m0++) { row1(m0, n0); }
}
//#else
@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let n0 = g.x * 4u;
  let m0 = g.y * 4u;
  if (n0 >= p.N || m0 >= p.M) { return; }
  tile(m0, n0);
}
//#endif
