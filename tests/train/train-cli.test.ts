/**
 * `agentark train` end to end: PEFT parity with an independent PyTorch step, LoRA lowering the loss,
 * full training from scratch learning a task, kill-and-resume, and clear errors on bad input.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { loadPeftAdapter } from '../../src/formats/peft';
import { parseConfig } from '../../src/formats/config';
import { Runtime } from '../../src/engine/local';
import { writeTinyModel } from '../helpers/tiny-model';
import { writeRandomPeftAdapter } from '../helpers/peft-fixture';
import { agentark, REPO_ROOT } from '../helpers/reference';
import { rng } from '../helpers/rng';
import { testGpu } from '../helpers/gpu';

function tmp(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `agentark-${prefix}-`));
}

function jsonl(rows: unknown[]): string {
  return `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 1e-12;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

describe('agentark train', () => {
  it('one SGD step from a PEFT adapter matches an independent PyTorch implementation', async () => {
    const dir = tmp('parity');
    const config = writeTinyModel(dir, { arch: 'qwen2', dtype: 'F32', tied: true, seed: 21 });
    const init = path.join(dir, 'init-adapter');
    writeRandomPeftAdapter(init, parseConfig(config), {
      r: 4,
      alpha: 8,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      seed: 2,
      nonZeroB: true,
    });
    const data = path.join(dir, 'row.jsonl');
    writeFileSync(
      data,
      jsonl([{ input_ids: [5, 17, 99, 3, 250, 41, 7, 8, 120], labels: [-100, -100, -100, 3, 250, 41, 7, 8, 120] }]),
    );
    const ours = path.join(dir, 'ours');
    agentark([
      'train',
      '--model',
      dir,
      '--data',
      data,
      '--out',
      ours,
      '--init-adapter',
      init,
      '--optimizer',
      'sgd',
      '--lr',
      '0.1',
      '--steps',
      '1',
      '--batch',
      '1',
      '--dropout',
      '0',
      '--quiet',
    ]);
    const ref = path.join(dir, 'torch');
    execFileSync(
      '/usr/bin/python3',
      [
        path.join(REPO_ROOT, 'tests/reference/lora_step.py'),
        '--model',
        dir,
        '--adapter',
        init,
        '--data',
        data,
        '--out',
        ref,
        '--optimizer',
        'sgd',
        '--lr',
        '0.1',
        '--steps',
        '1',
        '--max-grad-norm',
        '1.0',
      ],
      { encoding: 'utf8' },
    );
    const a = await loadPeftAdapter(ours);
    const b = await loadPeftAdapter(ref);
    const before = await loadPeftAdapter(init);
    expect(a.pairs.length).toBe(b.pairs.length);
    for (const p of a.pairs) {
      const q = b.pairs.find((x) => x.layer === p.layer && x.module === p.module)!;
      const p0 = before.pairs.find((x) => x.layer === p.layer && x.module === p.module)!;
      expect(maxRelDiff(p.a.data, q.a.data), `${p.layer}.${p.module}.A`).toBeLessThanOrEqual(1e-3);
      expect(maxRelDiff(p.b.data, q.b.data), `${p.layer}.${p.module}.B`).toBeLessThanOrEqual(1e-3);
      // The step really moved the weights (the comparison is not between two unchanged copies).
      expect(maxRelDiff(q.a.data, p0.a.data)).toBeGreaterThan(1e-6);
    }
  });

  it('LoRA on a small text dataset lowers the loss, and the adapter loads for generation', async () => {
    const dir = tmp('lora');
    writeTinyModel(dir, { arch: 'llama', dtype: 'BF16', seed: 4 });
    const data = path.join(dir, 'chat.jsonl');
    const rows = Array.from({ length: 12 }, (_, i) => ({
      messages: [
        { role: 'user', content: `What is ${i} plus ${i}?` },
        { role: 'assistant', content: `${i} plus ${i} is ${2 * i}.` },
      ],
    }));
    writeFileSync(data, jsonl(rows));
    const out = path.join(dir, 'adapter');
    const summary = JSON.parse(
      agentark([
        'train',
        '--model',
        dir,
        '--data',
        data,
        '--out',
        out,
        '--rank',
        '8',
        '--alpha',
        '16',
        '--targets',
        'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj',
        '--lr',
        '5e-3',
        '--steps',
        '30',
        '--batch',
        '4',
        '--schedule',
        'constant',
        '--quiet',
      ]).stdout,
    );
    expect(summary.finalLoss).toBeLessThan(summary.firstLoss * 0.7);
    expect(existsSync(path.join(out, 'adapter_config.json'))).toBe(true);
    const cfg = JSON.parse(readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg.peft_type).toBe('LORA');
    const gen = JSON.parse(
      agentark([
        'generate',
        '--model',
        dir,
        '--adapter',
        out,
        '--ids',
        '1,2,3',
        '--max-tokens',
        '4',
        '--ignore-eos',
        '--json',
      ]).stdout,
    );
    expect(gen.generated.length).toBe(4);
    // Hot swap: the same runtime with and without the adapter gives different logits.
    const rt = await Runtime.load(dir, { gpu: await testGpu(), maxBatch: 1, contextLength: 64 });
    const base = await rt.logits([1, 2, 3]);
    await rt.adapters.load('trained', out);
    rt.adapters.activate('trained');
    const tuned = await rt.logits([1, 2, 3]);
    rt.adapters.activate(null);
    const again = await rt.logits([1, 2, 3]);
    expect(maxRelDiff(tuned, base)).toBeGreaterThan(1e-3);
    expect(Array.from(again)).toEqual(Array.from(base));
    // Merging the adapter into the base gives the logits of base + adapter.
    const merged = path.join(dir, 'merged');
    agentark(['merge', '--model', dir, '--adapter', out, '--out', merged]);
    const logitsMerged = JSON.parse(
      agentark(['logits', '--model', merged, '--ids', '1,2,3', '--dtype', 'f32']).stdout,
    ).logits.flat();
    const logitsAdapter = JSON.parse(
      agentark(['logits', '--model', dir, '--adapter', out, '--ids', '1,2,3', '--dtype', 'f32']).stdout,
    ).logits.flat();
    expect(maxRelDiff(Float32Array.from(logitsMerged), Float32Array.from(logitsAdapter))).toBeLessThan(2e-2); // BF16 rounding of the merged weights
  });

  it('--mode full from scratch learns a synthetic task to > 95% accuracy', async () => {
    const dir = tmp('scratch');
    writeTinyModel(dir, {
      arch: 'llama',
      dtype: 'F32',
      hidden: 48,
      layers: 2,
      heads: 4,
      kvHeads: 2,
      intermediate: 96,
      seed: 1,
    });
    // Task: continue an arithmetic progression mod 40 (step 1..3): x, x+s, x+2s, ...
    const r = rng(7);
    const seq = () => {
      const s = 1 + Math.floor(r() * 3);
      const x = Math.floor(r() * 40);
      return Array.from({ length: 12 }, (_, i) => 10 + ((x + i * s) % 40));
    };
    const data = path.join(dir, 'seq.jsonl');
    writeFileSync(data, jsonl(Array.from({ length: 256 }, () => ({ input_ids: seq() }))));
    const out = path.join(dir, 'trained');
    agentark([
      'train',
      '--model',
      dir,
      '--from-scratch',
      '--mode',
      'full',
      '--data',
      data,
      '--out',
      out,
      '--lr',
      '1e-2',
      '--steps',
      '120',
      '--batch',
      '16',
      '--schedule',
      'cosine',
      '--warmup',
      '10',
      '--seed',
      '3',
      '--quiet',
      '--context-length',
      '16',
    ]);
    const rt = await Runtime.load(out, { gpu: await testGpu(), maxBatch: 8, contextLength: 16 });
    let correct = 0;
    let total = 0;
    for (let k = 0; k < 40; k++) {
      const s = seq();
      const logits = await rt.logits(s.slice(0, 11));
      const V = rt.model.config.vocabSize;
      for (let t = 3; t < 11; t++) {
        const row = logits.subarray(t * V, (t + 1) * V);
        let best = 0;
        for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
        correct += best === s[t + 1] ? 1 : 0;
        total++;
      }
    }
    expect(correct / total).toBeGreaterThan(0.95);
  });

  it('a run killed mid-way and resumed ends with the same adapter as an uninterrupted run', async () => {
    const dir = tmp('resume');
    writeTinyModel(dir, { arch: 'qwen3', dtype: 'F32', seed: 9 });
    const data = path.join(dir, 'text.jsonl');
    writeFileSync(
      data,
      jsonl(Array.from({ length: 10 }, (_, i) => ({ text: `line ${i}: the quick brown fox ${i % 3}` }))),
    );
    const common = [
      '--model',
      dir,
      '--data',
      data,
      '--steps',
      '8',
      '--batch',
      '2',
      '--grad-accum',
      '2',
      '--dropout',
      '0.1',
      '--lr',
      '1e-2',
      '--checkpoint-every',
      '3',
      '--seed',
      '5',
      '--quiet',
    ];
    const straight = path.join(dir, 'straight');
    agentark(['train', ...common, '--out', straight]);
    const killed = path.join(dir, 'killed');
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [path.join(REPO_ROOT, 'bin/agentark.js'), 'train', ...common.filter((a) => a !== '--quiet'), '--out', killed],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let err = '';
      child.stderr.on('data', (d) => {
        err += d;
        if (/step 5\/8/.test(err)) child.kill('SIGKILL');
      });
      child.on('exit', (code, signal) =>
        signal === 'SIGKILL' ? resolve() : reject(new Error(`expected a kill, got exit ${code}: ${err}`)),
      );
    });
    expect(JSON.parse(readFileSync(path.join(killed, 'checkpoint', 'trainer_state.json'), 'utf8')).state.step).toBe(3);
    agentark(['train', ...common, '--out', killed, '--resume']);
    const a = readFileSync(path.join(straight, 'adapter_model.safetensors'));
    const b = readFileSync(path.join(killed, 'adapter_model.safetensors'));
    expect(Buffer.compare(a, b)).toBe(0);
    // --stop-after ends a run early on the same schedule; --resume finishes it identically.
    const staged = path.join(dir, 'staged');
    const first = JSON.parse(agentark(['train', ...common, '--out', staged, '--stop-after', '4']).stdout);
    expect(first.steps).toBe(4);
    expect(JSON.parse(readFileSync(path.join(staged, 'checkpoint', 'trainer_state.json'), 'utf8')).state.step).toBe(4);
    expect(JSON.parse(agentark(['train', ...common, '--out', staged, '--resume']).stdout).steps).toBe(8);
    expect(Buffer.compare(a, readFileSync(path.join(staged, 'adapter_model.safetensors')))).toBe(0);
  });

  it('bad inputs are clear errors', async () => {
    const dir = tmp('bad');
    const config = writeTinyModel(dir, { arch: 'llama', dtype: 'F32', seed: 2 });
    const good = path.join(dir, 'good.jsonl');
    writeFileSync(good, jsonl([{ text: 'hello world' }]));
    const run = (args: string[]) =>
      agentark(['train', '--model', dir, '--out', path.join(dir, 'o'), '--quiet', ...args], { allowFail: true });
    // An adapter whose shapes don't fit the base.
    const other = tmp('other');
    const otherCfg = writeTinyModel(other, { arch: 'llama', dtype: 'F32', hidden: 48, seed: 3 });
    const wrong = path.join(dir, 'wrong-adapter');
    writeRandomPeftAdapter(wrong, parseConfig(otherCfg), {
      r: 2,
      alpha: 4,
      targets: ['q_proj'],
      seed: 1,
      nonZeroB: true,
    });
    let r = run(['--data', good, '--init-adapter', wrong]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/q_proj.*shape|shape.*q_proj/i);
    r = run(['--data', good, '--rank', '0']);
    expect(r.stderr).toMatch(/rank must be a positive integer/);
    r = run(['--data', good, '--targets', 'q_proj,c_attn']);
    expect(r.stderr).toMatch(/c_attn.*does not exist/);
    const empty = path.join(dir, 'empty.jsonl');
    writeFileSync(empty, '\n');
    r = run(['--data', empty]);
    expect(r.stderr).toMatch(/empty/i);
    const long = path.join(dir, 'long.jsonl');
    writeFileSync(long, jsonl([{ input_ids: Array.from({ length: 40 }, (_, i) => i + 1) }]));
    r = run(['--data', long, '--context-length', '32']);
    expect(r.stderr).toMatch(/40 tokens.*longer than the context/);
    // A NaN loss stops training and keeps the last good checkpoint.
    const nanOut = path.join(dir, 'nan');
    r = agentark(
      [
        'train',
        '--model',
        dir,
        '--data',
        good,
        '--out',
        nanOut,
        '--lr',
        '1e30',
        '--optimizer',
        'sgd',
        '--max-grad-norm',
        '0',
        '--steps',
        '6',
        '--checkpoint-every',
        '1',
        '--batch',
        '1',
        '--mode',
        'full',
        '--quiet',
      ],
      { allowFail: true },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/became (NaN|Infinity|-Infinity).*last good checkpoint \(step \d+\)/);
    const kept = JSON.parse(readFileSync(path.join(nanOut, 'checkpoint', 'trainer_state.json'), 'utf8'));
    expect(Number.isFinite(kept.state.lastLoss)).toBe(true);
    void config;
  });
});
