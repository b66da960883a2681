/**
 * Who may use a daemon socket. The plugin and CNI sockets are root's alone (0600), but a root
 * process may be weaker than the daemon that would act for it: its capabilities dropped (setpriv,
 * a container's bounding set), inside a user namespace whose root maps to the host's uid 0
 * (unshare -U -r), in other mount or network namespaces where the paths and links it names mean
 * something else. Such a caller is refused at connection, before a byte of its request is read.
 */
import { closeSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { boundsOf, boundsWhileAlive, weakerThan, type Bounds } from '../net/netns/powers.js';
import { syscalls } from '../util/syscalls.js';

/** The descriptor of an accepted Unix socket (libuv's pipe handle has it; not in Node's typings). */
const fdOf = (socket: Socket) => (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;

/** Why the process that connected `socket` may not be served, or undefined when it may. */
export function refusal(socket: Socket, mine: Bounds): string | undefined {
  const fd = fdOf(socket);
  if (fd < 0) return 'a caller whose socket could not be read';
  let pidfd = -1;
  try {
    const peer = syscalls().peerOf(fd);
    pidfd = peer.pidfd;
    if (peer.uid !== process.geteuid?.()) return `another uid (${peer.uid})`;
    const theirs = boundsWhileAlive(peer.pid, pidfd);
    return theirs ? weakerThan(mine, theirs) : 'a caller that went before it was read';
  } catch (err) {
    return `a caller that could not be read (${(err as Error).message})`;
  } finally {
    if (pidfd >= 0) closeSync(pidfd);
  }
}

/** Judges each connection to `server` once (its peer is fixed at connect); `refused(socket)` is the verdict. */
export function judgeCallers(server: Server): (socket: Socket) => string | undefined {
  const mine = boundsOf('self');
  const verdicts = new WeakMap<Socket, string>();
  server.on('connection', (socket: Socket) => {
    const why = refusal(socket, mine);
    if (why) verdicts.set(socket, why);
  });
  return (socket) => verdicts.get(socket);
}
