/** Speed benchmarks on a separate GPU device: the same SpeedReport as `npm run bench`. */
import {
  BENCH_SIZES,
  benchmarkAttention,
  benchmarkKernels,
  benchmarkModel,
  benchmarkTraining,
  type SpeedReport,
} from '../../eval/speed';
import { Gpu } from '../../gpu/device';
import type { AnyBackend } from '../../kernels/backend';
import { CpuBackend } from '../../kernels/cpu';
import { GpuBackend } from '../../kernels/gpu';
import type { BenchEvent, BenchSettings } from '../api';
import { emitter, GPU_TASKS, notify, type Tasks } from './tasks';

export class Benchmark {
  constructor(private readonly tasks: Tasks) {}

  async run(taskId: string, s: BenchSettings, onEvent: (e: BenchEvent) => void): Promise<SpeedReport> {
    // The app loads the default model when it opens; a benchmark started meanwhile waits for that
    // load rather than failing (the two would compete for the GPU). Other tasks must be stopped.
    if (this.tasks.busy(['load'])) {
      await notify(onEvent, { type: 'status', text: 'Waiting for the model load to finish…', done: 0, total: 1 });
      while (this.tasks.busy(['load'])) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    this.tasks.requireNo(GPU_TASKS, 'benchmarking');
    const sizes = BENCH_SIZES.filter((b) => s.sizes.includes(b.name));
    const trainSizes = s.training ? sizes : [];
    const modes = s.trainingModes.length ? s.trainingModes : (['lora'] as const);
    const perBackend = s.cpuTwin ? 2 : 1;
    const total =
      s.kernelShapes.length +
      (s.attention ? 1 : 0) +
      (s.roofline ? 1 : 0) +
      (s.models ? sizes.length * perBackend : 0) +
      (s.peer ? sizes.length : 0) +
      trainSizes.length * modes.length * perBackend;
    const ctrl = this.tasks.start(taskId);
    const { emit, delivered } = emitter(onEvent);
    let done = 0;
    const status = (text: string) => emit({ type: 'status', text, done, total });
    const check = () => ctrl.signal.throwIfAborted();
    let gpu: Gpu | null = null;
    try {
      status('Creating a WebGPU device…');
      gpu = await Gpu.create();
      const report: SpeedReport = { adapter: gpu.describe(), kernels: [], models: [], training: [] };
      for (const shape of s.kernelShapes) {
        check();
        status(`Kernel matmul ${shape.join('×')}…`);
        const [r] = await benchmarkKernels(gpu, [shape]);
        report.kernels.push(r!);
        done++;
        emit({ type: 'kernel', result: r! });
      }
      if (s.attention) {
        check();
        status('Attention kernels (prefill and decode variants)…');
        for (const r of await benchmarkAttention(gpu)) {
          report.kernels.push(r);
          emit({ type: 'kernel', result: r });
        }
        done++;
      }
      if (s.roofline) {
        check();
        status('Roofline: buffer-copy bandwidth…');
        const { measureCopyBandwidth } = await import('../../eval/roofline');
        report.copyBandwidth = await measureCopyBandwidth(gpu);
        emit({ type: 'copy', result: report.copyBandwidth });
        // The prefill roofline is our best GEMM: measure one when no GEMM shape was selected.
        if (!report.kernels.some((k) => k.kernel.includes('gemm'))) {
          const [r] = await benchmarkKernels(gpu, [[64, 256, 256]]);
          report.kernels.push(r!);
          emit({ type: 'kernel', result: r! });
        }
        done++;
      }
      const gpuBackend = await GpuBackend.create(gpu, 'f32');
      const backends = (): AnyBackend[] => (s.cpuTwin ? [gpuBackend, new CpuBackend()] : [gpuBackend]);
      if (s.models) {
        for (const size of sizes) {
          for (const b of backends()) {
            check();
            status(`Model ${size.name} on ${b.name}: prefill and decode…`);
            const r = await benchmarkModel(b, size);
            report.models.push(r);
            done++;
            emit({ type: 'model', result: r });
          }
        }
      }
      if (s.peer) {
        // onnxruntime-web (its wasm too) is fetched only now, from this origin: no CDN.
        const { benchmarkOrtPeer } = await import('../../eval/ort-peer');
        report.peer = [];
        for (const size of sizes) {
          check();
          status(`Model ${size.name}: ours beside onnxruntime-web (WebGPU EP)…`);
          const r = await benchmarkOrtPeer(gpu, size, { prefillTokens: 32, decodeSteps: 8, runs: 3 });
          report.peer.push(r);
          done++;
          emit({ type: 'peer', result: r });
        }
      }
      for (const size of trainSizes) {
        for (const mode of modes) {
          for (const b of backends()) {
            check();
            status(`Training ${size.name} (${mode}) on ${b.name}…`);
            const r = await benchmarkTraining(b, size, mode);
            report.training.push(r);
            done++;
            emit({ type: 'train', result: r });
          }
        }
      }
      status('Done.');
      await delivered();
      return report;
    } finally {
      gpu?.destroy();
      this.tasks.end(taskId, ctrl);
    }
  }
}
