import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { demoCorpus, renderRow } from '../../src/demo/corpus';
import { generateProblems, type Problem } from '../../src/demo/problems';
import {
  DEMO_CHAT_TEMPLATE,
  DEMO_SPECIAL_TOKENS,
  buildDemoTokenizer,
  learnMerges,
  pretokenize,
  renderChatML,
  type DemoTokenizerFiles,
} from '../../src/demo/tokenizer';
import { HFTokenizer } from '../../src/formats/tokenizer';

let problems: Problem[];
let texts: string[];
let files: DemoTokenizerFiles;
let tok: HFTokenizer;

beforeAll(() => {
  problems = generateProblems({ seed: 1, count: 1200, difficulty: 1, split: 'train' });
  texts = demoCorpus({ seed: 1, problems }).map(renderRow);
  files = buildDemoTokenizer(texts, { vocabSize: 512 });
  tok = HFTokenizer.fromText(JSON.stringify(files.tokenizerJson), JSON.stringify(files.tokenizerConfig));
});

/** Applies the merges in order to each pre-token (what training did), giving token strings. */
function trainerSegmentation(text: string, merges: [string, string][]): string[] {
  const out: string[] = [];
  for (const word of pretokenize(text)) {
    let syms = Array.from(word);
    for (const [a, b] of merges) {
      const next: string[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(syms[i]!);
      }
      syms = next;
    }
    out.push(...syms);
  }
  return out;
}

describe('buildDemoTokenizer', () => {
  it('writes a complete HF tokenizer: contiguous ids, the asked vocabulary, ChatML special tokens', () => {
    expect(files.size).toBe(512);
    expect(tok.vocabSize).toBe(512);
    const vocab = (files.tokenizerJson.model as { vocab: Record<string, number> }).vocab;
    const ids = Object.values(vocab).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: 509 }, (_, i) => i));
    expect(files.ids).toEqual({ endoftext: 509, imStart: 510, imEnd: 511 });
    expect(tok.tokenToId('<|endoftext|>')).toBe(509);
    expect(tok.tokenToId('<|im_start|>')).toBe(510);
    expect(tok.tokenToId('<|im_end|>')).toBe(511);
    expect(tok.eosToken).toBe('<|im_end|>');
    expect(tok.eosTokenId).toBe(511);
    expect(tok.padToken).toBe('<|endoftext|>');
    expect(tok.padTokenId).toBe(509);
    expect(tok.bosTokenId).toBeNull();
    for (const id of [509, 510, 511]) expect(tok.isSpecialToken(id)).toBe(true);
    // Every merge joins two existing tokens into an existing token.
    const merges = (files.tokenizerJson.model as { merges: string[] }).merges;
    expect(merges.length).toBe(files.merges);
    for (const m of merges) {
      const [a, b] = m.split(' ');
      expect(vocab[a!]).toBeDefined();
      expect(vocab[b!]).toBeDefined();
      expect(vocab[a! + b!]).toBeDefined();
    }
  });

  it('is deterministic and honours vocabSize', () => {
    const again = buildDemoTokenizer(texts, { vocabSize: 512 });
    expect(JSON.stringify(again)).toBe(JSON.stringify(files));
    const small = buildDemoTokenizer(texts, { vocabSize: 384 });
    expect(small.size).toBe(384);
    // The first merges are the same: the small one is a prefix of the big one.
    const bigMerges = (files.tokenizerJson.model as { merges: string[] }).merges;
    expect((small.tokenizerJson.model as { merges: string[] }).merges).toEqual(bigMerges.slice(0, small.merges));
    expect(() => buildDemoTokenizer(texts, { vocabSize: 200 })).toThrow(/vocabSize/);
    // A tiny corpus runs out of pairs before the vocabulary is full.
    const tiny = buildDemoTokenizer(['abab abab'], { vocabSize: 512 });
    expect(tiny.size).toBeLessThan(300);
  });

  it('merges the most frequent pair first, ties to the smallest pair', () => {
    const counts = new Map([
      ['xy', 5],
      ['ab', 3],
      ['cd', 3],
      ['abcd', 1],
    ]);
    expect(learnMerges(counts, 259)).toEqual([
      ['x', 'y'],
      ['a', 'b'],
      ['c', 'd'],
    ]);
  });

  it('learns the merges of priorityTexts first', () => {
    const corpus = ['the the the the the the'];
    const plain = buildDemoTokenizer(corpus, { vocabSize: 265 });
    expect((plain.tokenizerJson.model as { merges: string[] }).merges).toEqual(['h e', 't he', 'Ġ the']);
    expect(plain.size).toBe(262); // the corpus ran out of pairs
    const prio = buildDemoTokenizer(corpus, { vocabSize: 265, priorityTexts: ['zebra zebra'] });
    expect((prio.tokenizerJson.model as { merges: string[] }).merges).toEqual([
      'b r',
      'br a',
      'e bra',
      'z ebra',
      'h e',
      't he',
    ]);
    expect(prio.size).toBe(265);
  });

  it('keeps every digit its own token', () => {
    const vocab = (files.tokenizerJson.model as { vocab: Record<string, number> }).vocab;
    const withDigit = Object.keys(vocab).filter((t) => /[0-9]/.test(t));
    expect(withDigit.sort()).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    const ids = tok.encode('Tom has 12 + 305 = 317 apples.\n#### 317', { addSpecialTokens: false });
    const pieces = ids.map((id) => tok.decode([id]));
    const digits = pieces.filter((p) => /[0-9]/.test(p));
    expect(digits).toEqual(['1', '2', '3', '0', '5', '3', '1', '7', '3', '1', '7']);
    // A digit is the same token wherever it appears.
    expect(new Set(ids.filter((_, i) => pieces[i] === '3')).size).toBe(1);
  });

  it('round-trips problems, solutions and whole rows (special tokens included)', () => {
    for (const p of problems.slice(0, 200)) {
      for (const text of [p.question, p.answer])
        expect(tok.decode(tok.encode(text, { addSpecialTokens: false }))).toBe(text);
    }
    for (const text of texts.slice(0, 100)) {
      const ids = tok.encode(text, { addSpecialTokens: false });
      expect(tok.decode(ids)).toBe(text);
      expect(ids.filter((id) => id === files.ids.imStart).length).toBe((text.match(/<\|im_start\|>/g) ?? []).length);
    }
    // Text outside the training corpus still round-trips (byte-level).
    const odd = 'Zürich 3½ — ✓ "quotes"\ttab  two spaces\n\n\nend';
    expect(tok.decode(tok.encode(odd, { addSpecialTokens: false }))).toBe(odd);
  });

  it('encodes exactly as training segmented (library BPE = trainer BPE)', () => {
    const merges = (files.tokenizerJson.model as { merges: string[] }).merges.map(
      (m) => m.split(' ') as [string, string],
    );
    for (const p of problems.slice(0, 60)) {
      const text = `${p.question}\n${p.answer}`;
      const ids = tok.encode(text, { addSpecialTokens: false });
      expect(ids.map((id) => tok.idToToken(id))).toEqual(trainerSegmentation(text, merges));
    }
  });

  it('renders the ChatML template, with and without the generation prompt', () => {
    expect(files.tokenizerConfig.chat_template).toBe(DEMO_CHAT_TEMPLATE);
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: problems[0]!.question },
      { role: 'assistant', content: problems[0]!.answer },
    ];
    const full = tok.applyChatTemplate(messages, { addGenerationPrompt: false });
    expect(full).toBe(renderChatML(messages));
    expect(full).toBe(
      `<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n${problems[0]!.question}<|im_end|>\n` +
        `<|im_start|>assistant\n${problems[0]!.answer}<|im_end|>\n`,
    );
    const prompt = tok.applyChatTemplate(messages.slice(0, 2));
    expect(prompt).toBe(`${renderChatML(messages.slice(0, 2))}<|im_start|>assistant\n`);
    expect(prompt).toBe(renderChatML(messages.slice(0, 2), true));
    const ids = tok.encodeChat(messages.slice(0, 2));
    expect(ids[0]).toBe(files.ids.imStart);
    // Role names and the template's newline are single tokens.
    expect(ids.slice(-3).map((id) => tok.idToToken(id))).toEqual(['<|im_start|>', 'assistant', 'Ċ']);
  });

  it('is compact: template words are whole tokens, a problem with its solution is short', () => {
    // ' has ' before a number is one token (words absorb the space before a digit), as are ' + ' and ' = '.
    const words = [
      'ĠhasĠ',
      'Ġapples',
      'ĠHow',
      'Ġmany',
      'Ġhave',
      'Ġnow',
      'Ġpeople',
      'Ġdollars',
      'system',
      'user',
      'assistant',
      '####Ġ',
      'Ġ+Ġ',
      'Ġ=Ġ',
      'Ġ-Ġ',
      'Ġ*Ġ',
      '.Ċ',
    ];
    const vocab = (files.tokenizerJson.model as { vocab: Record<string, number> }).vocab;
    for (const w of words) expect(vocab[w], w).toBeDefined();
    const report = (label: string, ps: Problem[], t: HFTokenizer) => {
      const lengths = ps.map((p) => t.encode(`${p.question}\n${p.answer}`, { addSpecialTokens: false }).length);
      const answers = ps.map((p) => t.encode(p.answer, { addSpecialTokens: false }).length);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      console.log(
        `demo tokenizer, ${label}: problem+solution ${mean(lengths).toFixed(1)} tokens (max ${Math.max(...lengths)}), ` +
          `solution ${mean(answers).toFixed(1)} (max ${Math.max(...answers)})`,
      );
      return mean(lengths);
    };
    expect(report('difficulty 1, vocab 512', problems.slice(0, 300), tok)).toBeLessThan(90);
    // Difficulty 0 (the demo's default): its own tokenizer.
    const easy = generateProblems({ seed: 2, count: 1200, difficulty: 0, split: 'train' });
    const easyFiles = buildDemoTokenizer(demoCorpus({ seed: 2, problems: easy }).map(renderRow));
    const mean = report(
      'difficulty 0, vocab 512',
      easy.slice(0, 300),
      new HFTokenizer(easyFiles.tokenizerJson, easyFiles.tokenizerConfig),
    );
    expect(mean).toBeLessThan(80);
  });

  it('special tokens are never split and never learned as BPE words', () => {
    const counts = new Map<string, number>();
    for (const sp of DEMO_SPECIAL_TOKENS) expect(tok.encode(sp, { addSpecialTokens: false })).toHaveLength(1);
    expect(learnMerges(counts, 300)).toEqual([]);
    const vocab = (files.tokenizerJson.model as { vocab: Record<string, number> }).vocab;
    expect(Object.keys(vocab).some((t) => t.includes('im_') || t.includes('|>'))).toBe(false);
  });
});

/** Python's `tokenizers` (the Rust implementation): the one transformers uses. */
function pythonWithTokenizers(): string | null {
  for (const py of [process.env.AGENTARK_TOKENIZERS_PYTHON, 'python3'].filter((x): x is string => !!x)) {
    const r = spawnSync(py, ['-c', 'import tokenizers'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return null;
}

const python = pythonWithTokenizers();

describe.skipIf(!python)('demo tokenizer in Python tokenizers', () => {
  it('loads and encodes/decodes exactly like @huggingface/tokenizers', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-tok-'));
    try {
      fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson));
      const sample = [...texts.slice(0, 50), 'Zürich 3½ — ✓\ttab  two\n\n\nend'];
      fs.writeFileSync(path.join(dir, 'texts.json'), JSON.stringify(sample));
      const script = [
        'import json, sys',
        'from tokenizers import Tokenizer',
        "t = Tokenizer.from_file(sys.argv[1] + '/tokenizer.json')",
        "texts = json.load(open(sys.argv[1] + '/texts.json'))",
        'out = []',
        'for s in texts:',
        '    ids = t.encode(s, add_special_tokens=False).ids',
        '    out.append({"ids": ids, "text": t.decode(ids, skip_special_tokens=False)})',
        'print(json.dumps(out))',
      ].join('\n');
      const result = JSON.parse(execFileSync(python!, ['-c', script, dir], { encoding: 'utf8' })) as {
        ids: number[];
        text: string;
      }[];
      sample.forEach((s, i) => {
        expect(result[i]!.ids).toEqual(tok.encode(s, { addSpecialTokens: false }));
        expect(result[i]!.text).toBe(s);
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
