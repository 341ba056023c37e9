// out[t, :] = dequantized row ids[t] of a q8/q4 table (src/quant/quantize.ts has the format), for
// the ids in this row-shard [rowStart, rowStart + rows); ids outside it are left to other shards.
// Each invocation unpacks one value and multiplies it by its group's f16 scale.
struct Params { tokens: u32, dim: u32, rowStart: u32, rows: u32, groups: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> wq: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= p.tokens * p.dim) { return; }
  let t = i / p.dim;
  let d = i % p.dim;
  let id = ids[t];
  if (id < p.rowStart || id >= p.rowStart + p.rows) { return; }
  let gi = (id - p.rowStart) * p.groups + d / 32u;
  let j = d % 32u;
//#if Q4
  let q = extractBits(bitcast<i32>(wq[gi * 4u + j / 8u]), 4u * (j % 8u), 4u);
//#else
  let q = extractBits(bitcast<i32>(wq[gi * 8u + j / 4u]), 8u * (j % 4u), 8u);
//#endif
  out[i] = f32(q) * unpack2x16float(scales[gi >> 1u])[gi & 1u];
}
