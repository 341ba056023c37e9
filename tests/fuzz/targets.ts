/**
 * One fuzz target per parser of untrusted input: its seed files (valid inputs in the exact
 * on-disk layout), how to mutate them, and how to run the real loading path on the result.
 * A run must end in success or a clear error (see isClearError); some targets also check
 * properties (the trajectory log never rewrites what is not a partial record of ours).
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCheckpoint, loadTokenizerFrom, readModelConfig } from '../../src/formats/checkpoint';
import { expectedTensors, parameterCount, parseConfig, ropeInvFreq } from '../../src/formats/config';
import { loadPeftAdapter, serializePeftAdapter, validateAdapter } from '../../src/formats/peft';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../../src/formats/safetensors';
import { BlobSource } from '../../src/formats/source';
import type { HFTokenizer } from '../../src/formats/tokenizer';
import {
  openTrajectoryLog,
  readTrajectories,
  summarizeTrajectories,
  TRAJECTORY_SCHEMA,
} from '../../src/teach/trajectory';
import { parseTrainingJsonl, tokenizeRow } from '../../src/train/data';
import { randomPeftAdapter } from '../helpers/peft-fixture';
import { tinyModelConfig, tinyModelWeights, tinyTokenizer, type TinyArch } from '../helpers/tiny-model';
import { mutateBytes, mutateJson, mutateText, type Rng } from './mutate';

export type Files = Record<string, string | Uint8Array>;

export interface FuzzTarget {
  name: string;
  /** Valid inputs to mutate. */
  seeds(): Files[];
  /** Which files of an input a mutation may touch (default: all). */
  mutable?: (name: string) => boolean;
  run(files: Files): Promise<void>;
}

/** A broken invariant (not merely an error): always a fuzz failure. */
export class FuzzViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FuzzViolation';
  }
}

const CRASH_TYPES = new Set([
  'TypeError',
  'RangeError',
  'ReferenceError',
  'SyntaxError',
  'EvalError',
  'URIError',
  'FuzzViolation',
]);

/** An error a user can act on: one of ours (or a plain Error with a message), not a JS engine fault. */
export function isClearError(e: unknown): boolean {
  if (!(e instanceof Error) || !e.message) return false;
  return !CRASH_TYPES.has(e.name) && !CRASH_TYPES.has(e.constructor.name);
}

const source = (files: Files) =>
  new BlobSource(
    new Map(Object.entries(files).map(([k, v]) => [k, new Blob([v as string | Uint8Array<ArrayBuffer>])])),
  );
const json = (v: unknown) => JSON.stringify(v, null, 2);

function modelFiles(arch: TinyArch, sharded: boolean): Files {
  const opts = { arch, layers: 2 };
  const tensors: TensorToWrite[] = [];
  for (const [name, { shape, values }] of tinyModelWeights(opts))
    tensors.push({ name, dtype: 'F32', shape, data: new Uint8Array(values.buffer.slice(0)) });
  const files: Files = { 'config.json': json(tinyModelConfig(opts)) };
  if (!sharded) {
    files['model.safetensors'] = writeSafetensors(tensors, { format: 'pt' });
    return files;
  }
  const half = Math.ceil(tensors.length / 2);
  const weightMap: Record<string, string> = {};
  [tensors.slice(0, half), tensors.slice(half)].forEach((shard, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    files[file] = writeSafetensors(shard, { format: 'pt' });
    for (const t of shard) weightMap[t.name] = file;
  });
  files['model.safetensors.index.json'] = json({ metadata: { total_size: 0 }, weight_map: weightMap });
  return files;
}

function trajectoryRecord(id: string, rounds: number): Record<string, unknown> {
  const msg = (agent: string, ok: boolean) => ({
    agent,
    model: 'm',
    params: { temperature: 0.7, top_p: 1, max_tokens: 64, seed: 3 },
    prompt: [
      { role: 'system', content: 'sys' },
      { role: 'user', content: `question ${id}` },
    ],
    completion: ok ? '#### 7' : '#### 8',
    usage: { prompt_tokens: 10, completion_tokens: 3 },
    latencyMs: 1.5,
    extracted: ok ? '7' : '8',
    correct: ok,
    finish_reason: 'stop',
  });
  return {
    schema: TRAJECTORY_SCHEMA,
    id,
    question: `question ${id}`,
    reference: '#### 7',
    task: 'gsm8k',
    config: { agents: 2, rounds, aggregator: 'vote' },
    rounds: Array.from({ length: rounds }, (_, r) => ({
      round: r + 1,
      messages: [msg('agent1', r > 0), msg('agent2', true)],
    })),
    aggregator: { kind: 'vote', extracted: '7', correct: true, votes: [{ answer: '7', count: 2 }] },
    final: { answer: '7', correct: true },
    totals: { calls: 2 * rounds, promptTokens: 20 * rounds, completionTokens: 6 * rounds, wallMs: 10 },
    createdAt: new Date(0).toISOString(),
  };
}

let tmpDir: string | null = null;
let tmpCounter = 0;
async function tempFile(content: string | Uint8Array): Promise<string> {
  tmpDir ??= await fsp.mkdtemp(path.join(os.tmpdir(), 'agentark-fuzz-'));
  const file = path.join(tmpDir, `f${tmpCounter++}.jsonl`);
  await fsp.writeFile(file, content);
  return file;
}

let tokenizerForRows: HFTokenizer | null = null;
async function rowTokenizer(): Promise<HFTokenizer> {
  if (!tokenizerForRows) {
    const { tokenizerJson, tokenizerConfig } = tinyTokenizer('qwen2');
    tokenizerForRows = (await loadTokenizerFrom(
      source({ 'tokenizer.json': json(tokenizerJson), 'tokenizer_config.json': json(tokenizerConfig) }),
    ))!;
  }
  return tokenizerForRows;
}

export const TARGETS: Record<string, FuzzTarget> = {
  safetensors: {
    name: 'safetensors + sharded index',
    seeds: () => [modelFiles('llama', false), modelFiles('qwen2', true)],
    mutable: (name) => name !== 'config.json',
    async run(files) {
      for (const [name, bytes] of Object.entries(files)) {
        if (name.endsWith('.safetensors') && bytes instanceof Uint8Array) {
          try {
            readSafetensors(bytes, { fileName: name, allowUnsupportedDtypes: true });
          } catch (e) {
            if (!isClearError(e)) throw e;
          }
        }
      }
      await loadCheckpoint(source(files), { loadTokenizer: false });
    },
  },
  config: {
    name: 'config.json',
    seeds: () =>
      (['llama', 'mistral', 'qwen2', 'qwen3'] as TinyArch[]).map((arch) => ({
        'config.json': json(tinyModelConfig({ arch, ...(arch === 'llama' ? { ropeScaling: true } : {}) })),
      })),
    async run(files) {
      const config = await readModelConfig(source(files));
      expectedTensors(config);
      parameterCount(config);
      ropeInvFreq(config);
      parseConfig(JSON.parse(files['config.json'] as string));
    },
  },
  tokenizer: {
    name: 'tokenizer + chat template',
    seeds: () =>
      (['qwen2', 'llama'] as TinyArch[]).flatMap((arch): Files[] => {
        const { tokenizerJson, tokenizerConfig } = tinyTokenizer(arch);
        const { chat_template: template, ...rest } = tokenizerConfig as Record<string, unknown>;
        return [
          { 'tokenizer.json': json(tokenizerJson), 'tokenizer_config.json': json(tokenizerConfig) },
          {
            'tokenizer.json': json(tokenizerJson),
            'tokenizer_config.json': json(rest),
            'chat_template.jinja': String(template),
          },
        ];
      }),
    async run(files) {
      const tok = await loadTokenizerFrom(source(files));
      if (!tok) return;
      const ids = tok.encode('Hello world, 12 + 30 = 42! é🙂');
      tok.decode(ids);
      const stream = tok.createStreamDecoder();
      for (const id of ids) stream.push(id);
      stream.flush();
      if (tok.hasChatTemplate)
        tok.encodeChat([
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'What is 6 * 7?' },
          { role: 'assistant', content: '42' },
          { role: 'user', content: 'And 6 * 8?' },
        ]);
    },
  },
  peft: {
    name: 'PEFT adapter',
    seeds: () => {
      const model = tinyModelConfig({ arch: 'llama', layers: 2 });
      return [
        serializePeftAdapter(randomPeftAdapter(model, { r: 2, alpha: 4, targets: ['q_proj', 'v_proj'], seed: 1 })),
        serializePeftAdapter(randomPeftAdapter(model, { r: 4, alpha: 8, seed: 2 })),
      ];
    },
    async run(files) {
      const adapter = await loadPeftAdapter(source(files));
      validateAdapter(adapter, parseConfig(tinyModelConfig({ arch: 'llama', layers: 2 })));
    },
  },
  trajectory: {
    name: 'trajectory JSONL',
    seeds: () => [
      {
        'traj.jsonl': `${[trajectoryRecord('a', 2), trajectoryRecord('b', 3), trajectoryRecord('c', 1)]
          .map((r) => JSON.stringify(r))
          .join('\n')}\n`,
      },
    ],
    async run(files) {
      const content = files['traj.jsonl'] as string;
      const file = await tempFile(content);
      try {
        summarizeTrajectories(await readTrajectories(file));
      } catch (e) {
        if (!isClearError(e)) throw e;
      }
      // Opening for append never rewrites anything but a partial record of ours.
      const before = await fsp.readFile(file);
      let log: Awaited<ReturnType<typeof openTrajectoryLog>>;
      try {
        log = await openTrajectoryLog(file);
      } catch (e) {
        const after = await fsp.readFile(file);
        if (!after.equals(before))
          throw new FuzzViolation(`openTrajectoryLog refused the file (${(e as Error).message}) but changed it`);
        throw e;
      }
      await log.close();
      const after = await fsp.readFile(file);
      const prefix = after.length <= before.length && before.subarray(0, after.length).equals(after);
      const addedNewline =
        after.length === before.length + 1 &&
        after.subarray(0, before.length).equals(before) &&
        after[before.length] === 0x0a;
      if (!prefix && !addedNewline)
        throw new FuzzViolation('openTrajectoryLog rewrote the file beyond cutting a partial tail or adding a newline');
      if (prefix && after.length < before.length) {
        const cut = before.subarray(after.length).toString('utf8');
        if (cut.includes('\n'))
          throw new FuzzViolation(`openTrajectoryLog cut complete lines: ${JSON.stringify(cut.slice(0, 80))}`);
        if (
          cut.trim() !== '' &&
          !cut.startsWith('{"schema":"agentark.trajectory/1"') &&
          !'{"schema":"agentark.trajectory/1"'.startsWith(cut)
        ) {
          throw new FuzzViolation(
            `openTrajectoryLog cut a tail that is not the start of a record: ${JSON.stringify(cut.slice(0, 80))}`,
          );
        }
      }
      summarizeTrajectories(log.existing);
    },
  },
  training: {
    name: 'training JSONL',
    seeds: () => [
      {
        'train.jsonl': `${[
          {
            messages: [
              { role: 'system', content: 'Be brief.' },
              { role: 'user', content: 'What is 6 * 7?' },
              { role: 'assistant', content: '#### 42' },
            ],
          },
          {
            prompt: [{ role: 'user', content: 'What is 2 + 2?' }],
            completion: [{ role: 'assistant', content: '#### 4' }],
          },
          { prompt: 'Q: 3 + 4 = ', completion: '7' },
          { text: 'Plain pretraining text 123.' },
          { input_ids: [1, 2, 3, 4, 5], labels: [-100, -100, 3, 4, 5] },
        ]
          .map((r) => JSON.stringify(r))
          .join('\n')}\n`,
      },
    ],
    async run(files) {
      const tok = await rowTokenizer();
      const rows = parseTrainingJsonl(files['train.jsonl'] as string, 'train.jsonl');
      let firstError: unknown = null;
      rows.forEach((row, i) => {
        try {
          tokenizeRow(row, tok, { maxLength: 128, vocabSize: tok.vocabSize }, `train.jsonl row ${i + 1}`);
        } catch (e) {
          if (!isClearError(e)) throw e;
          firstError ??= e;
        }
      });
      if (firstError) throw firstError;
    },
  },
};

/**
 * Targets that misbehave on purpose (names start with '_', so `npm run fuzz` skips them): the
 * harness test checks that each kind of failure is caught and attributed to its case.
 */
export const SELFTEST_TARGETS: Record<string, FuzzTarget> = {
  _selftest: {
    name: 'harness self-test',
    seeds: () => [{ 'n.txt': '0' }],
    mutable: () => false,
    async run() {
      selftestCase ??= (globalThis as { __fuzzFrom?: number }).__fuzzFrom ?? 0;
      const i = selftestCase++;
      if (i === 1) for (;;); // a hang
      if (i === 2) (undefined as unknown as { x: number }).x; // a TypeError
      if (i === 3) {
        const hog: number[][] = [];
        for (;;) hog.push(new Array(1 << 16).fill(i)); // heap exhaustion
      }
      if (i === 4) throw new Error('a clear error');
    },
  },
};
let selftestCase: number | undefined;

/** A mutated input for one case. */
export function mutateFiles(rng: Rng, target: FuzzTarget, seed: Files): Files {
  const files = { ...seed };
  const names = Object.keys(files).filter((n) => target.mutable?.(n) ?? true);
  if (names.length === 0) return files;
  for (let k = 1 + (rng.chance(0.2) ? 1 : 0); k > 0; k--) {
    const name = rng.pick(names);
    const value = files[name]!;
    if (value instanceof Uint8Array) {
      files[name] = mutateBytes(rng, value);
    } else if (name.endsWith('.jsonl')) {
      const lines = value.split('\n');
      const i = rng.int(lines.length);
      if (rng.chance(0.6) && lines[i]!.trim()) {
        try {
          lines[i] = JSON.stringify(mutateJson(rng, JSON.parse(lines[i]!)));
        } catch {
          lines[i] = mutateText(rng, lines[i]!);
        }
        files[name] = lines.join('\n');
      } else files[name] = mutateText(rng, value);
    } else if (name.endsWith('.json') && rng.chance(0.75)) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        files[name] = mutateText(rng, value); // already broken by an earlier mutation
        continue;
      }
      files[name] = JSON.stringify(mutateJson(rng, parsed));
    } else {
      files[name] = mutateText(rng, value);
    }
  }
  return files;
}
