/**
 * The attachments table rebuilt with `kinds` as its link kinds, rows and ids kept. SQLite changes
 * no CHECK in place: this is its documented procedure (migrate() runs it with foreign keys off and
 * checks them before the commit; ports keep their attachment ids).
 */
export const rebuildAttachments = (kinds: string[]) => `
  CREATE TABLE attachments_new (
    id           INTEGER PRIMARY KEY,
    guest_kind   TEXT NOT NULL,
    guest_id     TEXT NOT NULL,
    guest_name   TEXT NOT NULL,
    netns_path   TEXT NOT NULL,
    ifname       TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN (${kinds.map((k) => `'${k}'`).join(', ')})),
    host_if      TEXT NOT NULL,
    host_link    TEXT UNIQUE,
    mac          TEXT NOT NULL,
    mtu          INTEGER NOT NULL,
    spec         TEXT NOT NULL,
    dhcp_pid     INTEGER,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'ready')),
    owner_pid    INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    netns_id     TEXT,
    owner_start  TEXT,
    UNIQUE (guest_kind, guest_id, ifname)
  );
  INSERT INTO attachments_new (id, guest_kind, guest_id, guest_name, netns_path, ifname, kind, host_if, host_link, mac, mtu, spec,
                               dhcp_pid, state, owner_pid, created_at, netns_id, owner_start)
    SELECT id, guest_kind, guest_id, guest_name, netns_path, ifname, kind, host_if, host_link, mac, mtu, spec,
           dhcp_pid, state, owner_pid, created_at, netns_id, owner_start FROM attachments;
  DROP TABLE attachments;
  ALTER TABLE attachments_new RENAME TO attachments;
`;

/** Schema steps, applied in order; entry i takes the store from version i to i+1. Never edit one that shipped. */
export const MIGRATIONS: string[] = [
  `
  -- One interface plumbed into one guest. state 'pending' is written before the host is touched
  -- (the intent, with every name that will be created) and becomes 'ready' when all steps are done,
  -- so a crash in between leaves a record that gc can undo.
  CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    guest_kind   TEXT NOT NULL,
    guest_id     TEXT NOT NULL,
    guest_name   TEXT NOT NULL,
    netns_path   TEXT NOT NULL,
    ifname       TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('veth', 'macvlan', 'phys')),
    host_if      TEXT NOT NULL,
    host_link    TEXT UNIQUE,
    mac          TEXT NOT NULL,
    mtu          INTEGER NOT NULL,
    spec         TEXT NOT NULL,
    dhcp_pid     INTEGER,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'ready')),
    owner_pid    INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (guest_kind, guest_id, ifname)
  );
  -- Bridges and host shims pipewright created, so they go away with their last guest.
  CREATE TABLE host_links (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    created_at  TEXT NOT NULL
  );
  `,
  `
  -- IPAM (embedded backend). cursor: offset of the next never-used address of the range;
  -- free_addresses: released addresses, handed out again oldest release first (seq order).
  CREATE TABLE pools (
    name    TEXT PRIMARY KEY,
    def     TEXT NOT NULL,
    cursor  INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE leases (
    pool        TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
    address     TEXT NOT NULL,
    owner       TEXT NOT NULL,
    host        TEXT NOT NULL,
    reserved    INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (pool, address)
  );
  CREATE INDEX leases_by_owner ON leases(owner);
  CREATE TABLE free_addresses (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    pool     TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
    address  TEXT NOT NULL,
    UNIQUE (pool, address)
  );
  CREATE INDEX free_by_pool ON free_addresses(pool, seq);
  `,
  `
  -- Networks: a bridge with its subnet (from a pool), NAT and isolation choices; the bridge holds
  -- the pool's gateway address. Ports: published ports, one row per mapping (ranges as start/end).
  CREATE TABLE networks (
    name        TEXT PRIMARY KEY,
    bridge      TEXT NOT NULL UNIQUE,
    pool        TEXT NOT NULL,
    subnet      TEXT NOT NULL,
    gateway     TEXT,
    masquerade  INTEGER NOT NULL,
    isolated    INTEGER NOT NULL,
    created_at  TEXT NOT NULL
  );
  CREATE TABLE ports (
    id              INTEGER PRIMARY KEY,
    attachment_id   INTEGER NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,
    guest_name      TEXT NOT NULL,
    proto           TEXT NOT NULL CHECK (proto IN ('tcp', 'udp')),
    host_ip         TEXT NOT NULL,
    host_port       INTEGER NOT NULL,
    host_port_end   INTEGER NOT NULL,
    ctr_ip          TEXT NOT NULL,
    ctr_subnet      TEXT NOT NULL,
    ctr_port        INTEGER NOT NULL,
    bridge          TEXT NOT NULL
  );
  CREATE INDEX ports_by_host_port ON ports(proto, host_port);
  `,
  `
  -- Named volumes (Docker's fields) and what is mounted into which guest: a named volume or a
  -- bind mount (host_path), at a path inside the guest.
  CREATE TABLE volumes (
    name        TEXT PRIMARY KEY,
    labels      TEXT NOT NULL,
    options     TEXT NOT NULL,
    created_at  TEXT NOT NULL
  );
  CREATE TABLE mounts (
    id          INTEGER PRIMARY KEY,
    volume      TEXT REFERENCES volumes(name),
    host_path   TEXT NOT NULL,
    guest_kind  TEXT NOT NULL,
    guest_id    TEXT NOT NULL,
    guest_name  TEXT NOT NULL,
    target      TEXT NOT NULL,
    readonly    INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (guest_kind, guest_id, target)
  );
  `,
  `
  -- One attachment model: the stored spec is the request as front ends give it (AttachSpec). The
  -- link kind lives in its own column only; the requested host link name (-l) and --direct-phys
  -- join the spec (older records did not keep -l: null); a macvlan mode is only kept when asked
  -- for (older records filled in the default, bridge).
  UPDATE attachments SET spec = json_set(json_remove(spec, '$.kind'),
    '$.hostLink', json('null'),
    '$.directPhys', json(CASE kind WHEN 'phys' THEN 'true' ELSE 'false' END),
    '$.macvlanMode', CASE json_extract(spec, '$.macvlanMode') WHEN 'bridge' THEN json('null') ELSE json_extract(spec, '$.macvlanMode') END);
  `,
  `
  -- Identities that outlive nothing: a namespace by (device, inode) of its file, a process by pid
  -- and start time. A /proc/<pid>/ns/net path can name another namespace once the pid is reused,
  -- and a pid alone can name another process (after a reboot above all). Older records: NULL.
  ALTER TABLE attachments ADD COLUMN netns_id TEXT;
  ALTER TABLE attachments ADD COLUMN owner_start TEXT;
  -- Small facts about the store itself, e.g. firewall_dirty: a store change the kernel may not have got.
  CREATE TABLE store_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
  );
  -- Who made a shared host link: gc removes an unused one only once its maker is gone (a network
  -- create or an attach still under way has not used it yet).
  ALTER TABLE host_links ADD COLUMN owner_pid INTEGER;
  ALTER TABLE host_links ADD COLUMN owner_start TEXT;
  `,
  `
  -- Volumes Docker mounted through the volume plugin (pipewright daemon): one row per Mount
  -- request ID, so a volume in use is never removed and a Mount replayed after a restart counts once.
  CREATE TABLE plugin_mounts (
    volume      TEXT NOT NULL REFERENCES volumes(name),
    mount_id    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (volume, mount_id)
  );
  `,
  `
  -- Two kinds of network: a bridge (as before), and a macvlan network (Docker's -o parent=), whose
  -- containers have their own MACs on the parent's LAN; for it, bridge holds the parent (one
  -- network per parent, as Docker's own macvlan driver has it). An MTU for the network's links
  -- (NULL: the host interface's own), a macvlan mode (NULL: bridge), the host's shim address.
  -- An IPv6 pool beside the IPv4 one (dual stack: Docker's --ipv6), its subnet and gateway.
  ALTER TABLE networks ADD COLUMN kind TEXT NOT NULL DEFAULT 'bridge' CHECK (kind IN ('bridge', 'macvlan'));
  ALTER TABLE networks ADD COLUMN pool6 TEXT;
  ALTER TABLE networks ADD COLUMN subnet6 TEXT;
  ALTER TABLE networks ADD COLUMN gateway6 TEXT;
  ALTER TABLE networks ADD COLUMN mtu INTEGER;
  ALTER TABLE networks ADD COLUMN macvlan_mode TEXT;
  ALTER TABLE networks ADD COLUMN host_shim TEXT;
  `,
  `
  -- Two more link kinds, ipvlan and vlan (802.1q), for attachments; networks on a host VLAN
  -- interface (vlan: its id, vlan_of: the NIC it is made on; bridge: that interface).
  -- SQLite changes no CHECK in place: both tables are rebuilt as its documented procedure has it
  -- (migrate() runs with foreign keys off and checks them before the commit; ports keep their ids).
  ${rebuildAttachments(['veth', 'macvlan', 'ipvlan', 'vlan', 'phys'])}
  CREATE TABLE networks_new (
    name          TEXT PRIMARY KEY,
    bridge        TEXT NOT NULL UNIQUE,
    pool          TEXT NOT NULL,
    subnet        TEXT NOT NULL,
    gateway       TEXT,
    masquerade    INTEGER NOT NULL,
    isolated      INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    kind          TEXT NOT NULL DEFAULT 'bridge' CHECK (kind IN ('bridge', 'macvlan')),
    pool6         TEXT,
    subnet6       TEXT,
    gateway6      TEXT,
    mtu           INTEGER,
    macvlan_mode  TEXT,
    host_shim     TEXT,
    vlan          INTEGER,
    vlan_of       TEXT
  );
  INSERT INTO networks_new (name, bridge, pool, subnet, gateway, masquerade, isolated, created_at, kind, pool6, subnet6, gateway6, mtu, macvlan_mode, host_shim)
    SELECT name, bridge, pool, subnet, gateway, masquerade, isolated, created_at, kind, pool6, subnet6, gateway6, mtu, macvlan_mode, host_shim FROM networks;
  DROP TABLE networks;
  ALTER TABLE networks_new RENAME TO networks;
  `,
  `
  -- One more link kind, dummy (no host side: host_if is 'none').
  ${rebuildAttachments(['veth', 'macvlan', 'ipvlan', 'vlan', 'phys', 'dummy'])}
  `,
  `
  -- Identities recorded at the first make, so a hostile guest's renames and swaps are seen:
  -- link_index: the guest link's ifindex (a moved NIC keeps its own), link_perm: a NIC's
  -- permanent MAC; owner_op: the operation that owns a pending record (a daemon runs many at
  -- once under one pid); dhcp_start: the DHCP client's start time beside its pid.
  ALTER TABLE attachments ADD COLUMN link_index INTEGER;
  ALTER TABLE attachments ADD COLUMN link_perm TEXT;
  ALTER TABLE attachments ADD COLUMN owner_op TEXT;
  ALTER TABLE attachments ADD COLUMN dhcp_start TEXT;
  -- A bind's host path by what it was at the first mount ("<dev>:<ino>"); NULL for older records.
  ALTER TABLE mounts ADD COLUMN source_id TEXT;
  `,
  `
  -- The ifb that shapes a guest's egress (--rate): its name, written before it is made, and its
  -- ifindex once made, by which alone it is removed.
  ALTER TABLE attachments ADD COLUMN ifb_name TEXT;
  ALTER TABLE attachments ADD COLUMN ifb_index INTEGER;
  -- A Docker network's limits for each of its endpoints (-o rate=), as --rate's text.
  ALTER TABLE networks ADD COLUMN rate TEXT;
  `,
  `
  -- A veth's host end by its ifindex, which self-healing plugs back into a bridge: its name is
  -- anyone's to take. NULL for records of older versions (found by name, a veth only).
  ALTER TABLE attachments ADD COLUMN host_index INTEGER;
  `,
];

/**
 * Columns a store may lack although its version says otherwise: step 9 was changed after it first
 * shipped, and stores migrated by the first form have no networks.vlan and vlan_of. Added where
 * missing, in the transaction that migrates (ALTER TABLE ADD COLUMN cannot say IF NOT EXISTS).
 */
export const REPAIRS: { table: string; column: string; type: string }[] = [
  { table: 'networks', column: 'vlan', type: 'INTEGER' },
  { table: 'networks', column: 'vlan_of', type: 'TEXT' },
];
