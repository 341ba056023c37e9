/**
 * One training run per browser. The engine worker that trains holds the Web Lock
 * `RUN_LOCK` for as long as it owns the run (running, or paused in its memory), and mirrors the
 * run's events on the BroadcastChannel `RUN_CHANNEL`; other tabs of the same origin show them
 * read-only and never resume a run whose lock another tab holds. When the owner's tab closes, the
 * browser releases the lock and a waiting tab may take the run over from its last checkpoint.
 */
import type { TrainEvent, TrainOutcome } from './api';

export const RUN_LOCK = 'agentark-training-run';
export const RUN_CHANNEL = 'agentark-training-run';

/** Messages on RUN_CHANNEL. */
export type RunMessage =
  | { type: 'hello' } // a tab asks the owner to repeat the run's state
  | { type: 'event'; event: TrainEvent }
  | { type: 'end'; outcome: TrainOutcome | { status: 'failed'; error: string } };

type Locks = { request: LockManager['request']; query: LockManager['query'] };

export function webLocks(): Locks | null {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  return locks && typeof locks.request === 'function' ? locks : null;
}

/** Whether some context of this origin holds the run lock. */
export async function runLockHeld(): Promise<boolean> {
  const locks = webLocks();
  if (!locks) return false;
  const q = await locks.query();
  return (q.held ?? []).some((l) => l.name === RUN_LOCK);
}

/**
 * Takes the run lock if it is free and keeps it until `release()` is called (or the context
 * ends). Returns null when another context holds it. Without Web Locks (very old browsers) every
 * call succeeds: one tab is assumed.
 */
export async function tryTakeRunLock(): Promise<{ release(): void } | null> {
  const locks = webLocks();
  if (!locks) return { release() {} };
  return new Promise((resolve, reject) => {
    locks
      .request(RUN_LOCK, { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(null);
          return undefined;
        }
        return new Promise<void>((done) => resolve({ release: done }));
      })
      .catch(reject);
  });
}

/** Resolves once the run lock is free (it is taken and released at once, so a waiter may take it next). */
export async function whenRunLockFree(signal?: AbortSignal): Promise<void> {
  const locks = webLocks();
  if (!locks) return;
  await locks.request(RUN_LOCK, { signal }, async () => {});
}
