// The `cni-add` / `cni-del` scenarios: pipewright's CNI plugin (main plugin: bridge + pool, a
// process per call as a runtime makes it) against the reference `bridge` plugin with `host-local`
// IPAM, interleaved guest by guest on guests of their own; once with a `pipewright daemon` taking
// the calls (the plugin hands them over), once without (the plugin runs the CLI).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { cni, env, guestName, makeGuests, pipewright, PREFIX, progress, startDaemon, timed } from './lib.mjs';
import { ratioAtMost } from './targets.mjs';

const PLUGIN = new URL('../dist/cni-plugin/pipewright', import.meta.url).pathname;
const SOCKET = `/run/pipewright/${PREFIX}-cni.sock`;

/** One call of pipewright's CNI plugin, as a runtime makes it. */
function pipewrightCni(command, conf, containerId, netns) {
  const r = spawnSync(PLUGIN, [], {
    input: JSON.stringify(conf),
    env: {
      ...env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: netns,
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/usr/lib/cni',
      PIPEWRIGHT_CNI_SOCKET: SOCKET,
    },
  });
  if (r.status !== 0) throw new Error(`pipewright CNI ${command}: ${r.stdout}${r.stderr}`);
}

/** One pass of ADDs then DELs; `target` is the ADD row's (the daemon's pass has one). */
function pass(label, n, set, tmp, state, record, target = null) {
  makeGuests(`${set}p`, n);
  makeGuests(`${set}c`, n);
  const ours = {
    cniVersion: '1.0.0',
    name: `${PREFIX}cni`,
    type: 'pipewright',
    bridge: `${PREFIX}n`,
    pool: 'cni',
    stateDir: state,
  };
  const ref = {
    cniVersion: '1.0.0',
    name: `${PREFIX}ref`,
    type: 'bridge',
    bridge: `${PREFIX}r`,
    isGateway: true,
    ipam: { type: 'host-local', subnet: '10.239.0.0/16', dataDir: join(tmp, 'cni-ref') },
  };
  const t = { pwAdd: [], refAdd: [], pwDel: [], refDel: [] };
  const ns = (kind, i) => `/run/netns/${guestName(`${set}${kind}`, i)}`;
  for (let i = 0; i < n; i++) {
    progress(`cni-add ${label}`, i + 1, n);
    t.pwAdd.push(timed(() => pipewrightCni('ADD', ours, `${set}${i}`, ns('p', i))));
    t.refAdd.push(timed(() => cni('bridge', 'ADD', ref, `${set}c${i}`, ns('c', i))));
  }
  for (let i = 0; i < n; i++) {
    progress(`cni-del ${label}`, i + 1, n);
    t.pwDel.push(timed(() => pipewrightCni('DEL', ours, `${set}${i}`, ns('p', i))));
    t.refDel.push(timed(() => cni('bridge', 'DEL', ref, `${set}c${i}`, ns('c', i))));
  }
  record(`cni-add ${label} vs bridge + host-local`, t.pwAdd, t.refAdd, target);
  record(`cni-del ${label}`, t.pwDel, t.refDel, null);
}

export async function cniAddDel(n, tmp, state, record) {
  pipewright(state, 'pool', 'create', 'cni', '10.238.0.0/16');
  pass('(no daemon: the CLI)', n, 'nx', tmp, state, record);
  // A daemon for the CNI calls only (no Docker engine: it does not sync the firewall at start).
  const args = ['--socket', `/run/docker/plugins/${PREFIX}cni.sock`, '--cni-socket', SOCKET];
  const daemon = await startDaemon(state, args, { DOCKER_HOST: `unix:///run/${PREFIX}-no-docker.sock` });
  try {
    pass('(daemon)', n, 'nd', tmp, state, record, ratioAtMost(1.5, 'CNI bridge + host-local'));
  } finally {
    await daemon.stop();
  }
  pipewright(state, 'network', 'rm', `${PREFIX}cni`);
}
