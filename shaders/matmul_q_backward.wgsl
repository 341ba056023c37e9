// dX[M, K] (+)= dY[:, nOffset .. nOffset + N] · W[N, K] for one row-shard of a frozen q8/q4
// weight (QLoRA: the gradient flows through the quantized base to the LoRA weights below it).
// Like matmul_backward.wgsl, each invocation owns a 4x4 tile of dX; the four W values it needs
// from a row share one u32 word (q8) or half a word (q4) and one scale, unpacked in registers.
// Columns past K (K % 4 != 0) read the format's zero padding and are not stored.
struct Params { M: u32, N: u32, K: u32, nOffset: u32, ldy: u32, accumulate: u32, groups: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> wq: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// W[n, k0 .. k0 + 3] dequantized (k0 % 4 == 0).
fn wrow(n: u32, k0: u32) -> vec4<f32> {
  let gi = n * p.groups + k0 / 32u;
  let j = k0 % 32u;
  let s = unpack2x16float(scales[gi >> 1u])[gi & 1u];
//#if Q4
  let w = vec4<i32>(bitcast<i32>(wq[gi * 4u + j / 8u]));
  let sh = select(vec4<u32>(28u, 24u, 20u, 16u), vec4<u32>(12u, 8u, 4u, 0u), (j & 4u) != 0u);
  return vec4<f32>((w << sh) >> vec4<u32>(28u)) * s;
//#else
  let w = vec4<i32>(bitcast<i32>(wq[gi * 8u + j / 4u]));
  return vec4<f32>((w << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u)) * s;
//#endif
}

fn dy4(row: u32, col: u32) -> vec4<f32> {
  let b = row * p.ldy + col;
  return vec4<f32>(dy[b], dy[b + 1u], dy[b + 2u], dy[b + 3u]);
}

fn store(row: u32, col0: u32, a: vec4<f32>) {
  if (row >= p.M) { return; }
  let base = row * p.K + col0;
  for (var j = 0u; j < 4u; j++) {
    if (col0 + j < p.K) {
      if (p.accumulate != 0u) { out[base + j] += a[j]; } else { out[base + j] = a[j]; }
    }
  }
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let k0 = g.x * 4u;
  let m0 = g.y * 4u;
  if (k0 >= p.K || m0 >= p.M) { return; }
  let m = vec4<u32>(m0, min(m0 + 1u, p.M - 1u), min(m0 + 2u, p.M - 1u), min(m0 + 3u, p.M - 1u));
  var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
  let n4 = p.N & ~3u;
  for (var n = 0u; n < n4; n += 4u) {
    let wm = mat4x4<f32>(wrow(n, k0), wrow(n + 1u, k0), wrow(n + 2u, k0), wrow(n + 3u, k0));
    let c = p.nOffset + n;
    a0 += wm * dy4(m.x, c); a1 += wm * dy4(m.y, c); a2 += wm * dy4(m.z, c); a3 += wm * dy4(m.w, c);
  }
  for (var n = n4; n < p.N; n++) {
    let wr = wrow(n, k0);
    let c = p.nOffset + n;
    a0 += dy[m.x * p.ldy + c] * wr; a1 += dy[m.y * p.ldy + c] * wr;
    a2 += dy[m.z * p.ldy + c] * wr; a3 += dy[m.w * p.ldy + c] * wr;
  }
  store(m0, k0, a0);
  store(m0 + 1u, k0, a1);
  store(m0 + 2u, k0, a2);
  store(m0 + 3u, k0, a3);
}
