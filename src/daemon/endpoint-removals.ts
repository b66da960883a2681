/**
 * Docker endpoint removals under way in the daemon: DeleteEndpoint is answered after the first
 * part (the endpoint's rules gone, its record pending); the rest (the veth's delete, the record)
 * runs after (ops/endpoint.ts). A network's removal and the daemon's stop wait for `settle`.
 */
import type { CoreContext } from '../ops/context.js';
import { beginEndpointRemoval, type EndpointRef } from '../ops/endpoint.js';

/**
 * One removal per endpoint (a replayed delete waits for the same); `report` hears of one that
 * failed: its record stays pending, for gc.
 */
export function endpointRemovals(ctx: CoreContext, report: (err: unknown) => void) {
  const underway = new Map<string, { begun: Promise<unknown>; done: Promise<void> }>();
  return {
    async remove(ref: EndpointRef): Promise<void> {
      const key = `${ref.networkId}/${ref.endpointId}`;
      let removal = underway.get(key);
      if (!removal) {
        const begun = beginEndpointRemoval(ctx, ref);
        const done = begun
          .then((rest) => rest?.())
          .catch(report)
          .finally(() => underway.delete(key));
        underway.set(key, (removal = { begun, done }));
      }
      await removal.begun;
    },
    async settle(): Promise<void> {
      await Promise.all([...underway.values()].map((r) => r.done));
    },
  };
}
