/**
 * onnxruntime-web as the benchmark peer: the same random weights exported to ONNX (the graph of
 * `agentark export`) run by its WebGPU execution provider on the same adapter, beside our runtime,
 * in one run. Both do the same work per call: a prefill ends with the next token's logits on the
 * host (time to first token: our logitRows = [last], the graph's `logits_to_keep = 1` form; see
 * DecoderGraphOptions), a decode step with that one token's, and the KV cache stays on the GPU
 * between steps. Times are warm medians; the two runtimes take turns run by run.
 */
import type { Gpu } from '../gpu/device';
import { GpuBackend } from '../kernels/gpu';
import { LlamaModel } from '../model/llama';
import { modelLinearShapes, type KernelTuner } from '../kernels/autotune';
import { randomInitTensors } from '../train/init';
import { buildDecoderGraph, ONNX_OPSETS } from '../export/onnx-decoder';
import { OrtDecoder, type OrtEp } from '../export/ort';
import type { ModelConfig } from '../formats/config';
import type { HostTensor } from '../formats/checkpoint';
import { benchConfig, type ModelSize } from './speed';

export interface PeerTimes {
  prefillMs: number;
  /** Milliseconds per decode step (one token, logits back to the host). */
  decodeMsPerToken: number;
}

export interface PeerResult {
  model: string;
  params: number;
  prefillTokens: number;
  decodeSteps: number;
  ours: PeerTimes;
  ort: PeerTimes;
  ortEp: OrtEp;
  /** ORT time / our time: above 1 means we are faster. */
  prefillRatio: number;
  decodeRatio: number;
  /** Seconds onnxruntime-web took to create its session (graph optimisation, weight upload). */
  ortSessionS: number;
  /** Next-token logits after the prefill: max |ORT − ours| and max |ours|. */
  maxAbsDiff: number;
  maxAbsLogit: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface PeerOptions {
  prefillTokens?: number;
  decodeSteps?: number;
  /** Timed repetitions after the warm-up; the median is reported. */
  runs?: number;
  ep?: OrtEp;
  /** Our runtime's autotuner (kernel choices for this model's shapes are made before timing). */
  tuner?: KernelTuner | null;
  log?: (line: string) => void;
}

/** The peer on one of the bench's model sizes (random weights). */
export async function benchmarkOrtPeer(gpu: Gpu, size: ModelSize, opts: PeerOptions = {}): Promise<PeerResult> {
  const config = benchConfig(size);
  return benchmarkOrtPeerOn(gpu, { name: size.name, config, tensors: randomInitTensors(config, 1) }, opts);
}

/** A model for the peer: its config and its weights (any dtype the loader gives; both runtimes see them as f32). */
export interface PeerModel {
  name: string;
  config: ModelConfig;
  tensors: Map<string, HostTensor>;
}

/** The peer on any checkpoint (`agentark bench --model ... --peer`, a synthetic Qwen2.5-0.5B-shaped model). */
export async function benchmarkOrtPeerOn(gpu: Gpu, peer: PeerModel, opts: PeerOptions = {}): Promise<PeerResult> {
  const prefillTokens = opts.prefillTokens ?? 128;
  const decodeSteps = opts.decodeSteps ?? 16;
  const runs = opts.runs ?? 5;
  const ep = opts.ep ?? 'webgpu';
  const { config, tensors } = peer;
  let params = 0;
  for (const t of tensors.values()) params += t.shape.reduce((a, b) => a * b, 1);
  const ids = Array.from({ length: prefillTokens }, (_, i) => (i * 7) % config.vocabSize);
  const decodeIds = Array.from({ length: decodeSteps }, (_, i) => (i * 13 + 5) % config.vocabSize);
  const maxSeq = prefillTokens + decodeSteps;

  // ---- ours ---------------------------------------------------------------------------------
  const backend = await GpuBackend.create(gpu, 'f32');
  const model = LlamaModel.fromTensors(backend, config, tensors, maxSeq);
  if (opts.tuner) {
    backend.tuner = opts.tuner;
    await backend.autotune(modelLinearShapes(model));
  }
  const cache = model.createCache(1, maxSeq);
  const ourPrefill = () =>
    model.forward(
      {
        ids: Uint32Array.from(ids),
        positions: Uint32Array.from(ids, (_, i) => i),
        slots: new Uint32Array(prefillTokens),
        logitRows: [prefillTokens - 1],
      },
      cache,
    );
  const ourDecode = async () => {
    for (let s = 0; s < decodeSteps; s++) {
      await model.forward(
        {
          ids: Uint32Array.of(decodeIds[s]),
          positions: Uint32Array.of(prefillTokens + s),
          slots: Uint32Array.of(0),
          logitRows: [0],
        },
        cache,
      );
    }
  };

  // ---- onnxruntime-web ----------------------------------------------------------------------
  const { model: bytes } = buildDecoderGraph(config, tensors, { logits: 'last' }).serialize(ONNX_OPSETS, {
    producer: 'agentark-web bench',
  });
  const t0 = performance.now();
  let decoder: OrtDecoder;
  try {
    decoder = await OrtDecoder.create(
      bytes,
      {
        numLayers: config.numLayers,
        numKvHeads: config.numKvHeads,
        headDim: config.headDim,
        vocabSize: config.vocabSize,
      },
      ep,
    );
  } catch (e) {
    model.freeCache(cache);
    model.dispose();
    throw e;
  }
  const ortSessionS = (performance.now() - t0) / 1000;
  let past = decoder.emptyPast();
  const ortPrefill = async () => {
    decoder.disposePast(past);
    const r = await decoder.run(ids, decoder.emptyPast());
    past = r.present;
    return r.logits;
  };
  const ortDecode = async () => {
    for (let s = 0; s < decodeSteps; s++) {
      const r = await decoder.run([decodeIds[s]], past);
      decoder.disposePast(past);
      past = r.present;
    }
  };
  const ourCheck = await ourPrefill();
  const ortCheck = await ortPrefill();
  // Same weights, same work: the two agree (guards against benchmarking a broken export).
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ourCheck.length; i++) {
    diff = Math.max(diff, Math.abs(ourCheck[i] - ortCheck[i]));
    scale = Math.max(scale, Math.abs(ourCheck[i]));
  }
  // The exported graph itself is exact (onnxruntime-web's wasm EP matches our logits to ~1e-6 on
  // this model; tests/export). Its WebGPU EP deviates on software adapters (measured: 0.05 of 1.8
  // on lavapipe, 0.9 on SwiftShader, whose subgroups are 8 and 4 wide), so the deviation is
  // reported beside the times rather than treated as a broken export.
  if (!(diff < 1e-3 * Math.max(1, scale)))
    opts.log?.(
      `warning: onnxruntime-web's ${ep} EP deviates from our logits on ${peer.name}: ` +
        `max |Δ| ${diff.toExponential(2)} of max |logit| ${scale.toFixed(3)} (its wasm EP matches; see src/eval/ort-peer.ts)`,
    );
  // The two runtimes take turns, run by run, so load on a shared machine falls on both alike.
  const [ours, ort] = await timeInTurns(
    [
      { prefill: ourPrefill, decode: ourDecode },
      { prefill: ortPrefill, decode: ortDecode },
    ],
    runs,
    decodeSteps,
  );
  model.freeCache(cache);
  model.dispose();
  decoder.disposePast(past);
  await decoder.release();
  const result: PeerResult = {
    model: peer.name,
    params,
    prefillTokens,
    decodeSteps,
    ours,
    ort,
    ortEp: ep,
    prefillRatio: ort.prefillMs / ours.prefillMs,
    decodeRatio: ort.decodeMsPerToken / ours.decodeMsPerToken,
    ortSessionS,
    maxAbsDiff: diff,
    maxAbsLogit: scale,
  };
  opts.log?.(
    `peer ${peer.name}: prefill ${prefillTokens} tok ours ${ours.prefillMs.toFixed(1)} ms, onnxruntime-web ${ort.prefillMs.toFixed(1)} ms ` +
      `(x${result.prefillRatio.toFixed(2)}); ` +
      `decode ours ${ours.decodeMsPerToken.toFixed(2)} ms/tok, ` +
      `onnxruntime-web ${ort.decodeMsPerToken.toFixed(2)} ms/tok (x${result.decodeRatio.toFixed(2)}); ` +
      `next-token logits max |Δ| ${diff.toExponential(2)} of max |logit| ${scale.toFixed(3)}`,
  );
  return result;
}

interface Contender {
  prefill: () => Promise<unknown>;
  /** Decode steps on the cache the last prefill built. */
  decode: () => Promise<void>;
}

/**
 * Warm-up of each, then `runs` rounds in which each contender in turn does a timed prefill and a
 * timed decode of the cache it built; medians per contender.
 */
async function timeInTurns(contenders: Contender[], runs: number, decodeSteps: number): Promise<PeerTimes[]> {
  for (const c of contenders) {
    await c.prefill();
    await c.decode();
  }
  const times = contenders.map(() => ({ prefill: [] as number[], decode: [] as number[] }));
  for (let r = 0; r < runs; r++) {
    for (const [i, c] of contenders.entries()) {
      let t = performance.now();
      await c.prefill();
      times[i].prefill.push(performance.now() - t);
      t = performance.now();
      await c.decode();
      times[i].decode.push(performance.now() - t);
    }
  }
  return times.map((t) => ({ prefillMs: median(t.prefill), decodeMsPerToken: median(t.decode) / decodeSteps }));
}
