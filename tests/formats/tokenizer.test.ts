import { describe, expect, it } from 'vitest';
import { HFTokenizer } from '../../src/formats/tokenizer';
import { tinyTokenizer } from '../helpers/tiny-model';

function load(arch: 'qwen2' | 'llama', configPatch: Record<string, unknown> = {}) {
  const files = tinyTokenizer(arch);
  const tokenizer = new HFTokenizer(files.tokenizerJson, { ...files.tokenizerConfig, ...configPatch });
  return { tokenizer, ids: files.ids, size: files.size };
}

const SAMPLES = [
  'Hello world',
  'The quick brown fox, and the lazy dog. Is it?',
  'héllo wörld — naïve café',
  '日本語のテキスト 世界',
  'emoji 🎉👍🏽 and ZWJ 👩‍👩‍👧 family',
  'tabs\tand  double  spaces\n\nnew lines\r\n',
  '  leading and trailing  ',
  "it's we're I'll 1234567 3.14",
];

describe('HFTokenizer encode/decode', () => {
  for (const arch of ['qwen2', 'llama'] as const) {
    it(`${arch}: round-trips text including unicode`, () => {
      const { tokenizer } = load(arch);
      for (const text of SAMPLES) {
        const ids = tokenizer.encode(text, { addSpecialTokens: false });
        expect(ids.length).toBeGreaterThan(0);
        expect(tokenizer.decode(ids)).toBe(text);
      }
    });
  }

  it('uses merges (common words are single tokens) and byte tokens for the rest', () => {
    const { tokenizer } = load('qwen2');
    const ids = tokenizer.encode('Hello world and the is');
    expect(ids.map((id) => tokenizer.idToToken(id))).toEqual(['Hello', 'Ġworld', 'Ġand', 'Ġthe', 'Ġis']);
    // "é" is two UTF-8 bytes, hence two byte-level tokens.
    expect(tokenizer.encode('é').length).toBe(2);
  });

  it('treats special tokens atomically and can skip them when decoding', () => {
    const { tokenizer, ids } = load('qwen2');
    const encoded = tokenizer.encode('<|im_start|>user\nHi<|im_end|>');
    expect(encoded[0]).toBe(ids.imStart);
    expect(encoded[encoded.length - 1]).toBe(ids.imEnd);
    expect(tokenizer.decode(encoded)).toBe('<|im_start|>user\nHi<|im_end|>');
    expect(tokenizer.decode(encoded, { skipSpecialTokens: true })).toBe('user\nHi');
    expect(tokenizer.isSpecialToken(ids.imEnd)).toBe(true);
    expect(tokenizer.decode([])).toBe('');
  });

  it('adds BOS only when asked (llama-style post-processor)', () => {
    const { tokenizer, ids } = load('llama');
    expect(tokenizer.encode('Hi')[0]).toBe(ids.bos);
    expect(tokenizer.encode('Hi', { addSpecialTokens: false })[0]).not.toBe(ids.bos);
    expect(tokenizer.bosTokenId).toBe(ids.bos);
  });

  it('reports vocabulary facts', () => {
    const { tokenizer, ids, size } = load('qwen2');
    expect(tokenizer.vocabSize).toBe(size);
    expect(tokenizer.tokenToId('<|im_end|>')).toBe(ids.imEnd);
    expect(tokenizer.tokenToId('no such token')).toBeUndefined();
    expect(tokenizer.eosTokenId).toBe(ids.imEnd);
    expect(tokenizer.padTokenId).toBe(ids.endoftext);
    expect(tokenizer.eosTokenIds({ eosTokenIds: [ids.endoftext] })).toEqual([ids.endoftext, ids.imEnd]);
    expect(tokenizer.eosTokenIds({ eosTokenIds: [ids.imEnd] })).toEqual([ids.imEnd]);
  });
});

describe('chat templates', () => {
  const messages = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Hello' },
    { role: 'assistant', content: 'Hi.' },
    { role: 'user', content: 'What is 2+2?' },
  ];

  it('renders ChatML with and without the generation prompt', () => {
    const { tokenizer } = load('qwen2');
    const body =
      '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n' +
      '<|im_start|>assistant\nHi.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n';
    expect(tokenizer.applyChatTemplate(messages)).toBe(`${body}<|im_start|>assistant\n`);
    expect(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: false })).toBe(body);
  });

  it('encodes the rendered prompt without adding BOS a second time', () => {
    const { tokenizer, ids } = load('llama');
    const prompt = tokenizer.applyChatTemplate([{ role: 'user', content: 'Hello' }]);
    expect(prompt.startsWith('<|begin_of_text|><|im_start|>user')).toBe(true);
    const encoded = tokenizer.encodeChat([{ role: 'user', content: 'Hello' }]);
    expect(encoded.filter((id) => id === ids.bos)).toHaveLength(1);
    expect(encoded[0]).toBe(ids.bos);
    expect(tokenizer.decode(encoded)).toBe(prompt);
  });

  it('supports the named-list form and passes extra variables', () => {
    const { tokenizer } = load('qwen2', {
      chat_template: [
        {
          name: 'default',
          template: '{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}{{ eos_token }}',
        },
        { name: 'tool_use', template: 'tools={{ tools | length }}{% if flag %}!{% endif %}' },
      ],
    });
    expect(tokenizer.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('user:x;<|im_end|>');
    expect(tokenizer.applyChatTemplate([], { tools: [{}, {}], extra: { flag: true } })).toBe('tools=2!');
    expect(() => tokenizer.applyChatTemplate([], { templateName: 'rag' })).toThrow(
      /no chat template named "rag"; available: default, tool_use/,
    );
  });

  it('errors clearly without a template, and surfaces raise_exception', () => {
    const { tokenizer } = load('qwen2', { chat_template: undefined });
    expect(tokenizer.hasChatTemplate).toBe(false);
    expect(() => tokenizer.applyChatTemplate(messages)).toThrow(/no chat_template/);
    const strict = load('qwen2', { chat_template: "{{ raise_exception('roles must alternate') }}" }).tokenizer;
    expect(() => strict.applyChatTemplate(messages)).toThrow(/chat template failed: .*roles must alternate/);
  });

  it('prefers a separate chat_template.jinja over tokenizer_config', () => {
    const files = tinyTokenizer('qwen2');
    const tokenizer = new HFTokenizer(files.tokenizerJson, files.tokenizerConfig, '[{{ messages[0].content }}]');
    expect(tokenizer.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('[x]');
  });
});

describe('malformed tokenizer files', () => {
  it('bad JSON names the file', () => {
    expect(() => HFTokenizer.fromText('{"model": ')).toThrow(/^tokenizer.json: invalid JSON/);
    const files = tinyTokenizer('qwen2');
    expect(() => HFTokenizer.fromText(JSON.stringify(files.tokenizerJson), '{oops')).toThrow(
      /^tokenizer_config.json: invalid JSON/,
    );
  });

  it('missing or broken model section', () => {
    const { model: _, ...noModel } = tinyTokenizer('qwen2').tokenizerJson;
    expect(() => new HFTokenizer(noModel, {})).toThrow('tokenizer.json: missing "model" section');
    expect(() => new HFTokenizer({ model: { type: 'Mystery' } }, {})).toThrow(
      /^tokenizer.json: Unknown TokenizerModel type: Mystery/,
    );
    expect(() => new HFTokenizer([], {})).toThrow(/^tokenizer.json: expected a JSON object/);
  });
});

describe('stream decoder', () => {
  it('emits exactly the decoded text, holding back split UTF-8 characters', () => {
    const { tokenizer } = load('qwen2');
    const text = 'Hello 世界 🎉👍🏽 and the end';
    const ids = tokenizer.encode(text);
    const stream = tokenizer.createStreamDecoder();
    const pieces = ids.map((id) => stream.push(id));
    pieces.push(stream.flush());
    expect(pieces.join('')).toBe(text);
    for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
    // The 4-byte emoji arrives as byte tokens: nothing is emitted until its last byte.
    expect(pieces.filter((p) => p === '').length).toBeGreaterThan(3);
    expect(pieces).toContain('🎉');
  });

  it('skips special tokens by default and flushes an incomplete tail', () => {
    const { tokenizer, ids } = load('qwen2');
    const stream = tokenizer.createStreamDecoder();
    let out = '';
    for (const id of [...tokenizer.encode('Hi'), ids.imEnd]) out += stream.push(id);
    expect(out).toBe('Hi');
    const euro = tokenizer.encode('€'); // 3 bytes
    const partial = tokenizer.createStreamDecoder();
    expect(partial.push(euro[0]) + partial.push(euro[1])).toBe('');
    expect(partial.flush()).toBe('\uFFFD');
  });
});
