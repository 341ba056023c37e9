/**
 * Runs fuzz cases of one target inside a worker thread, reporting each case before it starts
 * so the parent can name the case that hangs or exhausts memory (and then kill this worker).
 */
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { Rng } from './mutate';
import { isClearError, mutateFiles, SELFTEST_TARGETS, TARGETS } from './targets';
import type { FuzzCaseReport, FuzzJob } from './run';

const job = workerData.job as FuzzJob;
// The self-test target counts its cases; a restarted worker continues where the last one died.
(globalThis as { __fuzzFrom?: number }).__fuzzFrom = job.from;
const target = (TARGETS[job.target] ?? SELFTEST_TARGETS[job.target])!;
const seeds = target.seeds();
const post = (m: FuzzCaseReport | { type: 'start'; case: number } | { type: 'finished' }) => parentPort!.postMessage(m);

for (let i = job.from; i < job.cases; i++) {
  const rng = new Rng(Math.imul(job.seed ^ 0x9e3779b9, 1000003) + i);
  post({ type: 'start', case: i });
  const input = mutateFiles(rng, target, rng.pick(seeds));
  const heapBefore = getHeapStatistics().used_heap_size;
  const externalBefore = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  let outcome: FuzzCaseReport['outcome'] = 'ok';
  let message = '';
  try {
    await target.run(input);
  } catch (e) {
    message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    if (isClearError(e)) outcome = 'error';
    else {
      outcome = 'crash';
      if (e instanceof Error && e.stack) message = e.stack.split('\n').slice(0, 6).join('\n');
    }
  }
  const ms = performance.now() - t0;
  const heapMb = (getHeapStatistics().used_heap_size - heapBefore) / 2 ** 20;
  const externalMb = (process.memoryUsage().arrayBuffers - externalBefore) / 2 ** 20;
  post({ type: 'case', case: i, outcome, message: message.slice(0, 2000), ms, memoryMb: Math.max(heapMb, externalMb) });
}
post({ type: 'finished' });
