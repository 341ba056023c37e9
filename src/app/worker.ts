/**
 * The engine worker: composes the feature modules in src/app/worker/ (each owns its state) into
 * the WorkerApi the page calls through comlink (see api.ts for the contract). The local Runtime,
 * the teacher engines, the debate, training, evaluation and benchmarks all run here, so the page
 * never blocks.
 */
import * as Comlink from 'comlink';
import type { WorkerApi } from './api';
import { Adapters } from './worker/adapters';
import { Benchmark } from './worker/benchmark';
import { Chat } from './worker/chat';
import { Datasets } from './worker/datasets';
import { Debates } from './worker/debate';
import { device } from './worker/device';
import { Evaluation } from './worker/evaluation';
import { Models } from './worker/models';
import { Pad } from './worker/pad';
import { Tasks } from './worker/tasks';
import { Training } from './worker/training';

const tasks = new Tasks();
const models = new Models(tasks);
const adapters = new Adapters(tasks, models);
const chat = new Chat(tasks, models);
const debates = new Debates(tasks, models);
const datasets = new Datasets(models, debates);
const training = new Training(tasks, models, datasets, adapters);
const pad = new Pad(tasks, models, datasets, adapters);
const evaluation = new Evaluation(tasks, models);
const benchmark = new Benchmark(tasks);

const api: WorkerApi = {
  device,
  inspect: (source, settings, taskId) => models.inspect(source, settings, taskId),
  load: (source, settings, taskId, onProgress) => models.load(source, settings, taskId, onProgress),
  async unload() {
    tasks.abortKinds(['chat', 'debate', 'eval'], new DOMException('The model was unloaded', 'AbortError'));
    // A running training job stops after its step and checkpoints (resumable once the model is back).
    await training.pauseAndWait();
    models.unload();
  },
  async loaded() {
    return models.loaded?.info ?? null;
  },
  async memoryStats() {
    return models.loaded?.runtime.gpu?.memoryStats() ?? null;
  },
  async kernelChoices() {
    return models.loaded?.runtime.kernelChoices() ?? null;
  },
  chat: (taskId, req, onDelta) => chat.reply(taskId, req, onDelta),
  webllmModels: (withoutF16) => debates.webllmModels(withoutF16),
  debate: (taskId, questions, settings, onEvent) => debates.run(taskId, questions, settings, onEvent),
  abort(taskId) {
    tasks.abort(taskId, new DOMException('Stopped by the user', 'AbortError'));
  },

  async debateRecordCount() {
    return debates.lastRecords().length;
  },
  prepareDataset: (source, settings) => datasets.prepare(source, settings),
  async datasetJsonl(id) {
    return datasets.jsonl(id);
  },
  startTraining: (taskId, datasetId, settings, onEvent) => training.start(taskId, datasetId, settings, onEvent),
  trainingMemoryPlan: (datasetId, settings) => training.memoryPlan(datasetId, settings),
  resumeTraining: (taskId, onEvent) => training.resume(taskId, onEvent),
  async pauseTraining() {
    training.pause();
  },
  cancelTraining: () => training.cancel(),
  async trainingState() {
    return training.state();
  },
  storedRun: () => training.storedRun(),
  keepCancelledAdapter: () => training.keepCancelled(),

  async adapters() {
    return adapters.list();
  },
  async activateAdapter(name) {
    adapters.activate(name);
  },
  async adapterFiles(name) {
    return adapters.files(name);
  },
  loadAdapterFiles: (name, files) => adapters.loadFiles(name, files),

  trainPrm: (taskId, datasetId, settings, onEvent) => pad.trainPrm(taskId, datasetId, settings, onEvent),
  async prmResult() {
    return pad.prmResult();
  },
  async prmFile() {
    return pad.prmFile();
  },
  startRl: (taskId, questions, settings, onEvent) => pad.startRl(taskId, questions, settings, onEvent),
  resumeRl: (taskId, onEvent) => pad.resumeRl(taskId, onEvent),
  async pauseRl() {
    pad.pauseRl();
  },
  async cancelRl() {
    pad.cancelRl();
  },
  async rlState() {
    return pad.rlState();
  },

  evaluate: (taskId, questions, settings, onEvent) => evaluation.run(taskId, questions, settings, onEvent),
  bench: (taskId, settings, onEvent) => benchmark.run(taskId, settings, onEvent),
};

Comlink.expose(api);
