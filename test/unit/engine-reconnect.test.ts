/**
 * The daemon waits for the Docker engine after a host reset by reconnecting with one AbortSignal
 * for its whole life: every reconnect must leave that signal's abort listeners as they were, or
 * Node warns (MaxListenersExceededWarning, seen on a reset farm host) and the listeners pile up.
 * A real unix socket plays the engine: refusing (a socket file with no listener) or answering
 * each event stream with its end (an engine that restarts), 100 times.
 */
import t, { type Test } from 'tap';
import { getEventListeners, once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { watch } from '../../src/lifecycle/watch.js';
import { followContainerEvents } from '../../src/runtime/docker.js';
import type { CoreContext } from '../../src/ops/context.js';

const RECONNECTS = 100;

const aborts = (signal: AbortSignal) => getEventListeners(signal, 'abort').length;
/** The distinct listener counts seen, lowest and highest (one value when flat). */
const flat = (counts: number[]) => [...new Set([Math.min(...counts), Math.max(...counts)])];

/** Node's warning for a signal with more than 10 listeners, as the reset host printed it. */
function leakWarnings(t: Test): string[] {
  const seen: string[] = [];
  const onWarning = (w: Error) => w.name === 'MaxListenersExceededWarning' && seen.push(w.message);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  return seen;
}

/** A socket path short enough for sun_path (a testdir's is not), removed at the end. */
function socketPath(t: Test): string {
  const dir = mkdtempSync('/tmp/pw-engine-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'docker.sock');
}

async function listen(server: Server, path: string): Promise<void> {
  server.listen(path);
  await once(server, 'listening');
}

/** A socket file left by an engine killed with SIGKILL: there, and every connect refused. */
async function leftSocket(path: string): Promise<void> {
  const engine = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)})`]);
  while (!existsSync(path)) await sleep(10);
  engine.kill('SIGKILL');
  await once(engine, 'exit');
}

t.test('watch waiting for an engine that refuses: 100 retries add no abort listener', async (t) => {
  const socket = socketPath(t);
  // As after a reset, before dockerd is up again.
  await leftSocket(socket);
  const warnings = leakWarnings(t);
  const abort = new AbortController();
  const before = aborts(abort.signal);
  const counts: number[] = [];
  // Only the engine's socket is read until the engine answers: nothing else of a context is touched.
  const ctx = { docker: socket } as CoreContext;
  await watch(ctx, {
    signal: abort.signal,
    maxBackoffMs: 1,
    onEvent: (e) => {
      if (!/not reachable/.test(e.message)) return;
      counts.push(aborts(abort.signal));
      if (counts.length === RECONNECTS) abort.abort();
    },
  });
  t.equal(counts.length, RECONNECTS, `${RECONNECTS} refused connects`);
  t.same(flat(counts), [before], `the signal's abort listeners stayed at ${before}`);
  t.same(warnings, [], 'and Node did not warn of a leak');
});

t.test(
  'an event stream the engine ends, followed 100 times on one signal, every other one refused: no listener left',
  async (t) => {
    const socket = socketPath(t);
    // An engine that ends each event stream at once (as when it restarts), or refuses every other one.
    let served = 0;
    const engine = createServer((conn) => {
      const answer = served++ % 2 ? '500 Internal Server Error' : '200 OK';
      conn.once('data', () =>
        conn.end(`HTTP/1.1 ${answer}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n`),
      );
    });
    await listen(engine, socket);
    t.teardown(() => new Promise((resolve) => engine.close(resolve)));
    const warnings = leakWarnings(t);
    const abort = new AbortController();
    const before = aborts(abort.signal);
    const counts: number[] = [];
    const outcomes = { ended: 0, refused: 0, other: [] as string[] };
    for (let i = 0; i < RECONNECTS; i++) {
      await followContainerEvents(socket, () => {}, abort.signal).then(
        () => outcomes.ended++,
        (e: Error) => (/answered 500/.test(e.message) ? outcomes.refused++ : outcomes.other.push(e.message)),
      );
      counts.push(aborts(abort.signal));
    }
    t.same(outcomes, { ended: RECONNECTS / 2, refused: RECONNECTS / 2, other: [] }, 'half ended, half refused');
    t.same(flat(counts), [before], `the signal's abort listeners stayed at ${before}`);
    t.same(warnings, [], 'and Node did not warn of a leak');
  },
);
