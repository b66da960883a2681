/**
 * apply against a real dockerd: the plan, the changes, a second apply that changes nothing,
 * errors that name the file's line before anything is done, and --prune.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cli,
  dockerUp,
  firewallSnapshot,
  hostLinks,
  isRoot,
  must,
  sh,
  stateDir,
  TEST_IMAGE,
  uniq,
} from '../helpers/host.js';

const docker = isRoot && (await dockerUp());

t.test(
  'apply: plan, apply, apply again, prune',
  { skip: !docker && 'needs root and a running Docker engine' },
  async (t) => {
    const dir = stateDir(t);
    const ctr = uniq('a');
    const br = uniq('p');
    await must('docker', ['run', '-d', '--net=none', '--name', ctr, TEST_IMAGE, 'sleep', '3600']);
    t.teardown(async () => {
      await sh('docker', ['rm', '-f', ctr]);
      await sh('ip', ['link', 'del', br]);
    });
    const fw = await firewallSnapshot();
    const links = await hostLinks();
    const file = join(dir, 'host.yaml');
    const write = (masquerade: boolean) =>
      writeFileSync(
        file,
        [
          'pools:',
          '  - name: lan',
          '    subnet: 10.247.13.0/24',
          'networks:',
          `  - name: lan`,
          `    bridge: ${br}`,
          '    pool: lan',
          `    masquerade: ${masquerade}`,
          'volumes:',
          '  - name: appdata',
          '    labels: {app: demo}',
          'containers:',
          `  - container: ${ctr}`,
          '    interfaces:',
          `      - on: ${br}`,
          '        addresses: [pool:lan]',
          '        publish: ["18099:80"]',
          '    mounts: ["appdata:/data"]',
          '',
        ].join('\n'),
      );
    write(true);

    const dry = await cli(dir, ['apply', '-f', file, '--dry-run', '--json']);
    t.equal(dry.exitCode, 0, dry.stderr);
    t.same(JSON.parse(dry.stdout).changes, [
      'create pool lan 10.247.13.0/24',
      `create network lan on ${br}`,
      'create volume appdata',
      `attach ${ctr} eth0 on ${br}`,
      `mount appdata:/data into ${ctr}`,
    ]);
    t.same(await hostLinks(), links, 'a dry run changes nothing');

    t.equal((await cli(dir, ['apply', '-f', file])).exitCode, 0);
    t.match(await must('docker', ['exec', ctr, 'ip', '-o', '-4', 'addr', 'show', 'eth0']), /10\.247\.13\.2\/24/);
    t.match(await must('docker', ['exec', ctr, 'grep', ' /data ', '/proc/mounts']), /\/data/);
    t.same(
      JSON.parse((await cli(dir, ['ports', '--json'])).stdout).map((p: { publish: string }) => p.publish),
      ['18099:80/tcp'],
    );
    const again = await cli(dir, ['apply', '-f', file, '--json']);
    t.same(JSON.parse(again.stdout).changes, [], 'the second apply changes nothing');

    write(false);
    t.same(
      JSON.parse((await cli(dir, ['apply', '-f', file, '--json'])).stdout).changes,
      ['update network lan: masquerade false, isolated false'],
      'what differs is fixed',
    );

    writeFileSync(
      join(dir, 'bad.yaml'),
      `containers:\n  - container: ${ctr}\n    interfaces:\n      - on: ${br}\n        addresses: [10.247.13.9/24@10.9.9.9]\n`,
    );
    const bad = await cli(dir, ['apply', '-f', join(dir, 'bad.yaml')]);
    t.equal(bad.exitCode, 1);
    t.match(bad.stderr, /bad\.yaml:4: containers\[0\]\.interfaces\[0\]: gateway 10\.9\.9\.9 is outside the subnet/);
    writeFileSync(join(dir, 'bad2.yaml'), 'networks:\n  - name: x\n    bridge: y\n');
    const bad2 = await cli(dir, ['apply', '-f', join(dir, 'bad2.yaml')]);
    t.equal(bad2.exitCode, 2);
    t.match(bad2.stderr, /bad2\.yaml:2: networks\[0\]: must have required property 'pool'/);

    // A section the file leaves out is not managed by it: --prune removes nothing of that kind.
    writeFileSync(join(dir, 'silent.yaml'), '{}\n');
    t.same(
      JSON.parse((await cli(dir, ['apply', '-f', join(dir, 'silent.yaml'), '--prune', '--json'])).stdout).changes,
      [],
      'absent sections are left alone',
    );
    writeFileSync(join(dir, 'empty.yaml'), 'pools: []\nnetworks: []\nvolumes: []\ncontainers: []\n');
    const pruned = JSON.parse(
      (await cli(dir, ['apply', '-f', join(dir, 'empty.yaml'), '--prune', '--json'])).stdout,
    ).changes;
    t.same(pruned, [
      `unmount ${ctr} /data`,
      `detach ${ctr} eth0`,
      'remove volume appdata',
      'remove network lan',
      'remove pool lan',
    ]);
    t.same(await hostLinks(), links, 'everything apply made is gone');
    t.equal(await firewallSnapshot(), fw, 'and the rule set is as before');
  },
);
