// Gradients of Y[M, N] = X[M, K] · W[N, K]^T, as register-tiled GEMMs like matmul.wgsl: each
// invocation owns a 4x4 output tile (on CPU adapters register tiling beats shared-memory tiling by
// 5-10x) and the loads are vec4 where the row length allows it. Accumulation is f32.
//   DX (default): dX[M, K] (+)= dY[:, nOffset .. nOffset + N] · W[N, K] for one row-shard of W
//        (N = shard rows, ldy = full width of dY); W is stored as WT (frozen f16/f32 weight or an
//        f32 trainable tensor). VEC4: K % 4 == 0 (W rows read as vec4); YVEC4: ldy and nOffset
//        % 4 == 0 (dY rows read as vec4 along N).
//   DW: dW[N, K] (+)= dY[M, N]^T · X[M, K] (dW and X f32). VEC4: K % 4 == 0; YVEC4: N % 4 == 0.
// Params: accumulate != 0 adds to the output instead of overwriting it.
//#if F16
enable f16;
//#endif
struct Params { M: u32, N: u32, K: u32, nOffset: u32, ldy: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
//#if YVEC4
@group(0) @binding(1) var<storage, read> dy: array<vec4<f32>>;
fn dys(i: u32) -> f32 { return dy[i / 4u][i % 4u]; }
//#else
@group(0) @binding(1) var<storage, read> dy: array<f32>;
fn dys(i: u32) -> f32 { return dy[i]; }
//#endif
//#if DW
//#if VEC4
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
//#else
@group(0) @binding(2) var<storage, read> x: array<f32>;
//#endif
//#else
//#if VEC4
@group(0) @binding(2) var<storage, read> w: array<vec4<WT>>;
//#else
@group(0) @binding(2) var<storage, read> w: array<WT>;
//#endif
//#endif
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// Four consecutive dY values of row `row` starting at column `col` (col % 4 == 0 with YVEC4).
fn dy4(row: u32, col: u32) -> vec4<f32> {
  let b = row * p.ldy + col;
//#if YVEC4
  return dy[b / 4u];
//#else
  return vec4<f32>(dy[b], dy[b + 1u], dy[b + 2u], dy[b + 3u]);
//#endif
}

fn store(row: u32, col0: u32, rows: u32, cols: u32, a: vec4<f32>) {
  if (row >= rows) { return; }
  let base = row * p.K + col0;
  for (var j = 0u; j < 4u; j++) {
    if (col0 + j < cols) {
      if (p.accumulate != 0u) { out[base + j] += a[j]; } else { out[base + j] = a[j]; }
    }
  }
}

//#if DW
// Row `row` of X at columns k (clamped index vector kc when K is not a multiple of 4).
fn xrow(row: u32, k0: u32, kc: vec4<u32>) -> vec4<f32> {
//#if VEC4
  return x[(row * p.K + k0) / 4u];
//#else
  let b = row * p.K;
  return vec4<f32>(x[b + kc.x], x[b + kc.y], x[b + kc.z], x[b + kc.w]);
//#endif
}

// dY[row, n] for the four (clamped) columns of the tile.
fn dyrow(row: u32, n0: u32, nc: vec4<u32>) -> vec4<f32> {
//#if YVEC4
  return dy[(row * p.ldy + n0) / 4u];
//#else
  let b = row * p.ldy;
  return vec4<f32>(dy[b + nc.x], dy[b + nc.y], dy[b + nc.z], dy[b + nc.w]);
//#endif
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let k0 = g.x * 4u;
  let n0 = g.y * 4u;
  if (k0 >= p.K || n0 >= p.N) { return; }
  let kc = vec4<u32>(k0, min(k0 + 1u, p.K - 1u), min(k0 + 2u, p.K - 1u), min(k0 + 3u, p.K - 1u));
  let nc = vec4<u32>(n0, min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u));
  // a_i = dW[n0 + i, k0 .. k0 + 3] = sum_m dY[m, n0 + i] * X[m, k0 .. k0 + 3]
  var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
  let m4 = p.M & ~3u;
  for (var m = 0u; m < m4; m += 4u) {
    let x0 = xrow(m, k0, kc); let x1 = xrow(m + 1u, k0, kc); let x2 = xrow(m + 2u, k0, kc); let x3 = xrow(m + 3u, k0, kc);
    let xm = mat4x4<f32>(x0, x1, x2, x3);
    let d = transpose(mat4x4<f32>(dyrow(m, n0, nc), dyrow(m + 1u, n0, nc), dyrow(m + 2u, n0, nc), dyrow(m + 3u, n0, nc)));
    a0 += xm * d[0]; a1 += xm * d[1]; a2 += xm * d[2]; a3 += xm * d[3];
  }
  for (var m = m4; m < p.M; m++) {
    let xr = xrow(m, k0, kc);
    let d = dyrow(m, n0, nc);
    a0 += d.x * xr; a1 += d.y * xr; a2 += d.z * xr; a3 += d.w * xr;
  }
  store(n0, k0, p.N, p.K, a0);
  store(n0 + 1u, k0, p.N, p.K, a1);
  store(n0 + 2u, k0, p.N, p.K, a2);
  store(n0 + 3u, k0, p.N, p.K, a3);
}
//#else
// Row n of this W shard at columns k0 .. k0 + 3 (clamped index vector kc when K % 4 != 0).
fn wrow(n: u32, k0: u32, kc: vec4<u32>) -> vec4<f32> {
//#if VEC4
  return vec4<f32>(w[(n * p.K + k0) / 4u]);
//#else
  let b = n * p.K;
  return vec4<f32>(f32(w[b + kc.x]), f32(w[b + kc.y]), f32(w[b + kc.z]), f32(w[b + kc.w]));
//#endif
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let k0 = g.x * 4u;
  let m0 = g.y * 4u;
  if (k0 >= p.K || m0 >= p.M) { return; }
  let kc = vec4<u32>(k0, min(k0 + 1u, p.K - 1u), min(k0 + 2u, p.K - 1u), min(k0 + 3u, p.K - 1u));
  let m = vec4<u32>(m0, min(m0 + 1u, p.M - 1u), min(m0 + 2u, p.M - 1u), min(m0 + 3u, p.M - 1u));
  // a_i = dX[m0 + i, k0 .. k0 + 3] = sum_n dY[m0 + i, nOffset + n] * W[n, k0 .. k0 + 3]
  var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
  let n4 = p.N & ~3u;
  for (var n = 0u; n < n4; n += 4u) {
    let wm = mat4x4<f32>(wrow(n, k0, kc), wrow(n + 1u, k0, kc), wrow(n + 2u, k0, kc), wrow(n + 3u, k0, kc));
    let c = p.nOffset + n;
    a0 += wm * dy4(m.x, c); a1 += wm * dy4(m.y, c); a2 += wm * dy4(m.z, c); a3 += wm * dy4(m.w, c);
  }
  for (var n = n4; n < p.N; n++) {
    let wr = wrow(n, k0, kc);
    let c = p.nOffset + n;
    a0 += dys(m.x * p.ldy + c) * wr; a1 += dys(m.y * p.ldy + c) * wr;
    a2 += dys(m.z * p.ldy + c) * wr; a3 += dys(m.w * p.ldy + c) * wr;
  }
  store(m0, k0, p.M, p.K, a0);
  store(m0 + 1u, k0, p.M, p.K, a1);
  store(m0 + 2u, k0, p.M, p.K, a2);
  store(m0 + 3u, k0, p.M, p.K, a3);
}
//#endif
