// Y[m, :] += X[m, :] · Wᵀ — a projection whose output is added onto the residual stream (o_proj,
// down_proj) with the add in the epilogue instead of its own dispatch. Few rows (decode): a 1-D
// grid over column quads, each invocation walking the rows in blocks of 4 that share each weight
// load (as matmul.wgsl's GEMV), then one at a time. K % 4 == 0 (vec4 loads); no bias. W is an HF
// Linear weight ([out, in], row-major) stored as WT; accumulation is f32, and the product is
// added to Y after it is complete, as residual_add.wgsl would.
//#if F16
enable f16;
//#endif
struct Params { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<WT>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Four weight rows at k as the columns of a matrix: v * m is their 4 dot products with v.
fn wm(n: vec4<u32>, k: u32) -> mat4x4<f32> {
  let kq = p.K / 4u;
  return mat4x4<f32>(vec4<f32>(w[n.x * kq + k]), vec4<f32>(w[n.y * kq + k]), vec4<f32>(w[n.z * kq + k]), vec4<f32>(w[n.w * kq + k]));
}

fn addRow(m: u32, n0: u32, v: vec4<f32>) {
  for (var j = 0u; j < 4u; j++) {
    if (n0 + j < p.N) { y[m * p.N + n0 + j] = y[m * p.N + n0 + j] + v[j]; }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let n0 = (gid.x + gid.y * nw.x * WG) * 4u;
  if (n0 >= p.N) { return; }
  let n = vec4<u32>(n0, min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u));
  let kq = p.K / 4u;
  var m0 = 0u;
  for (; m0 + 4u <= p.M; m0 += 4u) {
    var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
    for (var k = 0u; k < kq; k++) {
      let wk = wm(n, k);
      a0 += x[m0 * kq + k] * wk;
      a1 += x[(m0 + 1u) * kq + k] * wk;
      a2 += x[(m0 + 2u) * kq + k] * wk;
      a3 += x[(m0 + 3u) * kq + k] * wk;
    }
    addRow(m0, n0, a0);
    addRow(m0 + 1u, n0, a1);
    addRow(m0 + 2u, n0, a2);
    addRow(m0 + 3u, n0, a3);
  }
  for (; m0 < p.M; m0++) {
    var a = vec4<f32>(0.0);
    for (var k = 0u; k < kq; k++) { a += x[m0 * kq + k] * wm(n, k); }
    addRow(m0, n0, a);
  }
}
