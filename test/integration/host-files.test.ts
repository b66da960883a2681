/**
 * What pipewright leaves on the host's filesystem and what it runs: its state is root's alone
 * (dir 0700, store and locks 0600), a state dir others can write is refused, and host tools are
 * found in a fixed PATH, never in the caller's.
 */
import t from 'tap';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, firewallSnapshot, isRoot, netns, removeLinkAtEnd, ROOT_REASON, stateDir, uniq } from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;
const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

t.test(
  'state is private: dir 0700, store and lock files 0600; a dir others can write is refused',
  { skip },
  async (t) => {
    const parent = mkdtempSync(join(tmpdir(), 'pipewright-files-'));
    t.teardown(() => rmSync(parent, { recursive: true, force: true }));
    const dir = join(parent, 'state');
    const guest = await netns(t);
    const br = uniq('F');
    removeLinkAtEnd(t, br);
    t.equal((await cli(dir, ['attach', br, guest, '10.251.12.2/24'])).exitCode, 0);
    t.equal(modeOf(dir), '700', 'state dir');
    for (const f of readdirSync(dir).filter((f) => /\.(db|db-wal|db-shm|lock)$/.test(f)))
      t.equal(modeOf(join(dir, f)), '600', f);
    t.equal((await cli(dir, ['detach', guest])).exitCode, 0);

    const shared = join(parent, 'shared');
    const made = await cli(shared, ['ls']);
    t.equal(made.exitCode, 0);
    chmodSync(shared, 0o1777);
    const r = await cli(shared, ['ls']);
    t.equal(r.exitCode, 1);
    t.match(
      r.stderr,
      /^pipewright: state dir .* is writable by others \(mode 1777\); use a directory only root can write/,
    );
    t.equal(modeOf(shared), '777', 'and it is left as it was');
  },
);

t.test("the caller's PATH cannot put another program in place of a host tool", { skip }, async (t) => {
  const dir = stateDir(t);
  const fake = mkdtempSync(join(tmpdir(), 'pipewright-path-'));
  t.teardown(() => rmSync(fake, { recursive: true, force: true }));
  const marker = join(fake, 'ran');
  for (const tool of [
    'ip',
    'iptables',
    'iptables-restore',
    'iptables-save',
    'ip6tables-restore',
    'nft',
    'mount',
    'nsenter',
    'sysctl',
  ]) {
    writeFileSync(join(fake, tool), `#!/bin/sh\necho ${tool} >> ${marker}\nexit 1\n`, { mode: 0o755 });
  }
  const guest = await netns(t);
  const br = uniq('P');
  removeLinkAtEnd(t, br);
  const env = { PATH: `${fake}:${process.env.PATH}` };
  t.equal((await cli(dir, ['pool', 'create', 'pn', '10.251.13.0/24'], env)).exitCode, 0);
  const net = await cli(dir, ['network', 'create', 'pn', '--bridge', br, '--pool', 'pn', '--masquerade'], env);
  t.equal(net.exitCode, 0, net.stderr);
  const rules = await firewallSnapshot();
  const attach = await cli(dir, ['attach', br, guest, 'pool:pn', '-p', '18320:80', '--json'], env);
  t.equal(attach.exitCode, 0, attach.stderr);
  t.not(await firewallSnapshot(), rules, 'the real iptables/nft wrote the port');
  t.equal((await cli(dir, ['inspect', guest, '--json'], env)).exitCode, 0);
  t.equal((await cli(dir, ['detach', guest], env)).exitCode, 0);
  t.equal((await cli(dir, ['network', 'rm', 'pn'], env)).exitCode, 0);
  t.notOk(existsSync(marker), 'no program from the caller PATH ran');
});
