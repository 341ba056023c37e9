/** Evaluation: the base model alone, the debate on it and each student adapter, on a question set. */
import { evaluate, type EvalReport, type EvalSystem } from '../../eval/harness';
import type { Question } from '../../tasks/datasets';
import { SMALL_MODEL_DEBATE } from '../../teach/debate';
import type { EvalEvent, EvalRunSettings } from '../api';
import type { Models } from './models';
import { emitter, GPU_TASKS, type Tasks } from './tasks';

export class Evaluation {
  constructor(
    private readonly tasks: Tasks,
    private readonly models: Models,
  ) {}

  async run(
    taskId: string,
    questions: Question[],
    s: EvalRunSettings,
    onEvent: (e: EvalEvent) => void,
  ): Promise<EvalReport & { stopped?: boolean }> {
    const m = this.models.require();
    this.tasks.requireNo(GPU_TASKS, 'evaluating');
    if (!questions.length) throw new Error('No questions to evaluate.');
    const rt = m.runtime;
    const model = m.info.id;
    const base = () => rt.adapters.activate(null);
    const systems: EvalSystem[] = [];
    const system = s.system !== undefined ? { system: s.system } : {};
    const names = { single: 'single', greedy: 'single (greedy)', debate: 'debate', ...s.names };
    if (s.single)
      systems.push({
        name: names.single,
        kind: 'single',
        engine: m.engine,
        model,
        ...system,
        setup: base,
        meta: { role: 'base', model },
      });
    if (s.greedy)
      systems.push({
        name: names.greedy,
        kind: 'single',
        engine: m.engine,
        model,
        ...system,
        temperature: 0,
        setup: base,
        meta: { role: 'base', model, greedy: true },
      });
    if (s.debate) {
      const d = s.debate;
      systems.push({
        name: names.debate,
        kind: 'debate',
        engines: m.engine,
        setup: base,
        meta: {
          role: 'base',
          model,
          agents: d.agents,
          rounds: d.rounds,
          aggregator: d.aggregator,
          format: d.format ?? 'standard',
        },
        debate: {
          numAgents: Math.max(1, Math.floor(d.agents)),
          rounds: Math.max(1, Math.floor(d.rounds)),
          aggregator: d.aggregator,
          model,
          ...(d.temperature !== undefined ? { temperature: d.temperature } : {}),
          ...(d.format === 'small' ? SMALL_MODEL_DEBATE : {}),
        },
      });
    }
    for (const name of s.students) {
      if (!rt.adapters.names().includes(name)) throw new Error(`The adapter ${name} is not loaded.`);
      systems.push({
        name: s.plainStudentNames ? name : `student:${name}`,
        kind: 'single',
        engine: m.engine,
        model,
        ...system,
        ...(s.studentsGreedy ? { temperature: 0 } : {}),
        setup: () => rt.adapters.activate(name),
        meta: { role: 'student', adapter: name, ...(s.studentsGreedy ? { greedy: true } : {}) },
      });
    }
    const seen = new Set<string>();
    for (const x of systems) {
      if (seen.has(x.name)) throw new Error(`Two systems are named ${x.name}: rename the adapter.`);
      seen.add(x.name);
    }
    if (!systems.length) throw new Error('Pick at least one system to evaluate.');
    const perQuestion = s.debate ? Math.max(1, s.debate.agents) : 1;
    const concurrency = Math.max(1, Math.floor(m.info.maxBatch / perQuestion));
    const systemNames = systems.map((x) => x.name);
    const ctrl = this.tasks.start(taskId);
    const previous = rt.adapters.activeName();
    const { emit, delivered } = emitter(onEvent);
    const opts = {
      ...(s.task ? { task: s.task } : {}),
      maxTokens: s.maxTokens,
      temperature: s.temperature,
      ...(s.seed !== undefined ? { seed: s.seed } : {}),
      selfCorrection: s.selfCorrection,
      robustness: s.robustness,
      concurrency,
      ...(s.dataset ? { dataset: s.dataset } : {}),
      signal: ctrl.signal,
      onProgress: (p: { phase: string; done: number; total: number; metrics?: { accuracy?: number } }) => {
        const system = p.phase.replace(/^eval /, '');
        emit({
          type: 'progress',
          system,
          systemIndex: systemNames.indexOf(system),
          systems: systemNames.length,
          done: p.done,
          total: p.total,
          accuracy: p.metrics?.accuracy ?? 0,
        });
      },
    };
    try {
      // One system at a time (each is seeded per question, so this is the same evaluation), so a
      // Stop keeps the systems already finished.
      const done: EvalReport[] = [];
      for (const system of systems) {
        try {
          done.push(await evaluate(questions, [system], opts));
        } catch (e) {
          if (!ctrl.signal.aborted || !done.length) throw e;
          await delivered();
          return { ...done[0]!, systems: done.flatMap((r) => r.systems), stopped: true };
        }
      }
      await delivered();
      return { ...done[0]!, systems: done.flatMap((r) => r.systems) };
    } finally {
      if (this.models.loaded === m)
        rt.adapters.activate(previous && rt.adapters.names().includes(previous) ? previous : null);
      this.tasks.end(taskId, ctrl);
    }
  }
}
