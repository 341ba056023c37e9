/**
 * DA and R-SFT on a real multi-round debate: the embedded demo model's own sparse 5 × 2 debate
 * (the settings `npm run demo` uses, seeded), where round-2 agents both fix and break answers.
 * No trained turn of any row may end in a wrong final answer: the self-correction rows keep the
 * wrong first attempt in the untrained prompt.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCorrect, recordReference, type PromptCompletionRow, type SftRow } from '../../src/distill/common';
import { buildDa } from '../../src/distill/da';
import { buildRsft } from '../../src/distill/rsft';
import { LocalEngine, Runtime } from '../../src/engine/local';
import type { ChatMessage } from '../../src/engine/types';
import { loadQuestions } from '../../src/tasks/datasets';
import { SMALL_MODEL_DEBATE, runDebate } from '../../src/teach/debate';
import type { TrajectoryRecord } from '../../src/teach/trajectory';
import { testGpu } from '../helpers/gpu';
import { REPO_ROOT } from '../helpers/reference';

/** The assistant turns a trainer learns from: the completion of a prompt-completion row, every assistant turn of a messages row. */
function trainedTurns(row: SftRow): ChatMessage[] {
  return 'completion' in row ? row.completion : row.messages.filter((m) => m.role === 'assistant');
}

describe("DA on the embedded model's own 5 x 2 debate", () => {
  it('self-correction rows exist, and no trained turn of a DA or R-SFT row ends in a wrong answer', async () => {
    const runtime = await Runtime.load(path.join(REPO_ROOT, 'public/models/default'), {
      gpu: await testGpu(),
      maxBatch: 5,
      contextLength: 384,
    });
    const engine = new LocalEngine(runtime);
    const questions = await loadQuestions(path.join(REPO_ROOT, 'public/data/demo-train.jsonl'), 'gsm8k', { limit: 6 });
    const records: TrajectoryRecord[] = [];
    for (const q of questions) {
      records.push(
        await runDebate(
          q,
          {
            numAgents: 5,
            rounds: 2,
            aggregator: 'vote',
            ...SMALL_MODEL_DEBATE,
            temperature: 0.7,
            max_tokens: 64,
            seed: 7,
          },
          engine,
        ),
      );
    }
    // The debate fixes and breaks answers between rounds (what makes this test mean something).
    let fixes = 0;
    let breaks = 0;
    for (const r of records) {
      r.rounds[0]!.messages.forEach((m, i) => {
        const later = r.rounds[1]!.messages[i]!;
        if (!m.correct && later.correct) fixes++;
        if (m.correct && !later.correct) breaks++;
      });
    }
    console.log(`real debate: ${records.length} questions, ${fixes} wrong→right, ${breaks} right→wrong`);
    expect(fixes).toBeGreaterThan(0);
    expect(breaks).toBeGreaterThan(0);

    for (const format of ['messages', 'prompt-completion'] as const) {
      const da = buildDa(records, { format });
      const rsft = buildRsft(records, { format });
      const sc = da.rows.filter((r) => r.source === 'da-selfcorrect') as PromptCompletionRow[];
      expect(sc.length).toBeGreaterThan(0);
      for (const row of sc) {
        // The wrong attempt is in the prompt, graded wrong; the completion is the fix alone.
        expect('prompt' in row && 'completion' in row).toBe(true);
        expect(row.completion).toHaveLength(1);
        const rec = records.find((r) => row.id.startsWith(`${r.id}#`))!;
        const attempt = row.prompt.filter((m) => m.role === 'assistant');
        expect(attempt).toHaveLength(1);
        expect(isCorrect('gsm8k', attempt[0]!.content, recordReference(rec))).toBe(false);
      }
      for (const row of [...da.rows, ...rsft.rows]) {
        const rec = records.find((r) => row.id === r.id || row.id.startsWith(`${r.id}#`))!;
        for (const turn of trainedTurns(row))
          expect(isCorrect('gsm8k', turn.content, recordReference(rec)), `${format} ${row.id}`).toBe(true);
      }
    }
  });
});
