/**
 * The demo's arithmetic critic: checks every "a op b = c" a solution writes out. Most wrong
 * answers of the demo model set the problem up right and then miscompute a step (of its wrong
 * round-1 debate answers on training problems 4,001–4,100, three in four had a step whose written
 * result is wrong), which a calculator sees and a vote over such answers does not.
 */
import { majorityVote } from '../teach/debate';
import { EXPRESSION_RE, apply, type Op } from './problems';

const ALL_EXPRESSIONS = new RegExp(EXPRESSION_RE.source, 'g');

/** The written steps whose result is wrong, e.g. `8 + 9 = 18` (should be 17). */
export function arithmeticErrors(text: string): { expression: string; expected: number }[] {
  const errors: { expression: string; expected: number }[] = [];
  for (const m of text.matchAll(ALL_EXPRESSIONS)) {
    const expected = apply(m[2] as Op, Number(m[1]), Number(m[3]));
    if (expected !== Number(m[4])) errors.push({ expression: m[0], expected });
  }
  return errors;
}

/** True when every written step computes right (a solution with no steps passes). */
export function arithmeticChecks(text: string): boolean {
  return arithmeticErrors(text).length === 0;
}

/**
 * The critic's vote: a majority over the answers whose written arithmetic checks; the plain
 * majority when none does.
 */
export function checkedVote(messages: readonly { completion: string; extracted: string | null }[]): string | null {
  const ok = messages.filter((m) => arithmeticChecks(m.completion));
  return majorityVote(
    'gsm8k',
    (ok.length ? ok : messages).map((m) => m.extracted),
  ).answer;
}
