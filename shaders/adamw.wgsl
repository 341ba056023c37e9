// AdamW step in place (torch.optim.AdamW semantics, decoupled weight decay), f32:
//   g = grad * gradScale;  param *= 1 - lr * weightDecay
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
//   param -= lr * (m / bc1) / (sqrt(v / bc2) + eps)   with bc1 = 1 - beta1^step, bc2 = 1 - beta2^step
struct Params { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, bc1: f32, bc2: f32, gradScale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = gid.x + gid.y * nw.x * WG;
  if (i >= p.n) { return; }
  let g = grad[i] * p.gradScale;
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let decayed = param[i] * (1.0 - p.lr * p.weightDecay);
  param[i] = decayed - p.lr * (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps);
}
