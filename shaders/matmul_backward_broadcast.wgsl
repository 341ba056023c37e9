// Gradients of Y[M, N] = X[M, K] · W[N, K]^T on adapters with the `subgroups` feature, the way
// matmul_broadcast.wgsl computes the forward: a workgroup owns TM (16) output rows x 4 WG columns,
// each invocation 4 columns of all TM rows in registers, and the operand that is the same for every
// invocation of the workgroup is read once per subgroup (lane l reads row l % 4 of a 4-row group)
// and handed out by subgroupBroadcast. On CPU adapters, where every storage load is a per-lane
// gather, that removes most of the loads (see matmul_broadcast.wgsl). Accumulation is f32.
//   DX (default): dX[M, K] (+)= dY[:, nOffset .. nOffset + N] · W[N, K] for one row-shard of W
//        (N = shard rows, ldy = full width of dY): rows of dX per workgroup, dY rows shared.
//        W is stored as WT. VEC4: K % 4 == 0; YVEC4: ldy and nOffset % 4 == 0.
//   DW: dW[N, K] (+)= dY[M, N]^T · X[M, K] (dW and X f32): rows of dW per workgroup, the dY values
//        of those rows shared. VEC4: K % 4 == 0; YVEC4: N % 4 == 0.
// Params: accumulate != 0 adds to the output instead of overwriting it. subgroupBroadcast needs
// uniform control flow: no invocation returns early; out-of-range indices are clamped and their
// results not stored. The 16 accumulators are named variables (SwiftShader keeps an indexed array
// in memory). TM (rows a workgroup, 16: the accumulators below) is compiled in.
//#if F16
enable f16;
//#endif
enable subgroups;
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

// Four consecutive dY values of row `row` from column `col` (col % 4 == 0 with YVEC4).
fn dy4(row: u32, col: u32) -> vec4<f32> {
  let b = row * p.ldy + col;
//#if YVEC4
  return dy[b / 4u];
//#else
  return vec4<f32>(dy[b], dy[b + 1u], dy[b + 2u], dy[b + 3u]);
//#endif
}

// Row `row` of the output at columns k0 .. k0 + 3, when inside [rows, K).
fn store(row: u32, k0: u32, rows: u32, a: vec4<f32>) {
  if (row >= rows) { return; }
  let base = row * p.K + k0;
  for (var j = 0u; j < 4u; j++) {
    if (k0 + j < p.K) {
      if (p.accumulate != 0u) { out[base + j] += a[j]; } else { out[base + j] = a[j]; }
    }
  }
}

//#if DW
// X[row, k0 .. k0 + 3] (clamped columns kc when K % 4 != 0).
fn xrow(row: u32, k0: u32, kc: vec4<u32>) -> vec4<f32> {
//#if VEC4
  return x[(row * p.K + k0) / 4u];
//#else
  let b = row * p.K;
  return vec4<f32>(x[b + kc.x], x[b + kc.y], x[b + kc.z], x[b + kc.w]);
//#endif
}

// dY[row, n .. n + 3] (clamped columns when N % 4 != 0).
fn dyrow(row: u32, n: u32) -> vec4<f32> {
//#if YVEC4
  return dy[(row * p.ldy + min(n, p.N - 4u)) / 4u];
//#else
  let b = row * p.ldy;
  let l = p.N - 1u;
  return vec4<f32>(dy[b + min(n, l)], dy[b + min(n + 1u, l)], dy[b + min(n + 2u, l)], dy[b + min(n + 3u, l)]);
//#endif
}

// One 4-row group of dW for 4 tokens: lane l read dY[m + l % 4, the group's 4 rows of dW] (`mine`);
// d[i] = dY[m .. m + 3, row i of the group]; a_i += X[m .. m + 3, k0 ..]ᵀ · d[i].
fn rowGroup(
  mine: vec4<f32>, xm: mat4x4<f32>,
  a0: ptr<function, vec4<f32>>, a1: ptr<function, vec4<f32>>,
  a2: ptr<function, vec4<f32>>, a3: ptr<function, vec4<f32>>,
) {
  let d = transpose(mat4x4<f32>(
    subgroupBroadcast(mine, 0u), subgroupBroadcast(mine, 1u), subgroupBroadcast(mine, 2u), subgroupBroadcast(mine, 3u),
  ));
  *a0 += xm * d[0]; *a1 += xm * d[1]; *a2 += xm * d[2]; *a3 += xm * d[3];
}

// The tail token m (uniform): its dY values of the group's rows, read by every lane alike.
fn tailGroup(d: vec4<f32>, xr: vec4<f32>, a0: ptr<function, vec4<f32>>, a1: ptr<function, vec4<f32>>,
  a2: ptr<function, vec4<f32>>, a3: ptr<function, vec4<f32>>) {
  *a0 += d.x * xr; *a1 += d.y * xr; *a2 += d.z * xr; *a3 += d.w * xr;
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(subgroup_invocation_id) lane: u32,
) {
  let k0 = (wg.x * WG + lid.x) * 4u;
  let n0 = wg.y * TM;
  let kq = min(k0, p.K - min(p.K, 4u)); // in bounds for vec4 loads; its results are not stored
  let kc = min(vec4<u32>(k0, k0 + 1u, k0 + 2u, k0 + 3u), vec4<u32>(p.K - 1u));
  var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
  var a4 = vec4<f32>(0.0); var a5 = vec4<f32>(0.0); var a6 = vec4<f32>(0.0); var a7 = vec4<f32>(0.0);
  var a8 = vec4<f32>(0.0); var a9 = vec4<f32>(0.0); var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0);
  var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0); var a14 = vec4<f32>(0.0); var a15 = vec4<f32>(0.0);
  let m4 = p.M & ~3u;
  for (var m = 0u; m < m4; m += 4u) {
    let xm = mat4x4<f32>(xrow(m, kq, kc), xrow(m + 1u, kq, kc), xrow(m + 2u, kq, kc), xrow(m + 3u, kq, kc));
    let t = m + lane % 4u;
    rowGroup(dyrow(t, n0), xm, &a0, &a1, &a2, &a3);
    rowGroup(dyrow(t, n0 + 4u), xm, &a4, &a5, &a6, &a7);
    rowGroup(dyrow(t, n0 + 8u), xm, &a8, &a9, &a10, &a11);
    rowGroup(dyrow(t, n0 + 12u), xm, &a12, &a13, &a14, &a15);
  }
  for (var m = m4; m < p.M; m++) {
    let xr = xrow(m, kq, kc);
    tailGroup(dyrow(m, n0), xr, &a0, &a1, &a2, &a3);
    tailGroup(dyrow(m, n0 + 4u), xr, &a4, &a5, &a6, &a7);
    tailGroup(dyrow(m, n0 + 8u), xr, &a8, &a9, &a10, &a11);
    tailGroup(dyrow(m, n0 + 12u), xr, &a12, &a13, &a14, &a15);
  }
  store(n0, k0, p.N, a0); store(n0 + 1u, k0, p.N, a1); store(n0 + 2u, k0, p.N, a2); store(n0 + 3u, k0, p.N, a3);
  store(n0 + 4u, k0, p.N, a4); store(n0 + 5u, k0, p.N, a5); store(n0 + 6u, k0, p.N, a6); store(n0 + 7u, k0, p.N, a7);
  store(n0 + 8u, k0, p.N, a8); store(n0 + 9u, k0, p.N, a9); store(n0 + 10u, k0, p.N, a10);
  store(n0 + 11u, k0, p.N, a11); store(n0 + 12u, k0, p.N, a12); store(n0 + 13u, k0, p.N, a13);
  store(n0 + 14u, k0, p.N, a14); store(n0 + 15u, k0, p.N, a15);
}
//#else
// Row n of this W shard at columns k0 .. k0 + 3 (clamped columns kc when K % 4 != 0).
fn wrow(n: u32, k0: u32, kc: vec4<u32>) -> vec4<f32> {
//#if VEC4
  return vec4<f32>(w[(n * p.K + k0) / 4u]);
//#else
  let b = n * p.K;
  return vec4<f32>(f32(w[b + kc.x]), f32(w[b + kc.y]), f32(w[b + kc.z]), f32(w[b + kc.w]));
//#endif
}

// One 4-row group of dX for 4 W rows: lane l read dY[row l % 4 of the group, those 4 columns]
// (`mine`); a_i += W[n .. n + 3, k0 ..]ᵀ · dY[row i, n .. n + 3].
fn rowGroup(
  mine: vec4<f32>, wm: mat4x4<f32>,
  a0: ptr<function, vec4<f32>>, a1: ptr<function, vec4<f32>>,
  a2: ptr<function, vec4<f32>>, a3: ptr<function, vec4<f32>>,
) {
  *a0 += wm * subgroupBroadcast(mine, 0u);
  *a1 += wm * subgroupBroadcast(mine, 1u);
  *a2 += wm * subgroupBroadcast(mine, 2u);
  *a3 += wm * subgroupBroadcast(mine, 3u);
}

// The tail W row n (uniform): lane l read dY[row l % 4 of the group, n] (`mine`).
fn tailGroup(mine: f32, wr: vec4<f32>, a0: ptr<function, vec4<f32>>, a1: ptr<function, vec4<f32>>,
  a2: ptr<function, vec4<f32>>, a3: ptr<function, vec4<f32>>) {
  *a0 += subgroupBroadcast(mine, 0u) * wr;
  *a1 += subgroupBroadcast(mine, 1u) * wr;
  *a2 += subgroupBroadcast(mine, 2u) * wr;
  *a3 += subgroupBroadcast(mine, 3u) * wr;
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(subgroup_invocation_id) lane: u32,
) {
  let k0 = (wg.x * WG + lid.x) * 4u;
  let m0 = wg.y * TM;
  let kq = min(k0, p.K - min(p.K, 4u)); // in bounds for vec4 loads; its results are not stored
  let kc = min(vec4<u32>(k0, k0 + 1u, k0 + 2u, k0 + 3u), vec4<u32>(p.K - 1u));
  // The dY row this lane reads for each group.
  let r0 = min(m0 + lane % 4u, p.M - 1u);
  let r1 = min(m0 + 4u + lane % 4u, p.M - 1u);
  let r2 = min(m0 + 8u + lane % 4u, p.M - 1u);
  let r3 = min(m0 + 12u + lane % 4u, p.M - 1u);
  var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
  var a4 = vec4<f32>(0.0); var a5 = vec4<f32>(0.0); var a6 = vec4<f32>(0.0); var a7 = vec4<f32>(0.0);
  var a8 = vec4<f32>(0.0); var a9 = vec4<f32>(0.0); var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0);
  var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0); var a14 = vec4<f32>(0.0); var a15 = vec4<f32>(0.0);
  let n4 = p.N & ~3u;
  for (var n = 0u; n < n4; n += 4u) {
    let wm = mat4x4<f32>(wrow(n, kq, kc), wrow(n + 1u, kq, kc), wrow(n + 2u, kq, kc), wrow(n + 3u, kq, kc));
    let c = p.nOffset + n;
    rowGroup(dy4(r0, c), wm, &a0, &a1, &a2, &a3);
    rowGroup(dy4(r1, c), wm, &a4, &a5, &a6, &a7);
    rowGroup(dy4(r2, c), wm, &a8, &a9, &a10, &a11);
    rowGroup(dy4(r3, c), wm, &a12, &a13, &a14, &a15);
  }
  for (var n = n4; n < p.N; n++) {
    let wr = wrow(n, kq, kc);
    let c = p.nOffset + n;
    tailGroup(dys(r0 * p.ldy + c), wr, &a0, &a1, &a2, &a3);
    tailGroup(dys(r1 * p.ldy + c), wr, &a4, &a5, &a6, &a7);
    tailGroup(dys(r2 * p.ldy + c), wr, &a8, &a9, &a10, &a11);
    tailGroup(dys(r3 * p.ldy + c), wr, &a12, &a13, &a14, &a15);
  }
  store(m0, k0, p.M, a0); store(m0 + 1u, k0, p.M, a1); store(m0 + 2u, k0, p.M, a2); store(m0 + 3u, k0, p.M, a3);
  store(m0 + 4u, k0, p.M, a4); store(m0 + 5u, k0, p.M, a5); store(m0 + 6u, k0, p.M, a6); store(m0 + 7u, k0, p.M, a7);
  store(m0 + 8u, k0, p.M, a8); store(m0 + 9u, k0, p.M, a9); store(m0 + 10u, k0, p.M, a10);
  store(m0 + 11u, k0, p.M, a11); store(m0 + 12u, k0, p.M, a12); store(m0 + 13u, k0, p.M, a13);
  store(m0 + 14u, k0, p.M, a14); store(m0 + 15u, k0, p.M, a15);
}
//#endif
