// x += scale * y: the residual connection around attention and the MLP (scale 1), and adding a
// LoRA update (scale alpha/r) onto a projection's output.
struct Params { n: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= p.n) { return; }
  x[i] = x[i] + p.scale * y[i];
}
