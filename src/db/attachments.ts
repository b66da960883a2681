/**
 * Attachment records: what was plumbed into which guest, read and written only through here. A
 * record is the resolved plan's link fields (kind, host link, MAC, MTU), the spec it was made
 * from, and the guest it went into.
 */
import type { AttachSpec, LinkKind } from '../model/attachment.js';
import type { GuestKind } from '../model/guest.js';
import type { Store } from './store.js';
import { pidStartTime, sameProcess, type ProcessRef } from '../util/process.js';
import { currentOperation, operationInFlight } from '../util/operation.js';
import { PipewrightError } from '../util/errors.js';

export interface AttachmentRecord {
  id: number;
  guestKind: GuestKind;
  guestId: string;
  guestName: string;
  netnsPath: string;
  /** The namespace's identity when recorded ("<dev>:<ino>"); null for records of older versions. */
  netnsId: string | null;
  ifname: string;
  kind: LinkKind;
  hostIf: string;
  hostLink: string | null;
  mac: string;
  mtu: number;
  spec: AttachSpec;
  dhcpPid: number | null;
  /** The DHCP client's start time, which tells it from a later process with the same pid. */
  dhcpStart: string | null;
  state: 'pending' | 'ready';
  ownerPid: number;
  /** The owner's start time, which tells it from a later process with the same pid. */
  ownerStart: string | null;
  /** The operation that owns a pending record: one process (the daemon) runs many at once. */
  ownerOp: string | null;
  /** The guest link's ifindex when it was made (a moved NIC's own index); null for older records. */
  linkIndex: number | null;
  /** A moved NIC's permanent MAC (IFLA_PERM_ADDRESS), which no guest can change; null otherwise. */
  linkPerm: string | null;
  /** A veth's host end's ifindex when it was made; null for other kinds and older records. */
  hostIndex: number | null;
  /** The ifb shaping the guest's egress: its name (recorded before it is made) and ifindex; null without. */
  ifbName: string | null;
  ifbIndex: number | null;
  createdAt: string;
}

interface Row {
  id: number;
  guest_kind: GuestKind;
  guest_id: string;
  guest_name: string;
  netns_path: string;
  netns_id: string | null;
  ifname: string;
  kind: LinkKind;
  host_if: string;
  host_link: string | null;
  mac: string;
  mtu: number;
  spec: string;
  dhcp_pid: number | null;
  dhcp_start: string | null;
  state: 'pending' | 'ready';
  owner_pid: number;
  owner_start: string | null;
  owner_op: string | null;
  link_index: number | null;
  link_perm: string | null;
  host_index: number | null;
  ifb_name: string | null;
  ifb_index: number | null;
  created_at: string;
}

function fromRow(r: Row): AttachmentRecord {
  return {
    id: r.id,
    guestKind: r.guest_kind,
    guestId: r.guest_id,
    guestName: r.guest_name,
    netnsPath: r.netns_path,
    netnsId: r.netns_id,
    ifname: r.ifname,
    kind: r.kind,
    hostIf: r.host_if,
    hostLink: r.host_link,
    mac: r.mac,
    mtu: r.mtu,
    spec: JSON.parse(r.spec) as AttachSpec,
    dhcpPid: r.dhcp_pid,
    dhcpStart: r.dhcp_start,
    state: r.state,
    ownerPid: r.owner_pid,
    ownerStart: r.owner_start,
    ownerOp: r.owner_op,
    linkIndex: r.link_index,
    linkPerm: r.link_perm,
    ifbName: r.ifb_name ?? null,
    ifbIndex: r.ifb_index ?? null,
    hostIndex: r.host_index ?? null,
    createdAt: r.created_at,
  };
}

export function findAttachment(
  store: Store,
  guestKind: GuestKind,
  guestId: string,
  ifname: string,
): AttachmentRecord | null {
  const row = store
    .stmt('SELECT * FROM attachments WHERE guest_kind = ? AND guest_id = ? AND ifname = ?')
    .get(guestKind, guestId, ifname) as Row | undefined;
  return row ? fromRow(row) : null;
}

/** A record as it is now (a caller's copy may be stale), or null once it is gone. */
export function attachmentById(store: Store, id: number): AttachmentRecord | null {
  const row = store.stmt('SELECT * FROM attachments WHERE id = ?').get(id) as Row | undefined;
  return row ? fromRow(row) : null;
}

/** The record of a guest interface that this process just wrote; gone means another process removed it meanwhile. */
export function expectAttachment(
  store: Store,
  guestKind: GuestKind,
  guestId: string,
  ifname: string,
  guestName: string,
): AttachmentRecord {
  const rec = findAttachment(store, guestKind, guestId, ifname);
  if (!rec)
    throw new PipewrightError(
      `${guestName} ${ifname} was detached by another pipewright meanwhile; nothing is left of this attach`,
    );
  return rec;
}

export function listAttachments(store: Store, guest?: { kind: GuestKind; id: string }): AttachmentRecord[] {
  const rows = guest
    ? store
        .stmt('SELECT * FROM attachments WHERE guest_kind = ? AND guest_id = ? ORDER BY id')
        .all(guest.kind, guest.id)
    : store.stmt('SELECT * FROM attachments ORDER BY id').all();
  return (rows as Row[]).map(fromRow);
}

export type NewAttachment = Omit<
  AttachmentRecord,
  | 'id'
  | 'state'
  | 'createdAt'
  | 'dhcpPid'
  | 'dhcpStart'
  | 'ownerPid'
  | 'ownerStart'
  | 'ownerOp'
  | 'linkIndex'
  | 'linkPerm'
  | 'hostIndex'
  | 'ifbName'
  | 'ifbIndex'
>;

/** The record's owner is always the operation writing it: its process's pid and start time, and its id. */
const self = () => [process.pid, pidStartTime(process.pid), currentOperation()] as const;

/** Records the intent before the host is touched. */
/**
 * The pending record an attach starts with. One record per guest interface: two processes that
 * attach the same one at once both found none, and the second learns here that it lost the race.
 */
export function insertPending(store: Store, a: NewAttachment): number {
  try {
    return insertRow(store, a);
  } catch (err) {
    if (
      (err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' &&
      /attachments\.guest_kind/.test((err as Error).message)
    ) {
      throw new PipewrightError(
        `another pipewright process is attaching ${a.ifname} of ${a.guestName} right now; nothing changed, run the command again once it is done`,
      );
    }
    throw err;
  }
}

function insertRow(store: Store, a: NewAttachment): number {
  const info = store.db
    .prepare(
      `INSERT INTO attachments (guest_kind, guest_id, guest_name, netns_path, netns_id, ifname, kind, host_if, host_link,
         mac, mtu, spec, state, owner_pid, owner_start, owner_op, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)`,
    )
    .run(
      a.guestKind,
      a.guestId,
      a.guestName,
      a.netnsPath,
      a.netnsId,
      a.ifname,
      a.kind,
      a.hostIf,
      a.hostLink,
      a.mac,
      a.mtu,
      JSON.stringify(a.spec),
      ...self(),
      new Date().toISOString(),
    );
  return Number(info.lastInsertRowid);
}

export function markReady(store: Store, id: number, dhcp: ProcessRef | null): void {
  store
    .stmt(`UPDATE attachments SET state = 'ready', dhcp_pid = ?, dhcp_start = ? WHERE id = ?`)
    .run(dhcp?.pid ?? null, dhcp?.start ?? null, id);
}

/** Back to pending, owned by this operation (an attach's rollback): gc finishes it if this process dies. */
export function markPending(store: Store, id: number): void {
  store
    .stmt(`UPDATE attachments SET state = 'pending', owner_pid = ?, owner_start = ?, owner_op = ? WHERE id = ?`)
    .run(...self(), id);
}

type Ownership = Pick<AttachmentRecord, 'id' | 'state' | 'ownerPid' | 'ownerStart' | 'ownerOp'>;

/**
 * The record made pending and this operation's (a detach or restore under way), if it is still as
 * `seen` (state and owner): compare-and-set, so of two processes acting on one record from what
 * each read, one takes it and the other learns that it changed. False when it changed or went.
 */
export function takeOver(store: Store, seen: Ownership): boolean {
  const res = store
    .stmt(
      `UPDATE attachments SET state = 'pending', owner_pid = ?, owner_start = ?, owner_op = ?
       WHERE id = ? AND state = ? AND owner_pid = ? AND owner_start IS ? AND owner_op IS ?`,
    )
    .run(...self(), seen.id, seen.state, seen.ownerPid, seen.ownerStart, seen.ownerOp);
  return res.changes === 1;
}

/** Whether the record's owner still runs: the same pid with the same start time (a pid alone for older records). */
export function ownerAlive(rec: Pick<AttachmentRecord, 'ownerPid' | 'ownerStart'>): boolean {
  return sameProcess({ pid: rec.ownerPid, start: rec.ownerStart });
}

/**
 * Whether a pending record is another operation's that may still be at work: one of another live
 * process, or one of this process still in flight. This process's ended operations left it behind
 * (a rollback that failed), as did dead processes.
 */
export function ownerBusy(rec: Pick<AttachmentRecord, 'ownerPid' | 'ownerStart' | 'ownerOp'>): boolean {
  if (!ownerAlive(rec)) return false;
  if (rec.ownerPid !== process.pid) return true;
  return rec.ownerOp !== null && rec.ownerOp !== currentOperation() && operationInFlight(rec.ownerOp);
}

export function setDhcpClient(store: Store, id: number, client: ProcessRef): void {
  store.stmt('UPDATE attachments SET dhcp_pid = ?, dhcp_start = ? WHERE id = ?').run(client.pid, client.start, id);
}

/** The record's DHCP client as recorded (pid and start time), or null. */
export function dhcpClientOf(rec: Pick<AttachmentRecord, 'dhcpPid' | 'dhcpStart'>): ProcessRef | null {
  return rec.dhcpPid ? { pid: rec.dhcpPid, start: rec.dhcpStart } : null;
}

/** After a restore: the guest's new namespace (and name, and DHCP client). */
export function moveToNetns(
  store: Store,
  id: number,
  netns: { path: string; id: string | null },
  guestName: string,
  dhcp: ProcessRef | null,
): void {
  store.db
    .prepare(
      'UPDATE attachments SET netns_path = ?, netns_id = ?, guest_name = ?, dhcp_pid = ?, dhcp_start = ? WHERE id = ?',
    )
    .run(netns.path, netns.id, guestName, dhcp?.pid ?? null, dhcp?.start ?? null, id);
}

/** The ifb of an attachment: its name before it is made, then its index too; nulls when it is gone. */
export function setIfb(store: Store, id: number, name: string | null, index: number | null): void {
  store.stmt('UPDATE attachments SET ifb_name = ?, ifb_index = ? WHERE id = ?').run(name, index, id);
}

/** A spec changed in place (its metric or rates, tuneAttachment). */
export function setSpec(store: Store, id: number, spec: AttachSpec): void {
  store.stmt('UPDATE attachments SET spec = ? WHERE id = ?').run(JSON.stringify(spec), id);
}

export function deleteAttachment(store: Store, id: number): void {
  store.stmt('DELETE FROM attachments WHERE id = ?').run(id);
}

/** How many attachments hang off a bridge or parent (the last one out removes shared pieces). */
export function countOnHostIf(store: Store, hostIf: string): number {
  return (store.stmt('SELECT count(*) AS n FROM attachments WHERE host_if = ?').get(hostIf) as { n: number }).n;
}

/**
 * Attachments on a bridge or parent other than this operation's own unfinished one (a rollback's,
 * a detach's). Another operation's, in this process too, counts: it is using the link or about to.
 */
export function othersOnHostIf(store: Store, hostIf: string): number {
  const [pid, start, op] = self();
  const mine = `state = 'pending' AND owner_pid = ? AND owner_start IS ? AND owner_op IS ?`;
  return (
    store
      .stmt(`SELECT count(*) AS n FROM attachments WHERE host_if = ? AND NOT (${mine})`)
      .get(hostIf, pid, start, op) as { n: number }
  ).n;
}

export function hostLinkTaken(store: Store, name: string): boolean {
  return store.stmt('SELECT 1 FROM attachments WHERE host_link = ?').get(name) !== undefined;
}

export function recordCreatedHostLink(store: Store, name: string, kind: string): void {
  store.db
    .prepare('INSERT OR IGNORE INTO host_links (name, kind, created_at, owner_pid, owner_start) VALUES (?, ?, ?, ?, ?)')
    .run(name, kind, new Date().toISOString(), process.pid, pidStartTime(process.pid));
}

/** Bridges or VLAN interfaces pipewright made whose maker is gone (finished or killed): gc's candidates. */
export function settledHostLinks(store: Store, kind: 'bridge' | 'vlan'): string[] {
  const rows = store.stmt(`SELECT name, owner_pid, owner_start FROM host_links WHERE kind = ?`).all(kind) as {
    name: string;
    owner_pid: number | null;
    owner_start: string | null;
  }[];
  return rows
    .filter((r) => r.owner_pid === null || !ownerAlive({ ownerPid: r.owner_pid, ownerStart: r.owner_start }))
    .map((r) => r.name);
}

export function createdHostLink(store: Store, name: string): boolean {
  return store.stmt('SELECT 1 FROM host_links WHERE name = ?').get(name) !== undefined;
}

export function forgetHostLink(store: Store, name: string): void {
  store.stmt('DELETE FROM host_links WHERE name = ?').run(name);
}

/**
 * The guest link's identity, once it is made (again, at a restore): what detach finds it by; and
 * a veth's host end's index, what self-healing finds that by.
 */
export function setLinkIdentity(
  store: Store,
  id: number,
  link: { linkIndex: number | null; linkPerm: string | null },
  hostIndex: number | null,
): void {
  store
    .stmt('UPDATE attachments SET link_index = ?, link_perm = ?, host_index = ? WHERE id = ?')
    .run(link.linkIndex, link.linkPerm, hostIndex, id);
}
