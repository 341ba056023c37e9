// Backward of out = silu(gate) * up with silu(a) = a * sigmoid(a):
//   dup = dout * silu(gate);  dgate = dout * up * sigmoid(gate) * (1 + gate * (1 - sigmoid(gate))).
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(5) var<storage, read_write> dup: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= p.n) { return; }
  let a = gate[i];
  let s = 1.0 / (1.0 + exp(-a));
  let d = dout[i];
  dup[i] = d * a * s;
  dgate[i] = d * up[i] * s * (1.0 + a * (1.0 - s));
}
