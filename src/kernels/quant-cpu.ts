/**
 * CPU twins of the quantized-weight kernels (shaders/matmul_q.wgsl, embedding_q.wgsl,
 * matmul_q_backward.wgsl): the same unpacking and the same order of operations (integer products
 * summed per group of 32, then multiplied by the group's scale), as plain loops.
 */
import { GROUP_SIZE, groupsPerRow, quantAt, scaleValues, type QuantizedMatrix } from '../quant/quantize';

/** out[M, N] = x[M, K] · W[N, K]ᵀ (+ bias) with W quantized. */
export function cpuMatmulQ(
  x: Float32Array,
  w: QuantizedMatrix,
  bias: Float32Array | null,
  m: number,
  out: Float32Array,
): void {
  const { rows: n, cols: k } = w;
  const groups = groupsPerRow(k);
  const scales = scaleValues(w);
  const q = new Float32Array(k);
  for (let j = 0; j < n; j++) {
    for (let c = 0; c < k; c++) q[c] = quantAt(w, j, c);
    for (let i = 0; i < m; i++) {
      let acc = 0;
      for (let g = 0; g < groups; g++) {
        let s = 0;
        for (let c = g * GROUP_SIZE; c < Math.min(k, (g + 1) * GROUP_SIZE); c++) s += x[i * k + c] * q[c];
        acc += s * scales[j * groups + g];
      }
      out[i * n + j] = acc + (bias ? bias[j] : 0);
    }
  }
}

/** out[t, :] = dequantized table row ids[t]. */
export function cpuEmbeddingQ(ids: Uint32Array, table: QuantizedMatrix, tokens: number, out: Float32Array): void {
  const dim = table.cols;
  const groups = groupsPerRow(dim);
  const scales = scaleValues(table);
  for (let t = 0; t < tokens; t++) {
    const id = ids[t];
    for (let d = 0; d < dim; d++)
      out[t * dim + d] = Math.fround(quantAt(table, id, d) * scales[id * groups + Math.floor(d / GROUP_SIZE)]);
  }
}

/** dx[M, K] (+)= dy[M, N] · W[N, K] with W quantized (dequantized one row at a time). */
export function cpuMatmulQBackwardInput(
  dy: Float32Array,
  w: QuantizedMatrix,
  m: number,
  dx: Float32Array,
  accumulate: boolean,
): void {
  const { rows: n, cols: k } = w;
  const groups = groupsPerRow(k);
  const scales = scaleValues(w);
  const acc = new Float64Array(m * k);
  const row = new Float32Array(k);
  for (let j = 0; j < n; j++) {
    for (let c = 0; c < k; c++)
      row[c] = Math.fround(quantAt(w, j, c) * scales[j * groups + Math.floor(c / GROUP_SIZE)]);
    for (let i = 0; i < m; i++) {
      const g = dy[i * n + j];
      if (g === 0) continue;
      for (let c = 0; c < k; c++) acc[i * k + c] += g * row[c];
    }
  }
  for (let i = 0; i < m * k; i++) dx[i] = (accumulate ? dx[i] : 0) + acc[i];
}
