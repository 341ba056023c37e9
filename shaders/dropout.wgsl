// Inverted dropout: out[i] = x[i] * scale if keep(seed, i) else 0, with scale = 1 / (1 - p).
// keep is a counter-based hash (PCG-RXS-M-XS of i + pcg(seed)) compared with threshold =
// floor(p * 2^32): pure u32 math, reproduced bit-for-bit by the CPU twin (train-cpu.ts).
// p = 0 gives threshold 0 and scale 1: an exact copy.
struct Params { n: u32, seed: u32, threshold: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= p.n) { return; }
  let h = pcg(i + pcg(p.seed));
  out[i] = select(0.0, x[i] * p.scale, h >= p.threshold);
}
