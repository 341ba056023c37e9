/**
 * The worker's running tasks (one AbortController per cancellable call, keyed by the page's task
 * id "<kind>-…") and the rule that tasks competing for the GPU or the model's adapter do not run
 * together. Every feature module gets the one registry from worker.ts.
 */

const TASK_NAMES: Record<string, string> = {
  chat: 'chat reply',
  debate: 'debate',
  eval: 'evaluation',
  bench: 'benchmark',
  train: 'training run',
  prm: 'reward-model training',
  rl: 'RL run',
  load: 'model load',
};

/** Every kind that uses the loaded model's GPU memory. */
export const GPU_TASKS = ['chat', 'debate', 'eval', 'bench', 'train', 'prm', 'rl', 'load'];

export class Tasks {
  private readonly running = new Map<string, AbortController>();

  /** Registers a task (aborting an older one with the same id) and returns its controller. */
  start(id: string): AbortController {
    this.running.get(id)?.abort();
    const c = new AbortController();
    this.running.set(id, c);
    return c;
  }

  end(id: string, c: AbortController): void {
    if (this.running.get(id) === c) this.running.delete(id);
  }

  abort(id: string, reason: unknown): void {
    this.running.get(id)?.abort(reason);
  }

  /** Aborts every running task of one of `kinds`. */
  abortKinds(kinds: string[], reason: unknown): void {
    for (const [id, c] of this.running) if (kinds.includes(kindOf(id))) c.abort(reason);
  }

  /** The first running task of one of `kinds` (other than `self`), as a readable name. */
  busy(kinds: string[], self?: string): string | null {
    for (const id of this.running.keys()) {
      const kind = kindOf(id);
      if (id !== self && kinds.includes(kind)) return TASK_NAMES[kind] ?? kind;
    }
    return null;
  }

  /** Throws when one of `kinds` is running: they would compete for the GPU (or the model's adapter). */
  requireNo(kinds: string[], what: string, self?: string): void {
    const busy = this.busy(kinds, self);
    if (busy) throw new Error(`A ${busy} is running: stop or pause it before ${what}.`);
  }
}

function kindOf(id: string): string {
  return id.split('-')[0]!;
}

/**
 * Calls a comlink-proxied page callback without waiting for it (or failing on it). Returns a
 * promise that settles once the page handled it; calls on one callback arrive in order, so
 * awaiting the last one before returning means the page has seen every event.
 */
export function notify<T>(fn: (x: T) => unknown, x: T): Promise<void> {
  try {
    return Promise.resolve(fn(x)).then(
      () => {},
      () => {},
    );
  } catch {
    return Promise.resolve(); // the page went away
  }
}

/** An emitter over `notify` that remembers the last delivery, so a task can wait for the page to see all. */
export function emitter<T>(fn: (x: T) => unknown): { emit: (x: T) => void; delivered: () => Promise<void> } {
  let last: Promise<void> = Promise.resolve();
  return {
    emit: (x) => {
      last = notify(fn, x);
    },
    delivered: () => last,
  };
}
