#!/usr/bin/env node
// Attach benchmark (root): one `pipewright attach` CLI process per guest vs one CNI bridge+host-local
// ADD per guest, interleaved in the same run on the same machine; then N attaches through the
// library in one process. Prints medians; cleans up after itself; refuses if its prefix is in use.
// Usage: node bench/attach.mjs [N]   (run after `npm run build`)
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const N = Number(process.argv[2] ?? 50);
const P = 'pwbench';
const CLI = new URL('../dist/cli/main.js', import.meta.url).pathname;
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS; // a user's host rarely sets it; it adds ~90 ms to every Node start here
const state = mkdtempSync(join(tmpdir(), 'pwbench-'));
const cniData = mkdtempSync(join(tmpdir(), 'pwbench-cni-'));
env.PIPEWRIGHT_STATE_DIR = state;

if (readdirSync('/run/netns').some((n) => n.startsWith(P))) {
  console.error(`bench: netns named ${P}* exist already; remove them first`);
  process.exit(1);
}
const ip = (...a) => execFileSync('ip', a);
const nsName = (set, i) => `${P}-${set}-${i}`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const timed = (fn) => { const t0 = performance.now(); fn(); return performance.now() - t0; };

function cni(command, ns, i) {
  const conf = JSON.stringify({ cniVersion: '0.4.0', name: `${P}net`, type: 'bridge', bridge: `${P}c`,
    ipam: { type: 'host-local', subnet: '10.251.0.0/16', dataDir: cniData } });
  const r = spawnSync('/usr/lib/cni/bridge', [], { input: conf, env: { ...env, CNI_COMMAND: command,
    CNI_CONTAINERID: `bench${i}`, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' } });
  if (r.status !== 0) throw new Error(`CNI ${command}: ${r.stdout}${r.stderr}`);
}
function pw(...args) {
  const r = spawnSync('node', [CLI, ...args], { env });
  if (r.status !== 0) throw new Error(`pipewright ${args.join(' ')}: ${r.stderr}`);
}

const sets = ['p', 'c', 'l'];
try {
  for (const s of sets) for (let i = 0; i < N; i++) ip('netns', 'add', nsName(s, i));
  const t = { pwAttach: [], cniAdd: [], pwDetach: [], cniDel: [] };
  for (let i = 0; i < N; i++) {
    t.pwAttach.push(timed(() => pw('attach', `${P}p`, nsName('p', i), `10.250.${i >> 8}.${(i & 255) + 2}/16`)));
    t.cniAdd.push(timed(() => cni('ADD', nsName('c', i), i)));
  }
  for (let i = 0; i < N; i++) {
    t.pwDetach.push(timed(() => pw('detach', nsName('p', i))));
    t.cniDel.push(timed(() => cni('DEL', nsName('c', i), i)));
  }
  const { Store } = await import('../dist/store/store.js');
  const { attach } = await import('../dist/net/attach.js');
  const { resolveGuest } = await import('../dist/runtime/guest.js');
  const { parseAttachText } = await import('../dist/net/attach-spec.js');
  const store = Store.open(state);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const g = await resolveGuest(`netns:${nsName('l', i)}`);
    await attach({ store }, g, parseAttachText({ hostIf: `${P}l`, addresses: [`10.249.${i >> 8}.${(i & 255) + 2}/16`] }));
  }
  const libPer = (performance.now() - t0) / N;
  const { releaseAttachment } = await import('../dist/net/detach.js');
  const { listAttachments } = await import('../dist/store/attachments.js');
  for (const r of listAttachments(store)) await releaseAttachment({ store }, r);
  store.close();
  const row = (name, a, b) => console.log(`${name.padEnd(34)} ${a.toFixed(1).padStart(8)} ms ${b.toFixed(1).padStart(8)} ms  ${(a / b).toFixed(2)}x`);
  console.log(`N=${N}                              pipewright      CNI   ratio`);
  row('attach, one CLI process (median)', median(t.pwAttach), median(t.cniAdd));
  row('detach, one CLI process (median)', median(t.pwDetach), median(t.cniDel));
  row('attach, library, per guest (mean)', libPer, median(t.cniAdd));
} finally {
  for (const s of sets) for (let i = 0; i < N; i++) spawnSync('ip', ['netns', 'del', nsName(s, i)]);
  for (const b of ['p', 'c', 'l']) spawnSync('ip', ['link', 'del', `${P}${b}`]);
  rmSync(state, { recursive: true, force: true });
  rmSync(cniData, { recursive: true, force: true });
}
