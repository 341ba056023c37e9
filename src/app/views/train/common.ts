/** Small helpers of the Distil & train page's cards. */
import { h } from '../../dom';

export function stamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
}

export function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '—';
  if (s < 60) return `${Math.ceil(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function sizeText(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Offers bytes as a file download. */
export function downloadBytes(name: string, bytes: Uint8Array, type = 'application/octet-stream'): void {
  const url = URL.createObjectURL(new Blob([bytes as unknown as BlobPart], { type }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function labelOf(key: string): string {
  const words: Record<string, string> = {
    skipped: 'Skipped',
    bySource: 'Rows from',
    solutions: 'Solutions',
    correctSolutions: 'Correct solutions',
    wrongSolutions: 'Wrong solutions',
    survived: 'Survived to the end',
    steps: 'Steps',
    positiveSteps: 'Positive steps',
    negativeSteps: 'Negative steps',
    padSteps: 'A step is a whole',
    positive: 'Right solutions',
    negative: 'Wrong solutions',
    labelSource: 'Labels',
  };
  return words[key] ?? key.replace(/([A-Z])/g, ' $1').replace(/^./, (c) => c.toUpperCase());
}

export function palette2(): string {
  return getComputedStyle(document.documentElement).getPropertyValue('--ok').trim() || '#1c7c45';
}
