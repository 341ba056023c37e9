/**
 * Patterns from untrusted files (tokenizer pre-tokenizers, PEFT target_modules) are run by the
 * backtracking JS regex engine; this refuses the shapes that can take exponential time.
 */

/**
 * Why a regex could backtrack catastrophically, or null. JS regexes backtrack, so a
 * repeated group that itself repeats or alternates (`(a+)+`, `(.*)*`, `(a|a)*`) can take
 * exponential time on a short input; backreferences likewise. Real pre-tokenizer patterns (GPT-2,
 * Llama 3, Qwen, ...) repeat only single atoms and classes, so refusing these costs nothing.
 */
export function backtrackingRegexReason(pattern: string): string | null {
  if (pattern.length > 10_000) return `is ${pattern.length} characters long`;
  interface Frame {
    repeats: boolean;
    alternates: boolean;
  }
  const stack: Frame[] = [{ repeats: false, alternates: false }];
  /** Length of a quantifier at i (0 if none) and whether it allows more than one repetition. */
  const quantifierAt = (i: number): { length: number; many: boolean } => {
    const c = pattern[i];
    if (c === '*' || c === '+') return { length: 1, many: true };
    if (c === '?') return { length: 1, many: false };
    if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i, i + 24));
      if (m)
        return { length: m[0].length, many: m[2] !== undefined ? m[3] === '' || Number(m[3]) > 1 : Number(m[1]) > 1 };
    }
    return { length: 0, many: false };
  };
  let i = 0;
  const afterAtom = (frame: Frame) => {
    const q = quantifierAt(i);
    if (q.length > 0) {
      if (q.many) frame.repeats = true;
      i += q.length;
      if (pattern[i] === '?' || pattern[i] === '+') i++; // lazy / possessive suffix
    }
  };
  while (i < pattern.length) {
    const c = pattern[i]!;
    const frame = stack[stack.length - 1]!;
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      if (/[1-9]/.test(next) || next === 'k') return 'uses a backreference';
      i += 2;
      if (next === 'p' || next === 'P') {
        if (pattern[i] === '{') i = pattern.indexOf('}', i) + 1 || pattern.length;
        else i++;
      } else if (next === 'x' && pattern[i] === '{') i = pattern.indexOf('}', i) + 1 || pattern.length;
      afterAtom(frame);
    } else if (c === '[') {
      i++;
      if (pattern[i] === '^') i++;
      if (pattern[i] === ']') i++;
      let depth = 1;
      while (i < pattern.length && depth > 0) {
        if (pattern[i] === '\\') i += 2;
        else {
          if (pattern[i] === '[')
            depth++; // nested classes (Oniguruma / v-flag)
          else if (pattern[i] === ']') depth--;
          i++;
        }
      }
      afterAtom(frame);
    } else if (c === '(') {
      stack.push({ repeats: false, alternates: false });
      i++;
      if (pattern[i] === '?') {
        i++;
        const m = /^(<[=!]|[=!:>]|<[A-Za-z_]\w*>|[a-zA-Z-]+:|[a-zA-Z-]+\))/.exec(pattern.slice(i, i + 40));
        if (m) i += m[0].length;
        if (m?.[0].endsWith(')')) stack.pop(); // inline flags such as (?i)
      }
    } else if (c === ')') {
      if (stack.length === 1) return 'has an unbalanced ")"';
      const group = stack.pop()!;
      i++;
      const q = quantifierAt(i);
      if (q.many && (group.repeats || group.alternates)) {
        return `repeats a group that itself ${group.repeats ? 'repeats' : 'alternates'} (nested quantifiers backtrack exponentially)`;
      }
      const parent = stack[stack.length - 1]!;
      parent.repeats ||= group.repeats;
      afterAtom(parent);
    } else if (c === '|') {
      frame.alternates = true;
      i++;
    } else {
      i++;
      afterAtom(frame);
    }
  }
  return null;
}
