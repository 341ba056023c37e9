// Y[m, nOffset + n] = sum_k X[m, k] * W[n, k] (+ bias[n]) — the GPU-class GEMM for prefill and
// training (M > 8 rows). W is one row-shard of an HF Linear weight ([out, in], row-major), stored
// as WT (f16 or f32); accumulation is f32.
// A workgroup of WG_X x WG_Y invocations owns a (4 WG_Y) x (4 WG_X) output tile. For each K-step
// of TK columns it stages the tile's rows of X and W in workgroup memory as vec4 along K (W is
// converted to f32 there), then every invocation accumulates a 4x4 register micro-tile from it, so
// each global element is read once per workgroup instead of once per invocation. Rows of the
// staged tiles are padded by one vec4 (PAD_ROW) so that invocations reading different rows at the
// same K hit different banks on GPUs with 32 4-byte banks.
// Edges: out-of-range rows, columns and K positions load as zeros and are not stored, so M, N and
// K need not be multiples of anything. VEC4 (K % 4 == 0) loads X and W as vec4 from global memory;
// otherwise each staged vec4 is gathered from guarded scalar loads.
// Compiled-in sizes: WG_X, WG_Y (workgroup), TK (K-step, a multiple of 4).
// The register-tiled kernel in matmul.wgsl (fastest on CPU adapters) is the other candidate of the
// autotuner's `gemm` family (src/kernels/autotune.ts).
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

const BM = 4u * WG_Y;
const BN = 4u * WG_X;
const TK4 = TK / 4u;
const PAD_ROW = TK4 + 1u;
const THREADS = WG_X * WG_Y;
var<workgroup> xs: array<vec4<f32>, BM * PAD_ROW>;
var<workgroup> ws: array<vec4<f32>, BN * PAD_ROW>;

// X[row, k .. k + 3], zeros past M or K.
fn loadX(row: u32, k: u32) -> vec4<f32> {
  if (row >= p.M || k >= p.K) { return vec4<f32>(0.0); }
//#if VEC4
  return x[(row * p.K + k) / 4u];
//#else
  let b = row * p.K + k;
  var v = vec4<f32>(x[b], 0.0, 0.0, 0.0);
  if (k + 1u < p.K) { v.y = x[b + 1u]; }
  if (k + 2u < p.K) { v.z = x[b + 2u]; }
  if (k + 3u < p.K) { v.w = x[b + 3u]; }
  return v;
//#endif
}

// W[n, k .. k + 3] as f32, zeros past N or K.
fn loadW(n: u32, k: u32) -> vec4<f32> {
  if (n >= p.N || k >= p.K) { return vec4<f32>(0.0); }
//#if VEC4
  return vec4<f32>(w[(n * p.K + k) / 4u]);
//#else
  let b = n * p.K + k;
  var v = vec4<f32>(f32(w[b]), 0.0, 0.0, 0.0);
  if (k + 1u < p.K) { v.y = f32(w[b + 1u]); }
  if (k + 2u < p.K) { v.z = f32(w[b + 2u]); }
  if (k + 3u < p.K) { v.w = f32(w[b + 3u]); }
  return v;
//#endif
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  // acc[i][j] = Y[m0 + lid.y + i WG_Y, n0 + lid.x + j WG_X]: rows and columns strided by the
  // workgroup size, so that neighbouring invocations store neighbouring columns of Y.
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // Stage the tile: THREADS invocations fill BM (then BN) rows of TK4 vec4 each.
    for (var i = li; i < BM * TK4; i += THREADS) {
      let r = i / TK4;
      let c = i % TK4;
      xs[r * PAD_ROW + c] = loadX(m0 + r, k0 + c * 4u);
    }
    for (var i = li; i < BN * TK4; i += THREADS) {
      let r = i / TK4;
      let c = i % TK4;
      ws[r * PAD_ROW + c] = loadW(n0 + r, k0 + c * 4u);
    }
    workgroupBarrier();
    for (var c = 0u; c < TK4; c++) {
      let w0 = ws[(lid.x) * PAD_ROW + c];
      let w1 = ws[(lid.x + WG_X) * PAD_ROW + c];
      let w2 = ws[(lid.x + 2u * WG_X) * PAD_ROW + c];
      let w3 = ws[(lid.x + 3u * WG_X) * PAD_ROW + c];
      for (var i = 0u; i < 4u; i++) {
        let xv = xs[(lid.y + i * WG_Y) * PAD_ROW + c];
        acc[i] += vec4<f32>(dot(xv, w0), dot(xv, w1), dot(xv, w2), dot(xv, w3));
      }
    }
    workgroupBarrier();
  }
  for (var j = 0u; j < 4u; j++) {
    let n = n0 + lid.x + j * WG_X;
    if (n >= p.N) { continue; }
    var b = 0.0;
    if (p.hasBias != 0u) { b = bias[n]; }
    for (var i = 0u; i < 4u; i++) {
      let m = m0 + lid.y + i * WG_Y;
      if (m < p.M) { y[m * p.ldy + p.nOffset + n] = acc[i][j] + b; }
    }
  }
}
