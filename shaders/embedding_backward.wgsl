// dtable[ids[t], :] += dout[t, :] for every token: one invocation per column walks the tokens in
// order, so repeated ids never race and no atomics are needed. (Overwrite mode zeroes the table
// first with fill.wgsl.) Ids outside the table are skipped.
struct Params { tokens: u32, vocab: u32, dim: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> dtable: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let d = g.x + g.y * nw.x * WG;
  if (d >= p.dim) { return; }
  for (var t = 0u; t < p.tokens; t++) {
    let id = ids[t];
    if (id < p.vocab) { dtable[id * p.dim + d] += dout[t * p.dim + d]; }
  }
}
