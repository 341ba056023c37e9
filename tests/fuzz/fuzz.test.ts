/**
 * Seeded mutation fuzzing of every parser of untrusted files, in the suite: each case must end
 * in success or a clear error within its time and memory budget. Short here (a few seconds per
 * parser); `npm run fuzz` runs thousands of cases with a fresh seed. FUZZ_CASES / FUZZ_SEED
 * override the defaults.
 */
import { describe, expect, it } from 'vitest';
import { describeFindings, runFuzz } from './run';
import { TARGETS } from './targets';

const seed = Number(process.env.FUZZ_SEED ?? 20251202);
const CASES: Record<string, number> = {
  safetensors: 60,
  config: 150,
  tokenizer: 100,
  peft: 150,
  trajectory: 120,
  training: 150,
};

describe('parser fuzzers', () => {
  for (const target of Object.keys(TARGETS)) {
    it(`${TARGETS[target]!.name}: every mutated input loads or fails with a clear error, in budget`, async () => {
      const cases = Number(process.env.FUZZ_CASES ?? CASES[target] ?? 100);
      const r = await runFuzz(target, { seed, cases, caseMs: 3000, caseMemoryMb: 256, heapLimitMb: 768 });
      expect(describeFindings(r)).toBe('');
      expect(r.ok + r.errors).toBe(cases);
      // The mutations reach past the first check: several distinct errors, and some inputs still load.
      expect(r.errorKinds.size).toBeGreaterThan(5);
      expect(r.ok).toBeGreaterThan(0);
    });
  }

  it('the harness catches hangs, engine faults and heap exhaustion, naming the case', async () => {
    const r = await runFuzz('_selftest', { seed: 1, cases: 5, caseMs: 250, heapLimitMb: 64 });
    const kinds = r.findings.map((f) => `${f.case}:${f.kind}`);
    expect(kinds).toContain('1:hang');
    expect(kinds).toContain('2:crash');
    expect(kinds.some((k) => k === '3:out-of-memory' || k === '3:worker-died')).toBe(true);
    expect(r.errors).toBe(1); // case 4's clear error is not a finding
    expect(r.ok).toBe(1); // case 0
    expect(describeFindings(r)).toMatch(/reproduce: npm run fuzz -- --target _selftest --seed 1 --from 1 --cases 2/);
  });
});
