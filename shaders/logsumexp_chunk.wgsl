// Online log-sum-exp of softmax cross-entropy over vocabulary chunks, one workgroup per row: folds
// one chunk of logits[row, 0..cols) (vocabulary columns colOffset..colOffset+cols) into the row's
// running stats[row] = (max, sum of exp(z - max), z[label]), so the loss and its gradient never
// need a row's whole vocabulary of logits at once. first = 1 starts the stats afresh.
//   merged max m = max(m0, mc); merged sum = s0 * exp(m0 - m) + sc * exp(mc - m)
// z[label] is taken from the chunk that holds the label; rows whose label lies outside the
// vocabulary (IGNORE) keep 0 there, and their loss is set to 0 by the caller.
struct Params { rows: u32, cols: u32, colOffset: u32, first: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
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
  let base = row * p.cols;
  var mc = -3.0e38;
  for (var j = lid; j < p.cols; j += WG) { mc = max(mc, logits[base + j]); }
  mc = reduceMax(lid, mc);
  var sc = 0.0;
  for (var j = lid; j < p.cols; j += WG) { sc += exp(logits[base + j] - mc); }
  sc = reduceSum(lid, sc);
  if (lid != 0u) { return; }
  let label = labels[row];
  let inChunk = label >= p.colOffset && label - p.colOffset < p.cols;
  if (p.first == 1u) {
    stats[row * 3u] = mc;
    stats[row * 3u + 1u] = sc;
    stats[row * 3u + 2u] = select(0.0, logits[base + label - p.colOffset], inChunk);
    return;
  }
  let m0 = stats[row * 3u];
  let m = max(m0, mc);
  stats[row * 3u] = m;
  stats[row * 3u + 1u] = stats[row * 3u + 1u] * exp(m0 - m) + sc * exp(mc - m);
  if (inChunk) { stats[row * 3u + 2u] = logits[base + label - p.colOffset]; }
}
