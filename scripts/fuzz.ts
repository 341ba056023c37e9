/**
 * `npm run fuzz`: the parser fuzzers of `npm test`, longer. Each target runs in its own worker
 * with a heap limit and a watchdog; exits 1 if any case hangs, crashes, runs out of memory or
 * breaks an invariant, printing how to reproduce it.
 *
 *   npm run fuzz -- [--cases N] [--seed S] [--from I] [--target NAME]... [--case-ms MS]
 */
import { parseArgs } from 'node:util';
import { describeFindings, runFuzz } from '../tests/fuzz/run';
import { TARGETS } from '../tests/fuzz/targets';

const { values } = parseArgs({
  options: {
    cases: { type: 'string' },
    seed: { type: 'string' },
    from: { type: 'string' },
    target: { type: 'string', multiple: true },
    'case-ms': { type: 'string' },
  },
});
const targets = values.target ?? Object.keys(TARGETS);
for (const t of targets)
  if (!TARGETS[t]) throw new Error(`unknown fuzz target ${t}; known: ${Object.keys(TARGETS).join(', ')}`);
const seed = Number(values.seed ?? Date.now() % 1_000_000);
const cases = Number(values.cases ?? 5000);
let failed = false;
for (const target of targets) {
  const r = await runFuzz(target, {
    seed,
    cases,
    caseMs: Number(values['case-ms'] ?? 3000),
    ...(values.from ? { from: Number(values.from) } : {}),
  });
  const ran = r.ok + r.errors + r.findings.filter((f) => f.kind !== 'slow' && f.kind !== 'memory').length;
  console.log(
    `${target}: ${ran} cases (seed ${seed}) in ${(r.wallMs / 1000).toFixed(1)} s: ${r.ok} ok, ` +
      `${r.errors} clear errors (${r.errorKinds.size} kinds), slowest ${r.maxMs.toFixed(0)} ms, ${r.findings.length} findings`,
  );
  if (r.findings.length) {
    failed = true;
    console.log(describeFindings(r));
  }
}
process.exit(failed ? 1 : 0);
