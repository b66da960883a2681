/**
 * The Docker Engine API over its unix socket with Node's own http client: a host tool needs
 * inspect (and later events/create), not dockerode's remote transports and their native builds.
 */
import type * as Http from 'node:http';
import { existsSync } from 'node:fs';
import { addressOf } from '../model/address.js';
import { loadBuiltin } from '../util/builtin.js';
import { PipewrightError } from '../util/errors.js';

const API = '/v1.41';

export interface ContainerInfo {
  id: string;
  name: string;
  pid: number;
  running: boolean;
  networkMode: string;
}

/** The parts of the engine's container JSON pipewright reads. */
interface ContainerJson {
  Id: string;
  Name?: string;
  State?: { Pid?: number; Running?: boolean };
  HostConfig?: { NetworkMode?: string };
}

interface HttpAnswer {
  status: number;
  body: string;
}

/**
 * node:http on first use: a command that never asks Docker does not load it, and the CLI's
 * startup snapshot (which cannot hold node:http) can hold this module.
 */
function httpClient(): typeof Http {
  return loadBuiltin<typeof Http>('node:http');
}

function request(method: string, path: string, socketPath: string): Promise<HttpAnswer> {
  const http = httpClient();
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: API + path, method, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('Docker API did not answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}

/** No engine answers on the socket (it is stopped, or the socket file is left from one killed). */
export class EngineUnreachable extends PipewrightError {
  constructor(socketPath: string, cause: Error) {
    super(`cannot reach the Docker engine at ${socketPath}: ${cause.message}`);
  }
}

/** True when a Docker engine answers on the socket. */
export async function dockerAvailable(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return false;
  try {
    return (await request('GET', '/_ping', socketPath)).status === 200;
  } catch {
    return false;
  }
}

/** The engine's JSON answer to a GET, or null when it knows no such object (404); `what` names it in errors. */
async function getJson<T>(path: string, what: string, socketPath: string): Promise<T | null> {
  let answer: HttpAnswer;
  try {
    answer = await request('GET', path, socketPath);
  } catch (err) {
    throw new EngineUnreachable(socketPath, err as Error);
  }
  if (answer.status === 404) return null;
  if (answer.status !== 200)
    throw new PipewrightError(`Docker engine answered ${answer.status} for ${what}: ${answer.body.trim()}`);
  return JSON.parse(answer.body) as T;
}

/** One container's or network's JSON, or null when the engine knows none. */
function inspect<T>(what: 'containers' | 'networks', ref: string, socketPath: string): Promise<T | null> {
  const path = `/${what}/${encodeURIComponent(ref)}${what === 'containers' ? '/json' : ''}`;
  return getJson<T>(path, `${what.slice(0, -1)} "${ref}"`, socketPath);
}

/** The container, or null when Docker does not know it (or no engine runs). */
export async function inspectContainer(ref: string, socketPath: string): Promise<ContainerInfo | null> {
  if (!existsSync(socketPath)) return null;
  const c = await inspect<ContainerJson>('containers', ref, socketPath);
  if (!c) return null;
  return {
    id: c.Id,
    name: String(c.Name ?? '').replace(/^\//, ''),
    pid: c.State?.Pid ?? 0,
    running: Boolean(c.State?.Running),
    networkMode: c.HostConfig?.NetworkMode ?? '',
  };
}

/**
 * For decisions that take "not found" as "removed" (gc, watch, status): the engine itself must
 * answer, or the caller stops with this error instead of tearing down every container's plumbing.
 */
export async function inspectKnownContainer(ref: string, socketPath: string): Promise<ContainerInfo | null> {
  if (!existsSync(socketPath)) {
    throw new PipewrightError(
      `the Docker engine's socket ${socketPath} is missing, so whether container ${ref.slice(0, 12)} still exists is unknown; start Docker (or set DOCKER_HOST) and retry`,
    );
  }
  return inspectContainer(ref, socketPath);
}

/**
 * Whether Docker still has an endpoint on a network: joined ones are listed under their
 * container, others as "ep-<id>". An engine that does not answer is an error, never "gone".
 */
export async function endpointKnown(networkId: string, endpointId: string, socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath))
    throw new PipewrightError(
      `the Docker engine's socket ${socketPath} is missing; start Docker (or set DOCKER_HOST) and retry`,
    );
  const net = await inspect<{ Containers?: Record<string, { EndpointID?: string }> }>(
    'networks',
    networkId,
    socketPath,
  );
  const containers = Object.entries(net?.Containers ?? {});
  return containers.some(([key, c]) => key === `ep-${endpointId}` || c.EndpointID === endpointId);
}

/** The IDs of every network the engine has; an engine that does not answer is an error, never "none". */
export async function dockerNetworkIds(socketPath: string): Promise<string[]> {
  // No list at all (404) is no answer, not "no networks": gc would undo everything on them.
  const networks = await getJson<{ Id: string }[]>('/networks', 'its networks', socketPath);
  if (!networks) throw new PipewrightError('Docker engine answered 404 for its networks');
  return networks.map((n) => n.Id);
}

/**
 * The addresses Docker's endpoints hold on every network it has (for leases its IPAM driver was
 * never told to release).
 */
export async function dockerEndpointAddresses(socketPath: string): Promise<Set<string>> {
  const out = new Set<string>();
  type Endpoints = { Containers?: Record<string, { IPv4Address?: string; IPv6Address?: string }> };
  for (const Id of await dockerNetworkIds(socketPath)) {
    const net = await inspect<Endpoints>('networks', Id, socketPath);
    for (const c of Object.values(net?.Containers ?? {})) {
      for (const a of [c.IPv4Address, c.IPv6Address]) if (a) out.add(addressOf(a));
    }
  }
  return out;
}

export interface ContainerEvent {
  /** start, die, destroy, ... */
  action: string;
  id: string;
  name: string;
}

/**
 * Follows the engine's container events until the connection ends (engine restart) or the
 * signal aborts; resolves then. The caller reconnects. It settles only once the request has
 * closed: by then Node has taken the request's abort listener off the signal, which the caller
 * keeps for all its reconnects.
 */
export function followContainerEvents(
  socketPath: string,
  onEvent: (e: ContainerEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const filters = encodeURIComponent(JSON.stringify({ type: ['container'], event: ['start', 'destroy'] }));
  const http = httpClient();
  return new Promise((resolve, reject) => {
    let failed: Error | undefined;
    const req = http.request({ socketPath, path: `${API}/events?filters=${filters}`, method: 'GET', signal }, (res) => {
      if (res.statusCode !== 200) {
        failed = new PipewrightError(`Docker events answered ${res.statusCode}`);
        res.resume(); // read to its end, so that the request closes
        return;
      }
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let ev: {
            Action?: string;
            status?: string;
            id?: string;
            Actor?: { ID?: string; Attributes?: { name?: string } };
          };
          try {
            ev = JSON.parse(line);
          } catch {
            continue; // not an event: nothing to act on
          }
          onEvent({
            action: ev.Action ?? ev.status ?? '',
            id: ev.Actor?.ID ?? ev.id ?? '',
            name: ev.Actor?.Attributes?.name ?? '',
          });
        }
      });
      res.on('error', () => {}); // a stream cut short: the request's close follows
    });
    req.on('error', (err) => {
      if (!signal.aborted) failed ??= err;
    });
    req.on('close', () => (failed ? reject(failed) : resolve()));
    req.end();
  });
}
