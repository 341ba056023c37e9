/** Card 2 of Distil & train: the LoRA adapter and optimizer settings of a training run. */
import { PROJECTIONS } from '../../../formats/config';
import type { TrainSettings } from '../../api';
import { field, h, numberInput, readNumber } from '../../dom';
import { stamp } from './common';

export interface LoraCard {
  el: HTMLElement;
  settings(): TrainSettings;
  apply(s: TrainSettings): void;
  /** Settings are locked while a run holds them. */
  setEnabled(on: boolean): void;
  /** A fresh adapter name after a finished run. */
  newName(): void;
}

export function loraCard(): LoraCard {
  const nameInput = h('input', {
    type: 'text',
    id: 'train-name',
    value: `student-${stamp()}`,
    spellcheck: 'false',
    autocomplete: 'off',
  });
  const num = (
    id: string,
    value: number | '',
    o: { min?: number; max?: number; step?: number | 'any'; placeholder?: string } = {},
  ) => {
    const el = numberInput({ value, ...o });
    el.id = id;
    return el;
  };
  const rank = num('train-rank', 8, { min: 1, max: 256, step: 1 });
  const alpha = num('train-alpha', 16, { min: 0, step: 'any' });
  const dropout = num('train-dropout', 0.05, { min: 0, max: 0.9, step: 0.01 });
  const lr = num('train-lr', 0.0002, { min: 0, step: 'any' });
  const lengthKind = h(
    'select',
    { id: 'train-length-kind' },
    h('option', { value: 'epochs' }, 'epochs'),
    h('option', { value: 'steps' }, 'steps'),
  );
  const epochs = num('train-epochs', 2, { min: 0.01, step: 'any' });
  const steps = num('train-steps', 60, { min: 1, step: 1 });
  steps.hidden = true;
  const batch = num('train-batch', 2, { min: 1, max: 64, step: 1 });
  const accum = num('train-grad-accum', 1, { min: 1, max: 256, step: 1 });
  const seed = num('train-seed', 42, { min: 0, step: 1 });
  const warmup = num('train-warmup', 0, { min: 0, step: 1 });
  const schedule = h(
    'select',
    { id: 'train-schedule' },
    h('option', { value: 'linear' }, 'linear'),
    h('option', { value: 'cosine' }, 'cosine'),
    h('option', { value: 'constant' }, 'constant'),
  );
  const ckptEvery = num('train-ckpt-every', 5, { min: 0, step: 1 });
  const recompute = h('input', { type: 'checkbox', id: 'train-recompute' });
  const targets = h(
    'fieldset',
    { class: 'choices targets' },
    h('legend', {}, 'LoRA target modules'),
    ...PROJECTIONS.map((p) =>
      h(
        'label',
        { class: 'choice small' },
        h('input', { type: 'checkbox', name: 'train-target', value: p, checked: p === 'q_proj' || p === 'v_proj' }),
        ` ${p}`,
      ),
    ),
  );
  const lengthLabel = h('label', { for: 'train-epochs' }, 'Epochs');
  const lengthField = h('div', { class: 'field' }, lengthLabel, epochs, steps);
  const hyperCard = h(
    'section',
    { class: 'card', 'aria-labelledby': 'train-hp-h' },
    h('h2', { id: 'train-hp-h' }, '2 · LoRA and optimizer'),
    field('Adapter name', nameInput, 'Shown in the Chat and Evaluate pages.'),
    h(
      'div',
      { class: 'grid3' },
      field('Rank r', rank),
      field('Alpha', alpha, 'scale = alpha / r'),
      field('Dropout', dropout),
    ),
    targets,
    h(
      'div',
      { class: 'grid3' },
      field('Learning rate', lr),
      field('Schedule', schedule),
      field('Warmup steps', warmup),
    ),
    h(
      'div',
      { class: 'grid3' },
      field('Train for', lengthKind),
      lengthField,
      field('Batch', batch, 'rows per micro-batch'),
    ),
    h(
      'div',
      { class: 'grid3' },
      field('Grad. accum.', accum, 'micro-batches per step'),
      field('Seed', seed),
      field('Checkpoint', ckptEvery, 'every N steps, kept in this browser'),
    ),
    h(
      'label',
      { class: 'choice small' },
      recompute,
      ' Recompute activations in the backward pass (keeps one block of activations: less GPU memory, slower steps)',
    ),
  );

  lengthKind.addEventListener('change', () => {
    const byEpochs = lengthKind.value === 'epochs';
    epochs.hidden = !byEpochs;
    steps.hidden = byEpochs;
    lengthLabel.textContent = byEpochs ? 'Epochs' : 'Optimizer steps';
    lengthLabel.htmlFor = byEpochs ? 'train-epochs' : 'train-steps';
  });
  const trainSettings = (): TrainSettings => {
    const t = [...targets.querySelectorAll<HTMLInputElement>('input:checked')].map(
      (i) => i.value,
    ) as TrainSettings['targets'];
    const byEpochs = lengthKind.value === 'epochs';
    return {
      name: nameInput.value.trim(),
      rank: Math.max(1, Math.floor(readNumber(rank, 8))),
      alpha: readNumber(alpha, 16),
      dropout: Math.min(0.9, Math.max(0, readNumber(dropout, 0))),
      targets: t,
      lr: readNumber(lr, 2e-4),
      schedule: schedule.value as TrainSettings['schedule'],
      warmupSteps: Math.max(0, Math.floor(readNumber(warmup, 0))),
      ...(byEpochs
        ? { epochs: Math.max(0.01, readNumber(epochs, 1)) }
        : { steps: Math.max(1, Math.floor(readNumber(steps, 60))) }),
      batchSize: Math.max(1, Math.floor(readNumber(batch, 2))),
      gradAccum: Math.max(1, Math.floor(readNumber(accum, 1))),
      seed: Math.max(0, Math.floor(readNumber(seed, 42))),
      checkpointEvery: Math.max(0, Math.floor(readNumber(ckptEvery, 5))),
      recompute: recompute.checked,
    };
  };
  const applySettings = (s: TrainSettings) => {
    nameInput.value = s.name;
    rank.value = String(s.rank);
    alpha.value = String(s.alpha);
    dropout.value = String(s.dropout);
    lr.value = String(s.lr);
    schedule.value = s.schedule;
    warmup.value = String(s.warmupSteps);
    lengthKind.value = s.steps ? 'steps' : 'epochs';
    lengthKind.dispatchEvent(new Event('change'));
    if (s.steps) steps.value = String(s.steps);
    else epochs.value = String(s.epochs ?? 1);
    batch.value = String(s.batchSize);
    accum.value = String(s.gradAccum);
    seed.value = String(s.seed);
    ckptEvery.value = String(s.checkpointEvery);
    recompute.checked = s.recompute ?? false;
    for (const i of targets.querySelectorAll<HTMLInputElement>('input'))
      i.checked = s.targets.includes(i.value as never);
  };

  return {
    el: hyperCard,
    settings: trainSettings,
    apply: applySettings,
    setEnabled(on) {
      for (const el of hyperCard.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select'))
        el.disabled = !on;
    },
    newName() {
      nameInput.value = `student-${stamp()}`;
    },
  };
}
