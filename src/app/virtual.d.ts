/** Provided by the agentark-public-contents plugin in vite.config.ts. */
declare module 'virtual:agentark-public' {
  /** Question sets shipped in public/data/, as paths relative to the site root (e.g. "data/gsm8k-sample.jsonl"). */
  export const shippedData: string[];
  /** "models/default/" when public/models/default/config.json exists, else null. */
  export const defaultModel: string | null;
  /** The files directly in public/models/default/ (names), so loading it probes no missing optional file. */
  export const defaultModelFiles: string[];
  /**
   * The embedded model's LoRA adapter when public/models/default/adapter/ holds adapter_config.json
   * and adapter_model.safetensors (PEFT layout), else null. `name` and `strategy` come from the
   * folder's agentark.json (`{"name": "student R-SFT", "strategy": "rsft"}`), if any.
   */
  export const defaultAdapter: { path: string; name: string; strategy: string | null } | null;
  /** "data/demo-report.json" when public/data/demo-report.json (the demo's EvalReport) exists, else null. */
  export const demoReport: string | null;
}

/** Provided by the agentark-pwa plugin (src/app/pwa/plugin.ts). */
declare module 'virtual:agentark-pwa' {
  /** "sw.js" (relative to the page) in a build, which emits it; null in dev, which has none. */
  export const serviceWorker: string | null;
}
