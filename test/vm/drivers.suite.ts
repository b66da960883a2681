/**
 * The small form of the VM harness (CI runs it): one guest with Debian's stock kernel runs the
 * link-kind tests this host's kernel skips (ipvlan, 802.1q VLAN, dummy), and none of them may skip there
 * for want of a kind; dockerd runs in the guest for the Docker network ones. (macvlan, veth and
 * the rest run on the host itself.)
 */
import t from 'tap';
import { accel, Vm } from './vm.js';
import { testTimes } from './tap-output.js';

const FILES = ['test/integration/link-kinds.test.ts'];

t.test('link drivers in a VM with a stock kernel: ipvlan l2/l3/l3s, 802.1q VLAN, dummy', async (t) => {
  const started = Date.now();
  const vm = await Vm.boot({ name: 'pw-drivers' });
  t.teardown(() => vm.stop());
  const choice = await accel();
  t.comment(
    `QEMU ${choice.accel.toUpperCase()} (${choice.why}); booted to its agent in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  t.match((await vm.must('uname -r')).trim(), /^\d+\.\d+\.\d+-\d+-amd64$/, "Debian's stock kernel");
  const docker = Date.now();
  // vfs: the guest's root is an overlay, on which Docker's overlay2 cannot stack.
  await vm.must(
    'setsid dockerd --storage-driver vfs >/var/log/dockerd.log 2>&1 & for _ in $(seq 240); do docker info >/dev/null 2>&1 && exit 0; sleep 0.5; done; exit 1',
  );
  await vm.must('bash scripts/build-test-image.sh docker');
  t.comment(`dockerd up and the test image built in the guest in ${((Date.now() - docker) / 1000).toFixed(1)} s`);
  const ran = Date.now();
  const r = await vm.run(`npx tap --reporter=tap --timeout 1800 ${FILES.join(' ')}`, 2_400_000);
  t.comment(`the tests took ${((Date.now() - ran) / 1000).toFixed(1)} s in the guest`);
  for (const line of testTimes(r.output)) t.comment(line);
  t.equal(
    r.code,
    0,
    `tap in the guest passed:\n${r.output
      .split('\n')
      .filter((l) => /not ok|^#/.test(l))
      .join('\n')}`,
  );
  t.notMatch(r.output, /# SKIP this kernel refuses/, 'no test skipped for a kind the kernel lacks');
  t.match(r.output, /ok \d+ - ipvlan l3s: two guests/, 'the ipvlan tests ran');
  t.match(r.output, /ok \d+ - vlan: the guest interface is VLAN <id> of the NIC/, 'the VLAN test ran');
  t.match(r.output, /ok \d+ - dummy: host interface none gives the guest a dummy/, 'the dummy test ran');
  t.match(r.output, /ok \d+ - macvlan on a NIC's VLAN: attach <nic>\.<id>/, 'the VLAN parent test ran');
  t.notMatch(r.output, /# SKIP needs a running Docker engine/, 'the Docker network tests ran');
});
