/**
 * A Debian 13 guest: the VM harness's QEMU guest booted on the trixie root that
 * scripts/build-trixie-root.sh debootstraps (instead of the host's own), with the checkout, its
 * node_modules, the host's kernel modules and the host's Node shared in. In it, Podman 5.4 and
 * netavark 1.14 run pipewright's netavark plugin on a whole system of their own: a network, a
 * container with its pool address, `-p`, and nothing left after `rm` and `network rm`. (The
 * plugin's thorough test is test/vm/netavark.test.ts, in namespaces on the host.)
 */
import t from 'tap';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildTrixieRoot, CHECKOUT, TRIXIE_ROOT } from './trixie.js';
import { accel, Vm } from './vm.js';

const built = await buildTrixieRoot();
const modules = join(CHECKOUT, 'node_modules');
const binds = [
  { host: CHECKOUT, guest: CHECKOUT },
  ...(existsSync(modules) ? [{ host: dirname(realpathSync(modules)), guest: dirname(realpathSync(modules)) }] : []),
  { host: '/lib/modules', guest: '/lib/modules' },
  { host: dirname(realpathSync(process.execPath)), guest: '/opt/pw-host-bin' },
];

t.test('the netavark plugin in a Debian 13 guest (Podman 5)', { skip: built.reason ?? false }, async (t) => {
  const started = Date.now();
  const vm = await Vm.boot({ name: 'pw-trixie', root: TRIXIE_ROOT, binds }, 300_000);
  t.teardown(() => vm.stop());
  const choice = await accel();
  t.comment(
    `QEMU ${choice.accel.toUpperCase()}; booted to its agent in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  t.match(await vm.must('. /etc/os-release; echo $VERSION_ID; podman --version'), /^13\n.*podman version 5\./);
  await vm.must(`set -e
mkdir -p /usr/local/libexec/netavark && ln -sf ${CHECKOUT}/dist/netavark-plugin/pipewright /usr/local/libexec/netavark/
printf '[engine]\\ncgroup_manager = "cgroupfs"\\nevents_logger = "file"\\n' >/etc/containers/containers.conf
mkdir -p /tmp/img/bin /tmp/img/tmp && chmod 1777 /tmp/img/tmp && cp /bin/busybox /tmp/img/bin/
for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox /tmp/img/bin/$a; done
tar -C /tmp/img -c . | podman import -q --change 'CMD ["/bin/sh"]' - localhost/pwtest >/dev/null`);
  const ran = Date.now();
  await vm.must('podman network create -d pipewright --subnet 10.89.7.0/24 pwbr');
  const out = await vm.must(
    `podman run -d --name web --network pwbr -p 8080:80 localhost/pwtest sh -c 'echo hello-trixie >/tmp/index.html; ip -4 -o addr show eth0; exec httpd -f -p 80 -h /tmp' >/dev/null
for _ in $(seq 40); do page=$(busybox wget -q -T 2 -O - http://127.0.0.1:8080/index.html 2>/dev/null; busybox wget -q -T 2 -O - http://10.89.7.1:8080/index.html 2>/dev/null) && [ -n "$page" ] && break; sleep 0.5; done
echo "page: $page"; podman logs web; pipewright() { ${CHECKOUT}/dist/bin/pipewright "$@"; }; pipewright ls`,
  );
  t.match(out, /inet 10\.89\.7\.2\/24 /, 'the pool address, before the command ran');
  t.match(out, /page: hello-trixie/, '-p 8080:80 reaches the container');
  const after = await vm.must(`podman rm -f -t 0 web >/dev/null && podman network rm pwbr >/dev/null
pw() { ${CHECKOUT}/dist/bin/pipewright "$@" --json; }; echo "$(pw ls)$(pw network ls)$(pw pool ls)$(pw lease ls)"; ip -br link | grep -c '^pw' || true
nft list table ip pipewright 2>/dev/null | grep -c 'elements =' || true`);
  t.equal(after.trim(), '[][][][]\n0\n0', 'nothing left: records, networks, pools, leases, links, rules');
  t.comment(`podman in the guest: ${((Date.now() - ran) / 1000).toFixed(1)} s`);
});
