// out[t, :] = table[ids[t], :] for the ids that fall in this row-shard of the table
// (rows [rowStart, rowStart + rows)); ids outside it are left for the other shards' dispatches.
//#if F16
enable f16;
//#endif
struct Params { tokens: u32, dim: u32, rowStart: u32, rows: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<WT>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= p.tokens * p.dim) { return; }
  let t = i / p.dim;
  let d = i % p.dim;
  let id = ids[t];
  if (id < p.rowStart || id >= p.rowStart + p.rows) { return; }
  out[i] = f32(table[(id - p.rowStart) * p.dim + d]);
}
