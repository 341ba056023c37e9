/**
 * `agentark logits` and greedy `agentark generate` against an independent PyTorch implementation of
 * the HF models, on tiny random checkpoints written in exact HF layout.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeTinyModel, type TinyModelOptions } from '../helpers/tiny-model';
import { agentark, torchReference } from '../helpers/reference';
import { maxRelErr } from '../helpers/rng';

const cases: (TinyModelOptions & { label: string })[] = [
  {
    label: 'llama F32 untied + llama3 rope_scaling',
    arch: 'llama',
    dtype: 'F32',
    tied: false,
    ropeScaling: true,
    seed: 11,
  },
  { label: 'llama BF16 tied, sharded', arch: 'llama', dtype: 'BF16', tied: true, sharded: true, seed: 12 },
  { label: 'qwen2 F32 tied (q/k/v bias)', arch: 'qwen2', dtype: 'F32', tied: true, seed: 13 },
  { label: 'qwen2 BF16 untied', arch: 'qwen2', dtype: 'BF16', tied: false, seed: 14 },
  {
    label: 'qwen3 F32 untied (q/k norm, head_dim != hidden/heads)',
    arch: 'qwen3',
    dtype: 'F32',
    tied: false,
    seed: 15,
  },
  { label: 'qwen3 BF16 tied', arch: 'qwen3', dtype: 'BF16', tied: true, seed: 16 },
  { label: 'mistral BF16 untied', arch: 'mistral', dtype: 'BF16', tied: false, seed: 17 },
];

const ids = [5, 99, 3, 250, 17, 64, 1, 200, 33];

describe('HF parity: agentark logits / generate vs PyTorch', () => {
  for (const c of cases) {
    it(c.label, () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'agentark-parity-'));
      writeTinyModel(dir, c);
      const ref = torchReference(dir, ids, { greedy: 16 });
      const ours = JSON.parse(agentark(['logits', '--model', dir, '--ids', ids.join(',')]).stdout) as {
        ids: number[];
        logits: number[][];
      };
      expect(ours.ids).toEqual(ids);
      expect(ours.logits.length).toBe(ids.length);
      for (let t = 0; t < ids.length; t++) {
        expect(ours.logits[t].length).toBe(ref.logits[t].length);
        expect(maxRelErr(ours.logits[t], ref.logits[t]), `position ${t}`).toBeLessThanOrEqual(1e-3);
      }
      const gen = JSON.parse(
        agentark(['generate', '--model', dir, '--ids', ids.join(','), '--max-tokens', '16', '--ignore-eos', '--json'])
          .stdout,
      );
      expect(gen.ids).toEqual(ids);
      expect(gen.generated).toEqual(ref.greedy);
      expect(typeof gen.text).toBe('string');
      expect(gen.timings.prefillMs).toBeGreaterThan(0);
    });
  }
});
