/** Device loss and out-of-memory become clear errors instead of hangs or garbage. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Runtime } from '../../src/engine/local';
import { Gpu } from '../../src/gpu/device';
import { writeTinyModel } from '../helpers/tiny-model';

describe('GPU failures', () => {
  it('a lost device fails generation with a message saying so', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-lost-'));
    writeTinyModel(dir, { arch: 'llama', dtype: 'F32', seed: 1 });
    const gpu = await Gpu.create();
    const runtime = await Runtime.load(dir, { gpu, maxBatch: 1, contextLength: 32 });
    expect((await runtime.generate({ prompt: [1, 2], maxTokens: 2 })).tokens.length).toBeGreaterThan(0);
    gpu.device.destroy();
    await new Promise((r) => setTimeout(r, 100));
    await expect(runtime.generate({ prompt: [1, 2], maxTokens: 2 })).rejects.toThrow(/device was lost/);
  });

  it('a buffer beyond the adapter limit is refused with the sizes named', async () => {
    const gpu = await Gpu.create();
    expect(() => gpu.acquire(gpu.maxBindingBytes + 4, 'kv cache')).toThrow(
      /'kv cache' needs \d+ bytes, above this adapter's maxStorageBufferBindingSize/,
    );
    gpu.destroy();
  });
});
