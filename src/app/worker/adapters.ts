/**
 * LoRA adapters on the loaded model: registered on its runtime (hot-swappable in chat), with a host
 * copy of each for downloads. Trained ones come from the training module; others from PEFT files.
 */
import { loadPeftAdapter, serializePeftAdapter, type PeftAdapter } from '../../formats/peft';
import { filesSource } from '../../formats/source';
import type { AdapterFiles, AdapterInfo, AdapterList } from '../api';
import type { Models } from './models';
import type { Tasks } from './tasks';

function adapterInfo(name: string, a: PeftAdapter, origin: AdapterInfo['origin']): AdapterInfo {
  let parameters = 0;
  for (const p of a.pairs) parameters += p.a.data.length + p.b.data.length;
  return {
    name,
    rank: a.config.r,
    alpha: a.config.loraAlpha,
    targets: [...a.config.targetModules],
    parameters,
    origin,
  };
}

export class Adapters {
  private readonly host = new Map<string, { adapter: PeftAdapter; info: AdapterInfo }>();

  constructor(
    private readonly tasks: Tasks,
    private readonly models: Models,
  ) {
    models.onUnload(() => this.host.clear());
  }

  list(): AdapterList {
    const m = this.models.loaded;
    if (!m) return { list: [], active: null };
    const names = m.runtime.adapters.names();
    return {
      list: names.map((n) => this.host.get(n)?.info).filter((x): x is AdapterInfo => !!x),
      active: m.runtime.adapters.activeName(),
    };
  }

  /** Registers an adapter on the loaded model under `name` (replacing one of that name). */
  async register(name: string, adapter: PeftAdapter, origin: AdapterInfo['origin']): Promise<AdapterInfo> {
    await this.models.require().runtime.adapters.load(name, adapter);
    const info = adapterInfo(name, adapter, origin);
    this.host.set(name, { adapter, info });
    return info;
  }

  async loadFiles(name: string, files: File[]): Promise<AdapterInfo> {
    this.models.require();
    this.tasks.requireNo(['train', 'prm', 'rl', 'eval'], 'loading an adapter');
    if (!name.trim()) throw new Error('Give the adapter a name.');
    return this.register(name, await loadPeftAdapter(filesSource(files, name)), 'file');
  }

  /** The host copy of a registered adapter (e.g. to start RL from it). */
  peft(name: string): PeftAdapter {
    const a = this.host.get(name);
    if (!a) throw new Error(`No adapter named ${name} is loaded.`);
    return a.adapter;
  }

  activate(name: string | null): void {
    this.tasks.requireNo(['train', 'rl', 'eval'], 'switching adapters');
    this.models.require().runtime.adapters.activate(name);
  }

  files(name: string): AdapterFiles {
    const a = this.host.get(name);
    if (!a) throw new Error(`No adapter named ${name}`);
    const m = this.models.loaded;
    const base = m?.info.sourceKind === 'hf' ? m.info.id : (a.adapter.config.baseModelNameOrPath ?? m?.info.id ?? null);
    return serializePeftAdapter({ ...a.adapter, config: { ...a.adapter.config, baseModelNameOrPath: base } });
  }
}
