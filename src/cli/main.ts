/** `agentark <command>`: each command is a thin layer over the modules it names. */
import { reportUsageError, UsageError } from './args';

type Command = { summary: string; load: () => Promise<{ run: (argv: string[]) => Promise<number>; USAGE?: string }> };

const COMMANDS: Record<string, Command> = {
  generate: { summary: 'generate text or token ids with a local model', load: () => import('./generate') },
  logits: { summary: 'print the logits of one forward pass', load: () => import('./logits') },
  serve: { summary: 'serve a local model over an OpenAI-compatible HTTP API', load: () => import('./serve') },
  train: { summary: 'train a LoRA adapter (PEFT) or a whole tiny model on WebGPU', load: () => import('./train') },
  export: {
    summary: 'export the (merged) student as ONNX for transformers.js / onnxruntime',
    load: () => import('./export'),
  },
  merge: { summary: 'merge a LoRA adapter into its base and save HF safetensors', load: () => import('./merge') },
  debate: {
    summary: 'run a multi-agent debate over a question set and record trajectories',
    load: () => import('./debate'),
  },
  distill: {
    summary: 'build R-SFT / DA / PAD training sets (TRL JSONL) from trajectories',
    load: () => import('./distill'),
  },
  prm: { summary: 'train or evaluate a process reward model head on the frozen student', load: () => import('./prm') },
  rl: {
    summary: 'RL on the student LoRA: RLOO advantages, PPO-clip, KL to the base, PRM + verifiable reward',
    load: () => import('./rl'),
  },
  eval: {
    summary: 'evaluate base, debate and students: accuracy, self-correction, robustness, cost',
    load: () => import('./eval'),
  },
  bench: {
    summary: 'how fast a model runs here: cold load, prefill/decode tokens/s, a LoRA step, peak GPU memory vs the plan',
    load: () => import('./bench'),
  },
  grade: { summary: 'grade predictions or trajectories against reference answers', load: () => import('./grade') },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return (
    `usage: agentark <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'agentark <command> --help' for a command's options.\n\n` +
    'environment: AGENTARK_AUTOTUNE=0 skips timing kernel variants (register-tiled kernels everywhere);\n' +
    '  AGENTARK_KERNELS=gemv=splitk,gemm=tiled forces variants (see src/kernels/autotune.ts).'
  );
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`agentark: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  let commandUsage: string | undefined;
  try {
    const mod = await command.load();
    commandUsage = mod.USAGE;
    return await mod.run(rest);
  } catch (e) {
    if (e instanceof UsageError) return reportUsageError(name, e, e.usage ?? commandUsage);
    const err = e as Error;
    console.error(`agentark ${name}: ${err.message}`);
    if (process.env.AGENTARK_DEBUG) console.error(err.stack);
    return 1;
  }
}
