/**
 * Card 3 of Distil & train: the LoRA run on the built rows in the engine worker, with live loss /
 * learning-rate charts, pause / resume / cancel, checkpoints in the browser's storage (a reload
 * resumes from the last one), one run per browser (another tab's run shows here read-only), and
 * the finished PEFT adapter to download or chat with.
 */
import { ADAPTERS_EVENT, type AdapterInfo, type StoredRunInfo, type TrainEvent, type TrainOutcome } from '../../api';
import { lineChart } from '../../charts';
import { Comlink, newTaskId, type AppContext } from '../../client';
import { append, clear, downloadText, errorText, h, statusLine } from '../../dom';
import { formatCount } from '../../estimate';
import { RUN_CHANNEL, whenRunLockFree, type RunMessage } from '../../run-lock';
import { downloadBytes, duration, palette2, sizeText } from './common';
import type { DataCard } from './data-card';
import type { LoraCard } from './lora-card';

export interface RunCard {
  /** The run card and the adapter card (one column), and the charts card (full width). */
  column: HTMLElement;
  charts: HTMLElement;
}

export function runCard(ctx: AppContext, data: DataCard, lora: LoraCard): RunCard {
  const { api, state } = ctx;
  const startBtn = h(
    'button',
    { type: 'button', class: 'primary', id: 'train-start', disabled: true },
    'Start training',
  );
  const pauseBtn = h('button', { type: 'button', class: 'secondary', id: 'train-pause', hidden: true }, 'Pause');
  const resumeBtn = h('button', { type: 'button', class: 'primary', id: 'train-resume', hidden: true }, 'Resume');
  const cancelBtn = h('button', { type: 'button', class: 'danger', id: 'train-cancel', hidden: true }, 'Cancel');
  const progress = h('progress', { id: 'train-progress', max: 1, value: 0, 'aria-label': 'Training steps' });
  const stepText = h('strong', { id: 'train-step', 'data-step': 0, 'data-total': 0 }, 'Not started');
  const progressLabel = h('span', { class: 'muted progress-label', id: 'train-progress-label' });
  const ckptText = h('p', { class: 'muted small ckpt', id: 'train-checkpoint', 'data-step': 0 });
  const runStatus = statusLine();
  runStatus.el.id = 'train-status';
  const stored = h('div', { class: 'stored-run', id: 'train-stored', hidden: true });
  const otherTab = h('p', { class: 'note', id: 'train-other-tab', hidden: true });
  const metrics = h('dl', { class: 'metrics', id: 'train-metrics' });
  const runCard = h(
    'section',
    { class: 'card run-card', id: 'train-run', 'aria-labelledby': 'train-run-h' },
    h('h2', { id: 'train-run-h' }, '3 · Train'),
    otherTab,
    stored,
    h('p', { class: 'muted small', id: 'train-model-info' }),
    h('p', { class: 'muted small', id: 'train-memory-plan', hidden: true }),
    h('div', { class: 'row actions' }, startBtn, pauseBtn, resumeBtn, cancelBtn),
    h('div', { class: 'progress-row' }, h('div', { class: 'step-line' }, stepText, progressLabel), progress),
    metrics,
    ckptText,
    runStatus.el,
  );

  const chartsNote = h('span', { class: 'muted small' });
  const lossChart = lineChart({
    id: 'train-loss-chart',
    title: 'Training loss per step',
    xLabel: 'step',
    yLabel: 'loss',
    format: (v) => v.toFixed(4),
  });
  const lrChart = lineChart({
    id: 'train-lr-chart',
    title: 'Learning rate per step',
    xLabel: 'step',
    yLabel: 'learning rate',
    color: palette2(),
    format: (v) => v.toExponential(2),
    tickFormat: (v) => v.toExponential(1),
  });
  const chartsCard = h(
    'section',
    { class: 'card', id: 'train-charts', 'aria-labelledby': 'train-charts-h', hidden: true },
    h('div', { class: 'card-head' }, h('h2', { id: 'train-charts-h' }, 'Loss and learning rate'), chartsNote),
    h(
      'div',
      { class: 'chart-grid' },
      h('figure', {}, h('figcaption', {}, 'Loss'), lossChart.el),
      h('figure', {}, h('figcaption', {}, 'Learning rate'), lrChart.el),
    ),
  );

  const resultBody = h('div', {});
  const resultCard = h(
    'section',
    { class: 'card', id: 'train-result', 'aria-labelledby': 'train-result-h', hidden: true },
    h('h2', { id: 'train-result-h' }, 'Adapter'),
    resultBody,
  );

  let phase: 'idle' | 'running' | 'paused' = 'idle';
  let storedRun: StoredRunInfo | null = null;
  let autoResumeDone = false;
  let stepEma = 0;
  /** Another tab's run shows here read-only (it holds the browser's run lock). */
  let watching = false;
  let waitingForLock = false;

  const updateButtons = () => {
    const m = state.model;
    startBtn.hidden = phase !== 'idle';
    const dataset = data.dataset();
    startBtn.disabled = watching || !!storedRun?.elsewhere || !m || !dataset || !dataset.trainable || !dataset.rows;
    pauseBtn.hidden = phase !== 'running';
    resumeBtn.hidden = phase !== 'paused';
    cancelBtn.hidden = phase === 'idle';
    lora.setEnabled(phase === 'idle');
    const info = runCard.querySelector('#train-model-info')!;
    info.textContent = m
      ? `Trains a LoRA adapter on ${m.id} (context ${m.contextLength}); the base weights stay frozen.`
      : 'No model loaded: load one on the Models page.';
    refreshPlan();
  };

  // The memory planner's estimate for the model, rows and settings at hand, shown before a run.
  const planText = runCard.querySelector<HTMLElement>('#train-memory-plan')!;
  let planKey = '';
  const refreshPlan = () => {
    if (phase !== 'idle') return;
    const m = state.model;
    const dataset = data.dataset();
    if (!m || !dataset?.trainable || !dataset.rows) {
      planKey = '';
      planText.hidden = true;
      return;
    }
    const s = lora.settings();
    const key = JSON.stringify([m.id, m.loadMs, dataset.id, s.rank, s.targets, s.dropout, s.batchSize, s.recompute]);
    if (key === planKey) return;
    planKey = key;
    api.trainingMemoryPlan(dataset.id, s).then(
      (plan) => {
        if (planKey !== key) return;
        planText.textContent = plan.text;
        planText.dataset.fits = String(plan.fits);
        planText.hidden = false;
      },
      (e) => {
        if (planKey !== key) return;
        planText.textContent = `No memory plan: ${errorText(e)}`;
        delete planText.dataset.fits;
        planText.hidden = false;
      },
    );
  };
  lora.el.addEventListener('change', refreshPlan);

  const setStep = (step: number, total: number) => {
    stepText.dataset.step = String(step);
    stepText.dataset.total = String(total);
    stepText.textContent = `Step ${step} of ${total}`;
    progress.max = Math.max(1, total);
    progress.value = step;
  };

  const metric = (k: string, v: string) => [h('dt', {}, k), h('dd', {}, v)];
  const onEvent = (e: TrainEvent) => {
    switch (e.type) {
      case 'status':
        runStatus.set(e.text, 'warn');
        break;
      case 'start': {
        chartsCard.hidden = false;
        chartsNote.textContent = '';
        runCard.dataset.resumedFrom = e.resumedFrom === null ? '' : String(e.resumedFrom);
        runCard.dataset.startStep = String(e.step);
        lossChart.set(e.history.map((p) => ({ x: p.step, y: p.loss })));
        lrChart.set(e.history.map((p) => ({ x: p.step, y: p.lr })));
        setStep(e.step, e.totalSteps);
        stepEma = 0;
        progressLabel.textContent = e.step ? '' : 'first step…';
        metrics.replaceChildren(
          ...metric('Data', `${e.examples} rows · ${e.source}`),
          ...metric(
            'LoRA',
            `r ${e.settings.rank}, alpha ${e.settings.alpha} on ${e.settings.targets.join(', ')} · ${formatCount(e.trainableParams)} parameters`,
          ),
          ...metric(
            'Optimizer',
            `lr ${e.settings.lr} (${e.settings.schedule}) · batch ${e.settings.batchSize} × ${e.settings.gradAccum}`,
          ),
        );
        runStatus.set(
          e.resumedFrom !== null
            ? `Resumed ${e.name} from the checkpoint at step ${e.resumedFrom} stored in this browser.`
            : e.step
              ? `Continuing ${e.name} at step ${e.step}.`
              : `Training ${e.name} on ${e.source}: ${e.totalSteps} steps.`,
        );
        break;
      }
      case 'step': {
        lossChart.push(e.step, e.loss);
        lrChart.push(e.step, e.lr);
        setStep(e.step, e.totalSteps);
        stepEma = stepEma ? 0.7 * stepEma + 0.3 * e.stepMs : e.stepMs;
        const eta = ((e.totalSteps - e.step) * stepEma) / 1000;
        progressLabel.textContent =
          `loss ${e.loss.toFixed(4)} · lr ${e.lr.toExponential(2)} · ${e.tokensPerS.toFixed(0)} tokens/s · ` +
          `${e.step < e.totalSteps ? `about ${duration(eta)} left` : 'done'}`;
        progressLabel.dataset.eta = String(Math.round(eta));
        break;
      }
      case 'checkpoint':
        ckptText.dataset.step = String(e.step);
        ckptText.textContent = `Last checkpoint in this browser: step ${e.step} (${sizeText(e.bytes)}, ${e.ms} ms).`;
        break;
    }
  };

  const showResult = (a: AdapterInfo) => {
    resultCard.hidden = false;
    clear(resultBody);
    const dl = (file: 'adapter_model.safetensors' | 'adapter_config.json', id: string) => {
      const b = h('button', { type: 'button', class: 'secondary small', id }, `⤓ ${file}`);
      b.addEventListener('click', async () => {
        try {
          const files = await api.adapterFiles(a.name);
          if (file === 'adapter_config.json') downloadText(file, files[file], 'application/json');
          else downloadBytes(file, files[file]);
        } catch (e) {
          runStatus.set(`Download failed: ${errorText(e)}`, 'error');
        }
      });
      return b;
    };
    const use = h('button', { type: 'button', class: 'primary', id: 'train-use-in-chat' }, 'Chat with it');
    use.addEventListener('click', async () => {
      try {
        await api.activateAdapter(a.name);
        state.dispatchEvent(new Event(ADAPTERS_EVENT));
        ctx.show('chat');
      } catch (e) {
        runStatus.set(errorText(e), 'error');
      }
    });
    resultBody.append(
      h(
        'p',
        { class: 'ok-text' },
        h('strong', {}, a.name),
        ` — rank ${a.rank}, alpha ${a.alpha}, ${a.targets.join(', ')} · ${formatCount(a.parameters)} parameters.`,
      ),
      h(
        'p',
        { class: 'muted small' },
        'Registered on the loaded model: pick it in the Chat page (hot swap, no reload) or evaluate it on the Evaluate page.',
      ),
      h(
        'div',
        { class: 'field' },
        h('span', { class: 'label' }, 'PEFT files'),
        h(
          'div',
          { class: 'row' },
          dl('adapter_model.safetensors', 'train-download-weights'),
          dl('adapter_config.json', 'train-download-config'),
        ),
      ),
      h(
        'small',
        { class: 'hint' },
        'Save both in one folder: it loads in Hugging Face PEFT and with `agentark … --adapter <folder>`.',
      ),
      h('div', { class: 'row actions' }, use),
    );
  };

  /** After a cancel: the adapter as it was at the last step, on request. */
  const offerPartial = (step: number) => {
    const keep = h(
      'button',
      { type: 'button', class: 'secondary small', id: 'train-keep-partial' },
      `Keep the adapter from step ${step}`,
    );
    keep.addEventListener('click', async () => {
      keep.disabled = true;
      try {
        const a = await api.keepCancelledAdapter();
        showResult(a);
        state.dispatchEvent(new Event(ADAPTERS_EVENT));
        runStatus.set(`Kept the adapter from step ${step} as ${a.name}.`, 'ok');
      } catch (e) {
        runStatus.set(errorText(e), 'error');
      }
    });
    runStatus.el.append(' ', keep);
  };

  const finish = (r: TrainOutcome) => {
    // "about … left" belongs to a running run only.
    progressLabel.textContent = (progressLabel.textContent ?? '').replace(/ · about .* left$/, '');
    if (r.status === 'paused') {
      phase = 'paused';
      runStatus.set(
        `Paused at step ${r.step} of ${r.totalSteps}; the state is kept (and checkpointed in this browser).`,
        'warn',
      );
    } else {
      phase = 'idle';
      if (r.status === 'cancelled') {
        runStatus.set(`Cancelled at step ${r.step}; its checkpoints were deleted.`, 'warn');
        if (r.step > 0) offerPartial(r.step);
      } else {
        runStatus.set(
          `Finished ${r.totalSteps} steps${r.finalLoss !== null ? `, final loss ${r.finalLoss.toFixed(4)}` : ''}. The adapter is registered on the model.`,
          'ok',
        );
        runStatus.el.dataset.done = 'true';
        if (r.adapter) showResult(r.adapter);
        state.dispatchEvent(new Event(ADAPTERS_EVENT));
        lora.newName();
      }
    }
    state.set('busy', null);
    updateButtons();
    void refreshStored();
  };

  const run = async (call: (id: string) => Promise<TrainOutcome>) => {
    const id = newTaskId('train');
    phase = 'running';
    watching = false;
    otherTab.hidden = true;
    delete runStatus.el.dataset.done;
    stored.hidden = true;
    state.set('busy', 'Training…');
    updateButtons();
    try {
      finish(await call(id));
    } catch (e) {
      phase =
        (await api.trainingState().catch(() => ({ state: 'idle' as const }))).state === 'paused' ? 'paused' : 'idle';
      state.set('busy', null);
      runStatus.set(`Training stopped: ${errorText(e)}`, 'error');
      updateButtons();
      void refreshStored();
    }
  };

  startBtn.addEventListener('click', async () => {
    const dataset = data.dataset();
    if (!dataset || phase !== 'idle') return;
    const s = lora.settings();
    if (!s.targets.length) {
      runStatus.set('Pick at least one target module.', 'error');
      return;
    }
    // The worker refuses such a run too; asking first keeps the page idle and says what to change.
    const plan = await api.trainingMemoryPlan(dataset.id, s).catch(() => null);
    if (plan && !plan.fits) {
      runStatus.set(`Not started: ${plan.text}`, 'error');
      return;
    }
    if (
      storedRun &&
      !confirm(`Starting a new run replaces the unfinished run ${storedRun.name} stored in this browser. Start anyway?`)
    )
      return;
    chartsNote.textContent = '';
    lossChart.set([]);
    lrChart.set([]);
    ckptText.textContent = '';
    ckptText.dataset.step = '0';
    resultCard.hidden = true;
    const ds = dataset.id;
    void run((id) => api.startTraining(id, ds, s, Comlink.proxy(onEvent)));
  });
  pauseBtn.addEventListener('click', () => {
    if (phase !== 'running') return;
    pauseBtn.disabled = true;
    runStatus.set('Pausing after the current step…');
    void api.pauseTraining().finally(() => (pauseBtn.disabled = false));
  });
  const resume = () => {
    if (phase === 'running') return;
    void run((id) => api.resumeTraining(id, Comlink.proxy(onEvent)));
  };
  resumeBtn.addEventListener('click', resume);
  cancelBtn.addEventListener('click', async () => {
    if (phase === 'idle') return;
    if (phase === 'running') {
      runStatus.set('Cancelling after the current step…');
      await api.cancelTraining();
      return;
    }
    await api.cancelTraining();
    phase = 'idle';
    runStatus.set('Cancelled; the paused run and its checkpoints were deleted.', 'warn');
    updateButtons();
    void refreshStored();
  });

  // ---- a run stored in the browser ----------------------------------------------------
  const refreshStored = async () => {
    storedRun = phase === 'idle' ? await api.storedRun().catch(() => null) : null;
    clear(stored);
    stored.hidden = !storedRun;
    if (!storedRun) {
      if (chartsNote.textContent?.startsWith('stored run')) {
        // The previewed run is gone (discarded or finished elsewhere).
        lossChart.set([]);
        lrChart.set([]);
        chartsNote.textContent = '';
        chartsCard.hidden = true;
      }
      return;
    }
    const r = storedRun;
    const when = new Date(r.savedAt).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
    const resumeStored = h(
      'button',
      { type: 'button', class: 'primary small', id: 'train-stored-resume', disabled: !r.sameModel || r.elsewhere },
      'Resume',
    );
    const discard = h(
      'button',
      { type: 'button', class: 'danger small', id: 'train-stored-discard', disabled: r.elsewhere },
      'Discard',
    );
    resumeStored.addEventListener('click', () => {
      lora.apply(r.settings);
      resume();
    });
    discard.addEventListener('click', async () => {
      if (!confirm(`Delete the unfinished run ${r.name} (step ${r.step} of ${r.totalSteps}) from this browser?`))
        return;
      await api.cancelTraining();
      void refreshStored();
    });
    append(
      stored,
      h(
        'p',
        {},
        h('strong', {}, 'Unfinished run: '),
        `${r.name} — ${r.step ? `checkpoint at step ${r.step}` : 'no checkpoint yet'} of ${r.totalSteps}, ${r.examples} ` +
          `rows from ${r.source}, saved ${when}${r.status === 'paused' ? ' (paused)' : ''}.`,
      ),
      r.elsewhere
        ? h(
            'p',
            { class: 'muted small' },
            'Another tab of this browser owns it: resume, pause or discard it there. This tab takes it over from ' +
              'its last checkpoint if that tab closes mid-run.',
          )
        : r.sameModel
          ? null
          : h('p', { class: 'bad-text small' }, `It was started on ${r.modelId}: load that model to resume it.`),
      h('div', { class: 'row' }, resumeStored, discard),
    );
    if (r.history.length) {
      lossChart.set(r.history.map((p) => ({ x: p.step, y: p.loss })));
      lrChart.set(r.history.map((p) => ({ x: p.step, y: p.lr })));
      chartsCard.hidden = false;
      chartsNote.textContent = `stored run ${r.name}, up to step ${r.step}`;
    }
    if (r.elsewhere) {
      // Never resume a run another tab holds; when that tab lets go (closed mid-run), look again.
      if (!waitingForLock) {
        waitingForLock = true;
        void whenRunLockFree().then(() => {
          waitingForLock = false;
          void refreshStored();
        });
      }
      updateButtons();
      return;
    }
    // A run cut off by a reload (not paused on purpose) continues by itself on the same model.
    if (r.sameModel && r.status === 'running' && !autoResumeDone && phase === 'idle') {
      autoResumeDone = true;
      lora.apply(r.settings);
      resume();
    }
  };

  // ---- another tab's run, read-only ----------------------------------------------------------
  if (typeof BroadcastChannel !== 'undefined') {
    const channel = new BroadcastChannel(RUN_CHANNEL);
    channel.onmessage = (ev: MessageEvent<RunMessage>) => {
      const msg = ev.data;
      if (phase !== 'idle') return; // this tab's own run (its worker posts here too)
      if (msg.type === 'event') {
        if (!watching) {
          watching = true;
          state.set('busy', 'Training in another tab…');
        }
        onEvent(msg.event);
        if (msg.event.type === 'start') {
          otherTab.hidden = false;
          otherTab.textContent = `Another tab of this browser is training ${msg.event.name}: its progress shows here, read-only (one run per browser).`;
        }
        updateButtons();
      } else if (msg.type === 'end' && watching) {
        watching = false;
        state.set('busy', null);
        const o = msg.outcome;
        otherTab.textContent =
          o.status === 'failed'
            ? `The run in the other tab stopped: ${o.error}`
            : `The run in the other tab was ${o.status === 'finished' ? 'finished' : o.status} at step ${o.step} of ${o.totalSteps}.`;
        progressLabel.textContent = '';
        updateButtons();
        void refreshStored();
      }
    };
    channel.postMessage({ type: 'hello' } satisfies RunMessage);
    // Other pages clear the badge when their own work ends; another tab's run is still going.
    state.on('busy', (b) => {
      // After every listener of this change has run (the header's too), not in the middle of them.
      if (watching && !b) setTimeout(() => watching && !state.busy && state.set('busy', 'Training in another tab…'), 0);
    });
  }

  state.on('model', async () => {
    // Loading or unloading a model drops a paused job (its checkpoint stays in the browser).
    if (phase === 'paused') phase = (await api.trainingState()).state;
    updateButtons();
    data.rebuild(); // token counts against the new model
    void refreshStored();
  });
  data.onBuilt(updateButtons);
  updateButtons();
  void refreshStored();
  return { column: h('div', { class: 'col' }, runCard, resultCard), charts: chartsCard };
}
