// dbias[n] (+)= sum_m dy[m, n]: one invocation per column walks the rows (no atomics, no races).
struct Params { M: u32, N: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbias: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let n = g.x + g.y * nw.x * WG;
  if (n >= p.N) { return; }
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) { s += dy[m * p.N + n]; }
  if (p.accumulate != 0u) { dbias[n] += s; } else { dbias[n] = s; }
}
