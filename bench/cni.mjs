// The `cni-add` / `cni-del` scenarios: pipewright as a CNI plugin (main plugin: bridge + pool, a
// process per call as a runtime makes it) against the reference `bridge` plugin with `host-local`
// IPAM, interleaved guest by guest on guests of their own.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CLI, cni, env, guestName, makeGuests, pipewright, PREFIX, progress, timed } from './lib.mjs';

/** One call of pipewright's CNI plugin, as a runtime makes it. */
function pipewrightCni(command, conf, containerId, netns) {
  const r = spawnSync(CLI, [], {
    input: JSON.stringify(conf),
    env: { ...env, CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
  });
  if (r.status !== 0) throw new Error(`pipewright CNI ${command}: ${r.stdout}${r.stderr}`);
}

export function cniAddDel(n, tmp, state, record) {
  pipewright(state, 'pool', 'create', 'cni', '10.238.0.0/16');
  makeGuests('np', n);
  makeGuests('nc', n);
  const ours = { cniVersion: '1.0.0', name: `${PREFIX}cni`, type: 'pipewright', bridge: `${PREFIX}n`, pool: 'cni', stateDir: state };
  const ref = {
    cniVersion: '1.0.0',
    name: `${PREFIX}ref`,
    type: 'bridge',
    bridge: `${PREFIX}r`,
    isGateway: true,
    ipam: { type: 'host-local', subnet: '10.239.0.0/16', dataDir: join(tmp, 'cni-ref') },
  };
  const times = { pwAdd: [], refAdd: [], pwDel: [], refDel: [] };
  for (let i = 0; i < n; i++) {
    progress('cni-add', i + 1, n);
    times.pwAdd.push(timed(() => pipewrightCni('ADD', ours, `p${i}`, `/run/netns/${guestName('np', i)}`)));
    times.refAdd.push(timed(() => cni('bridge', 'ADD', ref, `c${i}`, `/run/netns/${guestName('nc', i)}`)));
  }
  for (let i = 0; i < n; i++) {
    progress('cni-del', i + 1, n);
    times.pwDel.push(timed(() => pipewrightCni('DEL', ours, `p${i}`, `/run/netns/${guestName('np', i)}`)));
    times.refDel.push(timed(() => cni('bridge', 'DEL', ref, `c${i}`, `/run/netns/${guestName('nc', i)}`)));
  }
  record('cni-add (bridge + pool) vs bridge + host-local', times.pwAdd, times.refAdd, '<= 1.5x');
  record('cni-del', times.pwDel, times.refDel, null);
  pipewright(state, 'network', 'rm', `${PREFIX}cni`);
}
