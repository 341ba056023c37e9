/**
 * Seeded random PEFT LoRA adapters for tests, written with serializePeftAdapter. Unlike a fresh
 * PEFT init (B = 0), B is non-zero by default, so the adapter changes the logits and a training
 * step changes both A (whose gradient is proportional to B) and B.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECTIONS, parseConfig, type ModelConfig, type Projection } from '../../src/formats/config';
import {
  initLoraPair,
  projectionShape,
  serializePeftAdapter,
  type LoraTensorPair,
  type PeftAdapter,
} from '../../src/formats/peft';
import { rng as mulberry32 } from './rng';

export interface RandomAdapterOptions {
  r: number;
  alpha: number;
  /** Projection names; default all seven. */
  targets?: Projection[];
  seed?: number;
  /** Default true: B ~ N(0, bStd²) instead of PEFT's zeros. */
  nonZeroB?: boolean;
  /** Standard deviation of B's entries; default 0.1. */
  bStd?: number;
  useRslora?: boolean;
  /** Which layers get pairs; default all. */
  layers?: number[];
  loraDropout?: number;
  baseModelNameOrPath?: string | null;
}

/** The adapter (in memory) that writeRandomPeftAdapter writes. */
export function randomPeftAdapter(
  model: ModelConfig | Record<string, unknown>,
  opts: RandomAdapterOptions,
): PeftAdapter {
  const config: ModelConfig = 'architectures' in model ? parseConfig(model) : (model as ModelConfig);
  const targets = opts.targets ?? [...PROJECTIONS];
  const random = mulberry32(opts.seed ?? 1);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(random(), 1e-12))) * Math.cos(2 * Math.PI * random());
  const layers = opts.layers ?? Array.from({ length: config.numLayers }, (_, i) => i);
  const pairs: LoraTensorPair[] = [];
  for (const layer of layers) {
    for (const module of PROJECTIONS.filter((p) => targets.includes(p))) {
      const { inFeatures, outFeatures } = projectionShape(config, module);
      const pair = initLoraPair(layer, module, opts.r, inFeatures, outFeatures, random);
      if (opts.nonZeroB ?? true) {
        const std = opts.bStd ?? 0.1;
        for (let i = 0; i < pair.b.data.length; i++) pair.b.data[i] = std * normal();
      }
      pairs.push(pair);
    }
  }
  return {
    config: {
      r: opts.r,
      loraAlpha: opts.alpha,
      loraDropout: opts.loraDropout ?? 0,
      targetModules: PROJECTIONS.filter((p) => targets.includes(p)),
      useRslora: opts.useRslora ?? false,
      baseModelNameOrPath: opts.baseModelNameOrPath ?? null,
      bias: 'none',
    },
    pairs,
  };
}

/** Writes adapter_config.json + adapter_model.safetensors into `dir` and returns the adapter. */
export function writeRandomPeftAdapter(
  dir: string,
  model: ModelConfig | Record<string, unknown>,
  opts: RandomAdapterOptions,
): PeftAdapter {
  const adapter = randomPeftAdapter(model, opts);
  const files = serializePeftAdapter(adapter);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), files['adapter_config.json']);
  fs.writeFileSync(path.join(dir, 'adapter_model.safetensors'), files['adapter_model.safetensors']);
  return adapter;
}
