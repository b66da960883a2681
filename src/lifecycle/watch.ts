/**
 * watch: a foreground daemon that keeps Docker containers plumbed as recorded. It reconciles every
 * known container at startup (restarts and removals that happened while it was down), then
 * follows the engine's container events; when the engine goes away it reconnects with backoff
 * and reconciles again (events may have been missed), and syncs the firewall (an engine that
 * started after pipewright may have set FORWARD to DROP before pipewright's accepts were hooked).
 * It keeps no state of its own in memory: killing and restarting it loses nothing.
 */
import type { CoreContext } from '../ops/context.js';
import { syncFirewall } from '../ops/firewall-sync.js';
import { describe } from '../util/errors.js';
import { dockerAvailable, followContainerEvents, type ContainerEvent } from '../runtime/docker.js';
import { knownContainers, reconcileContainer, type ReconcileReport } from './reconcile.js';

export interface WatchEvent {
  event: 'reconcile' | 'engine' | 'container';
  message: string;
  report?: ReconcileReport;
}

export interface WatchOptions {
  signal: AbortSignal;
  onEvent: (e: WatchEvent) => void;
  maxBackoffMs?: number;
}

async function reconcileAll(ctx: CoreContext, opts: WatchOptions): Promise<void> {
  for (const id of knownContainers(ctx)) {
    const report = await reconcileContainer(ctx, id);
    if (report.action !== 'unchanged')
      opts.onEvent({ event: 'reconcile', message: `${report.name}: ${report.action} (${report.detail})`, report });
  }
}

/**
 * Events are handled one at a time, in order: a restart's "start" never races its own "destroy".
 * A job that fails is reported and the queue goes on (a rejection must not end the daemon);
 * `idle` resolves once every queued job is done (shutdown waits for it before the store closes).
 */
function serialQueue(onError: (err: unknown) => void) {
  let tail = Promise.resolve();
  return {
    enqueue(job: () => Promise<void>): void {
      tail = tail.then(job).catch(onError);
    },
    idle: () => tail,
  };
}

export async function watch(ctx: CoreContext, opts: WatchOptions): Promise<void> {
  const { enqueue, idle } = serialQueue((err) =>
    opts.onEvent({ event: 'engine', message: `failed: ${describe(err)}` }),
  );
  try {
    await follow(ctx, opts, enqueue);
  } finally {
    await idle();
  }
}

/** Connects, reconciles and follows the engine's events until the signal aborts; reconnects with backoff. */
async function follow(
  ctx: CoreContext,
  opts: WatchOptions,
  enqueue: (job: () => Promise<void>) => void,
): Promise<void> {
  const maxBackoff = opts.maxBackoffMs ?? 10_000;
  let backoff = 250;
  while (!opts.signal.aborted) {
    if (!(await dockerAvailable(ctx.docker))) {
      opts.onEvent({ event: 'engine', message: `Docker engine not reachable; retrying in ${backoff} ms` });
      await sleep(backoff, opts.signal);
      backoff = Math.min(backoff * 2, maxBackoff);
      continue;
    }
    backoff = 250;
    opts.onEvent({ event: 'engine', message: 'connected to the Docker engine' });
    // Everything an event leads to runs in the queue, the store read included: nothing can throw out of the stream.
    const onContainer = (e: ContainerEvent) =>
      enqueue(async () => {
        if (!knownContainers(ctx).includes(e.id)) return;
        const report = await reconcileContainer(ctx, e.id);
        opts.onEvent({
          event: 'container',
          message: `${e.action} ${report.name}: ${report.action} (${report.detail})`,
          report,
        });
      });
    const following = followContainerEvents(ctx.docker, onContainer, opts.signal).catch((err) => {
      opts.onEvent({ event: 'engine', message: `event stream failed: ${(err as Error).message}` });
    });
    enqueue(() => reconcileAll(ctx, opts));
    // An engine that (re)started may have reset FORWARD (Docker sets DROP): bring our rules back.
    enqueue(async () => {
      const rules = await syncFirewall(ctx.store, { firewall: ctx.firewall, log: ctx.log });
      opts.onEvent({ event: 'engine', message: `firewall in sync (${rules.length} rules)` });
    });
    await following;
    if (!opts.signal.aborted) opts.onEvent({ event: 'engine', message: 'lost the Docker engine; reconnecting' });
  }
}

/** Resolves after `ms` or at abort; either way the signal keeps no listener of it (it lives as long as the daemon). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
