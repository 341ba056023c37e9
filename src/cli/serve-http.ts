/**
 * `agentark serve` helper: serves any ChatEngine over OpenAI-compatible HTTP until SIGINT/SIGTERM.
 */
import type { ChatEngine } from '../engine/types';
import { startServer, type RunningServer } from '../engine/server';

export interface ServeOptions {
  port?: number;
  host?: string;
  modelId?: string;
  /** Require `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Origins allowed to call from a browser (default none). */
  cors?: string[];
  /** Log each request to stderr. */
  verbose?: boolean;
  /** Resolves the returned promise early (tests); default: SIGINT / SIGTERM. */
  signal?: AbortSignal;
  /** Called once listening (tests). */
  onListening?: (server: RunningServer) => void;
}

/** Starts the server, prints its URL and resolves with exit code 0 once stopped. */
export async function serveEngine(engine: ChatEngine, opts: ServeOptions = {}): Promise<number> {
  const server = await startServer(engine, {
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 8000,
    modelId: opts.modelId,
    apiKey: opts.apiKey,
    cors: opts.cors,
    onRequest: opts.verbose ? (r) => process.stderr.write(`${r.method} ${r.path} ${r.status} ${r.ms}ms\n`) : undefined,
  });
  const models = opts.modelId ? [opts.modelId] : await engine.models().catch(() => [] as string[]);
  process.stdout.write(
    `serving ${models.join(', ') || 'model'} at ${server.baseUrl} (OpenAI-compatible: POST /v1/chat/completions, GET /v1/models); Ctrl-C to stop\n`,
  );
  const access = [
    opts.apiKey ? 'API key required' : 'no API key',
    opts.cors?.length ? `browser origins: ${opts.cors.join(', ')}` : 'no browser origins (CORS off)',
  ];
  process.stderr.write(`access: ${access.join('; ')}\n`);
  opts.onListening?.(server);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      opts.signal?.removeEventListener('abort', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (opts.signal?.aborted) stop();
    else opts.signal?.addEventListener('abort', stop, { once: true });
  });
  await server.close();
  const s = server.stats;
  process.stderr.write(
    `stopped: ${s.completions} completions, ${s.promptTokens} prompt + ${s.completionTokens} completion tokens served\n`,
  );
  return 0;
}
