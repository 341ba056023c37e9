/**
 * A deliberately faulty OpenAI-compatible server for retry tests. Each incoming request takes the
 * next fault from a script (then `after`, default 'ok'):
 *
 *   'ok'         forward to a real `startServer(engine)` behind it (so its `stats` count successes)
 *   '500'        HTTP 500 with a JSON error body
 *   '503'        HTTP 503 with Retry-After: 1
 *   '429'        HTTP 429 with Retry-After: 1 (seconds)
 *   '429-date'   HTTP 429 with Retry-After as an HTTP date ~1 s ahead
 *   '400'        HTTP 400 (must not be retried)
 *   'hang'       accept and never answer (until the client gives up or the server closes)
 *   'malformed'  HTTP 200 with a body that is not JSON
 *   'drop'       destroy the socket without answering
 *   'bad-sse'    HTTP 200 event stream whose first event is not JSON
 */
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ChatEngine } from '../../src/engine/types';
import { startServer, type RunningServer } from '../../src/engine/server';

export type Fault = 'ok' | '500' | '503' | '429' | '429-date' | '400' | 'hang' | 'malformed' | 'drop' | 'bad-sse';

export interface FaultyServer {
  url: string;
  baseUrl: string;
  /** Every request seen, with the fault it got and when. */
  log: { fault: Fault; path: string; at: number }[];
  /** The real server behind 'ok' answers. */
  inner: RunningServer;
  /** Appends more faults to the script. */
  push(...faults: Fault[]): void;
  close(): Promise<void>;
}

export async function startFaultyServer(
  engine: ChatEngine,
  opts: { script?: Fault[]; after?: Fault; modelId?: string } = {},
): Promise<FaultyServer> {
  const inner = await startServer(engine, { modelId: opts.modelId ?? 'fake-model' });
  const script = [...(opts.script ?? [])];
  const after = opts.after ?? 'ok';
  const log: FaultyServer['log'] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const fault = script.length ? script.shift()! : after;
      const path = req.url ?? '/';
      log.push({ fault, path, at: Date.now() });
      const body = Buffer.concat(chunks);
      switch (fault) {
        case '500':
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: 'scripted internal error', type: 'server_error' } }));
          return;
        case '503':
          res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' });
          res.end('scripted overload');
          return;
        case '429':
          res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
          res.end(JSON.stringify({ error: { message: 'scripted rate limit', type: 'rate_limit_error' } }));
          return;
        case '429-date':
          res.writeHead(429, {
            'content-type': 'application/json',
            'retry-after': new Date(Date.now() + 1500).toUTCString(),
          });
          res.end(JSON.stringify({ error: { message: 'scripted rate limit (date)', type: 'rate_limit_error' } }));
          return;
        case '400':
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              error: { message: 'scripted bad request: messages is broken', type: 'invalid_request_error' },
            }),
          );
          return;
        case 'hang':
          return; // never answer
        case 'malformed':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"id": "x", "choices": [ this is not json');
          return;
        case 'bad-sse':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.end('data: {not json\n\n');
          return;
        case 'drop':
          req.socket.destroy();
          return;
        case 'ok': {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(req.headers))
            if (typeof v === 'string' && k !== 'host' && k !== 'content-length' && k !== 'connection') headers[k] = v;
          const ac = new AbortController();
          res.on('close', () => {
            if (!res.writableFinished) ac.abort();
          });
          fetch(`${inner.url}${path}`, {
            method: req.method,
            headers,
            body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body,
            signal: ac.signal,
          })
            .then(async (up) => {
              const h: Record<string, string> = {};
              up.headers.forEach((v, k) => {
                if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection' && k !== 'keep-alive')
                  h[k] = v;
              });
              res.writeHead(up.status, h);
              if (up.body) for await (const c of up.body) res.write(c);
              res.end();
            })
            .catch(() => {
              if (!res.headersSent) res.writeHead(502);
              res.end();
            });
          return;
        }
      }
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    baseUrl: `${url}/v1`,
    log,
    inner,
    push: (...f) => script.push(...f),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await inner.close();
    },
  };
}
