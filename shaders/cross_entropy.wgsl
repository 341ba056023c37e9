// Softmax cross-entropy per row, one workgroup per row, max-subtracted for stability:
//   losses[row] = log(sum_j exp(z_j - max)) + max - z[label]
//   dlogits[row, :] = (softmax(z) - onehot(label)) * gradScale
// Rows whose label is IGNORE (0xFFFFFFFF) or outside the vocabulary get loss 0 and a zero gradient.
struct Params { rows: u32, vocab: u32, gradScale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
var<workgroup> red: array<f32, WG>;

fn reduceMax(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { red[lid] = max(red[lid], red[lid + stride]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduceSum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { red[lid] += red[lid + stride]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * nw.x;
  if (row >= p.rows) { return; }
  let base = row * p.vocab;
  let label = labels[row];
  if (label >= p.vocab) {
    for (var j = lid; j < p.vocab; j += WG) { dlogits[base + j] = 0.0; }
    if (lid == 0u) { losses[row] = 0.0; }
    return;
  }
  var m = -3.0e38;
  for (var j = lid; j < p.vocab; j += WG) { m = max(m, logits[base + j]); }
  m = reduceMax(lid, m);
  var s = 0.0;
  for (var j = lid; j < p.vocab; j += WG) { s += exp(logits[base + j] - m); }
  s = reduceSum(lid, s);
  let inv = 1.0 / s;
  for (var j = lid; j < p.vocab; j += WG) {
    let pj = exp(logits[base + j] - m) * inv;
    dlogits[base + j] = (pj - select(0.0, 1.0, j == label)) * p.gradScale;
  }
  if (lid == 0u) { losses[row] = log(s) + m - logits[base + label]; }
}
