/**
 * Docker's plugin protocol: HTTP POSTs with JSON bodies on a unix socket in /run/docker/plugins,
 * answered with JSON (an error is {"Err": "<one line>"} with status 500). `/Plugin.Activate` lists what the
 * socket implements; every other path is `/<Interface>.<Method>`.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { lstatSync, mkdirSync, unlinkSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { describe, PipewrightError } from '../util/errors.js';
import { judgeCallers } from './callers.js';

const CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** One method of a driver: the request body in, the response body out (a throw becomes {"Err"}). */
export type Handler = (body: Record<string, unknown>) => Promise<object> | object;

/** A request field that should be text (Docker leaves fields out, or sends null): the text, or ''. */
export const str = (v: unknown) => (typeof v === 'string' ? v : '');

export interface RequestLog {
  (entry: { method: string; ms: number; err?: string }): void;
}

/** The request body as text. */
export function readText(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (text += d));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = await readText(req);
  let body: unknown;
  try {
    body = text.trim() ? JSON.parse(text) : {};
  } catch {
    throw new PipewrightError('the request body is not JSON');
  }
  return body && typeof body === 'object' ? (body as Record<string, unknown>) : {};
}

/**
 * The calls being answered now, by id: what a Docker operation that hangs waits on, which the log
 * (one line per call, at its end) cannot show. `Pipewright.Calls` lists them.
 */
type InFlight = Map<number, { method: string; started: number }>;
const CALLS = 'Pipewright.Calls';
let lastCall = 0;

function listCalls(calls: InFlight): Handler {
  return () => ({
    Calls: [...calls].map(([id, c]) => ({ Id: id, Method: c.method, Ms: Math.round(performance.now() - c.started) })),
  });
}

async function answer(
  handlers: Map<string, Handler>,
  calls: InFlight,
  req: IncomingMessage,
  res: ServerResponse,
  log: RequestLog,
): Promise<void> {
  const method = (req.url ?? '').replace(/^\//, '');
  const started = performance.now();
  const id = ++lastCall;
  if (method !== CALLS) calls.set(id, { method, started });
  let status = 200;
  let out: object;
  try {
    const handler = handlers.get(method);
    if (!handler) {
      status = 404;
      throw new PipewrightError(`pipewright does not implement ${method}`);
    }
    out = await handler(await readBody(req));
  } catch (err) {
    // As Docker's own plugin helpers answer: a failed call is a 500 (a 200 with Err is taken for an empty success).
    if (status === 200) status = 500;
    out = { Err: describe(err).replace(/\s*\n\s*/g, ' ') };
  } finally {
    calls.delete(id);
  }
  res.writeHead(status, { 'Content-Type': CONTENT_TYPE });
  res.end(JSON.stringify(out));
  log({ method, ms: performance.now() - started, ...('Err' in out ? { err: String(out.Err) } : {}) });
}

/** Whether something answers on a unix socket (a daemon that is running, not a file left by a dead one). */
function answering(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path, () => {
      sock.destroy();
      resolve(true);
    }).on('error', () => resolve(false));
  });
}

function lstatOrNone(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Answers a request from a caller the daemon refuses (why: one line), in the socket's own form. */
export type Refuse = (res: ServerResponse, why: string) => void;

/**
 * Listens on a unix socket, root's alone (0600 from its creation), serving only callers as
 * powerful as the daemon (daemon/callers.ts); `refuse` answers the others. A socket left by a
 * daemon that died is replaced; one that answers is another daemon's, and an error; anything else
 * at the path (a file an operator named by mistake) is left alone, and an error.
 */
export async function listenUnix(socketPath: string, listener: RequestListener, refuse: Refuse): Promise<Server> {
  const there = lstatOrNone(socketPath);
  if (there && !there.isSocket())
    throw new PipewrightError(`${socketPath} exists and is not a socket; remove it or choose another path`);
  if (there) {
    if (await answering(socketPath))
      throw new PipewrightError(`another daemon answers on ${socketPath}; stop it first`);
    unlinkSync(socketPath);
  }
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  const server = createServer((req, res) => {
    const why = refused(req.socket);
    if (why === undefined) return listener(req, res);
    req.resume();
    refuse(res, why);
  });
  const refused = judgeCallers(server);
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, resolve));
  } finally {
    process.umask(umask);
  }
  return server;
}

/**
 * Serves `drivers` (interface name -> its methods by name) on Docker's plugin socket, and
 * `Pipewright.Calls`: the calls in flight, for a failed test's evidence.
 */
export async function servePlugin(
  socketPath: string,
  drivers: Record<string, Record<string, Handler>>,
  log: RequestLog,
): Promise<Server> {
  const calls: InFlight = new Map();
  const handlers = new Map<string, Handler>([
    ['Plugin.Activate', () => ({ Implements: Object.keys(drivers) })],
    [CALLS, listCalls(calls)],
  ]);
  for (const [iface, methods] of Object.entries(drivers))
    for (const [name, fn] of Object.entries(methods)) handlers.set(`${iface}.${name}`, fn);
  // Whoever can write to the socket creates volumes and leases as root: it is root's alone.
  return listenUnix(
    socketPath,
    (req, res) => void answer(handlers, calls, req, res, log),
    (res, why) => {
      res.writeHead(403, { 'Content-Type': CONTENT_TYPE });
      res.end(JSON.stringify({ Err: `pipewright refuses this caller: ${why}` }));
      log({ method: 'refused', ms: 0, err: why });
    },
  );
}
