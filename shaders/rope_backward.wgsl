// Backward of rotate-half RoPE, in place on the gradient dx[t, head, :]: the rotation is
// orthogonal, so its transpose is the rotation by -angle (same cos/sin tables, sin negated).
struct Params { tokens: u32, heads: u32, headDim: u32, maxPos: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> cosTable: array<f32>;
@group(0) @binding(4) var<storage, read> sinTable: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let half = p.headDim / 2u;
  let i = g.x + g.y * nw.x * WG;
  if (i >= p.tokens * p.heads * half) { return; }
  let j = i % half;
  let th = i / half;            // token * heads + head
  let t = th / p.heads;
  let pos = positions[t];
  let c = cosTable[pos * half + j];
  let s = sinTable[pos * half + j];
  let base = th * p.headDim;
  let x1 = x[base + j];
  let x2 = x[base + j + half];
  x[base + j] = x1 * c + x2 * s;
  x[base + j + half] = x2 * c - x1 * s;
}
