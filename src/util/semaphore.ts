/** A FIFO counting semaphore: at most `size` holders at once, waiters served in arrival order. */
export class Semaphore {
  private free: number;
  private waiters: (() => void)[] = [];
  constructor(readonly size: number) {
    if (!(size >= 1)) throw new Error(`concurrency must be >= 1, got ${size}`);
    this.free = size;
  }
  /** Resolves with a release function once a slot is free; rejects if the signal aborts first. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    const makeRelease = () => {
      let done = false;
      return () => {
        if (done) return;
        done = true;
        const next = this.waiters.shift();
        if (next) next();
        else this.free++;
      };
    };
    if (signal?.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(makeRelease());
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(makeRelease());
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal!.reason ?? new Error('aborted'));
      };
      this.waiters.push(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
  get available(): number {
    return this.free;
  }
  get waiting(): number {
    return this.waiters.length;
  }
}
