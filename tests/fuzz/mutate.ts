/**
 * Seeded mutations for the parser fuzzers: byte-level (bit flips, interesting values, inserted,
 * deleted, duplicated or truncated ranges), text-level and structure-aware JSON mutations that
 * plant the values hostile files use (huge numbers, path traversal, backtracking regexes, ...).
 */
import { mulberry32 } from '../../src/util/random';

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed >>> 0);
  }
  float(): number {
    return this.next();
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

export const INTERESTING_NUMBERS: readonly number[] = [
  0,
  -0,
  1,
  -1,
  2,
  3,
  7,
  8,
  0.5,
  -0.5,
  255,
  256,
  65535,
  65536,
  1e6,
  1e9,
  -1e9,
  2 ** 31,
  2 ** 31 - 1,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  1e21,
  1e308,
  -1e308,
  5e-324,
];

export const INTERESTING_STRINGS: readonly string[] = [
  '',
  ' ',
  '\u0000',
  '../../../../etc/passwd',
  '/etc/passwd',
  'C:\\Windows\\win.ini',
  'https://evil.example/x',
  'sub/../../x',
  '(.*)*X',
  '(a+)+$',
  '(a|a)*b',
  '[',
  '\\',
  '{{',
  '{%',
  '}}',
  '%}',
  '{% for i in range(100000000) %}x{% endfor %}',
  '{{ x | indent(500000000) }}',
  '{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}',
  '$\\rule{2000em}{2000em}$',
  'NaN',
  'Infinity',
  '-Infinity',
  '__proto__',
  'constructor',
  'prototype',
  'F32',
  'BF16',
  'F16',
  'I64',
  'U8',
  'BOOL',
  'q_proj',
  'lm_head',
  'model.layers.0.self_attn.q_proj',
  'agentark.trajectory/1',
  'x'.repeat(4096),
  '\uD800',
  '\uFFFD',
  'é',
  '🙂',
  '\r\n',
];

function interestingValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 1 ? 5 : 8)) {
    case 0:
    case 1:
      return rng.pick(INTERESTING_NUMBERS);
    case 2:
      return rng.pick(INTERESTING_STRINGS);
    case 3:
      return rng.pick([null, true, false]);
    case 4:
      return rng.int(1000);
    case 5:
      return Array.from({ length: rng.int(4) }, () => interestingValue(rng, depth + 1));
    case 6:
      return { [rng.pick(INTERESTING_STRINGS)]: interestingValue(rng, depth + 1) };
    default:
      return rng.chance(0.5) ? [] : {};
  }
}

/** Every container node of a JSON value with a way to change its child, for structured mutation. */
function containers(
  value: unknown,
  out: (unknown[] | Record<string, unknown>)[] = [],
  depth = 0,
): (unknown[] | Record<string, unknown>)[] {
  if (depth > 12 || typeof value !== 'object' || value === null) return out;
  out.push(value as unknown[] | Record<string, unknown>);
  const children = Array.isArray(value) ? value : Object.values(value);
  // Large arrays (vocabularies, merges) are sampled so mutations still reach the small fields.
  const step = Math.max(1, Math.floor(children.length / 64));
  for (let i = 0; i < children.length; i += step) containers(children[i], out, depth + 1);
  return out;
}

/** One to three structure-aware mutations of a JSON value (a deep copy is mutated). */
export function mutateJson(rng: Rng, value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(value)) as unknown;
  const nodes = containers(copy);
  if (nodes.length === 0) return interestingValue(rng);
  for (let k = 1 + rng.int(3); k > 0; k--) {
    const node = rng.pick(nodes);
    if (Array.isArray(node)) {
      const i = node.length ? rng.int(node.length) : 0;
      switch (rng.int(5)) {
        case 0:
          node[i] = interestingValue(rng);
          break;
        case 1:
          node.splice(i, 1);
          break;
        case 2:
          node.splice(i, 0, node.length ? JSON.parse(JSON.stringify(node[i] ?? null)) : interestingValue(rng));
          break;
        case 3:
          if (typeof node[i] === 'number') node[i] = (node[i] as number) * rng.pick([-1, 2, 1000, 1e9, 0.5]);
          else node[i] = interestingValue(rng);
          break;
        default:
          node.length = rng.int(node.length + 1);
      }
    } else {
      const keys = Object.keys(node);
      const key = keys.length ? rng.pick(keys) : rng.pick(INTERESTING_STRINGS);
      switch (rng.int(5)) {
        case 0:
          node[key] = interestingValue(rng);
          break;
        case 1:
          delete node[key];
          break;
        case 2:
          node[rng.pick(INTERESTING_STRINGS)] = interestingValue(rng);
          break;
        case 3: {
          const v = node[key];
          node[key] =
            typeof v === 'number'
              ? v * rng.pick([-1, 2, 1000, 1e9, 0.5, 1e300])
              : typeof v === 'string'
                ? mutateText(rng, v)
                : interestingValue(rng);
          break;
        }
        default:
          node[key] = Array.isArray(node[key]) ? node[key] : [node[key]];
      }
    }
  }
  return copy;
}

/** One to three text-level mutations. */
export function mutateText(rng: Rng, text: string): string {
  let s = text;
  for (let k = 1 + rng.int(3); k > 0; k--) {
    const i = rng.int(s.length + 1);
    const j = Math.min(s.length, i + 1 + rng.int(32));
    switch (rng.int(7)) {
      case 0:
        s = s.slice(0, i) + s.slice(j);
        break;
      case 1:
        s = s.slice(0, j) + s.slice(i, j) + s.slice(j);
        break;
      case 2:
        s = s.slice(0, i) + rng.pick(INTERESTING_STRINGS) + s.slice(i);
        break;
      case 3:
        s = s.replace(/-?\d+(\.\d+)?(e[+-]?\d+)?/g, (m) =>
          rng.chance(0.1) ? String(rng.pick(INTERESTING_NUMBERS)) : m,
        );
        break;
      case 4:
        s = s.slice(0, i);
        break;
      case 5:
        s = s.slice(0, i) + String.fromCharCode(rng.int(128)) + s.slice(i + 1);
        break;
      default:
        s = s.slice(0, i) + rng.pick(['"', ',', '{', '}', '[', ']', ':', '\n', '\\']) + s.slice(i);
    }
  }
  return s;
}

/** One to four byte-level mutations. */
export function mutateBytes(rng: Rng, bytes: Uint8Array): Uint8Array {
  let b = bytes.slice();
  for (let k = 1 + rng.int(4); k > 0; k--) {
    const i = rng.int(b.length + 1);
    const len = 1 + rng.int(16);
    switch (rng.int(7)) {
      case 0:
        if (b.length) b[Math.min(i, b.length - 1)] ^= 1 << rng.int(8);
        break;
      case 1:
        if (b.length) b[Math.min(i, b.length - 1)] = rng.pick([0, 0x7f, 0x80, 0xff, 0x20, 0x22, 0x7b, 0x7d]);
        break;
      case 2: {
        const ins = Uint8Array.from({ length: len }, () => rng.int(256));
        const out = new Uint8Array(b.length + len);
        out.set(b.subarray(0, i));
        out.set(ins, i);
        out.set(b.subarray(i), i + len);
        b = out;
        break;
      }
      case 3:
        b = Uint8Array.from([...b.subarray(0, i), ...b.subarray(Math.min(b.length, i + len))]);
        break;
      case 4:
        b = b.slice(0, i);
        break;
      case 5: {
        // An 8-byte little-endian number (the header length field lives at 0).
        const at = rng.chance(0.5) ? 0 : Math.min(i, Math.max(0, b.length - 8));
        if (b.length >= at + 8)
          new DataView(b.buffer, b.byteOffset).setBigUint64(
            at,
            BigInt(rng.pick([0, 1, 2, 7, 8, 1e6, 2 ** 32, 2 ** 53])),
            true,
          );
        break;
      }
      default: {
        // Rewrite a number inside a JSON header region, if any.
        const text = new TextDecoder('latin1').decode(b.subarray(0, Math.min(b.length, 1 << 16)));
        const matches = [...text.matchAll(/\d+/g)];
        if (matches.length) {
          const m = rng.pick(matches);
          const replacement = String(rng.pick(INTERESTING_NUMBERS.filter((x) => Number.isInteger(x) && x >= 0)));
          const head = new TextEncoder().encode(
            text.slice(0, m.index) + replacement + text.slice(m.index! + m[0].length),
          );
          const out = new Uint8Array(head.length + b.length - Math.min(b.length, 1 << 16));
          out.set(head);
          out.set(b.subarray(Math.min(b.length, 1 << 16)), head.length);
          b = out;
        }
      }
    }
  }
  return b;
}
