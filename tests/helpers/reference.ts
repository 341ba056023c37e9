/** Runs the independent PyTorch implementation (tests/reference/hf_reference.py) as an oracle. */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PYTHON = process.env.AGENTARK_TORCH_PYTHON ?? '/usr/bin/python3';

export interface ReferenceOutput {
  ids: number[];
  logits: number[][];
  greedy?: number[];
}

export function torchReference(
  modelDir: string,
  ids: number[],
  opts: { greedy?: number; adapter?: string } = {},
): ReferenceOutput {
  const args = [path.join(REPO_ROOT, 'tests/reference/hf_reference.py'), '--model', modelDir, '--ids', ids.join(',')];
  if (opts.greedy) args.push('--greedy', String(opts.greedy));
  if (opts.adapter) args.push('--adapter', opts.adapter);
  const out = execFileSync(PYTHON, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  return JSON.parse(out) as ReferenceOutput;
}

/** The CLI as a user runs it, with the environment of this test process (incl. the Vulkan ICD). */
export function agentark(
  args: string[],
  opts: { input?: string; allowFail?: boolean } = {},
): { stdout: string; stderr: string; status: number } {
  try {
    const stdout = execFileSync(process.execPath, [path.join(REPO_ROOT, 'bin/agentark.js'), ...args], {
      encoding: 'utf8',
      maxBuffer: 1 << 28,
      input: opts.input,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return { stdout, stderr: '', status: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; status: number };
    if (!opts.allowFail) throw new Error(`agentark ${args.join(' ')} failed (${err.status}): ${err.stderr}`);
    return { stdout: err.stdout, stderr: err.stderr, status: err.status };
  }
}
