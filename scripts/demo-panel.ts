/**
 * `npm run demo:panel`: what makes the demo's debate panel stronger than greedy decoding of the
 * base, measured on held-out problems 101–200 of public/data/demo-test.jsonl (the problems that
 * choose settings; the table is on the others).
 *
 * Each variant is a debate run into OUT/<variant>.jsonl (resumable). From one run of R rounds the
 * script reads every shorter debate too (rounds 1..r of a run are exactly an r-round debate with
 * the same seeds), and for each round reports the agents' accuracy, the vote, and the vote over
 * the answers whose written arithmetic checks (the arithmetic critic, src/demo/arithmetic.ts;
 * answers that all fail fall back to the plain vote). Greedy decoding of the base is the bar.
 *
 * Variants (DEMO_PANEL_VARIANTS, comma-separated; default all):
 *   t07      5 agents x 3 rounds at temperature 0.7 (the demo's debate, one more round);
 *   mixed    5 agents x 3 rounds at temperatures 0, 0.3, 0.5, 0.7, 0.7 (heterogeneous agents: one
 *            greedy, the others sampling at different temperatures);
 *   t03      5 agents x 3 rounds at temperature 0.3.
 * Environment: DEMO_PANEL_OUT (default demo-output/panel).
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalEngine, Runtime } from '../src/engine/local';
import { loadQuestions } from '../src/tasks/datasets';
import { majorityVote, runDebateSet, type DebateOptions } from '../src/teach/debate';
import { readTrajectories, type TrajectoryRecord } from '../src/teach/trajectory';
import { answersEqual, grade, referenceAnswer } from '../src/tasks/answers';
import { arithmeticChecks, checkedVote } from '../src/demo/arithmetic';
import { DEMO_DEBATE, DEMO_SYSTEM, DEMO_MAX_TOKENS } from '../src/demo/settings';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL = path.join(ROOT, 'public/models/default');
const OUT = path.resolve(ROOT, process.env.DEMO_PANEL_OUT ?? 'demo-output/panel');

export const PANEL_VARIANTS: Record<string, DebateOptions> = {
  t07: { ...DEMO_DEBATE, rounds: 3 },
  mixed: { ...DEMO_DEBATE, rounds: 3, agents: [0, 0.3, 0.5, 0.7, 0.7].map((temperature) => ({ temperature })) },
  t03: { ...DEMO_DEBATE, rounds: 3, temperature: 0.3 },
};

function summarize(
  records: TrajectoryRecord[],
): { round: number; agents: number; vote: number; checkedVote: number; agentsChecked: number }[] {
  const rounds = Math.min(...records.map((r) => r.rounds.length));
  const out = [];
  for (let k = 0; k < rounds; k++) {
    let agents = 0;
    let n = 0;
    let vote = 0;
    let checked = 0;
    let agentsChecked = 0;
    for (const r of records) {
      const ref = referenceAnswer('gsm8k', r.reference);
      const ms = r.rounds[k]!.messages;
      for (const m of ms) {
        agents += Number(m.correct);
        agentsChecked += Number(arithmeticChecks(m.completion));
        n++;
      }
      vote += Number(
        answersEqual(
          'gsm8k',
          majorityVote(
            'gsm8k',
            ms.map((m) => m.extracted),
          ).answer,
          ref,
        ),
      );
      checked += Number(answersEqual('gsm8k', checkedVote(ms), ref));
    }
    out.push({
      round: k + 1,
      agents: agents / n,
      vote: vote / records.length,
      checkedVote: checked / records.length,
      agentsChecked: agentsChecked / n,
    });
  }
  return out;
}

async function main(): Promise<void> {
  const names = (process.env.DEMO_PANEL_VARIANTS ?? Object.keys(PANEL_VARIANTS).join(','))
    .split(',')
    .map((s) => s.trim());
  for (const n of names)
    if (!PANEL_VARIANTS[n])
      throw new Error(
        `DEMO_PANEL_VARIANTS: unknown variant ${JSON.stringify(n)} (${Object.keys(PANEL_VARIANTS).join(', ')})`,
      );
  await fs.mkdir(OUT, { recursive: true });
  const runtime = await Runtime.load(MODEL, { maxBatch: 32, contextLength: 384 });
  const engine = new LocalEngine(runtime);
  const questions = (await loadQuestions(path.join(ROOT, 'public/data/demo-test.jsonl'), 'gsm8k')).slice(100, 200);
  // The bar: greedy decoding of the base on the same problems.
  let greedy = 0;
  let greedyChecked = 0;
  await Promise.all(
    questions.map(async (q) => {
      const res = await engine.chat.completions.create({
        messages: [
          { role: 'system', content: DEMO_SYSTEM },
          { role: 'user', content: q.question },
        ],
        temperature: 0,
        max_tokens: DEMO_MAX_TOKENS,
      });
      const text = 'choices' in res ? (res.choices[0]!.message.content ?? '') : '';
      greedy += Number(grade('gsm8k', text, String(q.answer)).correct);
      greedyChecked += Number(arithmeticChecks(text));
    }),
  );
  const result: Record<string, unknown> = {
    questions: 'public/data/demo-test.jsonl problems 101–200',
    greedy: greedy / questions.length,
    greedyArithmeticChecks: greedyChecked / questions.length,
  };
  console.log(`greedy base: ${greedy}/${questions.length} (its arithmetic checks on ${greedyChecked})`);
  for (const name of names) {
    const file = path.join(OUT, `${name}.jsonl`);
    const t = performance.now();
    await runDebateSet(questions, { ...PANEL_VARIANTS[name]!, engines: engine, concurrency: 6 }, { out: file });
    const rows = summarize(await readTrajectories(file));
    result[name] = rows;
    console.log(`${name} (${((performance.now() - t) / 1000).toFixed(0)} s):`);
    for (const r of rows)
      console.log(
        `  round ${r.round}: agents ${(100 * r.agents).toFixed(1)}%, vote ${(100 * r.vote).toFixed(0)}%, ` +
          `arithmetic-checked vote ${(100 * r.checkedVote).toFixed(0)}% (agents whose arithmetic checks ${(100 * r.agentsChecked).toFixed(1)}%)`,
      );
  }
  await fs.writeFile(path.join(OUT, 'panel.json'), JSON.stringify(result, null, 2));
  runtime.dispose();
}

await main();
process.exit(0);
