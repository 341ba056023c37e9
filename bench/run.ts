/**
 * `npm run bench`: speed benchmarks on this machine's WebGPU adapter beside the CPU twin.
 * Prints a table and writes bench-results.json (see src/eval/speed.ts for what is measured).
 */
import { writeFileSync } from 'node:fs';
import { runSpeedBenchmarks, type SpeedReport } from '../src/eval/speed';

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
writeFileSync('bench-results.json', JSON.stringify(report, null, 2));
console.log('\nwrote bench-results.json');
process.exit(0);
