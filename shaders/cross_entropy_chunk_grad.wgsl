// The softmax cross-entropy gradient of one vocabulary chunk from the row's finished stats
// (shaders/logsumexp_chunk.wgsl: max, sum of exp(z - max)), written over the chunk's logits:
//   logits[row, j] <- (exp(z - max) / sum - onehot(label - colOffset)) * gradScale
// Element-wise, so in place: the chunk needs one [rows, cols] buffer, not two. Rows whose label
// lies outside the vocabulary (IGNORE) get a zero gradient.
struct Params { rows: u32, cols: u32, colOffset: u32, vocab: u32, gradScale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= p.rows * p.cols) { return; }
  let row = i / p.cols;
  let label = labels[row];
  if (label >= p.vocab) {
    logits[i] = 0.0;
    return;
  }
  let pj = exp(logits[i] - stats[row * 3u]) / stats[row * 3u + 1u];
  let onehot = select(0.0, 1.0, label == p.colOffset + i % p.cols);
  logits[i] = (pj - onehot) * p.gradScale;
}
