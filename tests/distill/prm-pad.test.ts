/**
 * PAD's PRM and reward as in AgentArk: the supervised contrastive term (gradient checked by finite
 * differences), the head fitted with and without it, PURE's PRMVR token rewards (computed by hand),
 * and the PRM reading the frozen base whatever adapter the policy has on.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Runtime } from '../../src/engine/local';
import {
  auc,
  fitPrmHead,
  parsePrmHead,
  scoreFeature,
  serializePrmHead,
  stepEnds,
  stepFeatures,
  supConLoss,
} from '../../src/distill/prm';
import {
  PAPER_RL_OPTIONS,
  prmvrGroupRewards,
  runRl,
  softminWeighted,
  stepSpans,
  tokenAdvantages,
} from '../../src/distill/rl';
import { DEFAULT_TRAIN_OPTIONS, Trainer } from '../../src/train/trainer';
import { uploadAdapter } from '../../src/engine/adapters';
import { randomPeftAdapter } from '../helpers/peft-fixture';
import { writeTinyModel } from '../helpers/tiny-model';
import { testGpu } from '../helpers/gpu';
import { rng } from '../helpers/rng';

describe('supervised contrastive term', () => {
  it('matches finite differences of its loss', () => {
    const r = rng(5);
    const a = Array.from({ length: 6 }, () => Float32Array.from({ length: 4 }, () => r() * 2 - 1));
    const labels = [true, false, true, true, false, false];
    const { loss, grad } = supConLoss(a, labels, 0.5);
    expect(loss).toBeGreaterThan(0);
    const h = 1e-3;
    for (const [i, k] of [
      [0, 0],
      [1, 3],
      [4, 2],
      [5, 1],
    ] as const) {
      const plus = a.map((v) => Float32Array.from(v));
      const minus = a.map((v) => Float32Array.from(v));
      plus[i]![k] += h;
      minus[i]![k] -= h;
      const fd = (supConLoss(plus, labels, 0.5).loss - supConLoss(minus, labels, 0.5).loss) / (2 * h);
      expect(grad[i]![k]!).toBeCloseTo(fd, 2);
    }
  });

  it('has no anchor, and no gradient, when no row has a same-label partner', () => {
    const { loss, grad } = supConLoss([Float32Array.of(1, 0), Float32Array.of(0, 1)], [true, false], 0.1);
    expect(loss).toBe(0);
    expect(grad.every((g) => g.every((x) => x === 0))).toBe(true);
  });
});

describe('PRM head', () => {
  // Two noisy clusters in 6 dimensions; held-out AUC for both objectives.
  const r = rng(11);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const make = (n: number) => {
    const feats: Float32Array[] = [];
    const labels: boolean[] = [];
    for (let i = 0; i < n; i++) {
      const y = i % 2 === 0;
      feats.push(Float32Array.from({ length: 6 }, (_, k) => (k < 2 ? (y ? 1 : -1) : 0) + 1.2 * gauss()));
      labels.push(y);
    }
    return { feats, labels };
  };
  const train = make(160);
  const test = make(80);

  it('BCE + 0.5 x SupCon and BCE alone both learn; the file round-trips', () => {
    for (const contrastive of [0.5, 0]) {
      const { head, losses } = fitPrmHead(train.feats, train.labels, { epochs: 40, seed: 1, contrastive, dim: 8 });
      expect(losses[losses.length - 1]).toBeLessThan(losses[0]!);
      const a = auc(
        test.feats.map((f) => scoreFeature(head, f)),
        test.labels,
      );
      expect(a, `contrastive ${contrastive}`).toBeGreaterThan(0.8);
      const back = parsePrmHead(serializePrmHead(head, { contrastive: String(contrastive) }));
      expect(back.proj!.dim).toBe(8);
      expect(scoreFeature(back, test.feats[0]!)).toBeCloseTo(scoreFeature(head, test.feats[0]!), 6);
    }
  });

  it('the contrastive weight changes the fit (it is not a no-op as in finetune2.py with --fix_llm)', () => {
    const a = fitPrmHead(train.feats, train.labels, { epochs: 5, seed: 1, contrastive: 0.5, dim: 8 }).head;
    const b = fitPrmHead(train.feats, train.labels, { epochs: 5, seed: 1, contrastive: 0, dim: 8 }).head;
    expect(Array.from(a.proj!.weight)).not.toEqual(Array.from(b.proj!.weight));
  });
});

describe('PRMVR rewards (PURE, reward_baseline token)', () => {
  it('splits a completion into steps at tokens ending in a blank line; the last step ends at the last token', () => {
    const text: Record<number, string> = { 1: 'a', 2: ' b', 3: '.\n\n', 4: 'c', 5: '\n\n', 6: 'd', 7: '<eos>' };
    expect(stepSpans([1, 2, 3, 4, 5, 6, 7], (t) => text[t]!)).toEqual([
      { start: 0, end: 2, separator: true },
      { start: 3, end: 4, separator: true },
      { start: 5, end: 6, separator: false },
    ]);
    // A completion that ends on a separator: that token ends the last step.
    expect(stepSpans([1, 3], (t) => text[t]!)).toEqual([{ start: 0, end: 1, separator: false }]);
  });

  it('softmin weighting tends to the weakest step', () => {
    const w = softminWeighted([0.9, -0.5, 0.8], 0.1);
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(-0.5, 4);
    expect(softminWeighted([0.5, 0.5], 0.1)).toEqual([0.25, 0.25]);
  });

  it('token rewards and advantages of a group, by hand', () => {
    // Two samples of one prompt. A: 4 tokens, steps end at 1 and 3 (1 and 1 tokens before the end),
    // scores [0.5, 0.5] → weighted [0.25, 0.25], outcome 0.5, right (VR 0). B: 2 tokens, one step
    // ending at 1 (1 token before), score −1 → −1, wrong (VR −1).
    const [a, b] = prmvrGroupRewards(
      [
        {
          length: 4,
          steps: [
            { end: 1, tokens: 1 },
            { end: 3, tokens: 1 },
          ],
          scores: [0.5, 0.5],
          verifiable: 0,
        },
        { length: 2, steps: [{ end: 1, tokens: 1 }], scores: [-1], verifiable: -1 },
      ],
      { temperature: 0.1, verifiableCoef: 1 },
    );
    // A's baseline per token: B's outcome / B's length = −1/2; per step −(−0.5)·1 = +0.5.
    // A's VR: 0 − (−1) = +1 at the last token.
    expect(Array.from(a!)).toEqual([0, 0.25 + 0.5, 0, 0.25 + 0.5 + 1]);
    // B's baseline per token: 0.5/4 = 0.125; VR −1 − 0 = −1.
    expect(Array.from(b!)).toEqual([0, -1 - 0.125 - 1]);
    // Returns from each token to the end, zero on step ends.
    expect(Array.from(tokenAdvantages(a!, [1, 3]))).toEqual([2.5, 0, 1.75, 0]);
  });
});

describe('the PRM reads the frozen base', () => {
  it('step features, and so the PRM reward, do not change when only the adapter changes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-prm-base-'));
    const config = writeTinyModel(dir, { arch: 'qwen2', dtype: 'F32', seed: 3 });
    const runtime = await Runtime.load(dir, { gpu: await testGpu(), maxBatch: 1, contextLength: 64 });
    try {
      const row = { prompt: 'What is 2 + 3?', completions: ['2 + 3 = 5', 'The answer is 5'], labels: [true, true] };
      const { ends } = stepEnds(runtime, row);
      expect(ends).toHaveLength(2);
      const none = await stepFeatures(runtime, row);
      const logitsBase = await runtime.logits([1, 2, 3]);
      const withAdapter = async (seed: number) => {
        const w = uploadAdapter(
          runtime.model.backend,
          runtime.model.config,
          randomPeftAdapter(config as unknown as Record<string, unknown>, { r: 4, alpha: 8, seed }),
        );
        runtime.model.setAdapter(w as never);
        // The adapter does change the model…
        expect(Array.from(await runtime.logits([1, 2, 3]))).not.toEqual(Array.from(logitsBase));
        const f = await stepFeatures(runtime, row);
        // …and is still on afterwards.
        expect(runtime.model.getAdapter()).toBe(w);
        return f;
      };
      const a = await withAdapter(1);
      const b = await withAdapter(2);
      for (const f of [a, b]) f.forEach((x, k) => expect(Array.from(x)).toEqual(Array.from(none[k]!)));
    } finally {
      // Not disposed: the runtime shares this file's GPU device with the next test.
      runtime.model.setAdapter(null);
    }
  });
});

describe('runRl in prmvr mode', () => {
  it("passes each completion's steps to the reward, trains the LoRA, and reports finite numbers", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-prmvr-'));
    writeTinyModel(dir, { arch: 'qwen2', dtype: 'F32', seed: 12 });
    const runtime = await Runtime.load(dir, { gpu: await testGpu(), maxBatch: 4, contextLength: 64 });
    try {
      const prompts = [{ id: 'p', prompt: [5, 6, 7] }];
      const trainer = new Trainer(
        runtime.model,
        prompts.map((p) => ({ inputIds: p.prompt, labels: p.prompt })),
        {
          ...DEFAULT_TRAIN_OPTIONS,
          mode: 'lora',
          rank: 2,
          alpha: 4,
          targets: ['q_proj', 'v_proj'],
          lr: 1e-2,
          schedule: 'constant',
          steps: 100,
          seed: 1,
        },
      );
      const before = await trainer.adapter();
      const seen: number[] = [];
      const reports = await runRl(
        runtime,
        trainer,
        prompts,
        (s) => {
          seen.push(s.steps.length);
          expect(s.steps.length).toBeGreaterThan(0);
          // Right when the completion has an even number of tokens: a verifiable signal.
          return { stepScores: s.steps.map((_, k) => (k % 2 ? 0.5 : -0.5)), correct: s.tokens.length % 2 === 0 };
        },
        {
          ...PAPER_RL_OPTIONS,
          groupSize: 4,
          promptsPerStep: 1,
          steps: 2,
          maxTokens: 6,
          sampling: { temperature: 1 },
          seed: 2,
        },
      );
      expect(seen).toHaveLength(8);
      expect(reports).toHaveLength(2);
      for (const r of reports) {
        expect(Number.isFinite(r.meanReward)).toBe(true);
        expect(Number.isFinite(r.meanKl)).toBe(true);
      }
      const after = await trainer.adapter();
      const changed = after.pairs.some((p, i) => Array.from(p.b.data).some((x, k) => x !== before.pairs[i]!.b.data[k]));
      expect(changed).toBe(true);
      trainer.dispose();
    } finally {
      runtime.model.setAdapter(null);
    }
  });
});
