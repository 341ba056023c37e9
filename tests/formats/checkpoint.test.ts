import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProgressEvent } from '../../src/progress';
import {
  loadCheckpoint,
  toBf16Bits,
  toF16Bits,
  toFloat32,
  type Checkpoint,
  type HostTensor,
} from '../../src/formats/checkpoint';
import { writeSafetensors, readSafetensors } from '../../src/formats/safetensors';
import { f32ToF16Bits } from '../../src/formats/dtype';
import {
  serveDirectory,
  tinyModelWeights,
  tinyTokenizer,
  writeTinyModel,
  type ServedDirectory,
  type TinyArch,
  type TinyModelOptions,
} from '../helpers/tiny-model';

let root: string;
let counter = 0;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-checkpoint-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function modelDir(opts: TinyModelOptions): string {
  const dir = path.join(root, `m${counter++}-${opts.arch}`);
  writeTinyModel(dir, opts);
  return dir;
}

/** Every expected tensor is present with the exact stored values, and nothing else is. */
function expectWeights(ck: Checkpoint, opts: TinyModelOptions) {
  const want = tinyModelWeights(opts);
  expect([...ck.tensors.keys()]).toEqual([...want.keys()]);
  for (const [name, { shape, values }] of want) {
    const t = ck.tensors.get(name)!;
    expect(t.shape, name).toEqual(shape);
    expect(t.dtype, name).toBe(opts.dtype ?? 'F32');
    const got = toFloat32(t);
    if (!Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(values.buffer))) {
      expect.fail(`${name}: values differ`);
    }
  }
}

const ARCHS: TinyArch[] = ['llama', 'mistral', 'qwen2', 'qwen3'];

describe('loading from disk', () => {
  for (const arch of ARCHS) {
    for (const dtype of ['F32', 'BF16', 'F16'] as const) {
      for (const tied of [false, true]) {
        for (const sharded of [false, true]) {
          it(`${arch} ${dtype} ${tied ? 'tied' : 'untied'} ${sharded ? 'sharded' : 'single-file'}`, async () => {
            const opts: TinyModelOptions = { arch, dtype, tied, sharded, seed: 7 };
            const ck = await loadCheckpoint(modelDir(opts));
            expect(ck.config.architecture).toBe(arch);
            expect(ck.config.tieWordEmbeddings).toBe(tied);
            expect(ck.tensors.has('lm_head.weight')).toBe(!tied);
            expectWeights(ck, opts);
          });
        }
      }
    }
  }

  it('loads config, tokenizer, generation config and the merged eos set', async () => {
    const ck = await loadCheckpoint(modelDir({ arch: 'qwen2' }));
    const { ids } = tinyTokenizer('qwen2');
    expect(ck.config.attentionBias).toBe(true);
    expect(ck.tokenizer).not.toBeNull();
    expect(ck.tokenizer!.decode(ck.tokenizer!.encode('héllo wörld'))).toBe('héllo wörld');
    expect(ck.generationConfig).toMatchObject({
      eosTokenIds: [ids.imEnd, ids.endoftext],
      temperature: 0.7,
      topP: 0.8,
      topK: 20,
    });
    expect(ck.eosTokenIds.sort()).toEqual([ids.endoftext, ids.imEnd].sort());
    expect(ck.source).toContain('qwen2');
  });

  it('ignores unknown extra tensors and an lm_head saved despite tying', async () => {
    const opts: TinyModelOptions = { arch: 'qwen3', tied: true, extraTensors: true };
    const dir = modelDir(opts);
    const names = readSafetensors(new Uint8Array(fs.readFileSync(path.join(dir, 'model.safetensors')))).tensors.map(
      (t) => t.name,
    );
    expect(names).toContain('lm_head.weight');
    expect(names).toContain('model.layers.0.self_attn.rotary_emb.inv_freq');
    expectWeights(await loadCheckpoint(dir), opts);
  });

  it('skips the tokenizer when asked, or when there is none', async () => {
    const dir = modelDir({ arch: 'llama' });
    expect((await loadCheckpoint(dir, { loadTokenizer: false })).tokenizer).toBeNull();
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    expect((await loadCheckpoint(dir)).tokenizer).toBeNull();
  });

  it('reports monotone byte progress that reaches the total', async () => {
    const dir = modelDir({ arch: 'qwen3', sharded: true, hidden: 128, intermediate: 256, layers: 3 });
    const shardBytes = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.safetensors'))
      .reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
    const events: ProgressEvent[] = [];
    await loadCheckpoint(dir, { onProgress: (e) => events.push(e) });
    expect(events.length).toBeGreaterThan(2);
    for (const e of events) expect(e).toMatchObject({ phase: 'download', unit: 'bytes', total: shardBytes });
    for (let i = 1; i < events.length; i++) expect(events[i].done).toBeGreaterThan(events[i - 1].done);
    expect(events[0].done).toBe(0);
    expect(events[events.length - 1].done).toBe(shardBytes);
  });

  it('honours an abort signal', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(loadCheckpoint(modelDir({ arch: 'llama' }), { signal: controller.signal })).rejects.toThrow(/abort/i);
  });
});

describe('loading over HTTP', () => {
  let server: ServedDirectory;
  const savedEndpoint = process.env.AGENTARK_HF_ENDPOINT;
  afterEach(async () => {
    await server?.close();
    if (savedEndpoint === undefined) delete process.env.AGENTARK_HF_ENDPOINT;
    else process.env.AGENTARK_HF_ENDPOINT = savedEndpoint;
  });

  for (const arch of ARCHS) {
    it(`${arch} from a base URL (BF16, sharded)`, async () => {
      const opts: TinyModelOptions = { arch, dtype: 'BF16', sharded: true, seed: 3 };
      server = await serveDirectory(modelDir(opts));
      const ck = await loadCheckpoint(`${server.url}/`);
      expectWeights(ck, opts);
      expect(ck.tokenizer).not.toBeNull();
      // Headers came first, by Range request, before any full download.
      const shardRequests = server.requests.filter((r) => r.file.endsWith('.safetensors') && r.method === 'GET');
      const firstFull = shardRequests.findIndex((r) => r.range === null);
      expect(firstFull).toBeGreaterThan(0);
      expect(shardRequests.slice(0, firstFull).every((r) => r.range !== null)).toBe(true);
    });

    it(`${arch} from a Hugging Face repo id via AGENTARK_HF_ENDPOINT`, async () => {
      const opts: TinyModelOptions = { arch, dtype: 'F32' };
      server = await serveDirectory(modelDir(opts));
      process.env.AGENTARK_HF_ENDPOINT = server.url;
      const ck = await loadCheckpoint(`tiny-org/${arch}-tiny`);
      expectWeights(ck, opts);
      expect(ck.source).toBe(`tiny-org/${arch}-tiny`);
      expect(server.requests.length).toBeGreaterThan(0);
      for (const r of server.requests) expect(r.path.startsWith(`/tiny-org/${arch}-tiny/resolve/main/`)).toBe(true);
    });
  }

  it('works when the server ignores Range, with progress over HTTP', async () => {
    const opts: TinyModelOptions = { arch: 'qwen2', dtype: 'F16', tied: false };
    server = await serveDirectory(modelDir(opts), { noRange: true });
    const events: ProgressEvent[] = [];
    expectWeights(await loadCheckpoint(server.url, { onProgress: (e) => events.push(e) }), opts);
    expect(events[events.length - 1].done).toBe(events[0].total);
  });

  it('reports a server that dies mid-download', async () => {
    server = await serveDirectory(modelDir({ arch: 'llama' }), { dieAfterBytes: 100_000 });
    await expect(loadCheckpoint(server.url)).rejects.toThrow(
      /download of model\.safetensors from http:\/\/127\.0\.0\.1:\d+\/model\.safetensors interrupted after \d+ of \d+ bytes/,
    );
  });

  it('fails before downloading weights when a header disagrees with the config', async () => {
    const dir = modelDir({ arch: 'qwen2' });
    patchConfig(dir, { intermediate_size: 100 });
    server = await serveDirectory(dir);
    await expect(loadCheckpoint(server.url)).rejects.toThrow(
      /mlp\.gate_proj\.weight has shape \[96, 64\], config implies \[100, 64\]/,
    );
    const full = server.requests.filter(
      (r) => r.file.endsWith('.safetensors') && r.method === 'GET' && r.range === null,
    );
    expect(full).toEqual([]);
  });

  it('names the repository when it does not exist', async () => {
    server = await serveDirectory(modelDir({ arch: 'qwen2' }));
    await expect(loadCheckpoint(`${server.url}/nothing-here/`)).rejects.toThrow(/config\.json: HTTP 404/);
  });
});

function patchConfig(dir: string, patch: Record<string, unknown>) {
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...patch }));
}

/** Rewrites model.safetensors with `edit` applied to its tensor list. */
function rewriteWeights(dir: string, edit: (tensors: ReturnType<typeof readSafetensors>['tensors']) => typeof tensors) {
  const file = path.join(dir, 'model.safetensors');
  const { tensors } = readSafetensors(new Uint8Array(fs.readFileSync(file)));
  fs.writeFileSync(file, writeSafetensors(edit(tensors.map((t) => ({ ...t, data: t.data.slice() })))));
}

describe('bad checkpoints fail with clear errors', () => {
  it('truncated safetensors', async () => {
    const dir = modelDir({ arch: 'llama' });
    const file = path.join(dir, 'model.safetensors');
    fs.truncateSync(file, fs.statSync(file).size - 100);
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      /model\.safetensors: file truncated: tensor ".*" ends at data offset \d+/,
    );
  });

  it('header length past end of file', async () => {
    const dir = modelDir({ arch: 'llama' });
    const file = path.join(dir, 'model.safetensors');
    const bytes = fs.readFileSync(file);
    bytes.writeBigUInt64LE(BigInt(bytes.length * 2), 0);
    fs.writeFileSync(file, bytes);
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      `model.safetensors: header length ${bytes.length * 2} past end of file (size ${bytes.length})`,
    );
  });

  it('a dtype the runtime cannot use', async () => {
    const dir = modelDir({ arch: 'qwen2' });
    rewriteWeights(dir, (tensors) => tensors.map((t) => (t.name === 'model.norm.weight' ? { ...t, dtype: 'I32' } : t)));
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      'model.norm.weight has unsupported dtype I32 (in model.safetensors); supported: F32, F16, BF16',
    );
  });

  it('a tensor whose shape disagrees with the config', async () => {
    const dir = modelDir({ arch: 'qwen3' });
    rewriteWeights(dir, (tensors) =>
      tensors.map((t) =>
        t.name === 'model.layers.1.self_attn.k_proj.weight' ? { ...t, shape: [t.shape[1], t.shape[0]] } : t,
      ),
    );
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      'model.layers.1.self_attn.k_proj.weight has shape [64, 48], config implies [48, 64] (in model.safetensors)',
    );
  });

  it('a missing tensor, by name', async () => {
    const dir = modelDir({ arch: 'mistral' });
    rewriteWeights(dir, (tensors) => tensors.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'));
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      'missing tensor model.layers.1.mlp.up_proj.weight (not in model.safetensors)',
    );
  });

  it('an untied config whose checkpoint has no lm_head', async () => {
    const dir = modelDir({ arch: 'qwen2', tied: true });
    patchConfig(dir, { tie_word_embeddings: false });
    await expect(loadCheckpoint(dir)).rejects.toThrow('missing tensor lm_head.weight');
  });

  it('an unknown architecture', async () => {
    const dir = modelDir({ arch: 'llama' });
    patchConfig(dir, { architectures: ['GPTNeoXForCausalLM'] });
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      /unsupported architecture "GPTNeoXForCausalLM"; supported: LlamaForCausalLM/,
    );
  });

  it('malformed tokenizer.json', async () => {
    const dir = modelDir({ arch: 'qwen2' });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"version": "1.0", "model": ');
    await expect(loadCheckpoint(dir)).rejects.toThrow(/^tokenizer\.json: invalid JSON/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"version": "1.0"}');
    await expect(loadCheckpoint(dir)).rejects.toThrow('tokenizer.json: missing "model" section');
  });

  it('no weights at all', async () => {
    const dir = modelDir({ arch: 'qwen2' });
    fs.rmSync(path.join(dir, 'model.safetensors'));
    await expect(loadCheckpoint(dir)).rejects.toThrow(/no model\.safetensors or model\.safetensors\.index\.json/);
  });

  it('a shard named by the index is missing', async () => {
    const dir = modelDir({ arch: 'qwen2', sharded: true });
    fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    await expect(loadCheckpoint(dir)).rejects.toThrow(/model-00002-of-00002\.safetensors not found in/);
  });

  it('a missing config.json', async () => {
    const dir = modelDir({ arch: 'qwen2' });
    fs.rmSync(path.join(dir, 'config.json'));
    await expect(loadCheckpoint(dir)).rejects.toThrow(`config.json not found in ${dir}`);
  });

  it('a tokenizer larger than the embedding table', async () => {
    const dir = modelDir({ arch: 'qwen2' });
    patchConfig(dir, { vocab_size: 300 });
    rewriteWeights(dir, (tensors) =>
      tensors.map((t) =>
        t.name === 'model.embed_tokens.weight' ? { ...t, shape: [300, 64], data: t.data.subarray(0, 300 * 64 * 4) } : t,
      ),
    );
    await expect(loadCheckpoint(dir)).rejects.toThrow(/tokenizer has 309 tokens but the model's vocab_size is 300/);
  });
});

describe('tensor conversions', () => {
  const values = new Float32Array([1, -2.5, 0.1, 65504, 1e-8]);
  const f32: HostTensor = { name: 'x', dtype: 'F32', shape: [5], data: new Uint8Array(values.buffer) };

  it('converts between dtypes', () => {
    expect(toFloat32(f32)).toEqual(values);
    const f16: HostTensor = { ...f32, dtype: 'F16', data: new Uint8Array(f32ToF16Bits(values).buffer) };
    expect(Array.from(toF16Bits(f32))).toEqual(Array.from(f32ToF16Bits(values)));
    expect(Array.from(toFloat32(f16))).toEqual([1, -2.5, Math.fround(0.0999755859375), 65504, 0]);
    const bf16: HostTensor = { ...f32, dtype: 'BF16', data: new Uint8Array(toBf16Bits(f32).buffer) };
    expect(Array.from(toFloat32(bf16)).slice(0, 2)).toEqual([1, -2.5]);
  });

  it('handles unaligned data', () => {
    const padded = new Uint8Array(values.byteLength + 1);
    padded.set(new Uint8Array(values.buffer), 1);
    expect(toFloat32({ ...f32, data: padded.subarray(1) })).toEqual(values);
  });
});
