/**
 * Docker's volume driver protocol over pipewright's named volumes: `docker volume create -d
 * pipewright --opt size=1G data` is a volume with a hard quota (an ext4 image), `--opt
 * type=tmpfs` a tmpfs, `--opt type=none --opt o=bind --opt device=/path` a bind; the same volumes
 * `pipewright volume ls` lists. Mounts are counted by Docker's mount ID in the store, so a volume
 * in use is never removed and a replayed Mount or Unmount counts once.
 */
import { parseVolumeOpts } from '../storage/spec.js';
import {
  createVolume,
  dataDir,
  ensureBacked,
  getVolume,
  removeVolume,
  type StorageContext,
} from '../storage/volumes.js';
import { addPluginMount, findVolume, listVolumes, removePluginMount } from '../db/volumes.js';
import { str, type Handler } from './server.js';

/** Docker's Opts map in `volume create`'s words: size=16M, type=, o=, device=. */
function optionsOf(opts: unknown) {
  const entries = Object.entries((opts ?? {}) as Record<string, string>);
  return parseVolumeOpts(
    entries.filter(([k]) => k !== 'size').map(([k, v]) => `${k}=${v}`),
    entries.find(([k]) => k === 'size')?.[1],
  );
}

export function volumeDriver(ctx: StorageContext): Record<string, Handler> {
  const mountpoint = (name: string) => dataDir(ctx.store.stateDir, name);
  return {
    Capabilities: () => ({ Capabilities: { Scope: 'local' } }),
    // Docker creates again what it already knows (a replay, `docker volume create` of an existing name).
    Create: async (body) => {
      const name = str(body.Name);
      if (!findVolume(ctx.store, name)) await createVolume(ctx, name, optionsOf(body.Opts));
      return {};
    },
    Remove: async (body) => {
      if (findVolume(ctx.store, str(body.Name))) await removeVolume(ctx, str(body.Name));
      return {};
    },
    Mount: async (body) => {
      const v = getVolume(ctx, str(body.Name));
      await ensureBacked(ctx, v);
      ctx.store.tx(() => addPluginMount(ctx.store, v.name, str(body.ID)));
      return { Mountpoint: mountpoint(v.name) };
    },
    Unmount: (body) => {
      ctx.store.tx(() => removePluginMount(ctx.store, str(body.Name), str(body.ID)));
      return {};
    },
    Path: (body) => ({ Mountpoint: mountpoint(getVolume(ctx, str(body.Name)).name) }),
    Get: (body) => {
      const v = getVolume(ctx, str(body.Name));
      return { Volume: { Name: v.name, Mountpoint: mountpoint(v.name), CreatedAt: v.createdAt, Status: {} } };
    },
    List: () => ({ Volumes: listVolumes(ctx.store).map((v) => ({ Name: v.name, Mountpoint: mountpoint(v.name) })) }),
  };
}
