/**
 * Runs a seeded mutation fuzzer for one parser in a worker thread with a heap limit and a
 * watchdog. Every case must end in success or a clear error, within the per-case time and memory
 * budget; a hang, an out-of-memory death, a JS engine fault (TypeError, RangeError, ...) or a
 * broken invariant is a finding, reported with the seed and case index that reproduce it.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

export interface FuzzJob {
  target: string;
  seed: number;
  cases: number;
  /** First case index (a restarted worker continues after the case that killed its predecessor). */
  from: number;
}

export interface FuzzCaseReport {
  type: 'case';
  case: number;
  outcome: 'ok' | 'error' | 'crash';
  message: string;
  ms: number;
  memoryMb: number;
}

export interface FuzzOptions {
  seed?: number;
  cases?: number;
  /** Per-case wall time budget (ms); a case still running at 4× this is killed as a hang. */
  caseMs?: number;
  /** Per-case memory growth budget (MB) and the worker's heap limit. */
  caseMemoryMb?: number;
  heapLimitMb?: number;
  /** First case to run (to reproduce one finding). */
  from?: number;
}

export interface FuzzFinding {
  case: number;
  kind: 'crash' | 'slow' | 'memory' | 'hang' | 'out-of-memory' | 'worker-died';
  detail: string;
}

export interface FuzzResult {
  target: string;
  seed: number;
  cases: number;
  ok: number;
  errors: number;
  findings: FuzzFinding[];
  /** Distinct error messages (first 80 characters) with counts: what the fuzzer exercised. */
  errorKinds: Map<string, number>;
  maxMs: number;
  wallMs: number;
}

const BOOT = fileURLToPath(new URL('./boot.mjs', import.meta.url));
const ENTRY = fileURLToPath(new URL('./worker.ts', import.meta.url));

export async function runFuzz(target: string, opts: FuzzOptions = {}): Promise<FuzzResult> {
  const seed = opts.seed ?? 1;
  const cases = opts.cases ?? 100;
  const caseMs = opts.caseMs ?? 3000;
  const caseMemoryMb = opts.caseMemoryMb ?? 256;
  const heapLimitMb = opts.heapLimitMb ?? 768;
  const result: FuzzResult = {
    target,
    seed,
    cases,
    ok: 0,
    errors: 0,
    findings: [],
    errorKinds: new Map(),
    maxMs: 0,
    wallMs: 0,
  };
  const t0 = performance.now();
  let from = opts.from ?? 0;
  while (from < cases) {
    from = await new Promise<number>((resolve) => {
      let current = from;
      let settled = false;
      const worker = new Worker(BOOT, {
        workerData: { entry: ENTRY, job: { target, seed, cases, from } satisfies FuzzJob },
        resourceLimits: { maxOldGenerationSizeMb: heapLimitMb },
        stdout: true,
        stderr: true,
      });
      let watchdog: NodeJS.Timeout | undefined;
      const finish = (next: number) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        void worker.terminate();
        resolve(next);
      };
      const arm = () => {
        clearTimeout(watchdog);
        // Generous for the first case (the worker is still loading modules).
        watchdog = setTimeout(
          () => {
            result.findings.push({ case: current, kind: 'hang', detail: `still running after ${4 * caseMs} ms` });
            finish(current + 1);
          },
          4 * caseMs + (current === from ? 30_000 : 0),
        );
      };
      arm();
      worker.on('message', (m: FuzzCaseReport | { type: 'start'; case: number } | { type: 'finished' }) => {
        if (m.type === 'start') {
          current = m.case;
          arm();
        } else if (m.type === 'case') {
          result.maxMs = Math.max(result.maxMs, m.ms);
          if (m.outcome === 'ok') result.ok++;
          else if (m.outcome === 'error') {
            result.errors++;
            const kind = m.message.replace(/\d+/g, 'N').slice(0, 80);
            result.errorKinds.set(kind, (result.errorKinds.get(kind) ?? 0) + 1);
          } else result.findings.push({ case: m.case, kind: 'crash', detail: m.message });
          if (m.ms > caseMs)
            result.findings.push({
              case: m.case,
              kind: 'slow',
              detail: `${m.ms.toFixed(0)} ms > ${caseMs} ms (${m.outcome}: ${m.message.slice(0, 200)})`,
            });
          if (m.memoryMb > caseMemoryMb)
            result.findings.push({
              case: m.case,
              kind: 'memory',
              detail: `grew memory by ${m.memoryMb.toFixed(0)} MB > ${caseMemoryMb} MB`,
            });
        } else if (m.type === 'finished') finish(cases);
      });
      worker.on('error', (e: Error & { code?: string }) => {
        const oom = e.code === 'ERR_WORKER_OUT_OF_MEMORY';
        result.findings.push({
          case: current,
          kind: oom ? 'out-of-memory' : 'worker-died',
          detail: `${e.name}: ${e.message}`.slice(0, 500),
        });
        finish(current + 1);
      });
      worker.on('exit', (code) => {
        if (!settled) {
          result.findings.push({ case: current, kind: 'worker-died', detail: `worker exited with code ${code}` });
          finish(current + 1);
        }
      });
    });
  }
  result.wallMs = performance.now() - t0;
  return result;
}

export function describeFindings(r: FuzzResult): string {
  return r.findings
    .map(
      (f) =>
        `[${r.target}] case ${f.case} (seed ${r.seed}): ${f.kind}: ${f.detail}\n` +
        `  reproduce: npm run fuzz -- --target ${r.target} --seed ${r.seed} --from ${f.case} --cases ${f.case + 1}`,
    )
    .join('\n');
}
