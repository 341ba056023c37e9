/**
 * Learning-rate schedules with transformers' semantics (get_scheduler + LambdaLR): the multiplier
 * for optimizer step `step` (0-based), linear warmup from 0, then constant, linear decay to 0, or a
 * half-cosine to 0.
 */
export type ScheduleKind = 'constant' | 'linear' | 'cosine';

export function lrMultiplier(kind: ScheduleKind, step: number, totalSteps: number, warmupSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  if (kind === 'constant') return 1;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  if (kind === 'linear') return Math.max(0, 1 - progress);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
