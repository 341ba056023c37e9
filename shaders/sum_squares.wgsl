// First level of sum(x^2): each workgroup reduces a contiguous block of x into partials[wg]
// (f32); the host adds the partials (in f64). blockSize is a multiple of WG; WG is a power of two (tree reduction).
struct Params { n: u32, blockSize: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let start = wg.x * p.blockSize;
  let end = min(start + p.blockSize, p.n);
  var s = 0.0;
  for (var i = start + lid; i < end; i += WG) { let v = x[i]; s += v * v; }
  red[lid] = s;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { red[lid] += red[lid + stride]; }
    workgroupBarrier();
  }
  if (lid == 0u) { partials[wg.x] = red[0]; }
}
