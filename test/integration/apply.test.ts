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

t.test(
  'apply: metric and rate per interface, changed in place by a second apply',
  { skip: !docker && 'needs root and a running Docker engine' },
  async (t) => {
    const dir = stateDir(t);
    const ctr = uniq('q');
    const [brA, brB] = [uniq('p'), uniq('p')];
    await must('docker', ['run', '-d', '--net=none', '--name', ctr, TEST_IMAGE, 'sleep', '3600']);
    t.teardown(async () => {
      await sh('docker', ['rm', '-f', ctr]);
      for (const br of [brA, brB]) await sh('ip', ['link', 'del', br]);
    });
    const file = join(dir, 'qos.yaml');
    const write = (metric0: number, rate1: string) =>
      writeFileSync(
        file,
        [
          'containers:',
          `  - container: ${ctr}`,
          '    interfaces:',
          `      - { on: ${brA}, ifname: eth0, addresses: [10.247.20.2/24@10.247.20.1], metric: ${metric0} }`,
          `      - { on: ${brB}, ifname: eth1, addresses: [10.247.21.2/24@10.247.21.1], metric: 100, rate: "${rate1}" }`,
          '',
        ].join('\n'),
      );
    const defaults = async () =>
      (await must('docker', ['exec', ctr, 'ip', 'route']))
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.startsWith('default'));
    const hostEnd = async () =>
      JSON.parse((await cli(dir, ['ls', '--json'])).stdout).find((a: { ifname: string }) => a.ifname === 'eth1')
        .hostLink as string;
    const rootRate = async (dev: string) =>
      JSON.parse(await must('tc', ['-j', 'qdisc', 'show', 'dev', dev, 'root']))[0].options.rate * 8;

    write(200, '10mbit');
    t.equal((await cli(dir, ['apply', '-f', file])).exitCode, 0);
    t.same(await defaults(), [
      'default via 10.247.21.1 dev eth1  metric 100',
      'default via 10.247.20.1 dev eth0  metric 200',
    ]);
    t.equal(await rootRate(await hostEnd()), 10e6, "eth1's host end shapes traffic into the container");

    write(50, '4mbit/2mbit');
    const dry = await cli(dir, ['apply', '-f', file, '--dry-run', '--json']);
    t.same(JSON.parse(dry.stdout).changes, [
      `tune (metric, rates) ${ctr} eth0 on ${brA}`,
      `tune (metric, rates) ${ctr} eth1 on ${brB}`,
    ]);
    const before = await hostEnd();
    t.equal((await cli(dir, ['apply', '-f', file])).exitCode, 0);
    t.equal(await hostEnd(), before, 'the same link, tuned in place');
    t.same(await defaults(), [
      'default via 10.247.20.1 dev eth0  metric 50',
      'default via 10.247.21.1 dev eth1  metric 100',
    ]);
    t.equal(await rootRate(before), 4e6);
    const [redirect] = JSON.parse(await must('tc', ['-j', 'filter', 'show', 'dev', before, 'ingress'])).flatMap(
      (f: { options?: { actions?: { to_dev: string }[] } }) => f.options?.actions ?? [],
    );
    t.equal(await rootRate(redirect.to_dev), 2e6, 'and its ifb traffic out of it');
    t.same(JSON.parse((await cli(dir, ['apply', '-f', file, '--dry-run', '--json'])).stdout).changes, []);
    t.equal((await cli(dir, ['detach', ctr])).exitCode, 0);
    // Other tests may run on this host meanwhile: only this test's links are looked for.
    const left = (await hostLinks()).filter((l) => [brA, brB, before, redirect.to_dev].includes(l));
    t.same(left, [], 'no link left: bridges, host ends, the ifb');
  },
);
