/**
 * `agentark eval`: evaluate the base model alone ("single"), the base model voting over N samples
 * ("self-consistency"), the base model in a debate ("debate") and one student per adapter
 * ("student") on one or more question sets, greedy and sampled — accuracy with Wilson intervals,
 * the paired sign test of each system against the single agent, per-task accuracy,
 * self-correction, robustness to perturbations and cost — and write the versioned JSON report
 * (plus an optional Markdown table; the table is also printed on stdout).
 *
 * Local engine: the base is loaded once; adapters are loaded next to it on the same Runtime and
 * activated right before their system runs (the base systems run with none active). An
 * OpenAI-compatible endpoint (--base-url) serves the base as --api-model and students as
 * --student-model names (e.g. vLLM LoRA modules).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { ChatEngine } from '../engine/types';
import { isTask, type Task } from '../tasks/answers';
import { DEFAULT_SAMPLED_TEMPERATURE, evaluate, type Decoding, type EvalSystem } from '../eval/harness';
import type { ArithmeticStep, PerturbableQuestion, StructuredProblem } from '../eval/perturb';
import { toMarkdown } from '../eval/report';
import { loadQuestions, type Question } from '../tasks/datasets';
import { OpenAIEngine } from '../teach/openai-engine';
import { floatFlag, intFlag, parseFlags, reportUsageError, runtimeOptions, stderrProgress, UsageError } from './args';
import { DATA_FLAGS, DATA_HELP, dataOptions } from './data-flags';

export const USAGE = `usage: agentark eval --data FILE [--task T] [--data FILE2 --task T2 ...] --out REPORT.json (--model DIR | --base-url URL) [options]

  --data FILE              questions (JSONL / JSON array; GSM8K, MATH or multiple-choice layout) or URL;
                           a row may carry a "structure" (template, names, numbers, answer formula) or the
                           demo generator's "steps"; then perturbed numbers get a recomputed answer.
                           Repeatable: several sets in one run, one report column per set (generalization)
  --task T                 gsm8k | math | mc | qa (default gsm8k); once for all --data, or once per --data, in order
  --out FILE               the JSON report (agentark.eval/1)
  --markdown FILE          also write the Markdown table
  --systems LIST           comma-separated subset of single,self-consistency,debate,student
                           (default: all that apply)
  --decoding LIST          greedy,sampled (default both: every system twice, greedy = temperature 0 as in
                           AgentArk's evaluation; self-consistency is only sampled)
  --sc-samples N           self-consistency: samples per question, majority vote (default 5)
  --model DIR              local engine: base model (dir, URL or HF id)
  --adapter DIR            local engine: a student LoRA adapter (repeatable: one "student" system each)
  --backend B              local engine: webgpu | cpu (default webgpu)
  --dtype D                local engine: auto | f16 | f32
  --quantize q8|q4         local engine: frozen weights quantized on load (cached)
  --context-length N       local engine: context length
  --max-batch N            local engine: sequences decoded together (default: max(debate agents, sc samples) x concurrency)
  --base-url URL           OpenAI-compatible endpoint instead of a local model
  --api-model NAME         endpoint: the base model's name (default "default")
  --student-model NAME     endpoint: a student model's name (repeatable)
  --api-key K              endpoint: API key (default $OPENAI_API_KEY)
  --timeout-ms MS          endpoint: per-request timeout (default 120000)
  --max-retries N          endpoint: retries per request (default 4)
  --debate-agents N        debate agents (default 5)
  --debate-rounds N        debate rounds including the first (default 2)
  --debate-aggregator A    llm | vote (default llm)
  --debate-temperature T   debate agents' sampled temperature (default 0.7)
  --temperature T          single/student/self-consistency sampled temperature (default 0.7)
  --max-tokens N           max tokens per reply (default 512)
  --seed S                 seed sent with every request
  --limit N                only the first N questions
  --concurrency C          questions in flight per system (default 1)
  --no-self-correction     skip the review-and-fix second attempt
  --no-robustness          skip the perturbed questions
  --perturb-seed S         seed of the perturbations (default 0)
  --quiet                  no progress on stderr
${DATA_HELP}`;

function isStructure(x: unknown): x is StructuredProblem {
  const s = x as StructuredProblem | undefined;
  return (
    !!s &&
    typeof s === 'object' &&
    typeof s.template === 'string' &&
    typeof s.answer === 'string' &&
    typeof s.numbers === 'object' &&
    s.numbers !== null
  );
}

/**
 * Attaches what each row carries about its structure — a `structure` (perturb.ts
 * StructuredProblem) or the demo generator's arithmetic `steps` — to its question (ids follow
 * loadQuestions: the row's id, else `<basename>#<line>` / `#<item>`).
 */
export function attachStructures(text: string, questions: Question[], sourceName: string): PerturbableQuestion[] {
  const base = sourceName.split(/[\\/]/).filter(Boolean).pop() ?? sourceName;
  const byId = new Map<string, { structure?: StructuredProblem; steps?: ArithmeticStep[] }>();
  const take = (row: unknown, fallback: string) => {
    if (!row || typeof row !== 'object') return;
    const r = row as Record<string, unknown>;
    const extra: { structure?: StructuredProblem; steps?: ArithmeticStep[] } = {};
    if (isStructure(r.structure)) extra.structure = r.structure;
    if (
      Array.isArray(r.steps) &&
      r.steps.every((s) => s && typeof s === 'object' && typeof (s as ArithmeticStep).op === 'string')
    )
      extra.steps = r.steps as ArithmeticStep[];
    if (!extra.structure && !extra.steps) return;
    const id = typeof r.id === 'string' && r.id.trim() ? r.id : typeof r.id === 'number' ? String(r.id) : fallback;
    byId.set(id, extra);
  };
  const body = text.replace(/^\uFEFF/, '');
  if (body.trimStart().startsWith('[')) {
    try {
      (JSON.parse(body) as unknown[]).forEach((row, i) => take(row, `${base}#${i + 1}`));
    } catch {
      /* loadQuestions already validated the file */
    }
  } else {
    body.split(/\r?\n/).forEach((line, i) => {
      if (!line.includes('"structure"') && !line.includes('"steps"')) return;
      try {
        take(JSON.parse(line), `${base}#${i + 1}`);
      } catch {
        /* ignore */
      }
    });
  }
  return questions.map((q) => {
    const extra = byId.get(String(q.id));
    return extra ? { ...q, ...extra } : q;
  });
}

export async function run(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined> | null;
  try {
    values = parseFlags(
      argv,
      {
        data: { type: 'string', multiple: true },
        ...DATA_FLAGS,
        task: { type: 'string', multiple: true },
        decoding: { type: 'string', default: 'greedy,sampled' },
        'sc-samples': { type: 'string' },
        out: { type: 'string' },
        markdown: { type: 'string' },
        systems: { type: 'string' },
        model: { type: 'string' },
        adapter: { type: 'string', multiple: true },
        backend: { type: 'string' },
        dtype: { type: 'string' },
        'context-length': { type: 'string' },
        quantize: { type: 'string' },
        'max-batch': { type: 'string' },
        'base-url': { type: 'string' },
        'api-model': { type: 'string' },
        'student-model': { type: 'string', multiple: true },
        'api-key': { type: 'string' },
        'timeout-ms': { type: 'string' },
        'max-retries': { type: 'string' },
        'debate-agents': { type: 'string' },
        'debate-rounds': { type: 'string' },
        'debate-aggregator': { type: 'string', default: 'llm' },
        'debate-temperature': { type: 'string' },
        temperature: { type: 'string' },
        'max-tokens': { type: 'string' },
        seed: { type: 'string' },
        limit: { type: 'string' },
        concurrency: { type: 'string' },
        'no-self-correction': { type: 'boolean', default: false },
        'no-robustness': { type: 'boolean', default: false },
        'perturb-seed': { type: 'string' },
        quiet: { type: 'boolean', default: false },
      },
      USAGE,
    );
  } catch (e) {
    return reportUsageError('eval', e as UsageError);
  }
  if (!values) return 0;

  const str = (k: string) => values[k] as string | undefined;
  const list = (k: string) => (values[k] as string[] | undefined) ?? [];
  let cfg: {
    sets: { data: string; task: Task; label?: string }[];
    decodings: Decoding[];
    scSamples: number;
    out: string;
    wanted: Set<string>;
    agents: number;
    rounds: number;
    aggregator: 'llm' | 'vote';
    debateTemperature: number;
    temperature: number;
    maxTokens: number;
    seed?: number;
    limit?: number;
    concurrency: number;
    perturbSeed: number;
  };
  try {
    const datas = list('data');
    if (!datas.length) throw new UsageError('--data is required');
    if (!str('out')) throw new UsageError('--out is required');
    const taskList = list('task').length ? list('task') : ['gsm8k'];
    for (const t of taskList)
      if (!isTask(t)) throw new UsageError(`--task must be gsm8k, math, mc or qa, got ${JSON.stringify(t)}`);
    if (taskList.length !== 1 && taskList.length !== datas.length)
      throw new UsageError(
        `give --task once (for every --data) or once per --data: got ${taskList.length} --task for ${datas.length} --data`,
      );
    const sets = datas.map((data, i) => ({ data, task: (taskList.length === 1 ? taskList[0] : taskList[i]) as Task }));
    if (sets.length > 1) {
      // One report column per set: the file's name, made unique.
      const used = new Set<string>();
      for (const st of sets) {
        const stem = (st.data.split(/[\\/]/).filter(Boolean).pop() ?? st.data).replace(/\.(jsonl|json|parquet)$/i, '');
        let label = stem;
        for (let k = 2; used.has(label); k++) label = `${stem}-${k}`;
        used.add(label);
        (st as { label?: string }).label = label;
      }
    }
    const decodings = (str('decoding') ?? '')
      .split(',')
      .map((d) => d.trim())
      .filter(Boolean);
    if (!decodings.length || decodings.some((d) => d !== 'greedy' && d !== 'sampled'))
      throw new UsageError(
        `--decoding must be greedy, sampled or greedy,sampled, got ${JSON.stringify(str('decoding'))}`,
      );
    if (!str('model') && !str('base-url'))
      throw new UsageError('give --model DIR (local engine) or --base-url URL (OpenAI-compatible endpoint)');
    if (str('model') && str('base-url')) throw new UsageError('--model and --base-url are exclusive');
    if (str('base-url') && list('adapter').length)
      throw new UsageError(
        '--adapter needs the local engine (--model); with --base-url name served students with --student-model',
      );
    if (str('model') && list('student-model').length)
      throw new UsageError('--student-model applies to --base-url; with --model give --adapter DIR');
    const all = ['single', 'self-consistency', 'debate', 'student'];
    const wanted = new Set(
      str('systems')
        ? str('systems')!
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : all,
    );
    for (const s of wanted)
      if (!all.includes(s))
        throw new UsageError(`--systems: unknown system ${JSON.stringify(s)} (expected ${all.join(', ')})`);
    const students = list('adapter').length + list('student-model').length;
    if (str('systems') && wanted.has('student') && !students)
      throw new UsageError('--systems student needs --adapter (or --student-model)');
    const aggregator = str('debate-aggregator') as 'llm' | 'vote';
    if (aggregator !== 'llm' && aggregator !== 'vote')
      throw new UsageError(`--debate-aggregator must be llm or vote, got ${JSON.stringify(aggregator)}`);
    cfg = {
      sets,
      decodings: decodings as Decoding[],
      scSamples: intFlag(str('sc-samples'), 'sc-samples', 5, { min: 1 }),
      out: str('out')!,
      wanted,
      agents: intFlag(str('debate-agents'), 'debate-agents', 5, { min: 1 }),
      rounds: intFlag(str('debate-rounds'), 'debate-rounds', 2, { min: 1 }),
      aggregator,
      debateTemperature: floatFlag(str('debate-temperature'), 'debate-temperature', 0.7, { min: 0, max: 2 }),
      temperature: floatFlag(str('temperature'), 'temperature', DEFAULT_SAMPLED_TEMPERATURE, { min: 0, max: 2 }),
      maxTokens: intFlag(str('max-tokens'), 'max-tokens', 512, { min: 1 }),
      seed: intFlag(str('seed'), 'seed', undefined, { min: 0 }),
      limit: intFlag(str('limit'), 'limit', undefined, { min: 0 }),
      concurrency: intFlag(str('concurrency'), 'concurrency', 1, { min: 1 }),
      perturbSeed: intFlag(str('perturb-seed'), 'perturb-seed', 0, { min: 0 }),
    };
  } catch (e) {
    return reportUsageError('eval', e as UsageError, USAGE);
  }

  let dataOpts: ReturnType<typeof dataOptions>;
  try {
    dataOpts = dataOptions(values, values.quiet === true);
  } catch (e) {
    process.stderr.write(`agentark eval: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const ac = new AbortController();
  const onSigint = () => {
    process.stderr.write('\ninterrupted: stopping the evaluation (no report written)\n');
    ac.abort(new Error('SIGINT'));
  };
  process.once('SIGINT', onSigint);
  let dispose: (() => void) | undefined;
  try {
    const questions: PerturbableQuestion[] = [];
    for (const st of cfg.sets) {
      let qs: PerturbableQuestion[] = await loadQuestions(st.data, st.task, { limit: cfg.limit, ...dataOpts });
      if (/\.jsonl?$/i.test(st.data) && !/^https?:\/\//i.test(st.data))
        qs = attachStructures(await fsp.readFile(st.data, 'utf8'), qs, st.data);
      if (!qs.length) throw new Error(`no questions in ${st.data}`);
      // Several sets: ids get the set's label, so equal row ids of two files stay apart.
      questions.push(
        ...(st.label === undefined ? qs : qs.map((q) => ({ ...q, id: `${st.label}/${q.id}`, set: st.label }))),
      );
    }

    const systems: EvalSystem[] = [];
    const unique = (name: string) => {
      let n = name;
      for (let i = 2; systems.some((s) => s.name === n); i++) n = `${name}-${i}`;
      return n;
    };
    let engine: ChatEngine;
    let baseModel: string;
    const students: { name: string; model?: string; setup?: () => void; meta: Record<string, string> }[] = [];
    let baseSetup: (() => void) | undefined;
    const base = str('base-url');
    if (base) {
      baseModel = str('api-model') ?? 'default';
      engine = new OpenAIEngine({
        baseUrl: base,
        apiKey: str('api-key') ?? process.env.OPENAI_API_KEY,
        model: baseModel,
        concurrency: Math.max(cfg.agents, cfg.scSamples, 1) * cfg.concurrency,
        timeoutMs: intFlag(str('timeout-ms'), 'timeout-ms', undefined, { min: 1 }),
        maxRetries: intFlag(str('max-retries'), 'max-retries', undefined, { min: 0 }),
        onRetry: (r) =>
          process.stderr.write(`retry ${r.attempt}/${r.maxAttempts - 1} in ${r.delayMs} ms: ${r.url}: ${r.reason}\n`),
      });
      const names = list('student-model');
      for (const m of names)
        students.push({
          name: names.length === 1 ? 'student' : `student:${m}`,
          model: m,
          meta: { role: 'student', model: m },
        });
    } else {
      let rt: ReturnType<typeof runtimeOptions>;
      try {
        rt = runtimeOptions(
          values as { backend?: string; dtype?: string; 'context-length'?: string; quantize?: string },
        );
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const { Runtime, LocalEngine } = await import('../engine/local');
      const maxBatch = intFlag(
        str('max-batch'),
        'max-batch',
        Math.max(cfg.agents, cfg.scSamples, 1) * cfg.concurrency,
        { min: 1 },
      );
      const { adapter: _ignored, ...rtOpts } = rt;
      const runtime = await Runtime.load(str('model')!, {
        ...rtOpts,
        maxBatch,
        onProgress: values.quiet ? undefined : stderrProgress('load'),
        signal: ac.signal,
      });
      dispose = () => runtime.dispose();
      engine = new LocalEngine(runtime);
      baseModel = runtime.modelId;
      baseSetup = () => runtime.adapters.activate(null);
      const dirs = list('adapter');
      const used = new Set<string>();
      for (const [i, dir] of dirs.entries()) {
        let label = path.basename(path.resolve(dir)) || `adapter${i + 1}`;
        while (used.has(label)) label = `${label}-${i + 1}`;
        used.add(label);
        const key = `student:${label}`;
        await runtime.adapters.load(key, dir);
        students.push({
          name: dirs.length === 1 ? 'student' : key,
          setup: () => runtime.adapters.activate(key),
          meta: { role: 'student', adapter: dir },
        });
      }
    }
    if (cfg.wanted.has('single')) {
      systems.push({
        name: unique('single'),
        kind: 'single',
        engine,
        model: baseModel,
        setup: baseSetup,
        meta: { role: 'base', model: baseModel },
      });
    }
    if (cfg.wanted.has('self-consistency')) {
      systems.push({
        name: unique('self-consistency'),
        kind: 'self-consistency',
        engine,
        model: baseModel,
        samples: cfg.scSamples,
        setup: baseSetup,
        meta: { role: 'base', model: baseModel, samples: String(cfg.scSamples) },
      });
    }
    if (cfg.wanted.has('debate')) {
      systems.push({
        name: unique('debate'),
        kind: 'debate',
        engines: engine,
        setup: baseSetup,
        meta: {
          role: 'base',
          model: baseModel,
          agents: String(cfg.agents),
          rounds: String(cfg.rounds),
          aggregator: cfg.aggregator,
        },
        debate: {
          numAgents: cfg.agents,
          rounds: cfg.rounds,
          aggregator: cfg.aggregator,
          model: baseModel,
          temperature: cfg.debateTemperature,
        },
      });
    }
    if (cfg.wanted.has('student')) {
      for (const s of students)
        systems.push({
          name: unique(s.name),
          kind: 'single',
          engine,
          model: s.model ?? baseModel,
          setup: s.setup,
          meta: s.meta,
        });
    }
    if (!systems.length) throw new UsageError('no system to evaluate');

    const report = await evaluate(questions, systems, {
      ...(cfg.sets.length === 1 ? { task: cfg.sets[0]!.task } : {}),
      decodings: cfg.decodings,
      maxTokens: cfg.maxTokens,
      temperature: cfg.temperature,
      seed: cfg.seed,
      selfCorrection: !values['no-self-correction'],
      robustness: !values['no-robustness'],
      perturbSeed: cfg.perturbSeed,
      concurrency: cfg.concurrency,
      dataset: cfg.sets.map((st) => st.data).join(', '),
      signal: ac.signal,
      onProgress: values.quiet ? undefined : stderrProgress('eval'),
    });
    await fsp.mkdir(path.dirname(path.resolve(cfg.out)), { recursive: true });
    await fsp.writeFile(cfg.out, `${JSON.stringify(report, null, 2)}\n`, 'utf8');
    const md = toMarkdown(report);
    const mdFile = str('markdown');
    if (mdFile) {
      await fsp.mkdir(path.dirname(path.resolve(mdFile)), { recursive: true });
      await fsp.writeFile(mdFile, md, 'utf8');
    }
    process.stdout.write(md);
    const errors = report.systems.reduce((a, s) => a + s.errors, 0);
    if (errors) process.stderr.write(`agentark eval: ${errors} call(s) failed and were counted as wrong answers\n`);
    return errors ? 1 : 0;
  } catch (e) {
    if (e instanceof UsageError) return reportUsageError('eval', e, USAGE);
    if (ac.signal.aborted) return 130;
    process.stderr.write(`agentark eval: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    dispose?.();
  }
}
