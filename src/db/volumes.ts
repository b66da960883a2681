/** Volume and mount records. */
import type { Store } from './store.js';

export interface VolumeRecord {
  name: string;
  labels: Record<string, string>;
  options: Record<string, string>;
  createdAt: string;
}

export interface MountRecord {
  id: number;
  volume: string | null;
  hostPath: string;
  guestKind: string;
  guestId: string;
  guestName: string;
  target: string;
  readonly: boolean;
  /** A bind's host object at the first mount, "<dev>:<ino>"; null for volumes and older records. */
  sourceId: string | null;
  createdAt: string;
}

interface VolumeRow {
  name: string;
  labels: string;
  options: string;
  created_at: string;
}
interface MountRow {
  id: number;
  volume: string | null;
  host_path: string;
  guest_kind: string;
  guest_id: string;
  guest_name: string;
  target: string;
  readonly: number;
  source_id: string | null;
  created_at: string;
}

const toVolume = (r: VolumeRow): VolumeRecord => ({
  name: r.name,
  labels: JSON.parse(r.labels),
  options: JSON.parse(r.options),
  createdAt: r.created_at,
});
const toMount = (r: MountRow): MountRecord => ({
  id: r.id,
  volume: r.volume,
  hostPath: r.host_path,
  guestKind: r.guest_kind,
  guestId: r.guest_id,
  guestName: r.guest_name,
  target: r.target,
  readonly: r.readonly === 1,
  sourceId: r.source_id,
  createdAt: r.created_at,
});

export function insertVolume(store: Store, v: VolumeRecord): void {
  store.db
    .prepare('INSERT INTO volumes (name, labels, options, created_at) VALUES (?, ?, ?, ?)')
    .run(v.name, JSON.stringify(v.labels), JSON.stringify(v.options), v.createdAt);
}

export function findVolume(store: Store, name: string): VolumeRecord | null {
  const row = store.stmt('SELECT * FROM volumes WHERE name = ?').get(name) as VolumeRow | undefined;
  return row ? toVolume(row) : null;
}

export function listVolumes(store: Store): VolumeRecord[] {
  return (store.stmt('SELECT * FROM volumes ORDER BY name').all() as VolumeRow[]).map(toVolume);
}

export function updateVolumeLabels(store: Store, name: string, labels: Record<string, string>): void {
  store.stmt('UPDATE volumes SET labels = ? WHERE name = ?').run(JSON.stringify(labels), name);
}

export function deleteVolume(store: Store, name: string): void {
  store.stmt('DELETE FROM volumes WHERE name = ?').run(name);
}

export function insertMount(
  store: Store,
  m: Omit<MountRecord, 'id' | 'createdAt' | 'sourceId'> & { sourceId?: string | null },
): number {
  return Number(
    store.db
      .prepare(
        `INSERT INTO mounts (volume, host_path, guest_kind, guest_id, guest_name, target, readonly, source_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        m.volume,
        m.hostPath,
        m.guestKind,
        m.guestId,
        m.guestName,
        m.target,
        m.readonly ? 1 : 0,
        m.sourceId ?? null,
        new Date().toISOString(),
      ).lastInsertRowid,
  );
}

/** Records the host object a bind was first mounted from (the helper reports it once mounted). */
export function setMountSource(store: Store, id: number, sourceId: string): void {
  store.stmt('UPDATE mounts SET source_id = ? WHERE id = ?').run(sourceId, id);
}

export function listMounts(
  store: Store,
  filter: { volume?: string; guestKind?: string; guestId?: string } = {},
): MountRecord[] {
  const rows = store.db
    .prepare(
      `SELECT * FROM mounts WHERE (@volume IS NULL OR volume = @volume) AND (@kind IS NULL OR guest_kind = @kind)
       AND (@id IS NULL OR guest_id = @id) ORDER BY id`,
    )
    .all({ volume: filter.volume ?? null, kind: filter.guestKind ?? null, id: filter.guestId ?? null }) as MountRow[];
  return rows.map(toMount);
}

export function deleteMount(store: Store, id: number): void {
  store.stmt('DELETE FROM mounts WHERE id = ?').run(id);
}

/** Forgets every mount of a guest (it was removed: its mount namespace went with it). */
export function deleteMountsOf(store: Store, guestKind: string, guestId: string): void {
  store.stmt('DELETE FROM mounts WHERE guest_kind = ? AND guest_id = ?').run(guestKind, guestId);
}

/** A Docker mount of a volume through the plugin (its Mount request ID); the same ID again is one mount. */
export function addPluginMount(store: Store, volume: string, mountId: string): void {
  store
    .stmt('INSERT OR IGNORE INTO plugin_mounts (volume, mount_id, created_at) VALUES (?, ?, ?)')
    .run(volume, mountId, new Date().toISOString());
}

export function removePluginMount(store: Store, volume: string, mountId: string): void {
  store.stmt('DELETE FROM plugin_mounts WHERE volume = ? AND mount_id = ?').run(volume, mountId);
}

export function pluginMounts(store: Store, volume: string): string[] {
  return (
    store.stmt('SELECT mount_id FROM plugin_mounts WHERE volume = ? ORDER BY created_at').all(volume) as {
      mount_id: string;
    }[]
  ).map((r) => r.mount_id);
}
