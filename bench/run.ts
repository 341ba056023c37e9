/**
 * `npm run bench`: speed benchmarks on this machine's WebGPU adapter beside the CPU twin.
 * Prints a table and writes bench-results.json (see src/eval/speed.ts for what is measured).
 */
import { writeFileSync } from 'node:fs';
import { runSpeedBenchmarks, type SpeedReport } from '../src/eval/speed';
import { Gpu } from '../src/gpu/device';
import { GpuBackend } from '../src/kernels/gpu';
import { benchmarkWeightFormats } from '../src/quant/speed';

function table(report: SpeedReport): string {
  const lines = [`adapter: ${report.adapter}`, '', '| kernel | shape | WebGPU GFLOP/s | CPU twin GFLOP/s | ratio |', '|---|---|---|---|---|'];
  for (const k of report.kernels) lines.push(`| ${k.kernel} | ${k.shape} | ${k.webgpuGflops.toFixed(2)} | ${k.cpuGflops.toFixed(2)} | ${(k.webgpuGflops / k.cpuGflops).toFixed(2)}x |`);
  lines.push('', '| model | params | backend | prefill tok/s | decode tok/s |', '|---|---|---|---|---|');
  for (const m of report.models) lines.push(`| ${m.model} | ${(m.params / 1e6).toFixed(2)}M | ${m.backend} | ${m.prefillTokensPerS.toFixed(1)} | ${m.decodeTokensPerS.toFixed(1)} |`);
  lines.push('', '| train | mode | backend | batch x seq | ms/step | tok/s | peak GPU buffers |', '|---|---|---|---|---|---|---|');
  for (const t of report.training) lines.push(`| ${t.model} | ${t.mode} | ${t.backend} | ${t.batch}x${t.seqLen} | ${t.stepMs.toFixed(0)} | ` + `${t.tokensPerS.toFixed(1)} | ${t.peakGpuBytes === null ? '-' : (t.peakGpuBytes / 2 ** 20).toFixed(1) + ' MiB'} |`);
  return lines.join('\n');
}

const report = await runSpeedBenchmarks({ log: (l) => process.stderr.write(l + '\n') });
console.log(table(report));
// Weight formats side by side (f32, f16, q8, q4): the same product, same adapter, one run.
const gpu = await Gpu.create();
const formats = await benchmarkWeightFormats(await GpuBackend.create(gpu, 'f32'), gpu.features.f16 ? await GpuBackend.create(gpu, 'f16') : null);
gpu.destroy();
console.log(['', '| weights | shape | GFLOP/s | time vs f32 |', '|---|---|---|---|', ...formats.map((f) => `| ${f.format} | ${f.shape} | ${f.gflops.toFixed(2)} | ${f.vsF32.toFixed(2)}x |`)].join('\n'));
writeFileSync('bench-results.json', JSON.stringify({ ...report, weightFormats: formats }, null, 2));
console.log('\nwrote bench-results.json');
process.exit(0);
