/**
 * Card 4 of Distil & train: PAD's last two steps in the page. The process reward model (a head on
 * the loaded model's features) trains on the PAD step labels built in card 1 and reports its
 * held-out AUC; RL then improves a student LoRA on a question set with the verifiable reward plus
 * the PRM's score of the weakest step, with reward, KL and the accuracy of each step's group, and
 * pause / resume / cancel. The finished adapter is registered like a trained one.
 */
import { DEFAULT_RL_OPTIONS } from '../../../distill/rl';
import { PROJECTIONS } from '../../../formats/config';
import { defaultAgentSystemPrompt } from '../../../tasks/prompts';
import { ADAPTERS_EVENT, type PrmEvent, type RlEvent, type RlOutcome, type RlSettings } from '../../api';
import { lineChart } from '../../charts';
import { Comlink, newTaskId, type AppContext } from '../../client';
import { errorText, field, h, numberInput, readNumber, statusLine } from '../../dom';
import { questionsCard } from '../questions-card';
import { downloadBytes, duration, palette2, stamp } from './common';
import type { DataCard } from './data-card';

export function padCard(ctx: AppContext, data: DataCard): HTMLElement {
  const { api, state } = ctx;
  const num = (id: string, value: number | '', o: { min?: number; max?: number; step?: number | 'any' } = {}) => {
    const el = numberInput({ value, ...o });
    el.id = id;
    return el;
  };

  // ---- process reward model -----------------------------------------------------------------
  const holdout = num('pad-holdout', 0.2, { min: 0, max: 0.9, step: 0.05 });
  const epochs = num('pad-epochs', 100, { min: 1, step: 1 });
  const prmLr = num('pad-lr', 0.05, { min: 0, step: 'any' });
  const prmSeed = num('pad-seed', 0, { min: 0, step: 1 });
  const prmTrain = h(
    'button',
    { type: 'button', class: 'primary', id: 'pad-prm-train', disabled: true },
    'Train the reward model',
  );
  const prmStop = h('button', { type: 'button', class: 'danger', id: 'pad-prm-stop', hidden: true }, 'Stop');
  const prmDownload = h(
    'button',
    { type: 'button', class: 'secondary small', id: 'pad-prm-download', disabled: true },
    '⤓ prm_head.safetensors',
  );
  const prmProgress = h('progress', {
    id: 'pad-prm-progress',
    max: 1,
    value: 0,
    hidden: true,
    'aria-label': 'Reward model training',
  });
  const prmLabel = h('span', { class: 'muted progress-label', id: 'pad-prm-label' });
  const prmStatus = statusLine();
  prmStatus.el.id = 'pad-prm-status';
  const prmLoss = lineChart({
    id: 'pad-prm-loss-chart',
    title: 'Reward model loss per epoch',
    xLabel: 'epoch',
    yLabel: 'loss',
    format: (v) => v.toFixed(4),
  });
  const prmNote = h('p', { class: 'muted small', id: 'pad-prm-note' });

  // ---- RL -----------------------------------------------------------------------------------
  const qc = questionsCard({
    prefix: 'rl',
    heading: 'Questions RL practises on',
    defaultLimit: 64,
    usage: (n) => `RL practises on the first ${n}`,
    initial: 'data/demo-train.jsonl',
    tag: 'div',
  });
  const rlName = h('input', {
    type: 'text',
    id: 'rl-name',
    value: `student-PAD-${stamp()}`,
    spellcheck: 'false',
    autocomplete: 'off',
  });
  const rlInit = h('select', { id: 'rl-init' }, h('option', { value: '' }, 'A fresh LoRA on the base model'));
  const rlSystem = h('textarea', {
    id: 'rl-system',
    rows: 2,
    spellcheck: 'false',
    placeholder: "Empty = the task's default student prompt",
  });
  const usePrm = h('input', { type: 'checkbox', id: 'rl-use-prm', disabled: true });
  const prmWeight = num('rl-prm-weight', 0.5, { min: 0, step: 'any' });
  const steps = num('rl-steps', DEFAULT_RL_OPTIONS.steps, { min: 1, step: 1 });
  const group = num('rl-group', DEFAULT_RL_OPTIONS.groupSize, { min: 2, max: 16, step: 1 });
  const prompts = num('rl-prompts', DEFAULT_RL_OPTIONS.promptsPerStep, { min: 1, max: 16, step: 1 });
  const ppo = num('rl-ppo-epochs', DEFAULT_RL_OPTIONS.ppoEpochs, { min: 1, max: 8, step: 1 });
  const rlLr = num('rl-lr', 1e-4, { min: 0, step: 'any' });
  const kl = num('rl-kl', DEFAULT_RL_OPTIONS.klCoef, { min: 0, step: 'any' });
  const clip = num('rl-clip', DEFAULT_RL_OPTIONS.clip, { min: 0, step: 'any' });
  const maxTokens = num('rl-max-tokens', DEFAULT_RL_OPTIONS.maxTokens, { min: 1, step: 1 });
  const temperature = num('rl-temperature', DEFAULT_RL_OPTIONS.sampling.temperature ?? 1, {
    min: 0,
    max: 2,
    step: 0.05,
  });
  const rlSeed = num('rl-seed', DEFAULT_RL_OPTIONS.seed, { min: 0, step: 1 });
  const rlStart = h('button', { type: 'button', class: 'primary', id: 'rl-start', disabled: true }, 'Start RL');
  const rlPause = h('button', { type: 'button', class: 'secondary', id: 'rl-pause', hidden: true }, 'Pause');
  const rlResume = h('button', { type: 'button', class: 'primary', id: 'rl-resume', hidden: true }, 'Resume');
  const rlCancel = h('button', { type: 'button', class: 'danger', id: 'rl-cancel', hidden: true }, 'Cancel');
  const rlProgress = h('progress', { id: 'rl-progress', max: 1, value: 0, 'aria-label': 'RL steps' });
  const rlStep = h('strong', { id: 'rl-step', 'data-step': 0 }, 'Not started');
  const rlLabel = h('span', { class: 'muted progress-label', id: 'rl-label' });
  const rlStatus = statusLine();
  rlStatus.el.id = 'rl-status';
  const rewardChart = lineChart({
    id: 'rl-reward-chart',
    title: 'Mean reward per RL step',
    xLabel: 'step',
    yLabel: 'reward',
    format: (v) => v.toFixed(3),
  });
  const accuracyChart = lineChart({
    id: 'rl-accuracy-chart',
    title: 'Accuracy of the group per RL step',
    xLabel: 'step',
    yLabel: 'accuracy',
    color: palette2(),
    format: (v) => `${(100 * v).toFixed(0)}%`,
  });
  const rlResult = h('div', { id: 'rl-result' });

  const el = h(
    'section',
    { class: 'card', id: 'train-pad', 'aria-labelledby': 'train-pad-h' },
    h('h2', { id: 'train-pad-h' }, '4 · PAD: reward model and RL'),
    h(
      'p',
      { class: 'muted small' },
      "PAD's step labels (card 1, strategy PAD labels) train a process reward model; RL then improves a student " +
        "with a correct final answer's reward plus the reward model's score of its weakest step.",
    ),
    h(
      'div',
      { class: 'pad-grid' },
      h(
        'div',
        { class: 'pad-col' },
        h('h3', {}, 'Process reward model'),
        h(
          'div',
          { class: 'grid2' },
          field('Held-out share', holdout, 'whole questions, for the AUC'),
          field('Epochs', epochs),
          field('Learning rate', prmLr),
          field('Seed', prmSeed),
        ),
        h('div', { class: 'row actions' }, prmTrain, prmStop, prmDownload),
        h('div', { class: 'progress-row' }, prmProgress, prmLabel),
        prmNote,
        prmStatus.el,
        h('figure', {}, prmLoss.el),
      ),
      h(
        'div',
        { class: 'pad-col' },
        h('h3', {}, 'RL on a student'),
        qc.el,
        h(
          'div',
          { class: 'grid2' },
          field('Adapter name', rlName),
          field('Start from', rlInit, 'e.g. the R-SFT student'),
        ),
        field('System prompt', rlSystem),
        h(
          'div',
          { class: 'field' },
          h('label', { class: 'check', for: 'rl-use-prm' }, usePrm, ' Add the reward model to the reward'),
          h('small', { class: 'hint', id: 'rl-use-prm-hint' }, 'Train the reward model first.'),
        ),
        h(
          'div',
          { class: 'grid3' },
          field('PRM weight', prmWeight),
          field('Steps', steps),
          field('Group size', group, 'samples per question'),
        ),
        h(
          'div',
          { class: 'grid3' },
          field('Questions / step', prompts),
          field('PPO epochs', ppo),
          field('Learning rate', rlLr),
        ),
        h('div', { class: 'grid3' }, field('KL penalty', kl), field('Clip', clip), field('Max tokens', maxTokens)),
        h('div', { class: 'grid2' }, field('Temperature', temperature), field('Seed', rlSeed)),
        h('div', { class: 'row actions' }, rlStart, rlPause, rlResume, rlCancel),
        h('div', { class: 'progress-row' }, h('div', { class: 'step-line' }, rlStep, rlLabel), rlProgress),
        rlStatus.el,
        h('div', { class: 'chart-grid' }, h('figure', {}, rewardChart.el), h('figure', {}, accuracyChart.el)),
        rlResult,
      ),
    ),
  );

  // ---- PRM wiring ---------------------------------------------------------------------------
  let prmTask: string | null = null;
  let rlPhase: 'idle' | 'running' | 'paused' = 'idle';
  let hasPrm = false;
  const updateButtons = () => {
    const d = data.dataset();
    const m = state.model;
    const busy = !!prmTask || rlPhase === 'running';
    prmTrain.disabled = busy || !m || !d || d.strategy !== 'pad' || !d.rows;
    prmTrain.title = !m ? 'Load a model first' : d?.strategy !== 'pad' ? 'Build PAD step labels in card 1 first' : '';
    prmNote.textContent =
      d?.strategy === 'pad'
        ? `${d.rows} stepwise rows from ${d.source}.`
        : 'Pick the PAD labels strategy in card 1 to build step labels.';
    prmStop.hidden = !prmTask;
    prmDownload.disabled = !hasPrm;
    usePrm.disabled = !hasPrm;
    (el.querySelector('#rl-use-prm-hint') as HTMLElement).textContent = hasPrm
      ? 'Reward = 1 for a correct answer + weight × the PRM score of the weakest step.'
      : 'Train the reward model first.';
    rlStart.hidden = rlPhase !== 'idle';
    rlStart.disabled = busy || !m || !qc.all().length;
    rlPause.hidden = rlPhase !== 'running';
    rlResume.hidden = rlPhase !== 'paused';
    rlCancel.hidden = rlPhase === 'idle';
  };
  data.onBuilt(updateButtons);
  qc.onChange(updateButtons);

  prmTrain.addEventListener('click', async () => {
    const d = data.dataset();
    if (!d || prmTask) return;
    const id = newTaskId('prm');
    prmTask = id;
    prmLoss.set([]);
    prmProgress.hidden = false;
    delete prmStatus.el.dataset.done;
    prmStatus.set('Reading the features of every step with the loaded model…');
    state.set('busy', 'Training the reward model…');
    updateButtons();
    const onEvent = (e: PrmEvent) => {
      if (e.type === 'epoch') {
        prmLoss.push(e.epoch, e.loss);
        prmProgress.max = e.epochs;
        prmProgress.value = e.epoch;
        prmLabel.textContent = `epoch ${e.epoch} of ${e.epochs} · loss ${e.loss.toFixed(4)}`;
      } else {
        prmProgress.max = e.total;
        prmProgress.value = e.done;
        prmLabel.textContent = `${e.type === 'features' ? 'features of row' : 'scoring held-out row'} ${e.done} of ${e.total}`;
      }
    };
    try {
      const s = {
        holdout: Math.min(0.9, Math.max(0, readNumber(holdout, 0.2))),
        epochs: Math.max(1, Math.floor(readNumber(epochs, 100))),
        lr: readNumber(prmLr, 0.05),
        seed: Math.max(0, Math.floor(readNumber(prmSeed, 0))),
      };
      const r = await api.trainPrm(id, d.id, s, Comlink.proxy(onEvent));
      hasPrm = true;
      usePrm.checked = true;
      prmStatus.el.dataset.auc = r.heldOutAuc === null ? '' : r.heldOutAuc.toFixed(4);
      prmStatus.set(
        (r.unit === 'solution'
          ? `Trained on ${r.trainExamples} labelled solutions of ${r.trainRows} questions`
          : `Trained on ${r.trainExamples} steps of ${r.trainRows} solutions`) +
          ` (loss ${r.firstLoss?.toFixed(3)} → ${r.finalLoss?.toFixed(3)}). ` +
          (r.heldOutAuc === null
            ? `No held-out AUC: the held-out ${r.unit === 'solution' ? 'solutions' : 'rows'} need both right and wrong ones.`
            : r.unit === 'solution'
              ? `Held-out AUC ${r.heldOutAuc.toFixed(3)} on ${r.heldOutExamples} solutions of ${r.heldOutRows} unseen questions (0.5 = chance).`
              : `Held-out AUC ${r.heldOutAuc.toFixed(3)} on ${r.heldOutExamples} steps of ${r.heldOutRows} unseen solutions (0.5 = chance).`),
        'ok',
      );
      prmStatus.el.dataset.done = 'true';
    } catch (e) {
      const aborted = /abort/i.test(errorText(e)) || (e as Error).name === 'AbortError';
      prmStatus.set(
        aborted ? 'Stopped; nothing was kept.' : `The reward model could not be trained: ${errorText(e)}`,
        aborted ? 'warn' : 'error',
      );
    } finally {
      prmTask = null;
      prmProgress.hidden = true;
      prmLabel.textContent = '';
      state.set('busy', null);
      updateButtons();
    }
  });
  prmStop.addEventListener('click', () => {
    if (prmTask) void api.abort(prmTask);
  });
  prmDownload.addEventListener('click', async () => {
    try {
      downloadBytes('prm_head.safetensors', await api.prmFile());
    } catch (e) {
      prmStatus.set(errorText(e), 'error');
    }
  });

  // ---- RL wiring ----------------------------------------------------------------------------
  const setStep = (step: number, total: number) => {
    rlStep.dataset.step = String(step);
    rlStep.textContent = `Step ${step} of ${total}`;
    rlProgress.max = Math.max(1, total);
    rlProgress.value = step;
  };
  const onRl = (e: RlEvent) => {
    if (e.type === 'start') {
      rewardChart.set(e.history.map((p) => ({ x: p.step, y: p.reward })));
      accuracyChart.set(e.history.map((p) => ({ x: p.step, y: p.accuracy })));
      setStep(e.step, e.steps);
      rlLabel.textContent = e.step ? '' : 'sampling the first group…';
      return;
    }
    rewardChart.push(e.step, e.reward);
    accuracyChart.push(e.step, e.accuracy);
    setStep(e.step, e.steps);
    rlLabel.textContent =
      `reward ${e.reward.toFixed(3)} · KL ${e.kl.toFixed(4)} · group accuracy ${(100 * e.accuracy).toFixed(0)}% ` +
      `· ${e.step < e.steps ? `about ${duration(((e.steps - e.step) * e.stepMs) / 1000)} left` : 'done'}`;
  };
  const finish = (r: RlOutcome) => {
    rlLabel.textContent = r.history.length ? rlLabel.textContent!.replace(/ · about .* left$/, '') : '';
    if (r.status === 'paused') {
      rlPhase = 'paused';
      rlStatus.set(`Paused at step ${r.step} of ${r.steps}; the run is kept in memory.`, 'warn');
    } else {
      rlPhase = 'idle';
      if (r.status === 'cancelled') rlStatus.set(`Cancelled at step ${r.step}; its adapter was not kept.`, 'warn');
      else {
        const a = r.adapter!;
        rlStatus.set(`Finished ${r.steps} RL steps. The adapter ${a.name} is registered on the model.`, 'ok');
        rlStatus.el.dataset.done = 'true';
        const use = h('button', { type: 'button', class: 'primary', id: 'rl-use-in-chat' }, 'Chat with it');
        use.addEventListener('click', async () => {
          await api.activateAdapter(a.name).catch((e) => rlStatus.set(errorText(e), 'error'));
          state.dispatchEvent(new Event(ADAPTERS_EVENT));
          ctx.show('chat');
        });
        rlResult.replaceChildren(
          h('p', {}, h('strong', {}, a.name), ` — rank ${a.rank}: pick it in Chat or compare it on the Evaluate page.`),
          use,
        );
        state.dispatchEvent(new Event(ADAPTERS_EVENT));
        rlName.value = `student-PAD-${stamp()}`;
      }
    }
    state.set('busy', null);
    updateButtons();
  };
  const runRl = async (call: (id: string) => Promise<RlOutcome>) => {
    rlPhase = 'running';
    delete rlStatus.el.dataset.done;
    rlResult.replaceChildren();
    state.set('busy', 'RL…');
    rlStatus.set('RL: sampling, rewarding and optimising the student…');
    updateButtons();
    try {
      finish(await call(newTaskId('rl')));
    } catch (e) {
      rlPhase = (await api.rlState().catch(() => ({ state: 'idle' as const }))).state === 'paused' ? 'paused' : 'idle';
      state.set('busy', null);
      rlLabel.textContent = '';
      rlStatus.set(`RL stopped: ${errorText(e)}`, 'error');
      updateButtons();
    }
  };
  const rlSettings = (): RlSettings => {
    const sys = rlSystem.value.trim();
    return {
      name: rlName.value.trim(),
      initAdapter: rlInit.value || null,
      ...(sys ? { system: sys } : {}),
      usePrm: usePrm.checked && hasPrm,
      prmWeight: Math.max(0, readNumber(prmWeight, 0.5)),
      groupSize: Math.max(2, Math.floor(readNumber(group, 4))),
      promptsPerStep: Math.max(1, Math.floor(readNumber(prompts, 2))),
      steps: Math.max(1, Math.floor(readNumber(steps, 10))),
      ppoEpochs: Math.max(1, Math.floor(readNumber(ppo, 2))),
      lr: readNumber(rlLr, 1e-4),
      clip: readNumber(clip, 0.2),
      klCoef: readNumber(kl, 0.04),
      maxTokens: Math.max(1, Math.floor(readNumber(maxTokens, 64))),
      temperature: Math.max(0, readNumber(temperature, 1)),
      rank: 8,
      alpha: 16,
      targets: PROJECTIONS.filter((p) => p === 'q_proj' || p === 'v_proj'),
      seed: Math.max(0, Math.floor(readNumber(rlSeed, 0))),
    };
  };
  rlStart.addEventListener('click', () => {
    if (rlPhase !== 'idle') return;
    const s = rlSettings();
    const questions = qc.picked();
    rewardChart.set([]);
    accuracyChart.set([]);
    void runRl((id) => api.startRl(id, questions, s, Comlink.proxy(onRl)));
  });
  rlPause.addEventListener('click', () => {
    rlStatus.set('Pausing after the current step…');
    void api.pauseRl();
  });
  rlResume.addEventListener('click', () => {
    if (rlPhase === 'paused') void runRl((id) => api.resumeRl(id, Comlink.proxy(onRl)));
  });
  rlCancel.addEventListener('click', async () => {
    if (rlPhase === 'running') {
      rlStatus.set('Cancelling after the current step…');
      await api.cancelRl();
      return;
    }
    await api.cancelRl();
    rlPhase = 'idle';
    rlLabel.textContent = '';
    rlStatus.set('Cancelled; the paused run was dropped.', 'warn');
    updateButtons();
  });

  // The adapters RL can start from, and the student prompt of short-context models.
  const refreshAdapters = async () => {
    const { list, active } = state.model
      ? await api.adapters().catch(() => ({ list: [], active: null }))
      : { list: [], active: null };
    const was = rlInit.value;
    rlInit.replaceChildren(
      h('option', { value: '' }, 'A fresh LoRA on the base model'),
      ...list.map((a) => h('option', { value: a.name }, `${a.name} (LoRA r${a.rank})`)),
    );
    rlInit.value = list.some((a) => a.name === was) ? was : (active ?? '');
  };
  state.addEventListener(ADAPTERS_EVENT, () => void refreshAdapters());
  state.on('model', async (m) => {
    // A new model drops the reward model and a paused run (they were built on the old one).
    hasPrm = !!(await api.prmResult().catch(() => null));
    rlPhase = (await api.rlState().catch(() => ({ state: 'idle' as const }))).state;
    if (m && m.contextLength <= 512 && !rlSystem.value) rlSystem.value = defaultAgentSystemPrompt('gsm8k', 'compact');
    void refreshAdapters();
    updateButtons();
  });
  updateButtons();
  return el;
}
