/**
 * Versioned debate trajectories, one JSON object per line (JSONL).
 *
 * Every line carries `"schema": "agentark.trajectory/1"`. The writer is append-only: each finished
 * record goes out as one write of `JSON + "\n"` followed by fsync, so a kill can at worst leave the
 * very last line half-written; the next `openTrajectoryLog` truncates such a tail away (with a
 * warning naming the byte offset) and never touches complete lines. A file that is not ours (any
 * other content, or a tail that is not the start of a record) is refused and left untouched.
 */
import type { ChatMessage, FinishReason } from '../engine/types';

export const TRAJECTORY_SCHEMA = 'agentark.trajectory/1';

export type TrajectoryTask = 'gsm8k' | 'math' | 'mc' | 'qa';

export interface SamplingParams {
  temperature: number;
  top_p: number;
  max_tokens: number;
  /** null when the run was not seeded. */
  seed: number | null;
}

export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

export interface AgentMessage {
  /** Agent name, e.g. "agent1". */
  agent: string;
  model: string;
  params: SamplingParams;
  /** The full message list sent for this call. */
  prompt: ChatMessage[];
  completion: string;
  usage: TokenUsage;
  latencyMs: number;
  /** Answer parsed from the completion, null when none could be parsed. */
  extracted: string | null;
  correct: boolean;
  finish_reason: FinishReason;
}

export interface DebateRound {
  /** 1-based. Round 1 is the independent round. */
  round: number;
  messages: AgentMessage[];
}

export interface AggregatorRecord {
  kind: 'llm' | 'vote';
  model?: string;
  prompt?: ChatMessage[];
  completion?: string;
  usage?: TokenUsage;
  latencyMs?: number;
  params?: SamplingParams;
  finish_reason?: FinishReason;
  extracted: string | null;
  correct: boolean;
  /** Set when the LLM aggregator's answer could not be parsed and the majority vote was used. */
  fallback?: 'vote';
  /** For votes: how many agents backed each answer. */
  votes?: { answer: string; count: number }[];
}

export interface DebateConfig {
  agents: number;
  rounds: number;
  aggregator: 'llm' | 'vote';
  /** Identifies the prompt wording, so trajectories from different prompt versions can be told apart. */
  promptVersion?: string;
}

export interface TrajectoryRecord {
  schema: typeof TRAJECTORY_SCHEMA;
  id: string;
  question: string;
  /** The dataset's reference answer as given (for GSM8K the full worked solution ending in `#### n`). */
  reference: string;
  task: TrajectoryTask;
  choices?: string[];
  config: DebateConfig;
  rounds: DebateRound[];
  aggregator: AggregatorRecord;
  final: { answer: string | null; correct: boolean };
  totals: { calls: number; promptTokens: number; completionTokens: number; wallMs: number };
  /** ISO-8601. */
  createdAt: string;
}

export class TrajectoryParseError extends Error {
  constructor(
    message: string,
    readonly lineNo: number,
  ) {
    super(`line ${lineNo}: ${message}`);
    this.name = 'TrajectoryParseError';
  }
}

/** Bounds on the numbers a record may carry (far above any real debate). */
export const MAX_AGENTS = 1000;
export const MAX_ROUNDS = 1000;
const MAX_TOKEN_COUNT = 1e9;

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Parses and validates one JSONL line; throws TrajectoryParseError naming the line and the field. */
export function parseTrajectoryLine(line: string, lineNo: number): TrajectoryRecord {
  let j: unknown;
  try {
    j = JSON.parse(line);
  } catch (e) {
    throw new TrajectoryParseError(`not valid JSON (${(e as Error).message})`, lineNo);
  }
  const fail = (msg: string): never => {
    throw new TrajectoryParseError(msg, lineNo);
  };
  if (!isObj(j)) return fail('not a JSON object');
  if (j.schema !== TRAJECTORY_SCHEMA) {
    return fail(
      j.schema === undefined
        ? `missing "schema" (expected "${TRAJECTORY_SCHEMA}")`
        : `unsupported schema ${JSON.stringify(j.schema)} (expected "${TRAJECTORY_SCHEMA}")`,
    );
  }
  const str = (o: Obj, k: string, where: string) => {
    if (typeof o[k] !== 'string') fail(`${where}${k} must be a string`);
  };
  const num = (o: Obj, k: string, where: string) => {
    if (typeof o[k] !== 'number' || !Number.isFinite(o[k])) fail(`${where}${k} must be a finite number`);
  };
  const bool = (o: Obj, k: string, where: string) => {
    if (typeof o[k] !== 'boolean') fail(`${where}${k} must be a boolean`);
  };
  const strOrNull = (o: Obj, k: string, where: string) => {
    if (o[k] !== null && typeof o[k] !== 'string') fail(`${where}${k} must be a string or null`);
  };
  const usage = (u: unknown, where: string) => {
    if (!isObj(u)) return fail(`${where} must be an object`);
    tokens(u, 'prompt_tokens', `${where}.`);
    tokens(u, 'completion_tokens', `${where}.`);
  };
  const prompt = (p: unknown, where: string) => {
    if (!Array.isArray(p)) return fail(`${where} must be an array`);
    p.forEach((m, i) => {
      if (!isObj(m) || typeof m.role !== 'string' || typeof m.content !== 'string')
        fail(`${where}[${i}] must be {role, content}`);
    });
  };
  // Numbers later used as indices or sizes: bounded integers, so a hostile file cannot make a
  // summary allocate an array of a billion rounds.
  const count = (o: Obj, k: string, where: string, min: number, max: number): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      fail(`${where}${k} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    return v as number;
  };
  const tokens = (o: Obj, k: string, where: string) => count(o, k, where, 0, MAX_TOKEN_COUNT);
  str(j, 'id', '');
  str(j, 'question', '');
  str(j, 'reference', '');
  if (j.task !== 'gsm8k' && j.task !== 'math' && j.task !== 'mc' && j.task !== 'qa')
    fail(`task must be gsm8k, math, mc or qa, got ${JSON.stringify(j.task)}`);
  if (j.choices !== undefined && !(Array.isArray(j.choices) && j.choices.every((c) => typeof c === 'string')))
    fail('choices must be an array of strings');
  if (!isObj(j.config)) fail('config must be an object');
  const cfg = j.config as Obj;
  count(cfg, 'agents', 'config.', 1, MAX_AGENTS);
  const rounds = count(cfg, 'rounds', 'config.', 1, MAX_ROUNDS);
  if (cfg.aggregator !== 'llm' && cfg.aggregator !== 'vote') fail('config.aggregator must be "llm" or "vote"');
  if (!Array.isArray(j.rounds)) fail('rounds must be an array');
  if ((j.rounds as unknown[]).length > rounds)
    fail(`rounds has ${(j.rounds as unknown[]).length} entries but config.rounds is ${rounds}`);
  (j.rounds as unknown[]).forEach((r, ri) => {
    const w = `rounds[${ri}].`;
    if (!isObj(r)) return fail(`rounds[${ri}] must be an object`);
    count(r, 'round', w, 1, rounds);
    if (!Array.isArray(r.messages)) return fail(`${w}messages must be an array`);
    r.messages.forEach((m: unknown, mi: number) => {
      const mw = `${w}messages[${mi}].`;
      if (!isObj(m)) return fail(`${w}messages[${mi}] must be an object`);
      str(m, 'agent', mw);
      str(m, 'model', mw);
      if (!isObj(m.params)) fail(`${mw}params must be an object`);
      const p = m.params as Obj;
      num(p, 'temperature', `${mw}params.`);
      num(p, 'top_p', `${mw}params.`);
      count(p, 'max_tokens', `${mw}params.`, 0, MAX_TOKEN_COUNT);
      if (p.seed !== null && typeof p.seed !== 'number') fail(`${mw}params.seed must be a number or null`);
      prompt(m.prompt, `${mw}prompt`);
      str(m, 'completion', mw);
      usage(m.usage, `${mw}usage`);
      num(m, 'latencyMs', mw);
      strOrNull(m, 'extracted', mw);
      bool(m, 'correct', mw);
      str(m, 'finish_reason', mw);
    });
  });
  if (!isObj(j.aggregator)) fail('aggregator must be an object');
  const ag = j.aggregator as Obj;
  if (ag.kind !== 'llm' && ag.kind !== 'vote') fail('aggregator.kind must be "llm" or "vote"');
  strOrNull(ag, 'extracted', 'aggregator.');
  bool(ag, 'correct', 'aggregator.');
  if (ag.kind === 'llm') {
    str(ag, 'completion', 'aggregator.');
    prompt(ag.prompt, 'aggregator.prompt');
    usage(ag.usage, 'aggregator.usage');
  }
  if (!isObj(j.final)) fail('final must be an object');
  strOrNull(j.final as Obj, 'answer', 'final.');
  bool(j.final as Obj, 'correct', 'final.');
  if (!isObj(j.totals)) fail('totals must be an object');
  for (const k of ['calls', 'promptTokens', 'completionTokens'])
    count(j.totals as Obj, k, 'totals.', 0, Number.MAX_SAFE_INTEGER);
  num(j.totals as Obj, 'wallMs', 'totals.');
  str(j, 'createdAt', '');
  return j as unknown as TrajectoryRecord;
}

export interface ReadResult {
  records: TrajectoryRecord[];
  /** Byte length of the complete lines (where a repaired file would be truncated). */
  validBytes: number;
  /** Set when the file ends in a line without its newline that does not parse. */
  partialTail?: { offset: number; bytes: number };
  /** A final line missing only its newline but otherwise complete. */
  missingFinalNewline: boolean;
}

/** Parses a JSONL buffer; complete lines must all be valid (throws otherwise). */
function parseBuffer(buf: Buffer): ReadResult {
  const records: TrajectoryRecord[] = [];
  let pos = 0;
  let lineNo = 0;
  const NL = 0x0a;
  while (pos < buf.length) {
    const nl = buf.indexOf(NL, pos);
    lineNo++;
    if (nl < 0) {
      // Last line without a newline: either a crash mid-write or a complete line whose "\n" was lost.
      const text = buf.subarray(pos).toString('utf8');
      if (text.trim() === '')
        return {
          records,
          validBytes: pos,
          partialTail: { offset: pos, bytes: buf.length - pos },
          missingFinalNewline: false,
        };
      try {
        records.push(parseTrajectoryLine(text, lineNo));
        return { records, validBytes: buf.length, missingFinalNewline: true };
      } catch {
        return {
          records,
          validBytes: pos,
          partialTail: { offset: pos, bytes: buf.length - pos },
          missingFinalNewline: false,
        };
      }
    }
    const text = buf.subarray(pos, nl).toString('utf8');
    if (text.trim() !== '') records.push(parseTrajectoryLine(text.replace(/\r$/, ''), lineNo));
    pos = nl + 1;
  }
  return { records, validBytes: pos, missingFinalNewline: false };
}

async function readIfExists(file: string): Promise<Buffer | null> {
  try {
    const { promises: fsp } = await import('node:fs');
    return await fsp.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Reads every record. A half-written last line (from a crash) is skipped with a warning; any
 * other invalid line throws, naming the line.
 */
export async function readTrajectories(
  file: string,
  opts: { onWarning?: (msg: string) => void } = {},
): Promise<TrajectoryRecord[]> {
  const buf = await readIfExists(file);
  if (!buf) throw new Error(`trajectory file not found: ${file}`);
  let r: ReadResult;
  try {
    r = parseBuffer(buf);
  } catch (e) {
    if (e instanceof TrajectoryParseError)
      throw new TrajectoryParseError(`${file}: ${e.message.replace(/^line \d+: /, '')}`, e.lineNo);
    throw e;
  }
  if (r.partialTail)
    opts.onWarning?.(
      `${file}: ignoring a partial last line of ${r.partialTail.bytes} bytes at byte offset ${r.partialTail.offset}`,
    );
  return r.records;
}

export interface TrajectoryLog {
  readonly path: string;
  /** Ids already in the log (including those appended through this handle). */
  readonly finishedIds: Set<string>;
  /** Records that were in the file when it was opened. */
  readonly existing: TrajectoryRecord[];
  /** Warnings raised while opening (e.g. a truncated partial line). */
  readonly warnings: string[];
  /** Appends one record as a single write followed by fsync. Appends are serialized. */
  append(rec: TrajectoryRecord): Promise<void>;
  close(): Promise<void>;
}

/** How every record starts as JSON.stringify writes it (ASCII). This module also loads in browsers: no Buffer here. */
const RECORD_PREFIX = `{"schema":${JSON.stringify(TRAJECTORY_SCHEMA)}`;

/**
 * Whether a tail without its newline is what an interrupted append of ours leaves: blank, or the
 * start of a record as JSON.stringify writes it (the schema key first). A fragment shorter than
 * that prefix only counts after records of ours, so nobody else's file is ever cut.
 */
function isOurPartialRecord(tail: Buffer, recordsBefore: number): boolean {
  if (tail.toString('utf8').trim() === '') return true;
  const prefix = Buffer.from(RECORD_PREFIX, 'utf8');
  if (tail.length >= prefix.length) return tail.subarray(0, prefix.length).equals(prefix);
  return recordsBefore > 0 && prefix.subarray(0, tail.length).equals(tail);
}

/**
 * Opens (creating if needed) an append-only trajectory log. A partial last line left by a crash is
 * truncated away with a warning naming its byte offset; complete lines are never dropped (an
 * invalid complete line throws instead of being silently removed).
 */
export async function openTrajectoryLog(
  file: string,
  opts: { onWarning?: (msg: string) => void } = {},
): Promise<TrajectoryLog> {
  const { promises: fsp } = await import('node:fs');
  const path = await import('node:path');
  await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  const buf = await readIfExists(file);
  let existing: TrajectoryRecord[] = [];
  if (buf?.length) {
    let r: ReadResult;
    try {
      r = parseBuffer(buf);
    } catch (e) {
      if (e instanceof TrajectoryParseError) {
        const what = e.lineNo === 1 ? 'not a trajectory log' : 'a complete line is corrupt';
        throw new TrajectoryParseError(
          `${file}: ${e.message.replace(/^line \d+: /, '')} (${what}; refusing to append to it, the file is left untouched)`,
          e.lineNo,
        );
      }
      throw e;
    }
    existing = r.records;
    if (r.partialTail && !isOurPartialRecord(buf.subarray(r.partialTail.offset), r.records.length)) {
      throw new Error(
        `${file} does not look like a trajectory log (${r.records.length ? `after ${r.records.length} records it ends in` : 'it holds'} ` +
          `${r.partialTail.bytes} bytes that are not a trajectory record); ` +
          'refusing to write to it, the file is left untouched (choose another --out)',
      );
    }
    if (r.partialTail) {
      await fsp.truncate(file, r.partialTail.offset);
      warn(
        `${file}: truncated a partial last line (${r.partialTail.bytes} bytes at byte offset ${r.partialTail.offset}), ` +
          'left by an interrupted write; its question will be redone',
      );
    } else if (r.missingFinalNewline) {
      const fh = await fsp.open(file, 'a');
      try {
        await fh.write('\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      warn(`${file}: the last line was complete but lacked its newline; added it`);
    }
  }
  const finishedIds = new Set<string>();
  for (const r of existing) {
    if (finishedIds.has(r.id)) warn(`${file}: id ${JSON.stringify(r.id)} appears more than once`);
    finishedIds.add(r.id);
  }
  const fh = await fsp.open(file, 'a');
  let chain: Promise<void> = Promise.resolve();
  let closed = false;
  const append = (rec: TrajectoryRecord): Promise<void> => {
    if (closed) return Promise.reject(new Error(`trajectory log ${file} is closed`));
    const line = JSON.stringify(rec);
    // Validate what we write so the reader can never choke on our own output.
    try {
      parseTrajectoryLine(line, 0);
    } catch (e) {
      return Promise.reject(
        new Error(
          `refusing to append an invalid record (id ${JSON.stringify(rec?.id)}) to ${file}: ${(e as Error).message.replace(/^line 0: /, '')}`,
        ),
      );
    }
    const bytes = Buffer.from(`${line}\n`, 'utf8');
    const p = chain.then(async () => {
      let off = 0;
      while (off < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, off, bytes.length - off);
        off += bytesWritten;
      }
      await fh.sync();
      finishedIds.add(rec.id);
    });
    chain = p.catch(() => {});
    return p;
  };
  return {
    path: file,
    finishedIds,
    existing,
    warnings,
    append,
    async close() {
      if (closed) return;
      closed = true;
      await chain;
      await fh.close();
    },
  };
}

export interface TrajectorySummary {
  questions: number;
  /** Accuracy of the final (aggregated) answer. */
  accuracy: number;
  correct: number;
  /** Final answers that could not be parsed. */
  unparsed: number;
  /** Per round: mean correctness over all agent messages of that round. */
  roundAccuracy: number[];
  calls: number;
  promptTokens: number;
  completionTokens: number;
  /** Sum of per-question wall times (questions may overlap in time). */
  wallMs: number;
}

/** Aggregates records into the numbers the CLI prints. */
export function summarizeTrajectories(records: TrajectoryRecord[]): TrajectorySummary {
  const roundCorrect: number[] = [];
  const roundTotal: number[] = [];
  let correct = 0;
  let unparsed = 0;
  let calls = 0;
  let promptTokens = 0;
  let completionTokens = 0;
  let wallMs = 0;
  for (const r of records) {
    if (r.final.correct) correct++;
    if (r.final.answer == null) unparsed++;
    for (const round of r.rounds) {
      const i = round.round - 1;
      roundCorrect[i] = (roundCorrect[i] ?? 0) + round.messages.filter((m) => m.correct).length;
      roundTotal[i] = (roundTotal[i] ?? 0) + round.messages.length;
    }
    calls += r.totals.calls;
    promptTokens += r.totals.promptTokens;
    completionTokens += r.totals.completionTokens;
    wallMs += r.totals.wallMs;
  }
  const n = records.length;
  const round4 = (x: number) => Math.round(x * 10000) / 10000;
  return {
    questions: n,
    accuracy: n ? round4(correct / n) : 0,
    correct,
    unparsed,
    roundAccuracy: Array.from({ length: roundTotal.length }, (_, i) =>
      roundTotal[i] ? round4((roundCorrect[i] ?? 0) / roundTotal[i]) : 0,
    ),
    calls,
    promptTokens,
    completionTokens,
    wallMs: Math.round(wallMs),
  };
}
