// Y[m, :] += X[m, :] · Wᵀ — a projection whose output is added onto the residual stream (o_proj,
// down_proj) with the add in the epilogue instead of its own dispatch. Few rows (decode, M <= 8):
// a 1-D grid over column quads, each invocation walking the rows. K % 4 == 0 (vec4 loads); no
// bias. W is an HF Linear weight ([out, in], row-major) stored as WT; accumulation is f32, and
// the product is added to Y after it is complete, as residual_add.wgsl would.
//#if F16
enable f16;
//#endif
struct Params { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<WT>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let n0 = (gid.x + gid.y * nw.x * WG) * 4u;
  if (n0 >= p.N) { return; }
  let n = vec4<u32>(n0, min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u));
  let kq = p.K / 4u;
  for (var m = 0u; m < p.M; m++) {
    var a = vec4<f32>(0.0);
    for (var k = 0u; k < kq; k++) {
      let xk = x[m * kq + k];
      a += vec4<f32>(dot(xk, vec4<f32>(w[n.x * kq + k])), dot(xk, vec4<f32>(w[n.y * kq + k])),
                     dot(xk, vec4<f32>(w[n.z * kq + k])), dot(xk, vec4<f32>(w[n.w * kq + k])));
    }
    for (var j = 0u; j < 4u; j++) {
      if (n0 + j < p.N) { y[m * p.N + n0 + j] = y[m * p.N + n0 + j] + a[j]; }
    }
  }
}
