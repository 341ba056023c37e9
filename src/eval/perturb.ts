/**
 * Question perturbations for the robustness part of the evaluation. Deterministic: each one is a
 * function of the question and a seed.
 *
 * What is guaranteed:
 *
 * 1. `addDistractor` — one irrelevant sentence (GSM-IC style: about an unrelated subject, with a
 *    number in it) is inserted before the final sentence of the question (the one asking; for
 *    multiple choice, of the stem, above the options); the rest of the text is unchanged, byte for
 *    byte. A sentence sharing no content word (4+ letters) with the question is picked, so it is
 *    not about anything the question involves (with ten candidates on ten unrelated subjects one
 *    always qualified in GSM8K's test set; otherwise the least overlapping is used). The
 *    reference is unchanged.
 *
 * 2. `renameAndRescale`, free text (arbitrary GSM8K / MATH / MC questions) — only person names
 *    are changed: every whole-word, case-sensitive occurrence of a first name from a fixed list
 *    (`FEMALE_NAMES`, `MALE_NAMES`; names that are also common English words or months are left
 *    out of the lists) is replaced consistently, in the question and in the reference text, by
 *    another name of the same list (so pronouns stay right) that occurs nowhere in either text.
 *    Numbers are never touched, so the reference answer is unchanged. Questions without a listed
 *    name come back unchanged (`changed: false`).
 *
 * 3. `renameAndRescale`, structured questions — a `structure` carried by the question (a template
 *    with `{key}` slots, the names and numbers filling them and an arithmetic formula over the
 *    number keys giving the answer), or one derived from the demo generator's `steps`
 *    (`structureFromSteps`, which gives up whenever the number ↔ operand mapping is ambiguous) —
 *    the numbers are also scaled
 *    by one integer factor (keys in `fixed` excepted) and the reference answer is recomputed from
 *    the formula. The structure is used only if it describes the question exactly: the template
 *    filled with its values must reproduce the question text (whitespace-normalised) and the
 *    formula must reproduce the reference answer; otherwise the question is treated as free text
 *    (case 2). A factor is accepted only if every number stays an integer where it was one, every
 *    intermediate value of the formula is finite and ≥ 0, and (gsm8k) the answer is an integer;
 *    if no factor in {2, 3, 4, 5, 10} qualifies, the numbers are left as they are. Formulas are
 *    parsed by a small recursive-descent parser (+ − × ÷, parentheses, unary minus) — never eval.
 */
import { answersEqual, referenceAnswer, type Task } from '../tasks/answers';
import type { Question } from '../tasks/datasets';
import { fnv1a } from '../util/hash';
import { mulberry32 } from '../util/random';

// ---------------------------------------------------------------------------------------------
// Seeded randomness

function rngFor(seed: number, ...parts: string[]): () => number {
  return mulberry32(fnv1a(`${seed}\u0000${parts.join('\u0000')}`));
}

function shuffled<T>(xs: readonly T[], rng: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Data

export const FEMALE_NAMES: readonly string[] = [
  'Janet',
  'Mary',
  'Sarah',
  'Emily',
  'Jessica',
  'Anna',
  'Lisa',
  'Linda',
  'Karen',
  'Nancy',
  'Betty',
  'Helen',
  'Sandra',
  'Donna',
  'Ruth',
  'Sharon',
  'Michelle',
  'Laura',
  'Kimberly',
  'Deborah',
  'Amy',
  'Angela',
  'Melissa',
  'Rebecca',
  'Stephanie',
  'Julie',
  'Maria',
  'Monica',
  'Wendy',
  'Tina',
  'Diana',
  'Alice',
  'Claire',
  'Fiona',
  'Zoe',
  'Brenda',
  'Martha',
  'Susan',
  'Jennifer',
  'Ashley',
  'Carla',
  'Eliza',
  'Marie',
  'Tracy',
  'Gloria',
  'Greta',
  'Ellen',
  'Jane',
  'Rachel',
  'Julia',
  'Sophia',
  'Emma',
  'Olivia',
  'Chloe',
  'Natalie',
  'Samantha',
  'Hannah',
  'Lucy',
  'Katie',
  'Megan',
  'Kelly',
  'Elena',
  'Nina',
  'Paula',
  'Priya',
  'Aisha',
  'Mei',
  'Yuki',
  'Sally',
  'Dora',
  'Jenny',
  'Cindy',
  'Madeline',
  'Erin',
  'Vanessa',
  'Naomi',
  'Brianna',
  'Erica',
  'Bernadette',
  'Jana',
  'Jill',
  'Ava',
  'Sofie',
  'Beatrice',
  'Brittany',
  'Kylie',
  'Andrea',
  'Joanne',
  'Harriet',
  'Tasha',
  'Carly',
  'Kate',
  'Clara',
  'Sasha',
  'Rafaela',
  'Denise',
  'Sophie',
  'Wanda',
  'Melanie',
  'Gretchen',
  'Suzy',
  'Marcy',
  'Freda',
  'Dorothy',
  'Wendi',
  'Anne',
  'Ann',
  'Mia',
  'Eva',
];

export const MALE_NAMES: readonly string[] = [
  'John',
  'James',
  'Robert',
  'Michael',
  'David',
  'Richard',
  'Joseph',
  'Thomas',
  'Charles',
  'Daniel',
  'Matthew',
  'Anthony',
  'Paul',
  'Steven',
  'Kevin',
  'Brian',
  'George',
  'Edward',
  'Ronald',
  'Timothy',
  'Jason',
  'Jeffrey',
  'Ryan',
  'Jacob',
  'Gary',
  'Eric',
  'Jonathan',
  'Justin',
  'Brandon',
  'Samuel',
  'Benjamin',
  'Tom',
  'Tim',
  'Jim',
  'Ben',
  'Josh',
  'Mike',
  'Billy',
  'Raymond',
  'Peter',
  'Henry',
  'Oliver',
  'Lucas',
  'Ethan',
  'Noah',
  'Liam',
  'Mason',
  'Logan',
  'Carlos',
  'Juan',
  'Luis',
  'Ahmed',
  'Omar',
  'Kyle',
  'Adam',
  'Aaron',
  'Tyler',
  'Nathan',
  'Dylan',
  'Kenneth',
  'Steve',
  'Greg',
  'Jerry',
  'Larry',
  'Kylar',
  'Raj',
  'Hiroshi',
  'Ivan',
  'Fred',
  'Bobby',
  'Joe',
  'Harry',
  'Jake',
  'Marcus',
  'Jamal',
  'Joey',
  'Boris',
  'Igor',
  'Gerald',
  'Carl',
  'Sean',
  'Tony',
  'Wayne',
  'Andy',
  'Leo',
  'Stan',
  'Stephen',
  'Tommy',
  'Johnny',
  'Jimmy',
  'Zack',
  'Rick',
  'Nick',
  'Luke',
  'Stanley',
  'Walter',
  'Bruce',
  'Jeff',
  'Arnold',
  'Micah',
  'Nate',
  'Craig',
  'Albert',
  'Colin',
  'Jerome',
  'Amir',
  'Dave',
  'Seth',
  'Gunther',
  'Griffin',
  'Sam',
  'Max',
];

/** Irrelevant sentences (each about a subject no word problem shares with it, with a number). */
export const DISTRACTOR_SENTENCES: readonly string[] = [
  'The town library across the street has 3 floors.',
  'The tallest building in the city has 52 floors.',
  'The river running through the valley is 87 kilometers long.',
  'The nearby zoo is home to 9 giraffes.',
  'A lighthouse on the coast is 46 meters tall.',
  'The weather station recorded 15 millimeters of rain last week.',
  'The museum in the capital displays 300 paintings.',
  'The mountain trail nearby climbs 800 meters.',
  'The local football stadium seats 40000 spectators.',
  'An old oak tree in the park is 120 years old.',
];

const STOPWORDS = new Set([
  'that',
  'this',
  'with',
  'from',
  'have',
  'into',
  'their',
  'there',
  'nearby',
  'across',
  'through',
]);

function contentWords(s: string): string[] {
  return (s.toLowerCase().match(/\p{L}{4,}/gu) ?? []).filter((w) => !STOPWORDS.has(w));
}

// ---------------------------------------------------------------------------------------------
// Types

/** The structure of a generated problem (see the module comment, case 3). */
export interface StructuredProblem {
  /** The question text with `{key}` slots, e.g. "{p} has {x} apples and buys {y} more. How many apples does {p} have?". */
  template: string;
  /** Name slots → names. */
  names?: Record<string, string>;
  /** Number slots → values. */
  numbers: Record<string, number>;
  /** Arithmetic over number keys giving the answer, e.g. "x + y". */
  answer: string;
  /** Number keys that must not be scaled (e.g. "days in a week"). */
  fixed?: string[];
}

/**
 * One arithmetic step of a generated problem, as the demo generator (src/demo/problems.ts)
 * records them: `a op b = result`, where an operand is a number of the question unless it is
 * the result of an earlier step (`aFrom` / `bFrom`).
 */
export interface ArithmeticStep {
  op: '+' | '-' | '*';
  a: number;
  b: number;
  result: number;
  aFrom?: number;
  bFrom?: number;
}

/** A question that may carry its structure: explicitly, or as the demo generator's steps. */
export type PerturbableQuestion = Question & { structure?: StructuredProblem; steps?: ArithmeticStep[] };

export type PerturbationKind = 'distractor' | 'rename';

export interface Perturbed {
  kind: PerturbationKind;
  /** The perturbed question (id `<id>~<kind>`); equal in text to the original when `changed` is false. */
  question: Question;
  changed: boolean;
  /** distractor: the inserted sentence. */
  sentence?: string;
  /** rename: the names replaced. */
  names?: { from: string; to: string }[];
  /** rename of a structured question: the factor the numbers were scaled by (null: not scaled). */
  scale?: number | null;
  /** rename: whether the reference answer was recomputed (structured questions only). */
  answerRecomputed?: boolean;
  /** Why a carried structure was not used. */
  structureIgnored?: string;
}

// ---------------------------------------------------------------------------------------------
// Distractor

const ABBREV = /(?:^|\s)(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|vs|etc|e\.g|i\.e|No)\.$/;

/** Splits a multiple-choice question into stem and the option block (text from the first "A." line). */
function splitStem(text: string): { stem: string; tail: string } {
  const m = /\n\s*\(?A[).:]\s/.exec(text);
  if (!m) return { stem: text, tail: '' };
  return { stem: text.slice(0, m.index), tail: text.slice(m.index) };
}

/** Inserts `sentence` before the last sentence of `text` (or in front of it when it has one sentence). */
export function insertBeforeLastSentence(text: string, sentence: string): string {
  const { stem, tail } = splitStem(text);
  const trimmedEnd = stem.replace(/\s+$/, '');
  const trailing = stem.slice(trimmedEnd.length);
  let cut = -1;
  for (const m of trimmedEnd.matchAll(/[.!?]["'”’)\]]?(\s+)(?=["'“‘(]?[A-Z0-9])/g)) {
    const end = m.index! + m[0].length;
    if (end >= trimmedEnd.length) continue;
    if (m[0].startsWith('.') && ABBREV.test(trimmedEnd.slice(0, m.index! + 1))) continue;
    cut = end;
  }
  const out = cut < 0 ? `${sentence} ${trimmedEnd}` : `${trimmedEnd.slice(0, cut)}${sentence} ${trimmedEnd.slice(cut)}`;
  return `${out}${trailing}${tail}`;
}

/** Perturbation (i): an irrelevant sentence added. */
export function addDistractor(q: Question, seed = 0): Perturbed {
  const rng = rngFor(seed, 'distractor', String(q.id));
  const words = new Set(contentWords(q.question));
  const candidates = shuffled(DISTRACTOR_SENTENCES, rng);
  const overlap = (s: string) => contentWords(s).filter((w) => words.has(w)).length;
  // The first (seeded order) sentence sharing no content word; if every one shares some, the least overlapping.
  const sentence = candidates.reduce((best, s) => (overlap(s) < overlap(best) ? s : best), candidates[0]!);
  const text = insertBeforeLastSentence(q.question, sentence);
  return {
    kind: 'distractor',
    question: strip({ ...q, id: `${q.id}~distractor`, question: text }),
    changed: text !== q.question,
    sentence,
  };
}

function strip(q: Question & { structure?: unknown; steps?: unknown }): Question {
  const { structure: _s, steps: _t, ...rest } = q;
  return rest;
}

// ---------------------------------------------------------------------------------------------
// Names

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const wordRe = (name: string, flags = 'g') =>
  new RegExp(`(?<![\\p{L}\\p{N}_])${escapeRe(name)}(?![\\p{L}\\p{N}_])`, `u${flags}`);

/** The listed names occurring in `text`, in order of first occurrence. */
export function findNames(text: string): string[] {
  const found: { name: string; at: number }[] = [];
  for (const name of [...FEMALE_NAMES, ...MALE_NAMES]) {
    const m = wordRe(name, '').exec(text);
    if (m) found.push({ name, at: m.index });
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.name);
}

/** A consistent name mapping for the names in `texts` (same-gender replacements absent from every text). */
export function nameMapping(texts: string[], rng: () => number): { from: string; to: string }[] {
  const all = texts.join('\n');
  const present = (n: string) => wordRe(n, 'i').test(all);
  const used = new Set<string>();
  const out: { from: string; to: string }[] = [];
  for (const from of findNames(texts[0] ?? '')) {
    const pool = FEMALE_NAMES.includes(from) ? FEMALE_NAMES : MALE_NAMES;
    const to = shuffled(pool, rng).find((n) => n !== from && !used.has(n) && !present(n));
    if (!to) continue;
    used.add(to);
    out.push({ from, to });
  }
  return out;
}

/** Applies a name mapping simultaneously (no chains: a → b, b → c never turns a into c). */
export function applyNames(text: string, mapping: { from: string; to: string }[]): string {
  if (!mapping.length) return text;
  const alt = mapping.map((m) => escapeRe(m.from)).join('|');
  const re = new RegExp(`(?<![\\p{L}\\p{N}_])(?:${alt})(?![\\p{L}\\p{N}_])`, 'gu');
  const to = new Map(mapping.map((m) => [m.from, m.to]));
  return text.replace(re, (s) => to.get(s) ?? s);
}

// ---------------------------------------------------------------------------------------------
// Formulas

/** Evaluates + − × ÷ arithmetic over named values; returns the value and every intermediate result. */
export function evaluateFormula(
  expr: string,
  vars: Record<string, number>,
): { value: number; intermediates: number[] } {
  const toks = expr.match(/\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_]*|[-+*/×÷()]|\S/g) ?? [];
  let i = 0;
  const intermediates: number[] = [];
  const fail = (msg: string): never => {
    throw new Error(`formula ${JSON.stringify(expr)}: ${msg}`);
  };
  const peek = () => toks[i];
  const expression = (): number => {
    let v = term();
    while (peek() === '+' || peek() === '-') {
      const op = toks[i++];
      const r = term();
      v = op === '+' ? v + r : v - r;
      intermediates.push(v);
    }
    return v;
  };
  const term = (): number => {
    let v = factor();
    while (peek() === '*' || peek() === '/' || peek() === '×' || peek() === '÷') {
      const op = toks[i++];
      const r = factor();
      v = op === '*' || op === '×' ? v * r : v / r;
      intermediates.push(v);
    }
    return v;
  };
  const factor = (): number => {
    const t = toks[i++];
    if (t === undefined) return fail('unexpected end');
    if (t === '(') {
      const v = expression();
      if (toks[i++] !== ')') fail('missing )');
      return v;
    }
    if (t === '-') {
      const v = -factor();
      intermediates.push(v);
      return v;
    }
    if (/^\d/.test(t)) return Number(t);
    if (/^[A-Za-z_]/.test(t)) {
      if (!Object.hasOwn(vars, t)) fail(`unknown name ${t}`);
      return vars[t]!;
    }
    return fail(`unexpected ${JSON.stringify(t)}`);
  };
  const value = expression();
  if (i !== toks.length) fail(`unexpected ${JSON.stringify(toks[i])}`);
  return { value, intermediates };
}

function formatNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(12)));
}

/** Fills `{key}` slots with names and numbers; throws on a slot without a value. */
export function renderTemplate(s: StructuredProblem, numbers: Record<string, number> = s.numbers): string {
  return s.template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, k: string) => {
    if (s.names && Object.hasOwn(s.names, k)) return s.names[k]!;
    if (Object.hasOwn(numbers, k)) return formatNumber(numbers[k]!);
    throw new Error(`template slot {${k}} has no value`);
  });
}

const squeeze = (s: string) => s.replace(/\s+/g, ' ').trim();

/** Why a structure does not describe its question, or null when it does. */
export function checkStructure(q: PerturbableQuestion): string | null {
  const s = q.structure;
  if (!s) return 'no structure';
  if (typeof s.template !== 'string' || typeof s.answer !== 'string' || !s.numbers || typeof s.numbers !== 'object')
    return 'malformed structure';
  try {
    if (squeeze(renderTemplate(s)) !== squeeze(q.question)) return 'template does not reproduce the question';
    const { value } = evaluateFormula(s.answer, s.numbers);
    const ref = referenceAnswer(q.task, String(q.answer));
    if (!answersEqual(q.task, formatNumber(value), ref)) return 'formula does not reproduce the reference answer';
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

/**
 * Derives a StructuredProblem from a question text and its arithmetic steps: every integer
 * written in digits in the question becomes a slot, and each literal operand of the steps (one
 * not taken from an earlier step) is matched to a slot of the same value (the first unused one,
 * else a used one: a number taken again). Which of several equal-valued slots an operand gets
 * does not matter, as the numbers are scaled by one common factor. Returns null when an operand
 * is not a number of the question, or a number of the question is used by no step (decimals and
 * thousands separators are not slots, so they end up there). The result is still checked by
 * `checkStructure` before use.
 */
export function structureFromSteps(question: string, steps: readonly ArithmeticStep[]): StructuredProblem | null {
  if (!Array.isArray(steps) || !steps.length) return null;
  const slots: number[] = [];
  let template = '';
  let last = 0;
  for (const m of question.matchAll(/(?<![\d.,])\d+(?![\d.,]\d)/g)) {
    template += `${question.slice(last, m.index).replace(/[{}]/g, '')}{n${slots.length}}`;
    slots.push(Number(m[0]));
    last = m.index! + m[0].length;
  }
  if (/[{}]/.test(question)) return null;
  template += question.slice(last);
  const used = slots.map(() => false);
  const exprs: string[] = [];
  const literal = (v: number): string | null => {
    let i = slots.findIndex((x, j) => x === v && !used[j]);
    if (i < 0) i = slots.indexOf(v); // a number of the question used again
    if (i < 0) return null;
    used[i] = true;
    return `n${i}`;
  };
  for (const st of steps) {
    if (st.op !== '+' && st.op !== '-' && st.op !== '*') return null;
    const operand = (v: number, from: number | undefined): string | null => {
      if (from !== undefined) return Number.isInteger(from) && from >= 0 && from < exprs.length ? exprs[from]! : null;
      return literal(v);
    };
    const a = operand(st.a, st.aFrom);
    if (a === null) return null;
    const b = operand(st.b, st.bFrom);
    if (b === null) return null;
    exprs.push(`(${a} ${st.op} ${b})`);
  }
  if (used.some((u) => !u)) return null; // a number of the question no step uses
  const numbers: Record<string, number> = {};
  slots.forEach((v, i) => (numbers[`n${i}`] = v));
  return { template, numbers, answer: exprs[exprs.length - 1]! };
}

const SCALES = [2, 3, 4, 5, 10];

function scaledNumbers(
  s: StructuredProblem,
  task: Task,
  rng: () => number,
): { numbers: Record<string, number>; value: number; scale: number } | null {
  const fixed = new Set(s.fixed ?? []);
  for (const k of shuffled(SCALES, rng)) {
    const numbers: Record<string, number> = {};
    let ok = true;
    for (const [key, v] of Object.entries(s.numbers)) {
      const nv = fixed.has(key) ? v : v * k;
      if (Number.isInteger(v) && !Number.isInteger(nv)) ok = false;
      numbers[key] = nv;
    }
    if (!ok) continue;
    let r: { value: number; intermediates: number[] };
    try {
      r = evaluateFormula(s.answer, numbers);
    } catch {
      return null;
    }
    if (!Number.isFinite(r.value) || r.value < 0 || r.intermediates.some((x) => !Number.isFinite(x) || x < 0)) continue;
    if (task === 'gsm8k' && !Number.isInteger(r.value)) continue;
    return { numbers, value: r.value, scale: k };
  }
  return null;
}

/** Perturbation (ii): names changed (and, for structured questions, numbers scaled with the answer recomputed). */
export function renameAndRescale(q0: PerturbableQuestion, seed = 0): Perturbed {
  const rng = rngFor(seed, 'rename', String(q0.id));
  let q = q0;
  if (!q.structure && q.steps) {
    const derived = structureFromSteps(q.question, q.steps);
    q = derived ? { ...q, structure: derived } : q;
  }
  let text = q.question;
  let answer = String(q.answer);
  let scale: number | null = null;
  let answerRecomputed = false;
  let structureIgnored: string | undefined;
  if (q.structure) {
    structureIgnored = checkStructure(q) ?? undefined;
    if (!structureIgnored) {
      const sc = scaledNumbers(q.structure, q.task, rng);
      if (sc) {
        text = renderTemplate(q.structure, sc.numbers);
        answer = q.task === 'gsm8k' ? `#### ${formatNumber(sc.value)}` : formatNumber(sc.value);
        scale = sc.scale;
        answerRecomputed = true;
      }
    }
  }
  const names = nameMapping([text, answer], rng);
  text = applyNames(text, names);
  answer = applyNames(answer, names);
  const out: Perturbed = {
    kind: 'rename',
    question: strip({ ...q, id: `${q.id}~rename`, question: text, answer }),
    changed: text !== q.question,
    names,
    scale,
    answerRecomputed,
  };
  if (structureIgnored) out.structureIgnored = structureIgnored;
  return out;
}

/** Both perturbations of a question. */
export function perturbQuestion(q: PerturbableQuestion, seed = 0): { distractor: Perturbed; rename: Perturbed } {
  return { distractor: addDistractor(q, seed), rename: renameAndRescale(q, seed) };
}
