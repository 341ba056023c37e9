/**
 * Seeded generator of GSM8K-style arithmetic word problems for the embedded demo: a tiny model
 * trained from scratch must be able to learn them cheaply, so operands are single digits, chains
 * are 2–4 steps, every intermediate result is a non-negative integer below 100, and the stories
 * draw their names and objects from small word lists (a compact vocabulary).
 *
 * Each problem carries a GSM8K-style worked solution, one short line per step with the
 * arithmetic written out ("Tom has 3 + 4 = 7 apples."), ending with "#### 7", and its steps as
 * data, so wrong variants can be derived (see corpus.ts).
 *
 * Train and test are split by a hash of the problem's arithmetic (the sequence of operations and
 * operands, not the names or story), so the two sets never share a problem, whatever the seeds.
 *
 * Pure and browser-safe except `writeGsm8kJsonl` (Node, imports node:fs lazily).
 */
import { fmix32, fnv1a } from '../util/hash';
import { mulberry32 } from '../util/random';

export type Op = '+' | '-' | '*';
export type Difficulty = 0 | 1 | 2;
export type Split = 'train' | 'test';

export interface Step {
  op: Op;
  a: number;
  b: number;
  result: number;
  /** `a` is the result of this earlier step (absent: `a` is a number from the question). */
  aFrom?: number;
  /** `b` is the result of this earlier step. */
  bFrom?: number;
}

export interface Problem {
  id: string;
  question: string;
  /** GSM8K-style worked solution: one line per step (line i is step i), then "#### <final>". */
  answer: string;
  final: number;
  steps: Step[];
  template: string;
  difficulty: Difficulty;
}

export interface GenerateOptions {
  seed: number;
  count: number;
  /**
   * 0: 2 steps, + and − only; 1: 2–3 steps, may include a small × (factors 2–5);
   * 2: 3–4 steps, may include ×. Operands are 1–9 throughout.
   */
  difficulty?: Difficulty;
  split: Split;
  /** Fraction of arithmetic structures reserved for the test split (default 0.2). Use the same value for both splits. */
  testFraction?: number;
}

export const TEMPLATES = ['shopping', 'sharing', 'collecting', 'baking', 'travelling', 'saving', 'comparing'] as const;
export type TemplateName = (typeof TEMPLATES)[number];

/** Every intermediate and final result stays below this. */
export const MAX_VALUE = 99;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness and hashing

export const seededRandom = mulberry32;

/** FNV-1a with a murmur3 finaliser, 32-bit unsigned. */
export function hashString(s: string): number {
  return fmix32(fnv1a(s));
}

export function randInt(rng: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

export function pick<T>(rng: () => number, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

// ---------------------------------------------------------------------------------------------
// Structure → split

/** The arithmetic of a problem, independent of names and story: what the train/test split hashes. */
export function canonicalStructure(steps: readonly Step[]): string {
  return steps
    .map((s) => `${s.aFrom !== undefined ? `s${s.aFrom}` : s.a}${s.op}${s.bFrom !== undefined ? `s${s.bFrom}` : s.b}`)
    .join(';');
}

/** The split a problem of this arithmetic belongs to (deterministic, seed-independent). */
export function splitOf(steps: readonly Step[], testFraction = 0.2): Split {
  const bucket = hashString(`agentark-demo-split|${canonicalStructure(steps)}`) % 10000;
  return bucket < Math.round(testFraction * 10000) ? 'test' : 'train';
}

export function apply(op: Op, a: number, b: number): number {
  return op === '+' ? a + b : op === '-' ? a - b : a * b;
}

/** "3 + 4 = 7": how each step's arithmetic is written inside its solution line. */
export function expression(op: Op, a: number, b: number, result: number): string {
  return `${a} ${op} ${b} = ${result}`;
}

/** Matches the one expression of a solution line (see `expression`). */
export const EXPRESSION_RE = /(\d+) ([+\-*]) (\d+) = (\d+)/;

// ---------------------------------------------------------------------------------------------
// Word lists

interface Person {
  name: string;
  /** He / She */
  subj: string;
  /** him / her */
  obj: string;
}

const PEOPLE: Person[] = [
  ...['Tom', 'Ben', 'Sam', 'Leo', 'Max'].map((name) => ({ name, subj: 'He', obj: 'him' })),
  ...['Ann', 'Mia', 'Zoe', 'Eva', 'Amy'].map((name) => ({ name, subj: 'She', obj: 'her' })),
];

const ORDINALS = ['first', 'second', 'third', 'fourth', 'fifth'];

/** Fills {key} placeholders; an unknown key is a bug. */
function fill(text: string, vars: Record<string, string | number>): string {
  return text.replace(/\{(\w+)\}/g, (_, k: string) => {
    if (!(k in vars)) throw new Error(`demo problems: no value for {${k}} in "${text}"`);
    return String(vars[k]);
  });
}

// ---------------------------------------------------------------------------------------------
// Running-total templates: a start amount, then events that add, remove, or add/remove a product.

interface RunningTemplate {
  name: TemplateName;
  objects: string[];
  /** First sentence; {a}. */
  start: string;
  /** Optional product start (one × step); {a} groups of {c}; its solution line is `startLine`. */
  mulStart?: { text: string; line: string };
  add: string[];
  sub: string[];
  /** A product event then a + (or −) step: {b} groups of {c}; `line` states the product ({prod}). */
  mulAdd?: { text: string; line: string };
  mulSub?: { text: string; line: string };
  /** The running total's solution line; {expr} is "x + y = r". */
  line: string;
  question: string;
}

const RUNNING: RunningTemplate[] = [
  {
    name: 'shopping',
    objects: ['apples', 'eggs'],
    start: '{N} has {a} {obj}.',
    mulStart: { text: '{N} has {a} bags with {c} {obj} in each.', line: '{N} has {expr} {obj}.' },
    add: ['{P} buys {b} more.', '{P} buys {b} more {obj}.'],
    sub: ['{P} eats {b} of them.'],
    mulAdd: { text: '{P} buys {b} bags with {c} {obj} in each.', line: 'The bags hold {expr} {obj}.' },
    line: '{N} has {expr} {obj}.',
    question: 'How many {obj} does {N} have now?',
  },
  {
    name: 'sharing',
    objects: ['cookies', 'cards'],
    start: '{N} has {a} {obj}.',
    add: ['{M} gives {o} {b} more.', '{P} gets {b} more from {M}.'],
    sub: ['{P} gives {b} to {M}.', '{P} gives {b} {obj} to {M}.'],
    mulSub: { text: '{P} gives {c} {obj} to each of {b} friends.', line: '{P} gives away {expr} {obj}.' },
    line: '{N} has {expr} {obj}.',
    question: 'How many {obj} does {N} have left?',
  },
  {
    name: 'collecting',
    objects: ['shells', 'stamps'],
    start: '{N} has {a} {obj}.',
    add: ['On the {ord} day {p} finds {b} more.'],
    sub: ['On the {ord} day {p} loses {b} of them.'],
    mulAdd: {
      text: 'On the {ord} day {p} finds {b} bags with {c} {obj} in each.',
      line: 'The bags hold {expr} {obj}.',
    },
    line: '{N} has {expr} {obj}.',
    question: 'How many {obj} does {N} have now?',
  },
  {
    name: 'baking',
    objects: ['muffins', 'cakes'],
    start: '{N} bakes {a} {obj}.',
    mulStart: { text: '{N} bakes {a} trays of {c} {obj}.', line: '{N} bakes {expr} {obj}.' },
    add: ['{P} bakes {b} more.'],
    sub: ['{P} sells {b} of them.', '{P} gives {b} to {M}.'],
    mulAdd: { text: '{P} bakes {b} more trays of {c}.', line: 'The trays hold {expr} {obj}.' },
    mulSub: { text: '{P} sells {b} boxes of {c} {obj}.', line: 'The boxes hold {expr} {obj}.' },
    line: '{N} has {expr} {obj}.',
    question: 'How many {obj} does {N} have now?',
  },
  {
    name: 'travelling',
    objects: ['bus', 'train'],
    start: 'A {obj} has {a} people on it.',
    add: ['At the {ord} stop {b} people get on.'],
    sub: ['At the {ord} stop {b} people get off.'],
    mulAdd: { text: 'At the {ord} stop {b} groups of {c} people get on.', line: 'The groups have {expr} people.' },
    line: 'There are {expr} people on the {obj}.',
    question: 'How many people are on the {obj} now?',
  },
  {
    name: 'saving',
    objects: ['dollars'],
    start: '{N} has {a} dollars.',
    add: ['{P} earns {b} dollars.', '{M} gives {o} {b} dollars.'],
    sub: ['{P} spends {b} dollars.', '{P} buys a toy for {b} dollars.'],
    mulAdd: { text: '{P} saves {c} dollars a week for {b} weeks.', line: '{P} saves {expr} dollars.' },
    mulSub: { text: '{P} buys {b} books for {c} dollars each.', line: 'The books cost {expr} dollars.' },
    line: '{N} has {expr} dollars.',
    question: 'How many dollars does {N} have now?',
  },
];

/** Number of steps for a difficulty. */
function stepCount(rng: () => number, difficulty: Difficulty): number {
  return difficulty === 0 ? 2 : difficulty === 1 ? randInt(rng, 2, 3) : randInt(rng, 3, 4);
}

/** Factors of a product step. */
const MUL_LO = 2;
const MUL_HI = 5;

interface Draft {
  sentences: string[];
  lines: string[];
  steps: Step[];
}

function pushStep(d: Draft, step: Step, line: string): boolean {
  if (step.result < 0 || step.result > MAX_VALUE || !Number.isInteger(step.result)) return false;
  d.steps.push(step);
  d.lines.push(line);
  return true;
}

function runningProblem(t: RunningTemplate, rng: () => number, difficulty: Difficulty): Omit<Problem, 'id'> | null {
  const n = stepCount(rng, difficulty);
  const [main, other] = twoPeople(rng);
  const obj = pick(rng, t.objects);
  const base = { N: main.name, P: main.subj, p: main.subj.toLowerCase(), o: main.obj, M: other.name, obj };
  const d: Draft = { sentences: [], lines: [], steps: [] };
  let total: number;
  let totalFrom: number | undefined;
  let remaining = n;
  const mulOk = difficulty >= 1;

  if (mulOk && t.mulStart && rng() < 0.3) {
    const a = randInt(rng, MUL_LO, MUL_HI);
    const c = randInt(rng, MUL_LO, MUL_HI);
    total = a * c;
    d.sentences.push(fill(t.mulStart.text, { ...base, a, c }));
    pushStep(
      d,
      { op: '*', a, b: c, result: total },
      fill(t.mulStart.line, { ...base, expr: expression('*', a, c, total) }),
    );
    totalFrom = 0;
    remaining--;
  } else {
    total = randInt(rng, 1, 9);
    d.sentences.push(fill(t.start, { ...base, a: total }));
  }

  let event = 0;
  while (remaining > 0) {
    const vars = { ...base, ord: ORDINALS[event]! };
    event++;
    const mulKinds = [t.mulAdd ? '+' : null, t.mulSub ? '-' : null].filter((x): x is '+' | '-' => x !== null);
    if (mulOk && remaining >= 2 && mulKinds.length > 0 && rng() < 0.45) {
      const op = pick(rng, mulKinds);
      const b = randInt(rng, MUL_LO, MUL_HI);
      const c = randInt(rng, MUL_LO, MUL_HI);
      const prod = b * c;
      if (op === '-' && prod > total) return null;
      const spec = op === '+' ? t.mulAdd! : t.mulSub!;
      d.sentences.push(fill(spec.text, { ...vars, b, c }));
      if (
        !pushStep(
          d,
          { op: '*', a: b, b: c, result: prod },
          fill(spec.line, { ...vars, expr: expression('*', b, c, prod) }),
        )
      )
        return null;
      const prodFrom = d.steps.length - 1;
      const result = apply(op, total, prod);
      if (
        !pushStep(
          d,
          { op, a: total, b: prod, result, ...(totalFrom !== undefined ? { aFrom: totalFrom } : {}), bFrom: prodFrom },
          fill(t.line, { ...vars, expr: expression(op, total, prod, result) }),
        )
      )
        return null;
      total = result;
      totalFrom = d.steps.length - 1;
      remaining -= 2;
      continue;
    }
    const canSub = total >= 1;
    const op: '+' | '-' = canSub && rng() < 0.5 ? '-' : '+';
    const b = op === '-' ? randInt(rng, 1, Math.min(9, total)) : randInt(rng, 1, 9);
    const result = apply(op, total, b);
    d.sentences.push(fill(pick(rng, op === '+' ? t.add : t.sub), { ...vars, b }));
    if (
      !pushStep(
        d,
        { op, a: total, b, result, ...(totalFrom !== undefined ? { aFrom: totalFrom } : {}) },
        fill(t.line, { ...vars, expr: expression(op, total, b, result) }),
      )
    )
      return null;
    total = result;
    totalFrom = d.steps.length - 1;
    remaining--;
  }
  d.sentences.push(fill(t.question, base));
  return finish(d, t.name, difficulty);
}

// ---------------------------------------------------------------------------------------------
// Comparing: two or three people, each defined relative to the previous one.

function comparingProblem(rng: () => number, difficulty: Difficulty): Omit<Problem, 'id'> | null {
  const n = stepCount(rng, difficulty);
  const [p1, p2, p3] = threePeople(rng);
  const obj = pick(rng, ['marbles', 'books']);
  const d: Draft = { sentences: [], lines: [], steps: [] };
  const a = randInt(rng, 1, 9);
  d.sentences.push(`${p1.name} has ${a} ${obj}.`);

  /** One person relative to another: + ("more"), − ("fewer"), × ("times as many", difficulty ≥ 1). */
  const relate = (who: Person, than: Person, base: number, baseFrom: number | undefined): boolean => {
    const ops: Op[] = ['+', '-'];
    if (difficulty >= 1) ops.push('*');
    let op = pick(rng, ops);
    if (op === '-' && base < 2) op = '+';
    const b =
      op === '*'
        ? randInt(rng, MUL_LO, Math.min(MUL_HI, 4))
        : op === '-'
          ? randInt(rng, 1, Math.min(9, base - 1))
          : randInt(rng, 1, 9);
    const result = apply(op, base, b);
    d.sentences.push(
      op === '+'
        ? `${who.name} has ${b} more ${obj} than ${than.name}.`
        : op === '-'
          ? `${who.name} has ${b} fewer ${obj} than ${than.name}.`
          : `${who.name} has ${b} times as many ${obj} as ${than.name}.`,
    );
    return pushStep(
      d,
      { op, a: base, b, result, ...(baseFrom !== undefined ? { aFrom: baseFrom } : {}) },
      `${who.name} has ${expression(op, base, b, result)} ${obj}.`,
    );
  };

  if (!relate(p2, p1, a, undefined)) return null;
  const m = d.steps[0]!.result;
  if (n === 2) {
    // m, then a + m.
    const t = a + m;
    if (
      !pushStep(d, { op: '+', a, b: m, result: t, bFrom: 0 }, `Together they have ${expression('+', a, m, t)} ${obj}.`)
    )
      return null;
    d.sentences.push(`How many ${obj} do ${p1.name} and ${p2.name} have together?`);
  } else {
    if (!relate(p3, p2, m, 0)) return null;
    const l = d.steps[1]!.result;
    if (n === 3) {
      const t = m + l;
      if (
        !pushStep(
          d,
          { op: '+', a: m, b: l, result: t, aFrom: 0, bFrom: 1 },
          `Together they have ${expression('+', m, l, t)} ${obj}.`,
        )
      )
        return null;
      d.sentences.push(`How many ${obj} do ${p2.name} and ${p3.name} have together?`);
    } else {
      const s = a + m;
      if (
        !pushStep(
          d,
          { op: '+', a, b: m, result: s, bFrom: 0 },
          `${p1.name} and ${p2.name} have ${expression('+', a, m, s)} ${obj}.`,
        )
      )
        return null;
      const t = s + l;
      if (
        !pushStep(
          d,
          { op: '+', a: s, b: l, result: t, aFrom: 2, bFrom: 1 },
          `All three have ${expression('+', s, l, t)} ${obj}.`,
        )
      )
        return null;
      d.sentences.push(`How many ${obj} do the three of them have?`);
    }
  }
  return finish(d, 'comparing', difficulty);
}

// ---------------------------------------------------------------------------------------------

function twoPeople(rng: () => number): [Person, Person] {
  const [a, b] = threePeople(rng);
  return [a, b];
}

function threePeople(rng: () => number): [Person, Person, Person] {
  const a = pick(rng, PEOPLE);
  let b = pick(rng, PEOPLE);
  while (b === a) b = pick(rng, PEOPLE);
  let c = pick(rng, PEOPLE);
  while (c === a || c === b) c = pick(rng, PEOPLE);
  return [a, b, c];
}

function finish(d: Draft, template: TemplateName, difficulty: Difficulty): Omit<Problem, 'id'> {
  const final = d.steps[d.steps.length - 1]!.result;
  return {
    question: d.sentences.join(' '),
    answer: `${d.lines.join('\n')}\n#### ${final}`,
    final,
    steps: d.steps,
    template,
    difficulty,
  };
}

/** One random problem (either split), or null when the draw broke a constraint (draw again). */
export function drawProblem(rng: () => number, difficulty: Difficulty): Omit<Problem, 'id'> | null {
  const k = Math.floor(rng() * (RUNNING.length + 1));
  return k < RUNNING.length ? runningProblem(RUNNING[k]!, rng, difficulty) : comparingProblem(rng, difficulty);
}

/**
 * `count` distinct problems (by question text) of one split, deterministic in all options. The
 * first k problems of a run do not depend on `count`. Throws when the split cannot supply
 * `count` distinct problems.
 */
export function generateProblems(opts: GenerateOptions): Problem[] {
  const difficulty = opts.difficulty ?? 0;
  if (difficulty !== 0 && difficulty !== 1 && difficulty !== 2)
    throw new Error(`demo problems: difficulty must be 0, 1 or 2, got ${difficulty}`);
  if (opts.split !== 'train' && opts.split !== 'test')
    throw new Error(`demo problems: split must be "train" or "test", got ${opts.split}`);
  const testFraction = opts.testFraction ?? 0.2;
  if (!(testFraction > 0 && testFraction < 1))
    throw new Error(`demo problems: testFraction must be in (0, 1), got ${testFraction}`);
  const rng = seededRandom(hashString(`demo|${opts.seed}|${difficulty}|${opts.split}`));
  const seen = new Set<string>();
  const out: Problem[] = [];
  // Give up when this many draws in a row bring nothing new (the split is exhausted).
  const patience = 50000;
  for (let misses = 0; out.length < opts.count; ) {
    if (misses >= patience) {
      throw new Error(
        `demo problems: only ${out.length} distinct ${opts.split} problems of difficulty ${difficulty} found (asked for ${opts.count})`,
      );
    }
    const p = drawProblem(rng, difficulty);
    if (!p || splitOf(p.steps, testFraction) !== opts.split || seen.has(p.question)) {
      misses++;
      continue;
    }
    misses = 0;
    seen.add(p.question);
    out.push({ id: `demo-d${difficulty}-${opts.split}-${opts.seed}-${out.length + 1}`, ...p });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// GSM8K JSONL

/** GSM8K layout, one {"id","question","answer"} object per line (what loadQuestions reads). */
export function toGsm8kJsonl(problems: readonly Problem[]): string {
  // `steps` lets the evaluation change numbers consistently and recompute the answer (perturb.ts).
  return (
    problems
      .map((p) => JSON.stringify({ id: p.id, question: p.question, answer: p.answer, steps: p.steps }))
      .join('\n') + (problems.length ? '\n' : '')
  );
}

/** Writes `toGsm8kJsonl(problems)` to `path` (Node only), creating the folder. */
export async function writeGsm8kJsonl(path: string, problems: readonly Problem[]): Promise<void> {
  const fs = await import('node:fs/promises');
  const { dirname } = await import('node:path');
  await fs.mkdir(dirname(path), { recursive: true });
  await fs.writeFile(path, toGsm8kJsonl(problems), 'utf8');
}
