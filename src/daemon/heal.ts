/**
 * The daemon's self-healing: on a kernel change event (an nftables commit, a link or address
 * change in the host's namespace) it waits DEBOUNCE_MS for the burst to end, then checks the
 * firewall and the networks' host links against the store and repairs what drifted
 * (ops/heal.ts). One pass runs at a time; events during a pass make one more pass after it. A
 * periodic pass covers what sends no event (iptables-legacy) and events lost to a full queue.
 */
import type { CoreContext } from '../ops/context.js';
import { healFirewall, healLinks } from '../ops/heal.js';
import { resolveFirewall } from '../ops/firewall-sync.js';
import { watchLinks, watchNftables, type KernelWatch } from '../net/rtnetlink/events.js';
import { describe } from '../util/errors.js';

/** Long enough to take a reload's several commits as one, short against the 1 s a repair may take. */
const DEBOUNCE_MS = 30;
/** A failed pass is tried again after this, doubling up to MAX_RETRY_MS while it keeps failing. */
const RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;
/** Where every change sends an event, the periodic pass is only a safety net. */
const PERIOD_MS = 10_000;
/** Where iptables' changes send none (iptables-legacy as the backend's tool), a repair within about 1 s. */
const PERIOD_NO_EVENTS_MS = 700;
/**
 * After a pass that found nothing to put back, the next waits at least this long: a guest that
 * flaps its own interface (the host end's carrier follows) sends the host link events without
 * end, and each pass reads every host link on the daemon's event loop. A real repair then comes
 * at most the quiet gap later (quietGap: 1 s at most).
 */
export const QUIET_GAP_MS = 250;
/**
 * ...and at least this many times as long as the empty pass took: a check reads the firewall
 * through `nft` and `iptables-save`, whose output grows with other programs' rules (Docker's,
 * thousands beside a fleet of published ports), and every Docker start commits. Checks that find
 * nothing then take at most a tenth of the daemon's time, up to MAX_QUIET_GAP_MS: a pass slowed
 * by a loaded host must not put repairs off for long.
 */
const QUIET_SHARE = 10;
const MAX_QUIET_GAP_MS = 1_000;

/** How long after an empty pass of `passMs` the next may start. */
export const quietGap = (passMs: number): number =>
  Math.min(MAX_QUIET_GAP_MS, Math.max(QUIET_GAP_MS, QUIET_SHARE * passMs));

/** How long to wait before the next pass: the debounce, or what is left of the quiet gap. */
export function nextPassIn(now: number, quietUntil: number): number {
  return Math.max(DEBOUNCE_MS, quietUntil - now);
}

export interface HealEvent {
  /** What drifted and was put back, one line. */
  healed: string;
  /** From the first event of the burst to the repair's end. */
  ms: number;
}

export interface Healer {
  stop(): Promise<void>;
}

type Part = 'firewall' | 'links';

export async function startHealing(
  ctx: CoreContext,
  on: { healed(e: HealEvent): void; failed(err: unknown): void; note(message: string): void },
): Promise<Healer> {
  const due = new Set<Part>();
  let since = 0;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  let failures = 0;
  let quietUntil = 0;

  /** One check and repair; whether it put anything back. */
  const pass = async (parts: Set<Part>, started: number): Promise<boolean> => {
    const report = (healed: string) => on.healed({ healed, ms: Math.round(performance.now() - started) });
    const links = parts.has('links') ? await healLinks(ctx) : [];
    links.forEach(report);
    if (parts.has('firewall') || links.length) {
      const drift = await healFirewall(ctx, links.length > 0);
      if (drift && !links.length) report(`firewall: ${drift}`);
      return links.length > 0 || Boolean(drift);
    }
    return links.length > 0;
  };
  const run = () => {
    timer = undefined;
    if (running) return;
    const parts = new Set(due);
    due.clear();
    const started = performance.now();
    running = pass(parts, since)
      .then(
        (healed) => {
          failures = 0;
          const now = performance.now();
          quietUntil = healed ? 0 : now + quietGap(now - started);
        },
        (err: unknown) => {
          on.failed(err);
          // A write that raced another program's change fails whole (iptables-restore): look again soon.
          parts.forEach((p) => due.add(p));
          failures++;
        },
      )
      .finally(() => {
        running = undefined;
        if (due.size) schedule(failures ? Math.min(RETRY_MS << (failures - 1), MAX_RETRY_MS) : undefined);
      });
  };
  const schedule = (ms = nextPassIn(performance.now(), quietUntil)) => {
    if (!stopped) timer ??= setTimeout(run, ms);
  };
  const trigger = (part: Part) => () => {
    if (!due.size) since = performance.now();
    due.add(part);
    if (!running) schedule();
  };

  const watches: KernelWatch[] = [];
  let eventsFor = { firewall: true, links: true };
  for (const [part, start] of [
    ['firewall', watchNftables],
    ['links', watchLinks],
  ] as const) {
    try {
      watches.push(start(trigger(part)));
    } catch (err) {
      eventsFor = { ...eventsFor, [part]: false };
      on.note(`no ${part} change events (${describe(err)}); checking every ${PERIOD_NO_EVENTS_MS} ms`);
    }
  }
  if (
    resolveFirewall(ctx.firewall) === 'iptables' &&
    !(await (await import('../net/firewall/drift.js')).iptablesSendsEvents())
  ) {
    eventsFor.firewall = false;
    on.note(`iptables-legacy sends no change events; checking the firewall every ${PERIOD_NO_EVENTS_MS} ms`);
  }
  const periodic = setInterval(
    () => {
      trigger('firewall')();
      trigger('links')();
    },
    eventsFor.firewall && eventsFor.links ? PERIOD_MS : PERIOD_NO_EVENTS_MS,
  );
  // A first pass: what drifted while no daemon ran.
  trigger('firewall')();
  trigger('links')();
  return {
    async stop() {
      stopped = true;
      clearInterval(periodic);
      clearTimeout(timer);
      watches.forEach((w) => w.stop());
      await running;
    },
  };
}
