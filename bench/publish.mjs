#!/usr/bin/env node
// Publish benchmark (root): time to publish one port and to remove it, with 0 and with 2,000 other
// published ports present, for pipewright's iptables and nftables backends (the store update plus
// the firewall apply, as attach -p and detach do it) and for the CNI portmap plugin, same run.
// Usage: node bench/publish.mjs [ROUNDS]   (after `npm run build`)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Store } from '../dist/db/store.js';
import { portmapBaseState, removePortmapBase } from './lib.mjs';
import { changeFirewall, syncFirewall } from '../dist/ops/firewall-sync.js';
import { insertPending, markReady } from '../dist/db/attachments.js';
import { checkAttachSpec } from '../dist/model/attachment.js';
import { insertPort, deletePortsOf } from '../dist/db/networks.js';

const ROUNDS = Number(process.argv[2] ?? 20);
const OTHERS = 2000;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const tmp = mkdtempSync(join(tmpdir(), 'pwbench-pub-'));

function guest(store, name) {
  const id = insertPending(store, {
    guestKind: 'netns',
    guestId: name,
    guestName: name,
    netnsPath: `/run/netns/${name}`,
    ifname: 'eth0',
    kind: 'veth',
    hostIf: 'pwbenchbr',
    hostLink: `pwb${name}`,
    mac: '02:00:00:00:00:01',
    mtu: 1500,
    netnsId: null,
    spec: checkAttachSpec({ hostIf: 'pwbenchbr', addresses: ['10.0.0.2/24'] }),
  });
  markReady(store, id, null);
  return id;
}
const port = (id, name, hostPort, count = 1) => ({
  attachmentId: id,
  guestName: name,
  bridge: 'pwbenchbr',
  proto: 'tcp',
  hostIp: '',
  hostPort,
  hostPortEnd: hostPort + count - 1,
  ctrIp: '10.252.0.2',
  ctrSubnet: '10.252.0.0/24',
  ctrPort: hostPort,
});

async function pipewright(firewall, others) {
  const store = Store.open(join(tmp, `${firewall}-${others}`));
  const change = (mutate) => changeFirewall(store, mutate, { firewall });
  if (others) store.tx(() => insertPort(store, port(guest(store, 'others'), 'others', 20000, others)));
  const id = guest(store, 'one');
  await syncFirewall(store, { firewall });
  const add = [],
    del = [];
  for (let i = 0; i < ROUNDS; i++) {
    let t0 = performance.now();
    await change(() => insertPort(store, port(id, 'one', 30000)));
    add.push(performance.now() - t0);
    t0 = performance.now();
    await change(() => deletePortsOf(store, id));
    del.push(performance.now() - t0);
  }
  store.db.exec('DELETE FROM ports; DELETE FROM attachments;');
  await syncFirewall(store, { firewall });
  store.close();
  return [median(add), median(del)];
}

function portmap(command, id, mappings) {
  const conf = {
    cniVersion: '0.4.0',
    name: 'pwbench',
    type: 'portmap',
    capabilities: { portMappings: true },
    runtimeConfig: { portMappings: mappings },
    prevResult: {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', sandbox: '/run/netns/pwbench' }],
      ips: [{ version: '4', address: '10.252.0.2/24', interface: 0 }],
    },
  };
  const r = spawnSync('/usr/lib/cni/portmap', [], {
    input: JSON.stringify(conf),
    env: {
      ...process.env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: '/run/netns/pwbench',
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/usr/lib/cni',
    },
  });
  if (r.status !== 0) throw new Error(`portmap ${command}: ${r.stdout}${r.stderr}`);
}

function cniPortmap(others) {
  const many = Array.from({ length: others }, (_, i) => ({
    hostPort: 20000 + i,
    containerPort: 20000 + i,
    protocol: 'tcp',
  }));
  if (others) portmap('ADD', 'others', many);
  const add = [],
    del = [];
  for (let i = 0; i < ROUNDS; i++) {
    let t0 = performance.now();
    portmap('ADD', 'one', [{ hostPort: 30000, containerPort: 80, protocol: 'tcp' }]);
    add.push(performance.now() - t0);
    t0 = performance.now();
    portmap('DEL', 'one', [{ hostPort: 30000, containerPort: 80, protocol: 'tcp' }]);
    del.push(performance.now() - t0);
  }
  if (others) portmap('DEL', 'others', many);
  return [median(add), median(del)];
}

const portmapLeftovers = portmapBaseState();

try {
  const rows = [];
  for (const others of [0, OTHERS]) {
    rows.push([`pipewright iptables, ${others} others`, ...(await pipewright('iptables', others))]);
    rows.push([`pipewright nftables, ${others} others`, ...(await pipewright('nftables', others))]);
    rows.push([`CNI portmap, ${others} others`, ...cniPortmap(others)]);
  }
  console.log(`median of ${ROUNDS}                     publish     remove`);
  for (const [name, a, d] of rows)
    console.log(`${name.padEnd(34)} ${a.toFixed(1).padStart(7)} ms ${d.toFixed(1).padStart(7)} ms`);
} finally {
  removePortmapBase(portmapLeftovers);
  rmSync(tmp, { recursive: true, force: true });
}
