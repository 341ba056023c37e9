/**
 * Fresh weights for training a model from scratch, initialised like transformers'
 * `_init_weights`: linear and embedding weights ~ N(0, initializer_range), norm weights 1, biases 0.
 */
import type { HostTensor } from '../formats/checkpoint';
import { checkPlannedBytes, expectedTensors, parameterCount, type ModelConfig } from '../formats/config';
import { Rng } from '../util/random';

export function randomInitTensors(config: ModelConfig, seed: number, initializerRange = 0.02): Map<string, HostTensor> {
  checkPlannedBytes(
    parameterCount(config) * 4,
    `random initialisation of ${parameterCount(config).toLocaleString('en-US')} F32 parameters`,
  );
  const rng = new Rng(seed);
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of expectedTensors(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('norm.weight')) data.fill(1);
    else if (!name.endsWith('.bias')) {
      for (let i = 0; i < n; i += 2) {
        const u = Math.max(rng.next(), 1e-12);
        const v = rng.next();
        const r = Math.sqrt(-2 * Math.log(u)) * initializerRange;
        data[i] = r * Math.cos(2 * Math.PI * v);
        if (i + 1 < n) data[i + 1] = r * Math.sin(2 * Math.PI * v);
      }
    }
    out.set(name, { name, dtype: 'F32', shape, data: new Uint8Array(data.buffer) });
  }
  return out;
}
