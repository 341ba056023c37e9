// Y[m, nOffset + n] = sum_k X[m, k] * W[n, k] (+ bias[n]) — GEMM for prefill and training (M > 8
// rows) on adapters with the `subgroups` feature. W is one row-shard of an HF Linear weight
// ([out, in], row-major) stored as WT (f16 or f32); accumulation is f32.
// A workgroup of WG invocations owns TM rows x 4 WG columns: each invocation keeps 4 columns of all
// TM rows in registers. The TM rows are the same for every invocation of the workgroup, so for
// each K-step of 4 an X value is read once per subgroup — lane l reads row 4 r + l % 4 of row group
// r — and handed to the other lanes by subgroupBroadcast, instead of being read by every
// invocation. On CPU adapters every storage load is a per-lane gather with a bounds check and costs
// far more than the arithmetic (measured on lavapipe: the register kernel's loads hoisted out of
// its K loop ran 15x faster), so one X load and four W loads now feed 16 TM dot products instead
// of 4 (2-2.5x the register kernel on lavapipe, 1.7x on SwiftShader, at TM 16 and 8).
// subgroupBroadcast needs uniform control flow: no invocation returns early; out-of-range rows and
// columns read clamped indices and are not stored. Any subgroup size from 4 up works (lanes 0-3
// of each subgroup hold the rows). VEC4 (K % 4 == 0) loads vec4 along K; otherwise each vec4 is
// gathered from guarded scalar loads, zeros past K.
// Compiled-in sizes: WG (invocations), TM (rows per workgroup: 8 or 16).
//#if F16
enable f16;
//#endif
enable subgroups;
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

const ROW_GROUPS = TM / 4u;

//#if VEC4
fn xv(row: u32, k: u32) -> vec4<f32> { return x[(row * p.K + k) / 4u]; }
fn wv(n: u32, k: u32) -> vec4<f32> { return vec4<f32>(w[(n * p.K + k) / 4u]); }
//#else
fn xv(row: u32, k: u32) -> vec4<f32> {
  let b = row * p.K + k;
  var v = vec4<f32>(x[b], 0.0, 0.0, 0.0);
  if (k + 1u < p.K) { v.y = x[b + 1u]; }
  if (k + 2u < p.K) { v.z = x[b + 2u]; }
  if (k + 3u < p.K) { v.w = x[b + 3u]; }
  return v;
}
fn wv(n: u32, k: u32) -> vec4<f32> {
  let b = n * p.K + k;
  var v = vec4<f32>(f32(w[b]), 0.0, 0.0, 0.0);
  if (k + 1u < p.K) { v.y = f32(w[b + 1u]); }
  if (k + 2u < p.K) { v.z = f32(w[b + 2u]); }
  if (k + 3u < p.K) { v.w = f32(w[b + 3u]); }
  return v;
}
//#endif

fn dots(xk: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(dot(xk, w0), dot(xk, w1), dot(xk, w2), dot(xk, w3));
}

// One row group's K-step: lane l of the subgroup read row l % 4 of the group (`mine`); every lane
// adds each of the 4 rows against its 4 columns.
fn rowGroup(
  mine: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>,
  a0: ptr<function, vec4<f32>>, a1: ptr<function, vec4<f32>>,
  a2: ptr<function, vec4<f32>>, a3: ptr<function, vec4<f32>>,
) {
  *a0 += dots(subgroupBroadcast(mine, 0u), w0, w1, w2, w3);
  *a1 += dots(subgroupBroadcast(mine, 1u), w0, w1, w2, w3);
  *a2 += dots(subgroupBroadcast(mine, 2u), w0, w1, w2, w3);
  *a3 += dots(subgroupBroadcast(mine, 3u), w0, w1, w2, w3);
}

// Row m0 + i of Y at this invocation's 4 columns, if inside Y.
fn store(m: u32, n0: u32, row: vec4<f32>) {
  if (m >= p.M) { return; }
  let base = m * p.ldy + p.nOffset;
  for (var j = 0u; j < 4u; j++) {
    if (n0 + j < p.N) { y[base + n0 + j] = row[j]; }
  }
}

// The accumulators are named variables, not an array, and the row groups are written out (TM is 8
// or 16; the third and fourth groups are compiled out at 8): SwiftShader keeps a dynamically
// indexed array in memory, which cost it more than the broadcast saved.
@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(subgroup_invocation_id) lane: u32,
) {
  let n0 = (wg.x * WG + lid.x) * 4u;
  let m0 = wg.y * TM;
  let n = min(vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(p.N - 1u));
  // The row this lane reads for each group.
  let r0 = min(m0 + lane % 4u, p.M - 1u);
  let r1 = min(m0 + 4u + lane % 4u, p.M - 1u);
  let r2 = min(m0 + 8u + lane % 4u, p.M - 1u);
  let r3 = min(m0 + 12u + lane % 4u, p.M - 1u);
  var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
  var a4 = vec4<f32>(0.0); var a5 = vec4<f32>(0.0); var a6 = vec4<f32>(0.0); var a7 = vec4<f32>(0.0);
  var a8 = vec4<f32>(0.0); var a9 = vec4<f32>(0.0); var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0);
  var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0); var a14 = vec4<f32>(0.0); var a15 = vec4<f32>(0.0);
  for (var k = 0u; k < p.K; k += 4u) {
    let w0 = wv(n.x, k);
    let w1 = wv(n.y, k);
    let w2 = wv(n.z, k);
    let w3 = wv(n.w, k);
    rowGroup(xv(r0, k), w0, w1, w2, w3, &a0, &a1, &a2, &a3);
    rowGroup(xv(r1, k), w0, w1, w2, w3, &a4, &a5, &a6, &a7);
    if (ROW_GROUPS > 2u) {
      rowGroup(xv(r2, k), w0, w1, w2, w3, &a8, &a9, &a10, &a11);
      rowGroup(xv(r3, k), w0, w1, w2, w3, &a12, &a13, &a14, &a15);
    }
  }
  var b = vec4<f32>(0.0);
  if (p.hasBias != 0u) { b = vec4<f32>(bias[n.x], bias[n.y], bias[n.z], bias[n.w]); }
  store(m0, n0, a0 + b); store(m0 + 1u, n0, a1 + b); store(m0 + 2u, n0, a2 + b); store(m0 + 3u, n0, a3 + b);
  store(m0 + 4u, n0, a4 + b); store(m0 + 5u, n0, a5 + b); store(m0 + 6u, n0, a6 + b); store(m0 + 7u, n0, a7 + b);
  if (ROW_GROUPS > 2u) {
    store(m0 + 8u, n0, a8 + b); store(m0 + 9u, n0, a9 + b); store(m0 + 10u, n0, a10 + b); store(m0 + 11u, n0, a11 + b);
    store(m0 + 12u, n0, a12 + b); store(m0 + 13u, n0, a13 + b); store(m0 + 14u, n0, a14 + b);
    store(m0 + 15u, n0, a15 + b);
  }
}
