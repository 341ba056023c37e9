/** One progress shape for downloads, training, debate and evaluation; the CLI and the page both consume it. */
export interface ProgressEvent {
  phase: string;
  done: number;
  total: number;
  unit: 'bytes' | 'steps' | 'questions' | 'tokens' | 'items';
  /** Seconds left, when known. */
  etaS?: number;
  metrics?: Record<string, number>;
}

export type ProgressCallback = (e: ProgressEvent) => void;
