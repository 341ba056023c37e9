import { casEqual } from './math-equivalence';

/**
 * Answer extraction and grading for the task families the project evaluates:
 *
 * - `gsm8k`: a single number (grade-school maths word problems);
 * - `math`:  a LaTeX expression, normally the last `\boxed{...}` (MATH / Hendrycks style);
 * - `mc`:    a multiple-choice letter A–E;
 * - `qa`:    a short free-text answer (HotpotQA-style), compared as SQuAD's exact match after
 *            its normalisation (lowercase, punctuation and articles removed); `qaF1` gives SQuAD's
 *            token F1.
 *
 * `extractAnswer` pulls a normalised answer out of free model output, `referenceAnswer` does the
 * same for a dataset's reference (a GSM8K "#### 18" solution, a MATH solution, a bare answer),
 * `answersEqual` compares two normalised answers (numerically where both are numbers) and
 * `grade` chains the three. Pure functions, no dependencies: usable in the browser and in Node.
 */

export type Task = 'gsm8k' | 'math' | 'mc' | 'qa';

/** Every task, in the order usage texts list them. */
export const TASKS: readonly Task[] = ['gsm8k', 'math', 'mc', 'qa'];

export function isTask(x: unknown): x is Task {
  return typeof x === 'string' && (TASKS as readonly string[]).includes(x);
}

export interface GradeResult {
  extracted: string | null;
  reference: string | null;
  correct: boolean;
}

// ---------------------------------------------------------------------------------------------
// Public API

/** Extract the model's final answer from free text, normalised for `task`; null if none found. */
export function extractAnswer(task: Task, text: string): string | null {
  if (typeof text !== 'string') return null;
  switch (task) {
    case 'gsm8k':
      return extractGsm8k(text);
    case 'math':
      return extractMath(text);
    case 'mc':
      return extractChoice(text);
    case 'qa':
      return extractShortAnswer(text);
  }
}

/**
 * The normalised reference answer: from a GSM8K solution ("... #### 18" or "... A: 18"), a MATH
 * solution (its last `\boxed{}`), a multiple-choice key ("C", "(C)") or a bare answer.
 */
export function referenceAnswer(task: Task, reference: string): string | null {
  if (typeof reference !== 'string') return null;
  const ref = reference.trim();
  if (!ref) return null;
  switch (task) {
    case 'gsm8k':
      return extractGsm8k(ref);
    case 'math': {
      const boxed = lastBoxed(ref);
      if (boxed !== null) return normalizeMath(boxed);
      // A bare answer such as "\frac{1}{2}" or "$5$": normalise the whole string. Long prose
      // without a box (rare: some MATH solutions) goes through the free-text extractor.
      if (ref.length <= 80 && !/\n/.test(ref)) return normalizeMath(ref);
      return extractMath(ref);
    }
    case 'mc': {
      const bare = /^[\s*([]*([A-Ea-e])[\s.)\]*:]*$/.exec(ref);
      if (bare) return bare[1]!.toUpperCase();
      return extractChoice(ref);
    }
    case 'qa':
      return ref;
  }
}

/** Whether two normalised answers are equal for `task` (numeric equality where both parse). */
export function answersEqual(task: Task, a: string | null, b: string | null): boolean {
  if (a === null || b === null) return false;
  switch (task) {
    case 'gsm8k': {
      const x = parseNumber(a);
      const y = parseNumber(b);
      if (x !== null && y !== null) return numbersClose(x, y);
      return a.trim() === b.trim();
    }
    case 'math':
      return mathEqual(normalizeMath(a), normalizeMath(b));
    case 'mc':
      return a.trim().toUpperCase() === b.trim().toUpperCase() && a.trim() !== '';
    case 'qa': {
      const x = squadNormalize(a);
      return x !== '' && x === squadNormalize(b);
    }
  }
}

/** Extract the prediction's answer and the reference's answer, and compare them. */
export function grade(task: Task, prediction: string, reference: string): GradeResult {
  const extracted = extractAnswer(task, prediction);
  const ref = referenceAnswer(task, reference);
  return { extracted, reference: ref, correct: answersEqual(task, extracted, ref) };
}

// ---------------------------------------------------------------------------------------------
// Numbers (shared by GSM8K and MATH)

/**
 * One number as written in prose: optional sign (a hyphen only counts as a minus when it is not
 * joining two operands, as in "16-3"), optional `$`, thousands separators, decimals, an exponent,
 * or a simple fraction "3/4". Units and words after it are simply not part of the match.
 */
const NUMBER_SOURCE =
  String.raw`(?:(?<![\w)\]])[-−–])?(?:\$\s?)?` +
  String.raw`(?:(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d])|(?<![\d.])\d+|(?<![\d.])(?=\.\d))` +
  String.raw`(?:\.\d+)?(?:[eE][-+]?\d+(?![\w]))?(?:\/\d+(?:\.\d+)?(?!\d|\.\d))?%?`;

function numberRegex(flags = 'g'): RegExp {
  return new RegExp(NUMBER_SOURCE, flags);
}

/** Parse a (possibly messy) numeric string: "1,000", "$18.00", "-3/4", "50%", "1e3". */
export function parseNumber(raw: string): number | null {
  let s = raw
    .trim()
    .replace(/\\!|\\,|\\\$|\$|\s/g, '')
    .replace(/[−–]/g, '-');
  s = s.replace(/\.$/, '').replace(/%$|\\%$/, '');
  if (/^[-+]?(?:\d{1,3}(?:,\d{3})+)(?:\.\d+)?$/.test(s)) s = s.replace(/,/g, '');
  if (/^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(s)) {
    const v = Number(s);
    return Number.isFinite(v) ? v : null;
  }
  const frac = /^([-+]?)(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)$/.exec(s);
  if (frac) {
    const den = Number(frac[3]);
    if (den === 0) return null;
    const v = Number(frac[2]) / den;
    return frac[1] === '-' ? -v : v;
  }
  return null;
}

function numbersClose(a: number, b: number): boolean {
  if (a === b) return true;
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return Math.abs(a);
}

/** Canonical text for a matched number: "1,000.50" → "1000.5", "-$3" → "-3", "6/8" → "0.75", "2/6" → "1/3". */
function canonicalNumber(raw: string): string | null {
  const cleaned = raw
    .replace(/[−–]/g, '-')
    .replace(/[\s$%]/g, '')
    .replace(/,/g, '');
  const frac = /^(-?)(\d+)\/(\d+)$/.exec(cleaned);
  if (frac) {
    const num = Number(frac[2]);
    const den = Number(frac[3]);
    if (den === 0) return null;
    const v = num / den;
    // Terminating decimals become decimals; others stay a reduced fraction.
    let d = den / gcd(num, den);
    while (d % 2 === 0) d /= 2;
    while (d % 5 === 0) d /= 5;
    if (d === 1) return formatNumber(frac[1] === '-' ? -v : v);
    const g = gcd(num, den);
    return `${frac[1]}${num / g}/${den / g}`;
  }
  const v = parseNumber(cleaned);
  return v === null ? null : formatNumber(v);
}

function formatNumber(v: number): string {
  if (Object.is(v, -0)) v = 0;
  if (Number.isInteger(v) && Math.abs(v) < 1e21) return v.toFixed(0);
  // Drop float noise such as 0.30000000000000004 while keeping written precision.
  return String(Number(v.toPrecision(15)));
}

/** The first number in `segment`, canonicalised; after the last "=" if the segment is an equation. */
function firstNumber(segment: string): string | null {
  let s = segment;
  const eq = s.lastIndexOf('=');
  if (eq >= 0 && numberRegex('').test(s.slice(eq + 1))) s = s.slice(eq + 1);
  const m = numberRegex('').exec(s);
  return m ? canonicalNumber(m[0]) : null;
}

function lastNumber(text: string): string | null {
  let last: string | null = null;
  for (const m of text.matchAll(numberRegex())) last = m[0];
  return last === null ? null : canonicalNumber(last);
}

// ---------------------------------------------------------------------------------------------
// GSM8K

/** Remove GSM8K calculator annotations "<<16-3-4=9>>" (the result follows them in the text). */
function stripCalculator(text: string): string {
  return text.replace(/<<[^<>]*>>/g, '');
}

/** Final-answer statements, strongest first. Each captures the rest of its line. */
const GSM8K_STATEMENTS: RegExp[] = [
  /####\s*([^\n]*)/g,
  /\b(?:the\s+)?(?:final\s+)?answer\s+is\s*[:：]?\s*([^\n]*)/gi,
  /(?:^|\n)[ \t*#>_]*(?:A|Answer|Final\s+Answer|ANSWER)\s*[*_]*\s*[:：]\s*([^\n]*)/g,
  /\b(?:final\s+)?answer\s*[*_]*\s*[:：]\s*([^\n]*)/gi,
];

function extractGsm8k(raw: string): string | null {
  // "\frac{3}{4}" → "3/4" so LaTeX fractions read as one number.
  const text = stripCalculator(raw).replace(/\\[dt]?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}/g, '$1/$2');
  for (const re of GSM8K_STATEMENTS) {
    const found = lastCapturedNumber(text, re);
    if (found !== null) return found;
  }
  const boxed = lastBoxed(text);
  if (boxed !== null) {
    const n = firstNumber(boxed.replace(/\\text\{[^{}]*\}/g, ' ').replace(/\\!|\\,/g, ''));
    if (n !== null) return n;
  }
  return lastNumber(text);
}

/** Of all matches of `re` (which must be global), the last whose captured segment holds a number. */
function lastCapturedNumber(text: string, re: RegExp): string | null {
  let result: string | null = null;
  for (const m of text.matchAll(re)) {
    const segment = (m[1] ?? '').replace(/\\boxed\{([^{}]*)\}/g, '$1').replace(/\*\*/g, '');
    const n = firstNumber(segment);
    if (n !== null) result = n;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// MATH

/**
 * Content of the last complete `\boxed{...}` / `\fbox{...}` (nested braces matched), or of the
 * brace-less form `\boxed 5`. Unterminated boxes (truncated output) are skipped.
 */
export function lastBoxed(text: string): string | null {
  const starts = [...text.matchAll(/\\(?:boxed|fbox)(?![a-zA-Z])/g)].map((m) => m.index!);
  for (let k = starts.length - 1; k >= 0; k--) {
    const content = boxedAt(text, starts[k]!);
    if (content !== null) return content;
  }
  return null;
}

/** Content of the `\boxed`/`\fbox` command starting at `start`; null if unterminated. */
function boxedAt(text: string, start: number): string | null {
  const cmd = /^\\(?:boxed|fbox)/.exec(text.slice(start));
  if (!cmd) return null;
  let i = start + cmd[0].length;
  while (i < text.length && /[ \t]/.test(text[i]!)) i++;
  if (text[i] === '{') {
    const close = matchingBrace(text, i);
    return close < 0 ? null : text.slice(i + 1, close);
  }
  if (i > start + cmd[0].length) {
    const m = /^[^\s$]+/.exec(text.slice(i));
    if (m) return m[0];
  }
  return null;
}

function extractMath(text: string): string | null {
  const boxed = lastBoxed(text);
  if (boxed !== null) return normalizeMath(boxed);
  // "The final answer is $x$." (Minerva style) or "The answer is: x".
  const statements = [/\b(?:final\s+)?answer\s+is\s*[:：]?\s*([^\n]*)/gi, /\b(?:final\s+)?answer\s*[:：]\s*([^\n]*)/gi];
  for (const re of statements) {
    let last: string | null = null;
    for (const m of text.matchAll(re)) {
      const seg = mathSegment(m[1] ?? '');
      if (seg) last = seg;
    }
    if (last !== null) return normalizeMath(last);
  }
  const n = lastNumber(text);
  return n === null ? null : normalizeMath(n);
}

/** The answer part of "…answer is <segment>": its first inline `$…$` if any, else the text up to the sentence end. */
function mathSegment(seg: string): string | null {
  let s = seg
    .trim()
    .replace(/^\*\*|\*\*$/g, '')
    .trim();
  const dollars = /^\$\$?([^$]+)\$/.exec(s) ?? /^\\\((.+?)\\\)/.exec(s) ?? /^\\\[(.+?)\\\]/.exec(s);
  if (dollars) return dollars[1]!.trim();
  const inline = /\$([^$]+)\$/.exec(s);
  if (inline) return inline[1]!.trim();
  s = s.replace(/\.\s+(?:I hope|This|So|Therefore)\b.*$/, '');
  s = s.replace(/\s*[.]\s*$/, '');
  return s || null;
}

/** Strip a trailing `\text{unit}` (and `^2`/`^3`) after a numeric answer; unwrap other text macros. */
function stripTextUnits(s: string): string {
  const unit = /^(.*?\S)\s*\\(?:text|textrm|mbox|mathrm)\s*\{[^{}]*\}\s*(?:\^\{?[23]\}?)?$/;
  for (let guard = 0; guard < 4; guard++) {
    const m = unit.exec(s);
    if (!m || !/\d/.test(m[1]!)) break;
    // Keep "\text{(A)}"-style answers and words: only drop units after a number-like body.
    if (!/[\d}.)]\s*$/.test(m[1]!)) break;
    s = m[1]!;
  }
  return s.replace(/\\(?:text|textrm|textbf|textit|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}/g, '$1');
}

/** Replace "\frac12", "\frac1{2}", "\frac{1}2" by "\frac{1}{2}" and "\sqrt2" by "\sqrt{2}". */
function fixFracs(s: string): string {
  s = s.replace(/\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])/g, '\\frac{$1}{$2}');
  s = s.replace(/\\frac\s*([0-9a-zA-Z])\s*\{/g, '\\frac{$1}{');
  s = s.replace(/\\frac\s*\{([^{}]*)\}\s*([0-9a-zA-Z])/g, '\\frac{$1}{$2}');
  s = s.replace(/\\sqrt\s*([0-9a-zA-Z])/g, '\\sqrt{$1}');
  return s;
}

function stripOuterBraces(s: string): string {
  while (s.startsWith('{') && s.endsWith('}') && matchingBrace(s, 0) === s.length - 1) s = s.slice(1, -1);
  return s;
}

function matchingBrace(s: string, open: number): number {
  let depth = 0;
  for (let j = open; j < s.length; j++) {
    if (s[j] === '\\') {
      j++;
      continue;
    }
    if (s[j] === '{') depth++;
    else if (s[j] === '}' && --depth === 0) return j;
  }
  return -1;
}

/** Normalise a MATH answer so that equivalent spellings compare equal as strings. */
export function normalizeMath(input: string): string {
  let s = input.trim();
  s = s.replace(/\n/g, ' ');
  s = s.replace(/^\$+|\$+$/g, '').trim();
  s = s.replace(/^\\\(|\\\)$/g, '').replace(/^\\\[|\\\]$/g, '');
  s = s.replace(/\\\\/g, '\\');
  s = s.replace(/\\(?:display|text|script)style(?![a-zA-Z])/g, '');
  s = s.replace(/\\[dt]frac(?![a-zA-Z])/g, '\\frac').replace(/\\[dt]binom(?![a-zA-Z])/g, '\\binom');
  s = s.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])/g, '');
  s = s.replace(/\\[!,;:]|\\quad(?![a-zA-Z])|\\qquad(?![a-zA-Z])|\\ /g, ' ');
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|°|\\degree(?![a-zA-Z])/g, '');
  s = s.replace(/\\\$|\$/g, '');
  s = s.replace(/\\%|%/g, '');
  s = stripTextUnits(s.trim());
  s = s.replace(/\{,\}/g, ',');
  s = s.replace(/\s+/g, '');
  s = s.replace(/\.+$/, '');
  s = s
    .replace(/\\le(?![a-zA-Z])/g, '\\leq')
    .replace(/\\ge(?![a-zA-Z])/g, '\\geq')
    .replace(/\\ne(?![a-zA-Z])/g, '\\neq');
  s = stripOuterBraces(s);
  // "x=5" → "5" (a single variable assigned once, as in "the value of x").
  const eq = /^([a-zA-Z](?:_\{?\w+\}?)?|\\[a-zA-Z]+)=([^=]+)$/.exec(s);
  if (eq && !/[<>]/.test(eq[2]!)) s = eq[2]!;
  s = fixFracs(s);
  // \binom{n}{k} of integers → its value (the CAS does not read \binom).
  s = s.replace(/\\binom\{(\d+)\}\{(\d+)\}/g, (_m, n: string, k: string) => String(binomial(Number(n), Number(k))));
  // "3/4" → "\frac{3}{4}" for plain integers.
  const slash = /^(-?)(\d+)\/(\d+)$/.exec(s);
  if (slash) s = `${slash[1]}\\frac{${slash[2]}}{${slash[3]}}`;
  // Thousands separators in a lone number.
  if (/^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/,/g, '');
  // ".5" → "0.5", "2.50" → "2.5", "3.0" → "3".
  if (/^-?\.\d/.test(s)) s = s.replace(/^(-?)\./, '$10.');
  if (/^-?\d+\.\d*$/.test(s)) s = s.replace(/0+$/, '').replace(/\.$/, '');
  return s;
}

function binomial(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  let r = 1;
  for (let i = 1; i <= Math.min(k, n - k); i++) r = (r * (n - i + 1)) / i;
  return Math.round(r);
}

/** Numeric value of a normalised MATH answer: integers, decimals, \frac{a}{b}, a/b, \sqrt{n}, signs. */
function mathNumber(s: string): number | null {
  const plain = parseNumber(s);
  if (plain !== null && /^[-+]?[\d.]/.test(s)) return plain;
  const frac = /^([-+]?)\\frac\{([-+]?[\d.]+)\}\{([-+]?[\d.]+)\}$/.exec(s);
  if (frac) {
    const den = Number(frac[3]);
    const num = Number(frac[2]);
    if (!den || !Number.isFinite(num)) return null;
    return (frac[1] === '-' ? -1 : 1) * (num / den);
  }
  return null;
}

/** Split "(a,b,c)" / "[a,b]" / "a,b" at top-level commas, returning the brackets and parts. */
function splitTuple(s: string): { open: string; close: string; parts: string[] } | null {
  let open = '';
  let close = '';
  let body = s;
  if (/^[([{]/.test(s) && /[)\]}]$/.test(s)) {
    open = s[0]!;
    close = s[s.length - 1]!;
    body = s.slice(1, -1);
  } else if (s.startsWith('\\{') && s.endsWith('\\}')) {
    open = '\\{';
    close = '\\}';
    body = s.slice(2, -2);
  }
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '{' || c === '(' || c === '[') depth++;
    else if (c === '}' || c === ')' || c === ']') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(body.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) return null;
  parts.push(body.slice(start));
  return parts.length > 1 ? { open, close, parts } : null;
}

/**
 * Equality of two normalised MATH answers: equal strings, equal numbers, tuples / intervals / sets
 * element-wise with the same brackets, unions (\cup) part by part, then mathematical equality by
 * the computer-algebra system (math-equivalence.ts).
 */
function mathEqual(a: string, b: string): boolean {
  if (a === b) return a !== '';
  if (!a || !b) return false;
  const x = mathNumber(a);
  const y = mathNumber(b);
  if (x !== null && y !== null) return numbersClose(x, y);
  const ua = a.split('\\cup');
  const ub = b.split('\\cup');
  if (ua.length > 1 || ub.length > 1)
    return ua.length === ub.length && ua.every((p, i) => mathEqual(normalizeMath(p), normalizeMath(ub[i]!)));
  const ta = splitTuple(a);
  const tb = splitTuple(b);
  if (ta || tb) {
    if (!ta || !tb || ta.open !== tb.open || ta.close !== tb.close || ta.parts.length !== tb.parts.length) return false;
    return ta.parts.every((p, i) => mathEqual(normalizeMath(p), normalizeMath(tb.parts[i]!)));
  }
  // A bare word ("Evelyn", "odd") is only equal to itself, modulo case.
  if (/^[A-Za-z ]{2,}$/.test(a) || /^[A-Za-z ]{2,}$/.test(b)) return a.toLowerCase() === b.toLowerCase();
  return casEqual(a, b);
}

// ---------------------------------------------------------------------------------------------
// Multiple choice

const L = '[A-E]';

/** Explicit answer statements; each captures the letter. The last one in the text wins. */
const CHOICE_STATEMENTS: RegExp[] = [
  // "Answer: C", "The answer is (C)", "the correct answer is **C**", "Final answer: option C"
  new RegExp(
    String.raw`\b(?:[Aa]nswer|ANSWER)\b(?:\s+is)?\s*(?:[:：]|\bis\b)?\s*[*_]*\s*(?:[Oo]ption\s+|[Cc]hoice\s+)?[*_([\s]*(${L})(?![A-Za-z0-9])`,
    'g',
  ),
  /\b(?:[Aa]nswer|ANSWER)\b(?:\s+is)?\s*[:：]?\s*[*_\s]*\(([a-e])\)/g,
  // "the correct option is C", "correct choice: (B)"
  new RegExp(
    String.raw`\b[Cc]orrect\s+(?:option|choice|letter)\s*(?:is)?\s*[:：]?\s*[*_([\s]*(${L})(?![A-Za-z0-9])`,
    'g',
  ),
  // "(C) is correct", "Option C is the correct answer"
  new RegExp(String.raw`(?:^|[\s(*])(${L})\)?[*]*\s+is\s+(?:the\s+)?(?:correct|right|best)\b`, 'g'),
];

function boxedChoice(text: string): { letter: string; index: number } | null {
  const re = /\\(?:boxed|fbox)(?![a-zA-Z])/g;
  let best: { letter: string; index: number } | null = null;
  for (const m of text.matchAll(re)) {
    const content = boxedAt(text, m.index!);
    if (content === null) continue;
    const inner = content.replace(/\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}/g, '$1').trim();
    const letter = /^[(\s]*([A-Ea-e])(?:[).:\s]|$)/.exec(inner);
    if (letter) best = { letter: letter[1]!.toUpperCase(), index: m.index! };
  }
  return best;
}

function extractChoice(text: string): string | null {
  // 1. Explicit statements and boxed letters: the last one in the text.
  let best: { letter: string; index: number } | null = boxedChoice(text);
  for (const re of CHOICE_STATEMENTS) {
    for (const m of text.matchAll(re)) {
      if (!best || m.index! >= best.index) best = { letter: m[1]!.toUpperCase(), index: m.index! };
    }
  }
  if (best) return best.letter;
  // 2. A bold letter: "**C**", "**(C)**", "**C.**".
  const bold = [...text.matchAll(new RegExp(String.raw`\*\*\(?(${L})[).:]?\*\*`, 'g'))];
  if (bold.length) return bold[bold.length - 1]![1]!;
  // 3. A lone letter on the last non-empty line: "C", "(C)", "C.".
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const lastLine = lines[lines.length - 1] ?? '';
  const lone = new RegExp(String.raw`^[\s*_([]*(${L})[\s)\].:*_]*$`).exec(lastLine);
  if (lone) return lone[1]!;
  // 4. The last parenthesised letter anywhere: "(C)".
  const paren = [...text.matchAll(new RegExp(String.raw`\((${L})\)`, 'g'))];
  if (paren.length) return paren[paren.length - 1]![1]!;
  // 5. A last line that restates a choice: "C. 42" / "C) 42".
  const restated = new RegExp(String.raw`^(${L})[.)]\s+\S`).exec(lastLine);
  if (restated) return restated[1]!;
  return null;
}

// ---------------------------------------------------------------------------------------------
// Short-answer QA (SQuAD v1.1 evaluation: normalize_answer, exact_match_score, f1_score)

/** SQuAD's answer normalisation: lowercase, punctuation removed, articles removed, whitespace collapsed. */
export function squadNormalize(s: string): string {
  return s
    .toLowerCase()
    .replace(/[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g, '')
    .replace(/\b(a|an|the)\b/g, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .join(' ');
}

/** SQuAD exact match (1 or 0) of a prediction against a gold answer. */
export function qaExactMatch(prediction: string, gold: string): number {
  return squadNormalize(prediction) === squadNormalize(gold) ? 1 : 0;
}

/** SQuAD token F1 of a prediction against a gold answer (bag of normalised tokens). */
export function qaF1(prediction: string, gold: string): number {
  const p = squadNormalize(prediction).split(' ').filter(Boolean);
  const g = squadNormalize(gold).split(' ').filter(Boolean);
  const counts = new Map<string, number>();
  for (const t of g) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/**
 * The short answer of free text: the last "Final Answer: X" (AgentArk's aggregator format),
 * "The answer is X" or "Answer: X" statement (rest of its line, a trailing period dropped), else
 * the last non-empty line.
 */
function extractShortAnswer(text: string): string | null {
  const statements = [
    /\bfinal\s+answer\s*[:：]\s*([^\n]+)/gi,
    /\bthe\s+(?:final\s+)?answer\s+is\s*[:：]?\s*([^\n]+)/gi,
    /(?:^|\n)\s*\**answer\**\s*[:：]\s*([^\n]+)/gi,
  ];
  const clean = (s: string) =>
    s
      .replace(/\*\*/g, '')
      .replace(/\\boxed\{([^{}]*)\}/g, '$1')
      .trim()
      .replace(/\.$/, '')
      .trim();
  for (const re of statements) {
    let last: string | null = null;
    for (const m of text.matchAll(re)) if (clean(m[1] ?? '')) last = clean(m[1]!);
    if (last !== null) return last;
  }
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.length ? clean(lines[lines.length - 1]!) : null;
}
