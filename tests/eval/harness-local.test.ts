/**
 * `agentark eval` on the local engine: a tiny model on the CPU backend with a student LoRA
 * adapter loaded next to the base on the same Runtime. Checks that the base systems run with no
 * adapter active and the student with its adapter, and that the adapter is loaded once.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/cli/eval';
import { AdapterRegistry } from '../../src/engine/adapters';
import { Runtime } from '../../src/engine/local';
import { parseConfig } from '../../src/formats/config';
import { parseEvalReport } from '../../src/eval/report';
import { writeRandomPeftAdapter } from '../helpers/peft-fixture';
import { writeTinyModel } from '../helpers/tiny-model';

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'eval-local-'));
});
afterAll(async () => {
  vi.restoreAllMocks();
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('agentark eval --model --adapter (local engine, CPU)', () => {
  it('runs single, debate and student on one runtime, switching the adapter per system', async () => {
    const model = path.join(dir, 'model');
    const config = writeTinyModel(model, { arch: 'qwen2', dtype: 'F32', tied: true, seed: 11, hidden: 32, layers: 1 });
    const adapter = path.join(dir, 'my-adapter');
    writeRandomPeftAdapter(adapter, parseConfig(config), { r: 2, alpha: 4, targets: ['q_proj', 'v_proj'], seed: 3 });
    const data = path.join(dir, 'q.jsonl');
    await fsp.writeFile(
      data,
      [
        '{"question": "Ann has 2 pens. How many?", "answer": "#### 2"}',
        '{"question": "Bo has 3 cups. How many?", "answer": "#### 3"}',
      ].join('\n'),
    );

    const active: (string | null)[] = [];
    const original = Runtime.prototype.generate;
    const spy = vi.spyOn(Runtime.prototype, 'generate').mockImplementation(function (this: Runtime, req) {
      active.push(this.adapters.activeName());
      return original.call(this, req);
    });
    const loads = vi.spyOn(AdapterRegistry.prototype, 'load');
    const out = path.join(dir, 'report.json');
    let stdout = '';
    const o = vi
      .spyOn(process.stdout, 'write')
      .mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
    const e = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    try {
      code = await run([
        '--data',
        data,
        '--model',
        model,
        '--adapter',
        adapter,
        '--backend',
        'cpu',
        '--debate-agents',
        '2',
        '--debate-rounds',
        '1',
        '--debate-aggregator',
        'vote',
        '--sc-samples',
        '2',
        '--max-tokens',
        '3',
        '--no-robustness',
        '--no-self-correction',
        '--out',
        out,
        '--quiet',
      ]);
    } finally {
      o.mockRestore();
      e.mockRestore();
      spy.mockRestore();
    }
    expect(code).toBe(0);
    const report = parseEvalReport(await fsp.readFile(out, 'utf8'));
    // The default: every system greedy, then sampled (self-consistency only sampled).
    expect(report.systems.map((s) => [s.name, s.kind, s.cost.calls, s.meta])).toEqual([
      ['single [greedy]', 'single', 2, { role: 'base', model: expect.any(String) }],
      ['debate [greedy]', 'debate', 4, expect.objectContaining({ agents: '2', rounds: '1', aggregator: 'vote' })],
      ['student [greedy]', 'single', 2, { role: 'student', adapter }],
      ['single [sampled]', 'single', 2, { role: 'base', model: expect.any(String) }],
      ['self-consistency [sampled]', 'self-consistency', 4, expect.objectContaining({ role: 'base', samples: '2' })],
      ['debate [sampled]', 'debate', 4, expect.objectContaining({ agents: '2', rounds: '1', aggregator: 'vote' })],
      ['student [sampled]', 'single', 2, { role: 'student', adapter }],
    ]);
    // Base systems with no adapter, the student with its own; the base model was loaded once.
    const student = 'student:my-adapter';
    expect(active).toEqual([...Array(6).fill(null), student, student, ...Array(10).fill(null), student, student]);
    expect(loads).toHaveBeenCalledTimes(1);
    for (const s of report.systems) {
      expect(s.cost.promptTokens).toBeGreaterThan(0);
      expect(s.cost.completionTokens).toBeGreaterThan(0);
      expect(s.cost.completionTokens).toBeLessThanOrEqual(3 * s.cost.calls);
    }
    expect(stdout).toContain('| student [sampled] | single |');
  });
});
