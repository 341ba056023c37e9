// x[r, :] *= scale[r]: per-row weights, e.g. the per-token coefficients of a policy-gradient loss
// applied to a cross-entropy gradient.
struct Params { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= p.rows * p.cols) { return; }
  x[i] = x[i] * scale[i / p.cols];
}
