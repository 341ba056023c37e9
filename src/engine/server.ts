/**
 * An OpenAI-compatible HTTP server around any ChatEngine (node:http, no framework).
 *
 *   POST /v1/chat/completions   JSON, or SSE when `stream: true` (chunks, then `data: [DONE]`;
 *                               a final usage chunk when `stream_options.include_usage`)
 *   GET  /v1/models             the served model ids
 *   GET  /health                liveness
 *
 * It runs on the user's own machine, so any web page the user visits must not be able to use it:
 * - CORS is off unless origins are allowed one by one (`cors`); a request carrying any other
 *   `Origin` is refused with 403, and POSTs must be `Content-Type: application/json` (a cross-site
 *   form or `text/plain` fetch cannot send that without a preflight, which fails).
 * - On a loopback bind only loopback `Host` values are accepted, so DNS rebinding (a hostile name
 *   re-pointed at 127.0.0.1) is refused.
 * - With `apiKey` every route but /health needs `Authorization: Bearer <key>`; binding to anything
 *   but loopback requires a key.
 * - Slow or huge requests are bounded: body size, header and whole-request timeouts, and a cap
 *   on open connections.
 * Bad requests get an OpenAI-style `{"error": {"message", "type", "param", "code"}}` body (404
 * `model_not_found`, 400 `context_length_exceeded`, ...). A client that disconnects aborts its
 * generation through the AbortSignal passed to the engine. `stats` counts what was served.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import * as http from 'node:http';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatEngine, ChatMessage } from './types';

export interface ServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** The id reported by /v1/models and in responses; default: the engine's first model. */
  modelId?: string;
  /** Largest accepted request body in bytes (default 8 MiB). */
  maxBodyBytes?: number;
  /** Called for each finished request (method, path, status, ms). */
  onRequest?: (info: { method: string; path: string; status: number; ms: number }) => void;
  /**
   * Origins (e.g. 'http://localhost:5173') allowed to call from a browser; '*' allows any.
   * Default: none, so no web page can read answers or send chats.
   */
  cors?: string[];
  /** When set, `Authorization: Bearer <apiKey>` is required (all routes but /health). */
  apiKey?: string;
  /** Whole-request receive timeout in ms (headers + body), default 30 000. */
  requestTimeoutMs?: number;
  /** Header receive timeout in ms, default 10 000 (never above requestTimeoutMs). */
  headersTimeoutMs?: number;
  /** Open connections beyond this are dropped at once; default 64. */
  maxConnections?: number;
}

export interface ServerStats {
  /** HTTP requests of any kind. */
  httpRequests: number;
  /** POST /v1/chat/completions requests received (valid or not). */
  requests: number;
  /** Chat completions that finished and were sent in full. */
  completions: number;
  /** Of which streamed. */
  streamed: number;
  /** Requests rejected with a 4xx. */
  badRequests: number;
  /** Engine errors (5xx or error events). */
  errors: number;
  /** Generations stopped because the client went away. */
  aborted: number;
  /** Tokens of completions sent in full (from the engine's usage). */
  promptTokens: number;
  completionTokens: number;
}

export interface RunningServer {
  url: string;
  /** `${url}/v1`, what an OpenAI client takes as its base URL. */
  baseUrl: string;
  port: number;
  stats: ServerStats;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = 'invalid_request_error',
    readonly param?: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Headers of the CORS answer for an allowed origin (none for requests without `Origin`). */
function corsHeaders(origin: string | undefined, allowed: ReadonlySet<string>): Record<string, string> {
  if (origin === undefined || !(allowed.has('*') || allowed.has(origin))) return {};
  return {
    'access-control-allow-origin': allowed.has('*') ? '*' : origin,
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': 'authorization, content-type, x-requested-with',
    'access-control-max-age': '600',
    vary: 'Origin',
  };
}

const corsOf = new WeakMap<http.ServerResponse, Record<string, string>>();

function sendJson(res: http.ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...corsOf.get(res),
    ...extra,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: http.ServerResponse, err: HttpError): void {
  const extra: Record<string, string> = err.status === 401 ? { 'www-authenticate': 'Bearer' } : {};
  sendJson(
    res,
    err.status,
    { error: { message: err.message, type: err.type, param: err.param ?? null, code: err.code ?? null } },
    extra,
  );
}

/** 127.0.0.0/8, ::1, 'localhost' (and IPv4-mapped loopback). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^(0:){5}ffff:127\./.test(h.replace(/^::ffff:/, '0:0:0:0:0:ffff:'));
  return false;
}

/** The host part of a Host header ('[::1]:8000' → '::1', 'localhost:8000' → 'localhost'). */
function hostOfHeader(header: string): string {
  const m = /^\[([^\]]*)\](?::\d+)?$/.exec(header) ?? /^([^:]*)(?::\d+)?$/.exec(header);
  return m ? m[1]! : header;
}

function sameSecret(given: string, expected: string): boolean {
  // Hash both so the comparison takes the same time whatever the lengths.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        reject(new HttpError(413, `request body larger than ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

type Obj = Record<string, unknown>;

/** Validates an OpenAI chat-completions body; throws HttpError(400) naming the offending field. */
export function validateChatRequest(
  body: unknown,
): ChatCompletionRequest & { stream_options?: { include_usage?: boolean } } {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new HttpError(400, 'request body must be a JSON object');
  const b = body as Obj;
  const bad = (param: string, msg: string): never => {
    throw new HttpError(400, `'${param}' ${msg}`, 'invalid_request_error', param);
  };
  if (!Array.isArray(b.messages)) bad('messages', 'is required and must be an array');
  const msgs = b.messages as unknown[];
  if (msgs.length === 0) bad('messages', 'must not be empty');
  const messages: ChatMessage[] = msgs.map((m, i) => {
    if (typeof m !== 'object' || m === null) return bad(`messages[${i}]`, 'must be an object');
    const o = m as Obj;
    if (o.role !== 'system' && o.role !== 'user' && o.role !== 'assistant') {
      if (o.role === 'developer') return { role: 'system', content: contentText(o.content, i, bad) };
      return bad(`messages[${i}].role`, `must be one of system, user, assistant (got ${JSON.stringify(o.role)})`);
    }
    return { role: o.role, content: contentText(o.content, i, bad) };
  });
  const req: ChatCompletionRequest & { stream_options?: { include_usage?: boolean } } = { messages };
  if (b.model !== undefined) {
    if (typeof b.model !== 'string') bad('model', 'must be a string');
    req.model = b.model as string;
  }
  if (b.stream !== undefined && b.stream !== null) {
    if (typeof b.stream !== 'boolean') bad('stream', 'must be a boolean');
    req.stream = b.stream as boolean;
  }
  const intField = (k: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const v = b[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      bad(k, `must be an integer in [${min}, ${max}]`);
    return v as number;
  };
  const numField = (k: string, min: number, max: number) => {
    const v = b[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
      bad(k, `must be a number in [${min}, ${max}]`);
    return v as number;
  };
  const maxTokens = intField('max_tokens', 1) ?? intField('max_completion_tokens', 1);
  if (maxTokens !== undefined) req.max_tokens = maxTokens;
  const temperature = numField('temperature', 0, 2);
  if (temperature !== undefined) req.temperature = temperature;
  const topP = numField('top_p', 0, 1);
  if (topP !== undefined) req.top_p = topP;
  const topK = intField('top_k', -1);
  if (topK !== undefined) req.top_k = topK;
  const rep = numField('repetition_penalty', 0, 10);
  if (rep !== undefined) req.repetition_penalty = rep;
  const seed = intField('seed', Number.MIN_SAFE_INTEGER);
  if (seed !== undefined) req.seed = seed;
  const n = intField('n', 1, 128);
  if (n !== undefined) req.n = n;
  if (b.stop !== undefined && b.stop !== null) {
    if (typeof b.stop === 'string') req.stop = b.stop;
    else if (Array.isArray(b.stop) && b.stop.every((s) => typeof s === 'string')) req.stop = b.stop as string[];
    else bad('stop', 'must be a string or an array of strings');
  }
  if (b.stream_options !== undefined && b.stream_options !== null) {
    if (typeof b.stream_options !== 'object') bad('stream_options', 'must be an object');
    const so = b.stream_options as Obj;
    if (so.include_usage !== undefined && typeof so.include_usage !== 'boolean')
      bad('stream_options.include_usage', 'must be a boolean');
    req.stream_options = { include_usage: so.include_usage as boolean | undefined };
  }
  return req;
}

function contentText(c: unknown, i: number, bad: (p: string, m: string) => never): string {
  if (typeof c === 'string') return c;
  // The array form [{type: 'text', text}] is accepted for text parts.
  if (Array.isArray(c)) {
    return c
      .map((p, j) => {
        if (p && typeof p === 'object' && (p as Obj).type === 'text' && typeof (p as Obj).text === 'string')
          return (p as Obj).text as string;
        return bad(`messages[${i}].content[${j}]`, 'only text parts are supported');
      })
      .join('');
  }
  return bad(`messages[${i}].content`, 'must be a string');
}

function isAsyncIterable(x: unknown): x is AsyncIterable<ChatCompletionChunk> {
  return !!x && typeof (x as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

/** Starts the server; resolves once it is listening. */
export async function startServer(engine: ChatEngine, opts: ServerOptions = {}): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const limit = opts.maxBodyBytes ?? 8 * 1024 * 1024;
  const apiKey = opts.apiKey || undefined;
  const loopbackBind = isLoopbackHost(host);
  if (!loopbackBind && !apiKey) {
    throw new Error(
      `refusing to listen on ${host} without an API key: anyone who can reach it could use the model (set --api-key or AGENTARK_API_KEY, or bind to 127.0.0.1)`,
    );
  }
  const allowedOrigins = new Set(opts.cors ?? []);
  for (const o of allowedOrigins) {
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/i.test(o))
      throw new Error(
        `--cors ${JSON.stringify(o)}: expected an origin such as http://localhost:5173 (scheme://host[:port], no path) or '*'`,
      );
  }
  const stats: ServerStats = {
    httpRequests: 0,
    requests: 0,
    completions: 0,
    streamed: 0,
    badRequests: 0,
    errors: 0,
    aborted: 0,
    promptTokens: 0,
    completionTokens: 0,
  };
  let modelIdsCache: string[] | undefined;
  const modelIds = async (): Promise<string[]> => {
    if (opts.modelId) return [opts.modelId];
    modelIdsCache ??= await engine.models();
    return modelIdsCache;
  };

  const handleChat = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<number> => {
    stats.requests++;
    const raw = await readBody(req, limit);
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch (e) {
      throw new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`);
    }
    const creq = validateChatRequest(body);
    const includeUsage = !!creq.stream_options?.include_usage;
    const stream = !!creq.stream;
    delete creq.stream_options;
    if (creq.model !== undefined) {
      const ids = await modelIds();
      if (!ids.includes(creq.model)) {
        throw new HttpError(
          404,
          `The model \`${creq.model}\` does not exist; this server serves ${ids.map((id) => `\`${id}\``).join(', ')}`,
          'invalid_request_error',
          'model',
          'model_not_found',
        );
      }
    }
    const servedModel = opts.modelId ?? creq.model;

    // Client disconnect → abort generation.
    const ac = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) ac.abort(new Error('client disconnected'));
    };
    res.on('close', onClose);
    try {
      if (!stream) {
        const out = (await engine.chat.completions.create(
          { ...creq, stream: false },
          { signal: ac.signal },
        )) as ChatCompletion;
        if (ac.signal.aborted) {
          stats.aborted++;
          return 499;
        }
        const body: ChatCompletion = { ...out, model: servedModel ?? out.model };
        stats.completions++;
        stats.promptTokens += out.usage?.prompt_tokens ?? 0;
        stats.completionTokens += out.usage?.completion_tokens ?? 0;
        sendJson(res, 200, body);
        return 200;
      }
      const it = await engine.chat.completions.create({ ...creq, stream: true }, { signal: ac.signal });
      if (!isAsyncIterable(it)) throw new HttpError(500, 'engine did not return a stream', 'server_error');
      res.writeHead(200, {
        ...corsOf.get(res),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.flushHeaders();
      let usage: ChatCompletion['usage'] | undefined;
      let last: ChatCompletionChunk | undefined;
      try {
        for await (const chunk of it) {
          if (ac.signal.aborted) break;
          last = chunk;
          const { usage: u, ...rest } = chunk;
          if (u) usage = u;
          if (rest.choices.length === 0) continue; // a usage-only chunk: re-emitted below if asked
          res.write(`data: ${JSON.stringify({ ...rest, model: servedModel ?? rest.model })}\n\n`);
        }
      } catch (e) {
        if (ac.signal.aborted) {
          stats.aborted++;
          return 499;
        }
        stats.errors++;
        res.write(
          `data: ${JSON.stringify({ error: { message: `generation failed: ${(e as Error).message}`, type: 'server_error' } })}\n\n`,
        );
        res.end();
        return 500;
      }
      if (ac.signal.aborted) {
        stats.aborted++;
        return 499;
      }
      if (includeUsage) {
        const u = usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
        const usageChunk = {
          id: last?.id ?? `chatcmpl-${Date.now()}`,
          object: 'chat.completion.chunk',
          created: last?.created ?? Math.floor(Date.now() / 1000),
          model: servedModel ?? last?.model ?? '',
          choices: [],
          usage: u,
        };
        res.write(`data: ${JSON.stringify(usageChunk)}\n\n`);
      }
      res.write('data: [DONE]\n\n');
      res.end();
      stats.completions++;
      stats.streamed++;
      stats.promptTokens += usage?.prompt_tokens ?? 0;
      stats.completionTokens += usage?.completion_tokens ?? 0;
      return 200;
    } finally {
      res.off('close', onClose);
      if (ac.signal.aborted && !res.writableEnded) res.destroy();
    }
  };

  const requestTimeout = opts.requestTimeoutMs ?? 30_000;
  const server = http.createServer(
    {
      requestTimeout,
      headersTimeout: Math.min(opts.headersTimeoutMs ?? 10_000, requestTimeout),
      // How often Node checks the two timeouts above (its default, 30 s, would let them slip).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(requestTimeout / 4))),
    },
    (req, res) => {
      stats.httpRequests++;
      const t0 = performance.now();
      const url = new URL(req.url ?? '/', 'http://localhost');
      const p = url.pathname.replace(/\/+$/, '') || '/';
      const method = req.method ?? 'GET';
      const done = (status: number) =>
        opts.onRequest?.({ method, path: p, status, ms: Math.round(performance.now() - t0) });
      const run = async (): Promise<number> => {
        // Who may talk to us at all: checked before anything else is read.
        const hostHeader = req.headers.host;
        if (loopbackBind && (hostHeader === undefined || !isLoopbackHost(hostOfHeader(hostHeader)))) {
          throw new HttpError(
            403,
            `Host ${JSON.stringify(hostHeader ?? '')} refused: this server listens on loopback and answers only to ` +
              'localhost / 127.0.0.1 / [::1] (a web page re-pointing its own name at this machine is refused)',
            'permission_error',
            undefined,
            'host_not_allowed',
          );
        }
        const origin = req.headers.origin;
        if (origin !== undefined) {
          const headers = corsHeaders(origin, allowedOrigins);
          if (!headers['access-control-allow-origin']) {
            throw new HttpError(
              403,
              `Origin ${origin} is not allowed (start the server with --cors ${origin} to allow it)`,
              'permission_error',
              undefined,
              'origin_not_allowed',
            );
          }
          corsOf.set(res, headers);
        }
        if (method === 'OPTIONS') {
          res.writeHead(204, corsOf.get(res) ?? {});
          res.end();
          return 204;
        }
        if (p === '/health' || p === '/v1/health') {
          sendJson(res, 200, { status: 'ok' });
          return 200;
        }
        if (apiKey) {
          const auth = req.headers.authorization ?? '';
          const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
          if (!m)
            throw new HttpError(
              401,
              'missing API key: send "Authorization: Bearer <key>" (the server was started with --api-key)',
              'invalid_request_error',
              undefined,
              'invalid_api_key',
            );
          if (!sameSecret(m[1]!, apiKey))
            throw new HttpError(401, 'incorrect API key', 'invalid_request_error', undefined, 'invalid_api_key');
        }
        if (p === '/v1/chat/completions' || p === '/chat/completions') {
          if (method !== 'POST') throw new HttpError(405, `${method} not allowed on ${p}; use POST`);
          const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
          if (type !== 'application/json') {
            throw new HttpError(
              415,
              `Content-Type must be application/json, got ${JSON.stringify(req.headers['content-type'] ?? '')}`,
              'invalid_request_error',
              undefined,
              'unsupported_media_type',
            );
          }
          return handleChat(req, res);
        }
        if (p === '/v1/models' || p === '/models') {
          if (method !== 'GET') throw new HttpError(405, `${method} not allowed on ${p}; use GET`);
          const ids = await modelIds();
          const created = Math.floor(Date.now() / 1000);
          sendJson(res, 200, {
            object: 'list',
            data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'agentark' })),
          });
          return 200;
        }
        throw new HttpError(404, `no route for ${method} ${p}`, 'not_found_error');
      };
      run().then(done, (e: unknown) => {
        let err: HttpError;
        if (e instanceof HttpError) {
          err = e;
          if (err.status < 500) stats.badRequests++;
          else stats.errors++;
        } else {
          const status =
            typeof (e as { status?: unknown })?.status === 'number' ? (e as { status: number }).status : 500;
          const ok = status >= 400 && status < 600;
          const code = (e as { code?: unknown })?.code;
          const param = (e as { param?: unknown })?.param;
          err = new HttpError(
            ok ? status : 500,
            ok && status < 500 ? (e as Error).message : `engine error: ${(e as Error)?.message ?? String(e)}`,
            ok && status < 500 ? 'invalid_request_error' : 'server_error',
            typeof param === 'string' ? param : undefined,
            typeof code === 'string' ? code : undefined,
          );
          if (err.status < 500) stats.badRequests++;
          else stats.errors++;
        }
        if (!res.headersSent) sendError(res, err);
        else if (!res.writableEnded) res.end();
        done(err.status);
      });
    },
  );
  server.keepAliveTimeout = 5000;
  server.maxConnections = opts.maxConnections ?? 64;
  // Requests in progress per socket, so close() can drop idle (or never-used) sockets at once.
  const active = new Map<Socket, number>();
  let closingFlag = false;
  server.on('connection', (sock: Socket) => {
    active.set(sock, 0);
    sock.on('close', () => active.delete(sock));
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const sock = req.socket;
    active.set(sock, (active.get(sock) ?? 0) + 1);
    res.on('close', () => {
      const n = (active.get(sock) ?? 1) - 1;
      if (active.has(sock)) active.set(sock, n);
      if (closingFlag && n <= 0) sock.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${h}:${addr.port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    baseUrl: `${url}/v1`,
    port: addr.port,
    stats,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        closingFlag = true;
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
        for (const [sock, n] of active) if (n <= 0) sock.destroy();
        // Give in-flight responses a moment, then drop whatever is left.
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      });
      return closing;
    },
  };
}
