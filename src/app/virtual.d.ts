/** Provided by the agentark-public-contents plugin in vite.config.ts. */
declare module 'virtual:agentark-public' {
  /** Question sets shipped in public/data/, as paths relative to the site root (e.g. "data/gsm8k-sample.jsonl"). */
  export const shippedData: string[];
  /** "models/default/" when public/models/default/config.json exists, else null. */
  export const defaultModel: string | null;
}
