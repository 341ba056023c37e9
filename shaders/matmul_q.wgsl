// Y[m, nOffset + n] = sum_k X[m, k] * W[n, k] (+ bias[n]) with W a row-shard of a q8/q4 weight
// (src/quant/quantize.ts has the format): values are unpacked and scaled in registers, never
// written out as f32. Per group of 32 the products of the raw integers are summed first and
// multiplied by the group's f16 scale once. Q4 selects the 4-bit format (else 8-bit); VEC4 when
// K % 4 == 0 (X rows read as vec4); GEMV is the decode variant (a 1-D grid over column quads).
// Scales are f16 bit pairs in u32 words, read with unpack2x16float (no shader-f16 needed).
struct Params { M: u32, N: u32, K: u32, nOffset: u32, ldy: u32, hasBias: u32, groups: u32 }
@group(0) @binding(0) var<uniform> p: Params;
//#if VEC4
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
//#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
//#endif
@group(0) @binding(2) var<storage, read> wq: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<u32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

//#if Q4
const WPG = 4u; // u32 words per group of 32 values
//#else
const WPG = 8u;
//#endif

fn xv(row: u32, k: u32) -> vec4<f32> {
//#if VEC4
  return x[(row * p.K + k) / 4u];
//#else
  let b = row * p.K + k;
  return vec4<f32>(x[b], x[b + 1u], x[b + 2u], x[b + 3u]);
//#endif
}

fn xs(row: u32, k: u32) -> f32 {
//#if VEC4
  return x[(row * p.K + k) / 4u][k % 4u];
//#else
  return x[row * p.K + k];
//#endif
}

fn scale(n: u32, g: u32) -> f32 {
  let i = n * p.groups + g;
  return unpack2x16float(scales[i >> 1u])[i & 1u];
}

// Values 8c .. 8c + 7 of group g of row n (unscaled integers as f32), as two vec4.
fn chunk(n: u32, g: u32, c: u32) -> array<vec4<f32>, 2> {
  let base = (n * p.groups + g) * WPG;
//#if Q4
  let w = bitcast<i32>(wq[base + c]);
  return array<vec4<f32>, 2>(
    vec4<f32>((vec4<i32>(w) << vec4<u32>(28u, 24u, 20u, 16u)) >> vec4<u32>(28u)),
    vec4<f32>((vec4<i32>(w) << vec4<u32>(12u, 8u, 4u, 0u)) >> vec4<u32>(28u)));
//#else
  let w0 = bitcast<i32>(wq[base + 2u * c]);
  let w1 = bitcast<i32>(wq[base + 2u * c + 1u]);
  return array<vec4<f32>, 2>(
    vec4<f32>((vec4<i32>(w0) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u)),
    vec4<f32>((vec4<i32>(w1) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u)));
//#endif
}

// One value (unscaled) at column k of row n.
fn qat(n: u32, k: u32) -> f32 {
  let j = k % 32u;
  let base = (n * p.groups + k / 32u) * WPG;
//#if Q4
  return f32(extractBits(bitcast<i32>(wq[base + j / 8u]), 4u * (j % 8u), 4u));
//#else
  return f32(extractBits(bitcast<i32>(wq[base + j / 4u]), 8u * (j % 4u), 8u));
//#endif
}

fn store(m0: u32, n0: u32, rows: u32, a: array<vec4<f32>, 4>) {
  var b = vec4<f32>(0.0);
  let n = vec4<u32>(n0, min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u));
  if (p.hasBias != 0u) { b = vec4<f32>(bias[n.x], bias[n.y], bias[n.z], bias[n.w]); }
  for (var i = 0u; i < rows; i++) {
    let mi = m0 + i;
    if (mi >= p.M) { break; }
    let base = mi * p.ldy + p.nOffset;
    for (var j = 0u; j < 4u; j++) {
      if (n0 + j < p.N) { y[base + n0 + j] = a[i][j] + b[j]; }
    }
  }
}

// A 4x4 output tile: rows m0.. (clamped), columns n0.. (clamped; extra ones are not stored).
fn tile(m0: u32, n0: u32) {
  let m = vec4<u32>(m0, min(m0 + 1u, p.M - 1u), min(m0 + 2u, p.M - 1u), min(m0 + 3u, p.M - 1u));
  let n = vec4<u32>(n0, min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u));
  var a = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  let full = p.K / 32u;
  for (var g = 0u; g < full; g++) {
    var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0); var s2 = vec4<f32>(0.0); var s3 = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
      let k = g * 32u + c * 8u;
      let w0 = chunk(n.x, g, c); let w1 = chunk(n.y, g, c); let w2 = chunk(n.z, g, c); let w3 = chunk(n.w, g, c);
      let xa0 = xv(m.x, k); let xb0 = xv(m.x, k + 4u);
      let xa1 = xv(m.y, k); let xb1 = xv(m.y, k + 4u);
      let xa2 = xv(m.z, k); let xb2 = xv(m.z, k + 4u);
      let xa3 = xv(m.w, k); let xb3 = xv(m.w, k + 4u);
      s0 += vec4<f32>(dot(xa0, w0[0]) + dot(xb0, w0[1]), dot(xa0, w1[0]) + dot(xb0, w1[1]),
                      dot(xa0, w2[0]) + dot(xb0, w2[1]), dot(xa0, w3[0]) + dot(xb0, w3[1]));
      s1 += vec4<f32>(dot(xa1, w0[0]) + dot(xb1, w0[1]), dot(xa1, w1[0]) + dot(xb1, w1[1]),
                      dot(xa1, w2[0]) + dot(xb1, w2[1]), dot(xa1, w3[0]) + dot(xb1, w3[1]));
      s2 += vec4<f32>(dot(xa2, w0[0]) + dot(xb2, w0[1]), dot(xa2, w1[0]) + dot(xb2, w1[1]),
                      dot(xa2, w2[0]) + dot(xb2, w2[1]), dot(xa2, w3[0]) + dot(xb2, w3[1]));
      s3 += vec4<f32>(dot(xa3, w0[0]) + dot(xb3, w0[1]), dot(xa3, w1[0]) + dot(xb3, w1[1]),
                      dot(xa3, w2[0]) + dot(xb3, w2[1]), dot(xa3, w3[0]) + dot(xb3, w3[1]));
    }
    let sc = vec4<f32>(scale(n.x, g), scale(n.y, g), scale(n.z, g), scale(n.w, g));
    a[0] += s0 * sc; a[1] += s1 * sc; a[2] += s2 * sc; a[3] += s3 * sc;
  }
  if (full * 32u < p.K) {
    // The last, shorter group of each row (K % 32 != 0).
    var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0); var s2 = vec4<f32>(0.0); var s3 = vec4<f32>(0.0);
    for (var k = full * 32u; k < p.K; k++) {
      let w = vec4<f32>(qat(n.x, k), qat(n.y, k), qat(n.z, k), qat(n.w, k));
      s0 += xs(m.x, k) * w; s1 += xs(m.y, k) * w; s2 += xs(m.z, k) * w; s3 += xs(m.w, k) * w;
    }
    let sc = vec4<f32>(scale(n.x, full), scale(n.y, full), scale(n.z, full), scale(n.w, full));
    a[0] += s0 * sc; a[1] += s1 * sc; a[2] += s2 * sc; a[3] += s3 * sc;
  }
  store(m0, n0, 4u, a);
}

//#if GEMV
// One row by four columns: the decode step (and the remainder rows of a small batch).
fn row1(m: u32, n0: u32) {
  let n = vec4<u32>(n0, min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u));
  var a = vec4<f32>(0.0);
  let full = p.K / 32u;
  for (var g = 0u; g < full; g++) {
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
      let k = g * 32u + c * 8u;
      let xa = xv(m, k); let xb = xv(m, k + 4u);
      let w0 = chunk(n.x, g, c); let w1 = chunk(n.y, g, c); let w2 = chunk(n.z, g, c); let w3 = chunk(n.w, g, c);
      s += vec4<f32>(dot(xa, w0[0]) + dot(xb, w0[1]), dot(xa, w1[0]) + dot(xb, w1[1]), dot(xa, w2[0]) + dot(xb, w2[1]), dot(xa, w3[0]) + dot(xb, w3[1]));
    }
    a += s * vec4<f32>(scale(n.x, g), scale(n.y, g), scale(n.z, g), scale(n.w, g));
  }
  if (full * 32u < p.K) {
    var s = vec4<f32>(0.0);
    for (var k = full * 32u; k < p.K; k++) {
      s += xs(m, k) * vec4<f32>(qat(n.x, k), qat(n.y, k), qat(n.z, k), qat(n.w, k));
    }
    a += s * vec4<f32>(scale(n.x, full), scale(n.y, full), scale(n.z, full), scale(n.w, full));
  }
  store(m, n0, 1u, array<vec4<f32>, 4>(a, a, a, a));
}

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
