import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/formats/config';
import { loadPeftAdapter } from '../../src/formats/peft';
import { HFTokenizer } from '../../src/formats/tokenizer';
import {
  batchExamples,
  loadTrainingData,
  parseTrainingJsonl,
  tokenizeRow,
  type TrainExample,
} from '../../src/train/data';
import { writeRandomPeftAdapter } from '../helpers/peft-fixture';
import { REPO_ROOT, torchReference } from '../helpers/reference';
import { serveDirectory, tinyTokenizer, writeTinyModel } from '../helpers/tiny-model';

const PYTHON = process.env.AGENTARK_TORCH_PYTHON ?? '/usr/bin/python3';

function load(arch: 'qwen2' | 'llama', chatTemplate?: string) {
  const files = tinyTokenizer(arch);
  const config = chatTemplate ? { ...files.tokenizerConfig, chat_template: chatTemplate } : files.tokenizerConfig;
  return { tok: new HFTokenizer(files.tokenizerJson, config), ids: files.ids, size: files.size };
}

/** Maximal runs of labelled positions, each as [start, end). */
function labelledRuns(ex: TrainExample): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < ex.labels.length; i++) {
    if (ex.labels[i] === -100) continue;
    if (runs.length && runs[runs.length - 1][1] === i) runs[runs.length - 1][1] = i + 1;
    else runs.push([i, i + 1]);
  }
  return runs;
}

const CHAT = {
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hello world' },
    { role: 'assistant', content: 'The world is round.' },
    { role: 'user', content: 'What is it?' },
    { role: 'assistant', content: 'It is a sphere, and you?' },
  ],
};

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-data-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('tokenizeRow: messages', () => {
  for (const arch of ['qwen2', 'llama'] as const) {
    it(`${arch}: renders the ChatML template and labels only the assistant turns (+ <|im_end|>)`, () => {
      const { tok, ids } = load(arch);
      const ex = tokenizeRow(CHAT, tok, { maxLength: 512 }, 'train.jsonl:1 row 1');
      expect(ex.labels.length).toBe(ex.inputIds.length);
      // The token sequence is the whole conversation as the template renders it.
      expect(tok.decode(ex.inputIds)).toBe(tok.applyChatTemplate(CHAT.messages, { addGenerationPrompt: false }));
      if (arch === 'llama') expect(ex.inputIds[0]).toBe(ids.bos);
      // Labels equal the ids where set.
      ex.labels.forEach((l, i) => expect(l === -100 || l === ex.inputIds[i]).toBe(true));
      const spans = labelledRuns(ex).map(([s, e]) => tok.decode(ex.inputIds.slice(s, e)));
      expect(spans).toEqual(['The world is round.<|im_end|>', 'It is a sphere, and you?<|im_end|>']);
      // Nothing of the system/user turns or the role headers is labelled.
      const labelledText = spans.join('');
      for (const text of ['Be brief', 'Hello', 'What is it', 'system', 'user', 'assistant', '<|im_start|>']) {
        expect(labelledText).not.toContain(text);
      }
      // Every <|im_end|> of an assistant turn is labelled, the others are not.
      const imEnds = ex.inputIds.flatMap((id, i) => (id === ids.imEnd ? [ex.labels[i] !== -100] : []));
      expect(imEnds).toEqual([false, false, true, false, true]);
    });
  }

  it('rejects a template that does not render incrementally, naming the row', () => {
    // Writes the number of messages first, so every rendering differs from the previous one.
    const { tok } = load(
      'qwen2',
      "{{ messages|length }}{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}",
    );
    expect(() => tokenizeRow(CHAT, tok, { maxLength: 512 }, 'chat.jsonl:7 row 7')).toThrow(
      /chat\.jsonl:7 row 7: the chat template does not render the conversation incrementally/,
    );
  });

  it('errors on a conversation without an assistant turn, or without a tokenizer', () => {
    const { tok } = load('qwen2');
    const userOnly = { messages: [{ role: 'user', content: 'Hi' }] };
    expect(() => tokenizeRow(userOnly, tok, { maxLength: 512 }, 'row 1')).toThrow(/no assistant message/);
    expect(() => tokenizeRow(CHAT, null, { maxLength: 512 }, 'row 1')).toThrow(/need a tokenizer/);
    expect(() => tokenizeRow({ messages: [{ content: 'x' }] }, tok, { maxLength: 512 }, 'row 1')).toThrow(/role/);
  });
});

describe('tokenizeRow: prompt/completion, text, pre-tokenized', () => {
  it('prompt/completion strings: prompt unlabelled, completion + EOS labelled (llama: BOS first)', () => {
    const { tok, ids } = load('llama');
    const ex = tokenizeRow(
      { prompt: 'What is the world?', completion: ' It is round.' },
      tok,
      { maxLength: 512 },
      'row 1',
    );
    expect(ex.inputIds[0]).toBe(ids.bos);
    expect(ex.inputIds[ex.inputIds.length - 1]).toBe(ids.imEnd); // the tokenizer's eos_token
    const runs = labelledRuns(ex);
    expect(runs.length).toBe(1);
    expect(runs[0][1]).toBe(ex.inputIds.length);
    expect(tok.decode(ex.inputIds.slice(...runs[0]))).toBe(' It is round.<|im_end|>');
    expect(tok.decode(ex.inputIds.slice(0, runs[0][0]))).toBe('<|begin_of_text|>What is the world?');
    // An explicit eosTokenId wins.
    const other = tokenizeRow(
      { prompt: 'Q', completion: 'A' },
      tok,
      { maxLength: 512, eosTokenId: ids.endoftext },
      'row 1',
    );
    expect(other.inputIds[other.inputIds.length - 1]).toBe(ids.endoftext);
  });

  it("TRL's conversational prompt/completion: chat template, the completion turn labelled", () => {
    const { tok } = load('qwen2');
    const row = {
      prompt: [
        { role: 'user', content: 'Hello' },
        { role: 'assistant', content: 'Hi there' },
        { role: 'user', content: 'What is it?' },
      ],
      completion: [{ role: 'assistant', content: 'The world.' }],
    };
    const ex = tokenizeRow(row, tok, { maxLength: 512 }, 'row 1');
    const spans = labelledRuns(ex).map(([s, e]) => tok.decode(ex.inputIds.slice(s, e)));
    expect(spans).toEqual(['The world.<|im_end|>']); // the assistant turn inside the prompt is not labelled
    expect(tok.decode(ex.inputIds)).toBe(
      tok.applyChatTemplate([...row.prompt, ...row.completion], { addGenerationPrompt: false }),
    );
    expect(() => tokenizeRow({ prompt: 'x', completion: [] }, tok, { maxLength: 512 }, 'row 1')).toThrow(
      /both be strings or both be lists/,
    );
  });

  it('text: every token labelled, EOS appended once', () => {
    const { tok, ids } = load('qwen2');
    const ex = tokenizeRow({ text: 'Hello world and the world' }, tok, { maxLength: 512 }, 'row 1');
    expect(ex.labels).toEqual(ex.inputIds);
    expect(tok.decode(ex.inputIds)).toBe('Hello world and the world<|im_end|>');
    const already = tokenizeRow({ text: 'Hello<|im_end|>' }, tok, { maxLength: 512 }, 'row 1');
    expect(already.inputIds.filter((id) => id === ids.imEnd).length).toBe(1);
  });

  it('pre-tokenized: labels default to input_ids, -100 allowed, lengths and ids checked', () => {
    expect(tokenizeRow({ input_ids: [5, 6, 7] }, null, { maxLength: 8 }, 'row 1')).toEqual({
      inputIds: [5, 6, 7],
      labels: [5, 6, 7],
    });
    expect(
      tokenizeRow({ input_ids: [5, 6, 7], labels: [-100, -100, 7] }, null, { maxLength: 8 }, 'row 1').labels,
    ).toEqual([-100, -100, 7]);
    expect(() => tokenizeRow({ input_ids: [5, 6, 7], labels: [5, 6] }, null, { maxLength: 8 }, 'row 4')).toThrow(
      /row 4: "labels" has 2 entries but "input_ids" has 3/,
    );
    expect(() => tokenizeRow({ input_ids: [5, 6.5] }, null, { maxLength: 8 }, 'row 1')).toThrow(
      /input_ids\[1\] is 6.5/,
    );
    expect(() => tokenizeRow({ input_ids: [5, -100] }, null, { maxLength: 8 }, 'row 1')).toThrow(/input_ids\[1\]/);
    expect(() => tokenizeRow({ input_ids: ['5', 6] }, null, { maxLength: 8 }, 'row 1')).toThrow(/input_ids\[0\]/);
    expect(() => tokenizeRow({ input_ids: [5, 600] }, null, { maxLength: 8, vocabSize: 320 }, 'row 1')).toThrow(
      /input_ids\[1\] = 600 is not below the model's vocab_size 320/,
    );
  });

  it('rejects rows longer than the context, rows with nothing to learn, and unknown layouts', () => {
    const { tok } = load('qwen2');
    const long = { text: 'Hello world and the world of the world' };
    const n = tokenizeRow(long, tok, { maxLength: 512 }, 'row 2').inputIds.length;
    expect(() => tokenizeRow(long, tok, { maxLength: 5 }, 'data.jsonl:2 row 2')).toThrow(
      `row 2 has ${n} tokens, longer than the context (5)`,
    );
    expect(() =>
      tokenizeRow({ input_ids: [1, 2, 3], labels: [-100, -100, -100] }, null, { maxLength: 8 }, 'row 3'),
    ).toThrow(/row 3: no labelled token/);
    expect(() => tokenizeRow({ question: 'x' }, tok, { maxLength: 8 }, 'row 5')).toThrow(
      /row 5: unrecognized row \(keys "question"\)/,
    );
  });
});

describe('parseTrainingJsonl / loadTrainingData', () => {
  it('skips blank lines and names the line of bad JSON', () => {
    expect(parseTrainingJsonl('{"text": "a"}\n\n  \n{"text": "b"}\n', 'x.jsonl')).toEqual([
      { text: 'a' },
      { text: 'b' },
    ]);
    expect(() => parseTrainingJsonl('{"text": "a"}\n\n{"text": oops}\n', 'x.jsonl')).toThrow(
      /^x\.jsonl:3: invalid JSON/,
    );
    expect(() => parseTrainingJsonl('{"text": "a"}\n[1, 2]\n', 'x.jsonl')).toThrow(
      /x\.jsonl:2 row 2: expected a JSON object/,
    );
  });

  it('loads a file and a URL; the error of a bad row names file, line and row', async () => {
    const { tok } = load('qwen2');
    const file = path.join(tmp, 'train.jsonl');
    fs.writeFileSync(
      file,
      [JSON.stringify(CHAT), '', JSON.stringify({ text: 'Hello' }), JSON.stringify({ input_ids: [1, 2] })].join('\n'),
    );
    const examples = await loadTrainingData(file, tok, { maxLength: 512 });
    expect(examples.length).toBe(3);
    const server = await serveDirectory(tmp);
    try {
      expect(await loadTrainingData(`${server.url}/train.jsonl`, tok, { maxLength: 512 })).toEqual(examples);
    } finally {
      await server.close();
    }
    fs.writeFileSync(
      file,
      [JSON.stringify({ text: 'Hello' }), '', JSON.stringify({ text: 'Hello world and the world' })].join('\n'),
    );
    await expect(loadTrainingData(file, tok, { maxLength: 4 })).rejects.toThrow(
      /train\.jsonl:3 row 2 has \d+ tokens, longer than the context \(4\)/,
    );
  });

  it('errors on an empty dataset', async () => {
    const file = path.join(tmp, 'empty.jsonl');
    fs.writeFileSync(file, '\n\n   \n');
    await expect(loadTrainingData(file, null, { maxLength: 8 })).rejects.toThrow(/empty\.jsonl is empty/);
  });
});

describe('batchExamples', () => {
  it('pads each micro-batch to its longest example with padId and -100 labels', () => {
    const examples: TrainExample[] = [
      { inputIds: [1, 2, 3], labels: [-100, 2, 3] },
      { inputIds: [4, 5], labels: [4, 5] },
      { inputIds: [6, 7, 8, 9, 10], labels: [6, 7, 8, 9, 10] },
    ];
    const batches = batchExamples(examples, [1, 0, 2], 2, 99);
    expect(batches.length).toBe(2);
    expect(batches[0].batch).toBe(2);
    expect(batches[0].seqLen).toBe(3);
    expect([...batches[0].inputIds]).toEqual([4, 5, 99, 1, 2, 3]);
    expect([...batches[0].labels]).toEqual([4, 5, -100, -100, 2, 3]);
    expect(batches[1]).toMatchObject({ batch: 1, seqLen: 5 });
    expect([...batches[1].inputIds]).toEqual([6, 7, 8, 9, 10]);
    expect(batches[1].labels).toBeInstanceOf(Int32Array);
    expect(batches[1].inputIds).toBeInstanceOf(Uint32Array);
    expect(() => batchExamples(examples, [0, 3], 2, 0)).toThrow(/example 3/);
  });
});

describe('tests/reference/lora_step.py (the PyTorch training-step oracle)', () => {
  it('runs one SGD step on a tiny model: finite loss equal to the adapter forward, A and B updated', () => {
    const modelDir = path.join(tmp, 'model');
    const raw = writeTinyModel(modelDir, { arch: 'qwen2', seed: 3 });
    const config = parseConfig(raw);
    const initDir = path.join(tmp, 'init');
    const init = writeRandomPeftAdapter(initDir, config, {
      r: 4,
      alpha: 8,
      targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'],
      seed: 5,
    });
    const { tok } = load('qwen2');
    const ex = tokenizeRow(CHAT, tok, { maxLength: 512, vocabSize: config.vocabSize }, 'row 1');
    const data = path.join(tmp, 'rows.jsonl');
    fs.writeFileSync(data, `${JSON.stringify({ input_ids: ex.inputIds, labels: ex.labels })}\n`);
    const outDir = path.join(tmp, 'stepped');
    const stdout = execFileSync(
      PYTHON,
      [
        path.join(REPO_ROOT, 'tests/reference/lora_step.py'),
        '--model',
        modelDir,
        '--adapter',
        initDir,
        '--data',
        data,
        '--out',
        outDir,
        '--optimizer',
        'sgd',
        '--lr',
        '0.5',
      ],
      { encoding: 'utf8' },
    );
    const { losses, grad_norms } = JSON.parse(stdout) as { losses: number[]; grad_norms: number[] };
    expect(losses.length).toBe(1);
    expect(Number.isFinite(losses[0])).toBe(true);
    expect(grad_norms[0]).toBeGreaterThan(0);

    // The loss is the HF causal-LM loss of the merged adapter's logits (hf_reference.py --adapter).
    const logits = torchReference(modelDir, ex.inputIds, { adapter: initDir }).logits;
    let sum = 0;
    let count = 0;
    for (let t = 0; t + 1 < ex.inputIds.length; t++) {
      const label = ex.labels[t + 1];
      if (label === -100) continue;
      const row = logits[t];
      const max = Math.max(...row);
      const logSumExp = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      sum += logSumExp - row[label];
      count++;
    }
    expect(losses[0]).toBeCloseTo(sum / count, 4);

    // Every A and every B moved; nothing else was added or dropped.
    const stepped = fs.readFileSync(path.join(outDir, 'adapter_config.json'), 'utf8');
    expect(JSON.parse(stepped)).toEqual(JSON.parse(fs.readFileSync(path.join(initDir, 'adapter_config.json'), 'utf8')));
    // Repeated clipped steps on the same row descend.
    const repeated = JSON.parse(
      execFileSync(
        PYTHON,
        [
          path.join(REPO_ROOT, 'tests/reference/lora_step.py'),
          '--model',
          modelDir,
          '--adapter',
          initDir,
          '--data',
          data,
          '--out',
          path.join(tmp, 'stepped3'),
          '--optimizer',
          'sgd',
          '--lr',
          '0.05',
          '--steps',
          '3',
          '--max-grad-norm',
          '1',
        ],
        { encoding: 'utf8' },
      ),
    ) as { losses: number[] };
    expect(repeated.losses[0]).toBeCloseTo(losses[0], 6);
    expect(repeated.losses[1]).toBeLessThan(repeated.losses[0]);
    expect(repeated.losses[2]).toBeLessThan(repeated.losses[1]);

    return loadPeftAdapter(outDir).then((after) => {
      expect(after.pairs.map((p) => `${p.layer}.${p.module}`)).toEqual(init.pairs.map((p) => `${p.layer}.${p.module}`));
      after.pairs.forEach((p, i) => {
        const before = init.pairs[i];
        const diff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, j) => Math.max(m, Math.abs(v - y[j])), 0);
        expect(diff(p.b.data, before.b.data), `B of ${p.layer}.${p.module}`).toBeGreaterThan(0);
        expect(diff(p.a.data, before.a.data), `A of ${p.layer}.${p.module}`).toBeGreaterThan(0);
      });
    });
  });
});
