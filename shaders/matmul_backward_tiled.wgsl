// Gradients of Y[M, N] = X[M, K] · W[N, K]^T as workgroup-memory tiled GEMMs: the GPU-class
// candidates beside matmul_backward.wgsl's register tiles (the autotuner's gemm_dx and gemm_dw
// families). Both are one product C[R, K] (+)= sum_t A(r, t) · B(t, c), with B = W or X read
// along K:
//   DX (default): dX[M, K] (+)= dY[:, nOffset .. nOffset + N] · W[N, K] for one row-shard of W
//        (R = M, t over the shard's N rows; ldy = full width of dY; W stored as WT).
//   DW: dW[N, K] (+)= dY[M, N]^T · X[M, K] (R = N, t over the M rows; ldy = N).
// A workgroup of WG_X x WG_Y invocations owns a (4 WG_Y) x (4 WG_X) tile of C. For each step of
// TK values of t it stages A as [TK][BM] and B as [TK][BN] in workgroup memory (loads coalesced
// along each operand's contiguous axis, zeros past the edges), then every invocation accumulates
// 4 rows x 4 consecutive columns from it: B's four columns are one vec4 read. Loads are scalar,
// so no dimension needs to be a multiple of 4. Accumulation is f32; accumulate != 0 adds to out.
//#if F16
enable f16;
//#endif
struct Params { M: u32, N: u32, K: u32, nOffset: u32, ldy: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
//#if DW
@group(0) @binding(2) var<storage, read> x: array<f32>;
//#else
@group(0) @binding(2) var<storage, read> w: array<WT>;
//#endif
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const BM = 4u * WG_Y;
const BN = 4u * WG_X;
const THREADS = WG_X * WG_Y;
var<workgroup> as_: array<f32, TK * BM>;
var<workgroup> bs: array<vec4<f32>, TK * BN / 4u>;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
//#if DW
  let R = p.N;
  let T = p.M;
//#else
  let R = p.M;
  let T = p.N;
//#endif
  let r0 = wid.y * BM;
  let c0 = wid.x * BN;
  // acc[i] = C[r0 + lid.y + i WG_Y, c0 + 4 lid.x .. + 3].
  var acc: array<vec4<f32>, 4>;
  for (var t0 = 0u; t0 < T; t0 += TK) {
    for (var i = li; i < TK * BM; i += THREADS) {
//#if DW
      // A(r, t) = dY[t, r]: contiguous along r.
      let r = i % BM;
      let t = i / BM;
      var v = 0.0;
      if (r0 + r < R && t0 + t < T) { v = dy[(t0 + t) * p.ldy + r0 + r]; }
//#else
      // A(r, t) = dY[r, nOffset + t]: contiguous along t.
      let t = i % TK;
      let r = i / TK;
      var v = 0.0;
      if (r0 + r < R && t0 + t < T) { v = dy[(r0 + r) * p.ldy + p.nOffset + t0 + t]; }
//#endif
      as_[t * BM + r] = v;
    }
    for (var i = li; i < TK * BN; i += THREADS) {
      let c = i % BN;
      let t = i / BN;
      var v = 0.0;
      if (c0 + c < p.K && t0 + t < T) {
//#if DW
        v = x[(t0 + t) * p.K + c0 + c];
//#else
        v = f32(w[(t0 + t) * p.K + c0 + c]);
//#endif
      }
      bs[(t * BN + c) / 4u][c % 4u] = v;
    }
    workgroupBarrier();
    for (var t = 0u; t < TK; t++) {
      let b = bs[t * (BN / 4u) + lid.x];
      for (var i = 0u; i < 4u; i++) { acc[i] += as_[t * BM + lid.y + i * WG_Y] * b; }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = r0 + lid.y + i * WG_Y;
    if (r >= R) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = c0 + 4u * lid.x + j;
      if (c < p.K) {
        let o = r * p.K + c;
        if (p.accumulate != 0u) { out[o] += acc[i][j]; } else { out[o] = acc[i][j]; }
      }
    }
  }
}
