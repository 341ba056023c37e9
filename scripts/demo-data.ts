/**
 * `npm run demo:data`: the larger distillation data set of the demo (issue 18), resumable.
 *
 * For train problems FROM+1 .. FROM+COUNT of public/data/demo-train.jsonl (problems 4,001 on:
 * never used by the demo model's self-play passes), in chunks of CHUNK questions:
 *   1. the demo's debate (scripts/demo.ts DEBATE: 5 agents x 2 rounds, sparse, question restated,
 *      vote, temperature 0.7) → debate.jsonl;
 *   2. five more independent samples of the base per question at the same temperature (a 1-round
 *      "debate", other seeds) → samples.jsonl. With the debate's round 1 these are ten independent
 *      samples per question: the same ten calls the debate spends, spent on the STaR /
 *      self-consistency ablation instead.
 *
 * Both files are trajectory JSONL and resume (a record is written only when its question is
 * finished), so an interrupted run continues where it stopped. The sampler is seeded per agent and
 * prompt, so a rerun into an empty folder reproduces the records' completions (timings aside;
 * checked: problems 4,001–4,006 regenerated with 6 questions in flight instead of 6 of a larger
 * chunk gave the same 90 completions).
 *
 * Environment: DEMO_DATA_OUT (default data/demo-distill, committed: a rerun there does nothing;
 * point it at an empty folder to regenerate), DEMO_DATA_FROM (default 4000), DEMO_DATA_COUNT
 * (default 200: what the shipped students learned from; the rate on the shared 2-core machine
 * allowed no more in the session's budget), DEMO_DATA_CHUNK (default 100), DEMO_DATA_CONCURRENCY
 * (questions at once, default 6: 30 sequences per batch), DEMO_DATA_SAMPLES=0 to skip the
 * independent samples.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalEngine, Runtime } from '../src/engine/local';
import { loadQuestions } from '../src/tasks/datasets';
import { runDebateSet, type DebateOptions } from '../src/teach/debate';
import { DEMO_DEBATE, DEMO_INDEPENDENT_SAMPLES } from '../src/demo/settings';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL = path.join(ROOT, 'public/models/default');
const OUT = path.resolve(ROOT, process.env.DEMO_DATA_OUT ?? 'data/demo-distill');
const FROM = Number(process.env.DEMO_DATA_FROM ?? 4000);
const COUNT = Number(process.env.DEMO_DATA_COUNT ?? 200);
const CHUNK = Number(process.env.DEMO_DATA_CHUNK ?? 100);
const CONCURRENCY = Number(process.env.DEMO_DATA_CONCURRENCY ?? 6);
const SAMPLES = process.env.DEMO_DATA_SAMPLES !== '0';

const t0 = performance.now();
const log = (msg: string) =>
  process.stderr.write(`[demo:data ${((performance.now() - t0) / 1000).toFixed(0)}s] ${msg}\n`);

async function main(): Promise<void> {
  for (const [k, v] of Object.entries({ DEMO_DATA_FROM: FROM, DEMO_DATA_COUNT: COUNT, DEMO_DATA_CHUNK: CHUNK })) {
    if (!Number.isInteger(v) || v < (k === 'DEMO_DATA_FROM' ? 0 : 1))
      throw new Error(
        `${k} must be a ${k === 'DEMO_DATA_FROM' ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(process.env[k])}`,
      );
  }
  await fs.mkdir(OUT, { recursive: true });
  const runtime = await Runtime.load(MODEL, { maxBatch: 32, contextLength: 384 });
  log(`model ${MODEL} on ${runtime.describeBackend()}`);
  const engine = new LocalEngine(runtime);
  const all = await loadQuestions(path.join(ROOT, 'public/data/demo-train.jsonl'), 'gsm8k', { limit: FROM + COUNT });
  if (all.length < FROM + COUNT)
    throw new Error(
      `public/data/demo-train.jsonl has ${all.length} problems; DEMO_DATA_FROM + DEMO_DATA_COUNT = ${FROM + COUNT}`,
    );
  const questions = all.slice(FROM, FROM + COUNT);
  const jobs: [string, DebateOptions][] = [['debate.jsonl', { ...DEMO_DEBATE, concurrency: CONCURRENCY }]];
  if (SAMPLES) jobs.push(['samples.jsonl', { ...DEMO_INDEPENDENT_SAMPLES, concurrency: CONCURRENCY }]);
  for (let c = 0; c < questions.length; c += CHUNK) {
    const chunk = questions.slice(0, c + CHUNK);
    for (const [file, opts] of jobs) {
      const tc = performance.now();
      const res = await runDebateSet(
        chunk,
        { ...opts, engines: engine },
        { out: path.join(OUT, file), onWarning: log },
      );
      if (res.failed.length)
        throw new Error(`${file}: ${res.failed.length} questions failed; first: ${res.failed[0]!.error}`);
      if (res.completed)
        log(
          `${file}: ${res.skipped + res.completed}/${questions.length} questions (${res.completed} in ${((performance.now() - tc) / 1000).toFixed(0)} s, ` +
            `${((performance.now() - tc) / 1000 / res.completed).toFixed(2)} s/question)`,
        );
    }
  }
  log('done');
  runtime.dispose();
}

await main();
process.exit(0);
