/**
 * Turns what the user wrote for <guest> into a network namespace to work in, and a stable
 * identity to record it under. Nothing below this module needs to know how a guest was named.
 *
 *   docker:<name|id>  a running container (through the Engine API)
 *   pid:<n> | <n>     the namespace of a process
 *   netns:<name>      a named namespace (/run/netns/<name>)
 *   /abs/path         a namespace file (bind mount or /proc/<pid>/ns/net)
 *   <name>            a container if Docker knows it, else a named netns; both -> ambiguous
 *
 * Records also name guest kinds no user writes: `endpoint`, a Docker endpoint on a pipewright
 * network (ops/endpoint.ts), identified as "<network id>/<endpoint id>"; `cni`, a CNI runtime's
 * container ("<network name>/<container id>"), whose namespace the runtime owns.
 */
import { existsSync, statSync } from 'node:fs';
import { PipewrightError, UsageError } from '../util/errors.js';
import type { GuestKind } from '../model/guest.js';
import { checkObjectName } from '../model/validate.js';
import { holdNetns, liveNetns, processNetns, releaseNetns, type NetnsHandle } from '../net/netns/netns.js';
import { pidStartTime } from '../util/process.js';
import {
  endpointKnown,
  EngineUnreachable,
  inspectContainer,
  inspectKnownContainer,
  type ContainerInfo,
} from './docker.js';

export interface Guest {
  kind: GuestKind;
  /** Stable identity in the store: container ID, "<pid>@<start time>", netns name, or path. */
  id: string;
  /** What an operator calls it (container name, netns name, pid). */
  name: string;
  /** The network namespace file as recorded; an operation opens it once (HeldGuest). */
  netnsPath: string;
  pid?: number;
  /** The process's start time when the guest was resolved: tells it from a later process with its pid. */
  pidStart?: string | null;
}

/** A guest whose namespace one operation holds open: every kernel step goes through `netns.path`. */
export interface HeldGuest extends Guest {
  netns: NetnsHandle;
}

/** The path a kernel step opens: the held fd's during an operation, else the recorded file (a one-off read). */
export const workingNetns = (g: Guest | HeldGuest): string => ('netns' in g ? g.netns.path : g.netnsPath);

/**
 * Runs one operation with the guest's namespace opened once and held, so a pid reused meanwhile
 * cannot send a later step (addresses, routes, a DHCP client) into another namespace. A process's
 * namespace is checked to be still that process's once open. A guest held already is the caller's.
 */
export async function withHeldGuest<T>(guest: Guest | HeldGuest, fn: (g: HeldGuest) => Promise<T>): Promise<T> {
  if ('netns' in guest) return fn(guest);
  let netns: NetnsHandle;
  try {
    netns = holdNetns(guest.netnsPath);
  } catch (err) {
    throw new PipewrightError(
      `the network namespace of ${guest.name} (${guest.netnsPath}) is gone (${(err as NodeJS.ErrnoException).code}); nothing changed`,
    );
  }
  try {
    if (guest.pid !== undefined && pidStartTime(guest.pid) !== guest.pidStart) {
      throw new PipewrightError(
        `${guest.name}: process ${guest.pid} ended as its network namespace was opened (namespace changed); nothing changed`,
      );
    }
    return await fn({ ...guest, netns });
  } finally {
    releaseNetns(netns);
  }
}

export const NETNS_DIR = '/run/netns';

export function guestKey(g: Pick<Guest, 'kind' | 'id'>): string {
  return `${g.kind}:${g.id}`;
}

function pidGuest(text: string): Guest {
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0) throw new UsageError(`"${text}" is not a process ID`);
  const start = pidStartTime(pid);
  if (start === null) throw new PipewrightError(`no process ${pid} runs on this host; check the PID`);
  return { kind: 'pid', id: `${pid}@${start}`, name: String(pid), netnsPath: processNetns(pid), pid, pidStart: start };
}

function netnsGuest(name: string): Guest {
  checkObjectName(name, 'netns name');
  const path = `${NETNS_DIR}/${name}`;
  if (!existsSync(path)) throw new PipewrightError(`no network namespace "${name}" (see 'ip netns list')`);
  return { kind: 'netns', id: name, name, netnsPath: path };
}

function pathGuest(path: string): Guest {
  if (!existsSync(path) || !statSync(path).isFile()) {
    throw new PipewrightError(`"${path}" is not a network namespace file`);
  }
  return { kind: 'path', id: path, name: path, netnsPath: path };
}

/** A running container as a guest: its identity is the container ID, its namespaces its init process's. */
export function containerGuest(c: ContainerInfo): Guest {
  return {
    kind: 'docker',
    id: c.id,
    name: c.name,
    netnsPath: processNetns(c.pid),
    pid: c.pid,
    pidStart: pidStartTime(c.pid),
  };
}

async function dockerGuest(ref: string, docker: string): Promise<Guest | null> {
  const c = await inspectContainer(ref, docker);
  if (!c) return null;
  if (!c.running || c.pid <= 0) {
    throw new PipewrightError(`container "${ref}" is not running; start it first (docker start ${ref})`);
  }
  return containerGuest(c);
}

/**
 * A bare name asks Docker first; an engine that does not answer (stopped, a stale socket left by
 * kill -9) runs no container, so a named netns of that name is the guest. Without such a netns the
 * unreachable engine is the error worth reporting.
 */
async function bareNameContainer(spec: string, docker: string, hasNetns: boolean): Promise<Guest | null> {
  try {
    return await dockerGuest(spec, docker);
  } catch (err) {
    if (hasNetns && err instanceof EngineUnreachable) return null;
    throw err;
  }
}

/** `docker` is the Engine API's socket path (the front end reads DOCKER_HOST). */
export async function resolveGuest(spec: string, docker: string): Promise<Guest> {
  if (spec.startsWith('docker:')) {
    const ref = spec.slice('docker:'.length);
    const g = await dockerGuest(ref, docker);
    if (!g) throw new PipewrightError(`Docker knows no container "${ref}" (see 'docker ps')`);
    return g;
  }
  if (spec.startsWith('pid:')) return pidGuest(spec.slice(4));
  if (/^\d+$/.test(spec)) return pidGuest(spec);
  if (spec.startsWith('netns:')) return netnsGuest(spec.slice('netns:'.length));
  if (spec.startsWith('/')) return pathGuest(spec);
  if (!spec) throw new UsageError('a guest is required (docker:<name>, pid:<n>, netns:<name> or a path)');
  const hasNetns = existsSync(`${NETNS_DIR}/${spec}`);
  const container = await bareNameContainer(spec, docker, hasNetns);
  if (container && hasNetns) {
    throw new UsageError(
      `"${spec}" is both a Docker container and a named netns; write docker:${spec} or netns:${spec}`,
    );
  }
  if (container) return container;
  if (hasNetns) return netnsGuest(spec);
  throw new PipewrightError(`no Docker container or network namespace is named "${spec}"`);
}

/** A guest as a record names it: its kind and identity, and the namespace it was in. */
export interface RecordedGuest {
  guestKind: GuestKind;
  guestId: string;
  netnsPath: string;
  netnsId: string | null;
}

/**
 * Whether the recorded guest still exists (for ls/inspect and gc). A namespace file counts only
 * while it is the recorded namespace: after a reboot /proc/<pid>/ns/net names whatever process
 * has that pid now, and a recreated netns:X is another namespace. A stopped container still
 * exists: watch puts its interfaces back when it starts; only a removed one is gone.
 */
export async function guestAlive(rec: RecordedGuest, docker: string): Promise<boolean> {
  const id = rec.guestId;
  switch (rec.guestKind) {
    case 'cni':
      // The runtime removes the namespace with the container (DEL may never come: gc's case).
      return liveNetns(rec.netnsPath, rec.netnsId) !== null;
    case 'docker':
      return (await inspectKnownContainer(id, docker)) !== null;
    case 'pid': {
      const [pid, start] = id.split('@');
      return pidStartTime(Number(pid)) === start;
    }
    case 'netns':
      return liveNetns(`${NETNS_DIR}/${id}`, rec.netnsId) !== null;
    case 'path':
      return liveNetns(id, rec.netnsId) !== null;
    case 'endpoint': {
      const [network, endpoint] = id.split('/');
      return endpointKnown(network, endpoint, docker);
    }
  }
}
