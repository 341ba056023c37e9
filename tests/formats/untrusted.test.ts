/**
 * Files from strangers: each hostile input found by hand fails fast with an error naming the
 * problem, instead of hanging, exhausting memory or reading outside the model folder.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, shardFilesOfIndex, firstNonFinite } from '../../src/formats/checkpoint';
import { checkPlannedBytes, parameterCount, parseConfig } from '../../src/formats/config';
import { f32ToBf16Bits, f32ToF16Bits } from '../../src/formats/dtype';
import { readSafetensors, writeSafetensors } from '../../src/formats/safetensors';
import { HttpSource, LocalDirectorySource, unsafeFileNameReason } from '../../src/formats/source';
import { randomInitTensors } from '../../src/train/init';
import { HFTokenizer, backtrackingRegexReason } from '../../src/formats/tokenizer';
import { loadPeftAdapter, parseAdapterConfig, serializePeftAdapter } from '../../src/formats/peft';
import { BlobSource } from '../../src/formats/source';
import { tokenizeRow } from '../../src/train/data';
import { randomPeftAdapter } from '../helpers/peft-fixture';
import { tinyModelConfig, tinyTokenizer, writeTinyModel } from '../helpers/tiny-model';

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-untrusted-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const base = () => tinyModelConfig({ arch: 'llama' });

describe('config.json numbers are bounded', () => {
  it('rejects huge sizes at once, naming the field', () => {
    const cases: [string, unknown, RegExp][] = [
      ['num_hidden_layers', 1e9, /"num_hidden_layers" is 1000000000, above the supported maximum 1024/],
      ['hidden_size', 1e6, /"hidden_size" is 1000000, above the supported maximum 65536/],
      ['vocab_size', 2 ** 40, /"vocab_size" is .* above the supported maximum/],
      ['max_position_embeddings', 1e12, /"max_position_embeddings"/],
      ['intermediate_size', 1e7, /"intermediate_size"/],
      ['num_attention_heads', 5000, /"num_attention_heads"/],
      ['rms_norm_eps', 5, /"rms_norm_eps" must be below 1/],
      ['eos_token_id', 2 ** 40, /"eos_token_id" must be a non-negative integer/],
    ];
    for (const [key, value, re] of cases) {
      const t0 = performance.now();
      expect(() => parseConfig({ ...base(), [key]: value }), key).toThrow(re);
      expect(performance.now() - t0).toBeLessThan(50);
    }
  });

  it('names that are Object.prototype members are not looked up there (found by the fuzzer)', () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(() => parseConfig({ ...base(), architectures: [name] }), name).toThrow(/unsupported architecture/);
    }
    const json = new TextEncoder().encode(
      JSON.stringify({ w: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }),
    );
    const file = new Uint8Array(8 + json.length + 4);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
    file.set(json, 8);
    expect(() => readSafetensors(file, { allowUnsupportedDtypes: true })).toThrow(
      /tensor "w" has unknown dtype "toString"/,
    );
  });

  it('bounds the implied parameter count even when every field is individually allowed', () => {
    const big = {
      ...base(),
      vocab_size: 1 << 21,
      hidden_size: 1 << 16,
      intermediate_size: 1 << 18,
      num_hidden_layers: 1024,
      num_attention_heads: 512,
      num_key_value_heads: 512,
      head_dim: 128,
    };
    expect(() => parseConfig(big)).toThrow(/implies .* parameters, above the supported maximum/);
  });

  it('parameterCount matches the expected tensors; a from-scratch init beyond memory is refused before allocating', () => {
    const cfg = parseConfig(base());
    const tensors = randomInitTensors(cfg, 1);
    let n = 0;
    for (const t of tensors.values()) n += t.shape.reduce((a, b) => a * b, 1);
    expect(parameterCount(cfg)).toBe(n);
    // ~100 GB of F32: refused in milliseconds.
    const huge = parseConfig({
      ...base(),
      vocab_size: 150000,
      hidden_size: 8192,
      intermediate_size: 28672,
      num_hidden_layers: 80,
      num_attention_heads: 64,
      num_key_value_heads: 8,
    });
    const t0 = performance.now();
    expect(() => randomInitTensors(huge, 1)).toThrow(
      /random initialisation of .* needs \d+\.\d+ GiB, more than the .* GiB this machine can give it; refusing before allocating/,
    );
    expect(performance.now() - t0).toBeLessThan(100);
    expect(() => checkPlannedBytes(2048, 'x', 1024)).toThrow(/x needs 0\.00 GiB/);
    expect(() => checkPlannedBytes(512, 'x', 1024)).not.toThrow();
  });
});

describe('sharded index file names stay inside the model folder', () => {
  it('rejects traversal, absolute paths, URLs and odd names', () => {
    const index = (file: string) => ({ weight_map: { 'model.embed_tokens.weight': file } });
    for (const bad of [
      '../../../../etc/passwd',
      '/etc/passwd',
      'a/../../b.safetensors',
      './model.safetensors',
      'C:\\x.safetensors',
      'https://evil.example/x',
      'sub\\..\\x',
      'a//b',
      'x\u0000y',
    ]) {
      expect(() => shardFilesOfIndex(index(bad)), bad).toThrow(
        /shard file name .* shards must be files inside the model folder/,
      );
    }
    expect(shardFilesOfIndex(index('model-00001-of-00002.safetensors'))).toEqual(['model-00001-of-00002.safetensors']);
    expect(shardFilesOfIndex(index('weights/model-00001.safetensors'))).toEqual(['weights/model-00001.safetensors']);
  });

  it('a model folder whose index names ../secret never opens it', async () => {
    const dir = path.join(root, 'traversal');
    writeTinyModel(dir, { arch: 'llama', sharded: true });
    const secret = path.join(root, 'secret.safetensors');
    fs.copyFileSync(path.join(dir, 'model-00001-of-00002.safetensors'), secret);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    for (const k of Object.keys(index.weight_map))
      if (index.weight_map[k] === 'model-00001-of-00002.safetensors') index.weight_map[k] = '../secret.safetensors';
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      /"\.\.\/secret\.safetensors" has an empty, '\.' or '\.\.' path segment/,
    );
  });

  it('sources themselves refuse names that leave the folder or repo', async () => {
    expect(unsafeFileNameReason('config.json')).toBeNull();
    await expect(new LocalDirectorySource(root).readText('../etc/passwd')).rejects.toThrow(/refusing to read/);
    expect(() => new HttpSource('https://huggingface.co/a/b/resolve/main/').url('../../c/d/resolve/main/x')).toThrow(
      /refusing to fetch/,
    );
  });
});

describe('non-finite weights are found at load', () => {
  it('names the tensor and the element for F32, F16 and BF16', async () => {
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        const dir = path.join(root, `nan-${dtype}-${bad}`);
        writeTinyModel(dir, { arch: 'llama', dtype });
        const file = path.join(dir, 'model.safetensors');
        const bytes = new Uint8Array(fs.readFileSync(file));
        const tensors = readSafetensors(bytes).tensors.map((t) => ({ ...t, data: t.data.slice() }));
        const target = tensors.find((t) => t.name === 'model.layers.1.mlp.up_proj.weight')!;
        const value = new Float32Array([bad]);
        const encoded =
          dtype === 'F32'
            ? new Uint8Array(value.buffer)
            : new Uint8Array((dtype === 'F16' ? f32ToF16Bits(value) : f32ToBf16Bits(value)).buffer);
        target.data.set(encoded, 5 * encoded.length);
        fs.writeFileSync(file, writeSafetensors(tensors));
        const expected = Number.isNaN(bad) ? 'NaN' : String(bad);
        await expect(loadCheckpoint(dir), `${dtype} ${bad}`).rejects.toThrow(
          new RegExp(
            `model\\.layers\\.1\\.mlp\\.up_proj\\.weight \\(in model\\.safetensors\\) holds non-finite values \\(${expected} at element 5 of`,
          ),
        );
      }
    }
  });

  it('F32 values beyond F16 range are refused when converting to F16, not turned into Inf', async () => {
    const { toF16Bits } = await import('../../src/formats/checkpoint');
    const f = new Float32Array([1, 2, 1e6]);
    expect(() =>
      toF16Bits({ name: 'model.norm.weight', dtype: 'F32', shape: [3], data: new Uint8Array(f.buffer) }),
    ).toThrow(
      /model\.norm\.weight holds 1000000 at element 2, beyond F16's range \(±65504\); load it with --dtype f32/,
    );
    const ok = new Float32Array([65504, -65504, 0.1]);
    expect(toF16Bits({ name: 'x', dtype: 'F32', shape: [3], data: new Uint8Array(ok.buffer) })).toHaveLength(3);
  });

  it('finite extremes pass', () => {
    const f = new Float32Array([3.4e38, -3.4e38, 0, -0, 1e-45]);
    expect(firstNonFinite({ name: 'x', dtype: 'F32', shape: [5], data: new Uint8Array(f.buffer) })).toBeNull();
    const h = f32ToF16Bits(new Float32Array([65504, -65504, 6e-8]));
    expect(firstNonFinite({ name: 'x', dtype: 'F16', shape: [3], data: new Uint8Array(h.buffer) })).toBeNull();
  });
});

const tokFiles = () => tinyTokenizer('qwen2');
const withTemplate = (template: string) => {
  const { tokenizerJson, tokenizerConfig } = tokFiles();
  return new HFTokenizer(tokenizerJson, { ...tokenizerConfig, chat_template: template });
};
const chat = [{ role: 'user', content: 'hi' }];

describe('chat templates render under limits', () => {
  it('a huge loop, a doubling string and deep recursion stop fast with a clear error', () => {
    const hostile = [
      ['{% for i in range(100000000) %}x{% endfor %}', /range\(\) of 100000000 items is longer than the limit/],
      [
        '{% for i in range(90000) %}{% for j in range(90000) %}x{% endfor %}{% endfor %}',
        /more than \d+ (steps|characters)|longer than/,
      ],
      [
        '{% set ns = namespace(s="xx") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}',
        /more than \d+ characters/,
      ],
      ['{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}', /chat template (stopped|failed)/],
    ] as const;
    for (const [template, re] of hostile) {
      const tok = withTemplate(template);
      const t0 = performance.now();
      expect(() => tok.applyChatTemplate(chat), template).toThrow(re);
      expect(performance.now() - t0, template).toBeLessThan(3000);
    }
  });

  it('the time limit holds on its own, and normal templates are unaffected', () => {
    const slow = withTemplate(
      '{% for i in range(100000) %}{% for m in messages %}{{ m.content | length }}{% endfor %}{% endfor %}',
    );
    slow.templateLimits = { ...slow.templateLimits, maxSteps: 1e12, maxOutputChars: 1e9, maxMs: 50 };
    expect(() => slow.applyChatTemplate(chat)).toThrow(/rendering took longer than 50 ms/);
    const tok = withTemplate(
      '{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}' +
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}{{ range(3) | join(',') }} {{ strftime_now('%Y') }}",
    );
    expect(tok.applyChatTemplate(chat)).toBe(
      `<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n0,1,2 ${new Date().getFullYear()}`,
    );
  });
});

describe('tokenizer.json numbers and patterns are checked before use', () => {
  it('an added token with id 1e9 fails at once', () => {
    const { tokenizerJson, tokenizerConfig } = tokFiles();
    const added = [
      ...(tokenizerJson.added_tokens as object[]),
      {
        id: 1e9,
        content: '<evil>',
        special: true,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
      },
    ];
    const t0 = performance.now();
    expect(() => new HFTokenizer({ ...tokenizerJson, added_tokens: added }, tokenizerConfig)).toThrow(
      /added_tokens\[\d+\] has id 1000000000; ids must be integers in \[0, \d+\]/,
    );
    expect(performance.now() - t0).toBeLessThan(200);
    const model = {
      ...(tokenizerJson.model as object),
      vocab: { ...(tokenizerJson.model as { vocab: object }).vocab, zzz: -3 },
    };
    expect(() => new HFTokenizer({ ...tokenizerJson, model }, tokenizerConfig)).toThrow(
      /model\.vocab\["zzz"\] has id -3/,
    );
  });

  it('a backtracking pre-tokenizer regex is refused at load (not 25 s per prompt)', () => {
    const { tokenizerJson, tokenizerConfig } = tokFiles();
    const pre = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: '(a+)+$' }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    };
    expect(() => new HFTokenizer({ ...tokenizerJson, pre_tokenizer: pre }, tokenizerConfig)).toThrow(
      /tokenizer\.json\.pre_tokenizer\.pretokenizers\[0\]\.pattern: the pattern "\(a\+\)\+\$" repeats a group that itself repeats/,
    );
    // The patterns real tokenizers ship pass.
    for (const real of [
      String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
      String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
      String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
    ])
      expect(backtrackingRegexReason(real), real).toBeNull();
    for (const bad of ['(.*)*X', '(a|a)*b', '(?:\\s*\\S)+$', '(x)\\1'])
      expect(backtrackingRegexReason(bad), bad).not.toBeNull();
  });
});

describe('PEFT target_modules never runs a backtracking regex', () => {
  const QWEN = parseConfig(tinyModelConfig({ arch: 'qwen3' }));
  const adapter = randomPeftAdapter(QWEN, { r: 2, alpha: 4, targets: ['q_proj', 'v_proj'], seed: 4 });
  const files = serializePeftAdapter(adapter);
  const load = (targetModules: unknown) => {
    const json = { ...JSON.parse(files['adapter_config.json']), target_modules: targetModules };
    return loadPeftAdapter(
      new BlobSource(
        new Map([
          ['adapter_config.json', new Blob([JSON.stringify(json)])],
          ['adapter_model.safetensors', new Blob([files['adapter_model.safetensors'] as Uint8Array<ArrayBuffer>])],
        ]),
      ),
    );
  };

  it('"(.*)*X" is refused at once; PEFT-style regexes and lists still work', async () => {
    const t0 = performance.now();
    await expect(load('(.*)*X')).rejects.toThrow(
      /target_modules regex "\(\.\*\)\*X" repeats a group that itself repeats/,
    );
    expect(performance.now() - t0).toBeLessThan(200);
    await expect(load('.*.*.*.*.*.*X')).rejects.toThrow(/6 unbounded repetitions; at most 4/);
    await expect(load('x'.repeat(2000))).rejects.toThrow(/2000 characters long/);
    expect(() => parseAdapterConfig({ r: 1e9, target_modules: ['q_proj'] })).toThrow(
      /"r" must be an integer in \[1, 65536\]/,
    );
    expect((await load(String.raw`.*\.(q_proj|v_proj)`)).config.targetModules).toEqual(['q_proj', 'v_proj']);
    expect((await load(['self_attn.q_proj', 'v_proj'])).config.targetModules).toEqual(['self_attn.q_proj', 'v_proj']);
  });
});

describe('training rows are size-checked before tokenization', () => {
  it('a 10 MB row is rejected in milliseconds', () => {
    const { tokenizerJson, tokenizerConfig } = tokFiles();
    const tok = new HFTokenizer(tokenizerJson, tokenizerConfig);
    const row = { text: 'x'.repeat(10 << 20) };
    const t0 = performance.now();
    expect(() => tokenizeRow(row, tok, { maxLength: 512 }, 'train.jsonl:1 row 1')).toThrow(
      /train\.jsonl:1 row 1: the row is over 32768 characters, more than a 512-token context can hold/,
    );
    expect(performance.now() - t0).toBeLessThan(500);
    const ids = { input_ids: Array.from({ length: 100_000 }, () => 1) };
    expect(() => tokenizeRow(ids, tok, { maxLength: 512 }, 'r')).toThrow(/over 32768 characters/);
  });
});

describe('KaTeX in chat output', () => {
  it('caps user-given sizes and macro expansion', async () => {
    const katex = (await import('katex')).default;
    const { KATEX_OPTIONS } = await import('../../src/app/katex-options');
    const rule = katex.renderToString(String.raw`\rule{2000em}{2000em}`, { ...KATEX_OPTIONS });
    const sizes = [...rule.matchAll(/(?:width|height|border-right-width|border-top-width):\s*([\d.]+)em/g)].map((m) =>
      Number(m[1]),
    );
    expect(sizes.length).toBeGreaterThan(0);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(20);
    const unbounded = katex.renderToString(String.raw`\rule{2000em}{2000em}`, { output: 'html' });
    expect(unbounded).toMatch(/2000em/); // what the options prevent
    const loop = katex.renderToString(String.raw`\def\a{\a\a}\a`, { ...KATEX_OPTIONS });
    expect(loop).toMatch(/Too many expansions/);
  });
});
