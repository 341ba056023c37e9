/**
 * The one error for "the caller's AbortSignal stopped this". Its name is 'AbortError', as for the
 * DOM's and fetch's aborts, so code that checks `name` treats all of them alike.
 */
export class AbortError extends Error {
  constructor(message = 'aborted', options?: ErrorOptions) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** Whether `e` is an abort: an AbortError, a DOMException named AbortError, fetch's abort. */
export function isAbortError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'AbortError';
}
