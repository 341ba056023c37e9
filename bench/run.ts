/**
 * `npm run bench`: speed benchmarks on this machine's WebGPU adapter beside the CPU twin and beside
 * onnxruntime-web's WebGPU execution provider (same weights, same adapter, one run).
 * Prints tables and writes bench-results.json (see src/eval/speed.ts and src/eval/ort-peer.ts).
 *
 *   npm run bench -- [--only kernels,models,training,batch,peer,decode] [--sizes tiny-0.11M,small-3.0M,medium-18M]
 *                    [--peer-sizes small-3.0M,qwen2.5-0.5b:2] [--out bench-results.json] [--kernels gemv=splitk] [--no-autotune]
 */
import { writeFileSync } from 'node:fs';
import { Gpu } from '../src/gpu/device';
import { GpuBackend } from '../src/kernels/gpu';
import { benchmarkWeightFormats } from '../src/quant/speed';
import { parseArgs } from 'node:util';
import { parseForcedKernels } from '../src/kernels/autotune';
import { rooflineRows } from '../src/eval/roofline';
import {
  BENCH_SECTIONS,
  BENCH_SIZES,
  runSpeedBenchmarks,
  type BenchSection,
  type ModelSize,
  parseSyntheticPeer,
  type SyntheticPeerModel,
  type SpeedReport,
} from '../src/eval/speed';

function table(report: SpeedReport): string {
  const lines = [`adapter: ${report.adapter}`];
  if (report.kernels.length) {
    lines.push('', '| kernel | shape | WebGPU GFLOP/s | CPU twin GFLOP/s | ratio |', '|---|---|---|---|---|');
    for (const k of report.kernels)
      lines.push(
        `| ${k.kernel} | ${k.shape} | ${k.webgpuGflops.toFixed(2)} | ${k.cpuGflops.toFixed(2)} | ${(k.webgpuGflops / k.cpuGflops).toFixed(2)}x |`,
      );
  }
  if (report.peer?.length) {
    lines.push(
      '',
      '| model | prefill tokens | ours prefill ms | onnxruntime-web prefill ms | ' +
        'prefill ratio | ours decode ms/tok | onnxruntime-web decode ms/tok | decode ratio |',
      '|---|---|---|---|---|---|---|---|',
    );
    for (const p of report.peer) {
      lines.push(
        `| ${p.model} | ${p.prefillTokens} | ${p.ours.prefillMs.toFixed(1)} | ${p.ort.prefillMs.toFixed(1)} | ${p.prefillRatio.toFixed(2)}x | ` +
          `${p.ours.decodeMsPerToken.toFixed(2)} | ${p.ort.decodeMsPerToken.toFixed(2)} | ${p.decodeRatio.toFixed(2)}x |`,
      );
    }
    lines.push(
      '(ratio = onnxruntime-web time / our time, warm medians; onnxruntime-web ' +
        report.peer
          .map(
            (p) =>
              `${p.model} on its ${p.ortEp} EP, session ${p.ortSessionS.toFixed(1)} s, ` +
              `next-token logits max |Δ| ${p.maxAbsDiff.toExponential(1)} of max |logit| ${p.maxAbsLogit.toFixed(2)}`,
          )
          .join('; ') +
        ')',
    );
  }
  if (report.tuning) {
    const t = report.tuning;
    lines.push(
      '',
      `autotuner (${(t.tuningMs / 1000).toFixed(1)} s timing candidates in this run; cached per adapter):`,
      '| shape class | choice | source | ms per dispatch |',
      '|---|---|---|---|',
    );
    for (const [shape, r] of Object.entries(t.choices))
      lines.push(
        `| ${shape} | ${r.choice} | ${r.source} | ${
          Object.entries(r.ms)
            .map(([v, ms]) => `${v} ${ms.toFixed(3)}`)
            .join(', ') || '-'
        } |`,
      );
  }
  if (report.batchDecode?.length) {
    lines.push(
      '',
      '| model | backend | 1 sequence ms/step | batch | batch ms/step | batch / single | dispatches/step |',
      '|---|---|---|---|---|---|---|',
    );
    for (const b of report.batchDecode)
      lines.push(
        `| ${b.model} | ${b.backend} | ${b.singleStepMs.toFixed(2)} | ${b.batch} | ` +
          `${b.batchStepMs.toFixed(2)} | ${b.ratio.toFixed(2)}x | ${b.dispatchesPerStep ?? '-'} |`,
      );
  }
  if (report.decode?.length) {
    lines.push(
      '',
      '| model | params | decode | dispatches/step | ms/step | tok/s | vs CPU twin |',
      '|---|---|---|---|---|---|---|',
    );
    for (const d of report.decode) {
      const cpu = d.variants.find((v) => v.dispatchesPerStep === null);
      for (const v of d.variants)
        lines.push(
          `| ${d.model} | ${(d.params / 1e6).toFixed(2)}M | ${v.variant} | ${v.dispatchesPerStep ?? '-'} | ${v.stepMs.toFixed(2)} | ` +
            `${v.decodeTokensPerS.toFixed(1)} | ${cpu ? `${(v.decodeTokensPerS / cpu.decodeTokensPerS).toFixed(2)}x` : '-'} |`,
        );
    }
    lines.push(
      "(single-sequence decode, steps of the four interleaved, medians; fused = decode's fused ops, src/kernels/fused-gpu.ts; " +
        'greedy burst = 8 steps on the device, argmax there, tokens back once: model.greedyDecode)',
    );
  }
  if (report.models.length) {
    lines.push('', '| model | params | backend | prefill tok/s | decode tok/s |', '|---|---|---|---|---|');
    for (const m of report.models)
      lines.push(
        `| ${m.model} | ${(m.params / 1e6).toFixed(2)}M | ${m.backend} | ${m.prefillTokensPerS.toFixed(1)} | ${m.decodeTokensPerS.toFixed(1)} |`,
      );
  }
  const roofline = rooflineRows(report);
  if (roofline.length) {
    const g = (x: number | null) => (x === null ? '-' : (x / 1e9).toFixed(2));
    const pct = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(1)}%`);
    lines.push(
      '',
      '| model | prefill GFLOP/s | best GEMM GFLOP/s | of it | decode GB/s read | copy GB/s | of it |',
      '|---|---|---|---|---|---|---|',
      ...roofline.map(
        (r) =>
          `| ${r.model} | ${g(r.prefillFlopsPerS)} | ${g(r.bestGemmFlopsPerS)} | ${pct(r.prefillFraction)} | ` +
          `${g(r.decodeBytesPerS)} | ${g(r.copyBytesPerS)} | ${pct(r.decodeFraction)} |`,
      ),
      '(roofline, WebGPU: prefill FLOP/s of the best GEMM above; decode bytes read per second of the copy bandwidth, read + written)',
    );
  }
  if (report.training.length) {
    lines.push(
      '',
      '| train | mode | backend | batch x seq | ms/step | tok/s | peak GPU buffers |',
      '|---|---|---|---|---|---|---|',
    );
    for (const t of report.training)
      lines.push(
        `| ${t.model} | ${t.mode} | ${t.backend} | ${t.batch}x${t.seqLen} | ${t.stepMs.toFixed(0)} | ` +
          `${t.tokensPerS.toFixed(1)} | ${t.peakGpuBytes === null ? '-' : `${(t.peakGpuBytes / 2 ** 20).toFixed(1)} MiB`} |`,
      );
  }
  return lines.join('\n');
}

/** --peer-sizes also takes a real model's config at a few layers with random weights: qwen2.5-0.5b:2. */
function peerSizesFlag(value: string | undefined): (ModelSize | SyntheticPeerModel)[] | undefined {
  if (value === undefined) return undefined;
  return value.split(',').map((name) => parseSyntheticPeer(name) ?? sizesFlag(name, 'peer-sizes')![0]);
}

function sizesFlag(value: string | undefined, flag: string): ModelSize[] | undefined {
  if (value === undefined) return undefined;
  return value.split(',').map((name) => {
    const size = BENCH_SIZES.find((s) => s.name === name.trim());
    if (!size)
      throw new Error(`--${flag}: unknown size '${name}' (known: ${BENCH_SIZES.map((s) => s.name).join(', ')})`);
    return size;
  });
}

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    sizes: { type: 'string' },
    'peer-sizes': { type: 'string' },
    out: { type: 'string' },
    kernels: { type: 'string' },
    'no-autotune': { type: 'boolean' },
  },
});
// --kernels gemv=splitk forces a variant (the same switch as AGENTARK_KERNELS), checked up front.
if (values.kernels !== undefined) {
  parseForcedKernels(values.kernels);
  process.env.AGENTARK_KERNELS = values.kernels;
}
const sections = values.only?.split(',').map((s) => s.trim()) as BenchSection[] | undefined;
for (const s of sections ?? [])
  if (!BENCH_SECTIONS.includes(s))
    throw new Error(`--only: unknown section '${s}' (known: ${BENCH_SECTIONS.join(', ')})`);
const report = await runSpeedBenchmarks({
  autotune: !values['no-autotune'],
  sections,
  sizes: sizesFlag(values.sizes, 'sizes'),
  peerSizes: peerSizesFlag(values['peer-sizes']),
  log: (l) => process.stderr.write(`${l}\n`),
});
console.log(table(report));
// Weight formats side by side (f32, f16, q8, q4): the same product, same adapter, one run
// (with the kernel section).
let formats: Awaited<ReturnType<typeof benchmarkWeightFormats>> = [];
if (!sections || sections.includes('kernels')) {
  const gpu = await Gpu.create();
  formats = await benchmarkWeightFormats(
    await GpuBackend.create(gpu, 'f32'),
    gpu.features.f16 ? await GpuBackend.create(gpu, 'f16') : null,
  );
  gpu.destroy();
  console.log(
    [
      '',
      '| weights | shape | GFLOP/s | time vs f32 |',
      '|---|---|---|---|',
      ...formats.map((f) => `| ${f.format} | ${f.shape} | ${f.gflops.toFixed(2)} | ${f.vsF32.toFixed(2)}x |`),
    ].join('\n'),
  );
}
const out = values.out ?? 'bench-results.json';
writeFileSync(out, JSON.stringify({ ...report, weightFormats: formats }, null, 2));
console.log(`\nwrote ${out}`);
process.exit(0);
