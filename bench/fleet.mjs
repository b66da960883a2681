// The `fleet` scenarios: published ports at fleet scale. With K = 0, 200 and 1,000 ports already
// published on the host, the time of one more start with a published port, until it answers on
// that port, and the host memory each published port costs:
//   - Docker: `docker run -d -p` on a network of Docker's own bridge driver (its userland proxy
//     as Docker ships it: a docker-proxy process per port and family) against the same on a
//     pipewright network (`pipewright daemon` as network and IPAM driver, rules as nftables set
//     elements), the two fleets side by side and the one-more starts interleaved;
//   - the CLI: `pipewright attach -p` on a network namespace against the CNI bridge plugin
//     chained with portmap, each beside a fleet of its own kind.
// A fleet container publishes 10 ports (a range), so K = 1,000 is 100 containers a side.
// Answering: an HTTP 200 from 127.0.0.1:<port> (busybox httpd in the container or namespace).
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  cni,
  dockerNetworks,
  guestName,
  makeGuests,
  perEndpoint,
  pipewright,
  PREFIX,
  progress,
  sh,
  startDaemon,
} from './lib.mjs';
import { ratioAtMost } from './targets.mjs';

const IMAGE = 'pipewright-test/busybox:latest';
const DRIVER = `${PREFIX}fl`;
// FLEET_STEPS=0,20 for a quick look; the targets are for 0, 200, 1000.
const STEPS = (process.env.FLEET_STEPS ?? '0,200,1000').split(',').map(Number);
const PER_FLEET_MEMBER = 10;
const ROUNDS = Number(process.env.FLEET_ROUNDS ?? 10);
// Host port bases: Docker's fleet, pipewright's, the CLI's, portmap's; one-more starts above them.
const BASE = { docker: 20000, pw: 22000, cli: 24000, portmap: 26000, oneMore: 28000 };
const SERVE = 'echo ok > /tmp/index.html; exec httpd -f -p 80 -h /tmp';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether 127.0.0.1:<port> answers an HTTP GET with 200. A SYN DNATed to a container not yet up
 * may be dropped, not refused: a short timeout keeps the wait's granularity fine.
 */
function answers(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 100 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** Milliseconds from `start()` until the port answers (start itself included). */
async function untilAnswering(port, start) {
  const t0 = performance.now();
  start();
  while (!(await answers(port))) {
    if (performance.now() - t0 > 60_000) throw new Error(`nothing answered on 127.0.0.1:${port} within 60 s`);
    await sleep(2);
  }
  return performance.now() - t0;
}

/** Proportional set size of a process, in KiB (its share of pages it shares with others). */
function pssKiB(pid) {
  const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+) kB/m);
  return m ? Number(m[1]) : 0;
}

/** The docker-proxy processes serving host ports in [from, to). */
function dockerProxies(from, to) {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        const port = Number(argv[argv.indexOf('-host-port') + 1]);
        return argv[0].endsWith('docker-proxy') && port >= from && port < to;
      } catch {
        return false; // gone meanwhile
      }
    });
}

const range = (base, i) =>
  `${base + i * PER_FLEET_MEMBER}-${base + (i + 1) * PER_FLEET_MEMBER - 1}:1000-${999 + PER_FLEET_MEMBER}`;

async function dockerFleet(stateDir, record) {
  const daemon = await startDaemon(stateDir, ['--socket', `/run/docker/plugins/${DRIVER}.sock`, '--cni-socket', '']);
  const [pwNet, dockerNet] = [`${PREFIX}flp`, `${PREFIX}fld`];
  const containers = [];
  try {
    dockerNetworks(DRIVER, {
      pw: { name: pwNet, subnet: '10.236.0.0/16' },
      docker: { name: dockerNet, subnet: '10.237.0.0/16' },
    });
    const oneMore = (net, port) =>
      untilAnswering(port, () =>
        containers.push(
          sh('docker', ['run', '-d', '--network', net, '-p', `${port}:80`, IMAGE, 'sh', '-c', SERVE]).trim(),
        ),
      );
    const drop = () => sh('docker', ['rm', '-f', containers.pop()]);
    const at = {};
    let members = 0;
    for (const k of STEPS) {
      for (; members < k / PER_FLEET_MEMBER; members++) {
        progress(`fleet (docker) to ${k}`, members + 1, k / PER_FLEET_MEMBER);
        for (const [net, base] of [
          [dockerNet, BASE.docker],
          [pwNet, BASE.pw],
        ]) {
          containers.push(
            sh('docker', ['run', '-d', '--network', net, '-p', range(base, members), IMAGE, 'sleep', '1d']).trim(),
          );
        }
      }
      const times = { docker: [], pw: [] };
      await sleep(300); // the fleet's own log lines, before the count starts
      const logged = daemon.lines.length;
      for (let r = 0; r < ROUNDS; r++) {
        progress(`fleet (docker) one more at ${k}`, r + 1, ROUNDS);
        times.docker.push(await oneMore(dockerNet, BASE.oneMore + 2 * r));
        drop();
        times.pw.push(await oneMore(pwNet, BASE.oneMore + 2 * r + 1));
        drop();
      }
      await sleep(300); // the last round's log lines
      daemonShare(record, k, perEndpoint(daemon.lines.slice(logged), ROUNDS));
      const proxies = dockerProxies(BASE.docker, BASE.pw);
      at[k] = {
        ...times,
        proxies: proxies.length,
        proxyPssKiB: proxies.reduce((s, p) => s + pssKiB(p), 0),
        daemonPssKiB: pssKiB(daemon.pid),
      };
      record(
        `fleet: docker run -p, one more with ${k} published`,
        at[k].pw,
        at[k].docker,
        k === STEPS.at(-1) ? ratioAtMost(0.5, "Docker's bridge") : null,
        {
          published: k,
          dockerProxies: at[k].proxies,
        },
      );
    }
    flatness(record, 'fleet: docker run -p', at);
    const [none, most] = [at[STEPS[0]], at[STEPS.at(-1)]];
    const dockerPerPort = most.proxyPssKiB / STEPS.at(-1);
    const pwPerPort = Math.max(0, most.daemonPssKiB - none.daemonPssKiB) / STEPS.at(-1);
    record(
      'fleet: host memory per published port (KiB)',
      [pwPerPort],
      [dockerPerPort],
      ratioAtMost(0.1, "Docker's docker-proxy processes"),
      {
        note: "pipewright: its daemon's PSS growth from none to the most ports; Docker: its docker-proxy processes' PSS; kernel rule memory counted for neither",
        dockerProxies: most.proxies,
      },
    );
  } finally {
    if (containers.length) spawnSync('docker', ['rm', '-f', ...containers], { stdio: 'ignore' });
    spawnSync('docker', ['network', 'rm', pwNet, dockerNet], { stdio: 'ignore' });
    await daemon.stop();
  }
}

/**
 * Of a one-more start on pipewright's network, the time its daemon spent on the endpoint (made and
 * removed: the driver requests it logged), by request: the rest is the engine's own.
 */
function daemonShare(record, k, daemon) {
  record(`fleet: docker run -p, daemon time per endpoint with ${k} published`, [daemon.total], null, null, {
    byMethod: daemon.by,
  });
}

/** pipewright's one-more time at the largest K over that at K = 0: flat in K is <= 1.2x. */
function flatness(record, what, at) {
  const [first, last] = [STEPS[0], STEPS.at(-1)];
  record(
    `${what}, pipewright at ${last} vs ${first} published`,
    at[last].pw,
    at[first].pw,
    ratioAtMost(1.2, `itself at ${first}`),
  );
}

/** Network namespaces serving HTTP on port 80 (busybox httpd): the CLI's one-more guests. */
function servers(names) {
  const root = `/tmp/${PREFIX}-fleet-www`;
  sh('sh', ['-c', `mkdir -p ${root} && echo ok > ${root}/index.html`]);
  return names.map((ns) => {
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    return spawn('ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-f', '-p', '80', '-h', root], { stdio: 'ignore' });
  });
}

const portmapConf = (mappings) => ({
  cniVersion: '0.4.0',
  name: `${PREFIX}flpm`,
  type: 'portmap',
  capabilities: { portMappings: true },
  runtimeConfig: { portMappings: mappings },
});

/** A fleet member of portmap's: 10 mappings to an address of a container that is not there (portmap only writes rules). */
function portmapMember(i) {
  const mappings = Array.from({ length: PER_FLEET_MEMBER }, (_, j) => ({
    hostPort: BASE.portmap + i * PER_FLEET_MEMBER + j,
    containerPort: 1000 + j,
    protocol: 'tcp',
  }));
  const ip = { version: '4', address: `10.233.${(i + 2) >> 8}.${(i + 2) & 255}/16`, interface: 0 };
  return {
    ...portmapConf(mappings),
    prevResult: { cniVersion: '0.4.0', interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }], ips: [ip] },
  };
}

async function cliFleet(stateDir, tmp, record) {
  const bridgeConf = {
    cniVersion: '0.4.0',
    name: `${PREFIX}flc`,
    type: 'bridge',
    bridge: `${PREFIX}flc`,
    isGateway: true,
    ipam: { type: 'host-local', subnet: '10.235.0.0/16', dataDir: join(tmp, 'fleet-cni') },
  };
  const bridge = `${PREFIX}fla`;
  pipewright(stateDir, 'pool', 'create', 'fl', '10.234.0.0/16');
  makeGuests('flf', STEPS.at(-1) / PER_FLEET_MEMBER);
  makeGuests('flo', 2 * ROUNDS);
  // A network: its bridge holds the gateway the published ports need, and stays up at K = 0 too.
  pipewright(stateDir, 'network', 'create', `${PREFIX}fln`, '--bridge', bridge, '--pool', 'fl');
  const httpd = servers(Array.from({ length: 2 * ROUNDS }, (_, i) => guestName('flo', i)));
  const at = {};
  let members = 0;
  try {
    for (const k of STEPS) {
      for (; members < k / PER_FLEET_MEMBER; members++) {
        progress(`fleet (cli) to ${k}`, members + 1, k / PER_FLEET_MEMBER);
        pipewright(
          stateDir,
          'attach',
          bridge,
          `netns:${guestName('flf', members)}`,
          'pool:fl',
          '-p',
          range(BASE.cli, members),
        );
        cni('portmap', 'ADD', portmapMember(members), `flf${members}`, '/run/netns/x');
      }
      const times = { pw: [], cni: [] };
      for (let r = 0; r < ROUNDS; r++) {
        progress(`fleet (cli) one more at ${k}`, r + 1, ROUNDS);
        const [pwNs, cniNs] = [guestName('flo', 2 * r), guestName('flo', 2 * r + 1)];
        const [pwPort, cniPort] = [BASE.oneMore + 2 * r, BASE.oneMore + 2 * r + 1];
        const conf = portmapConf([{ hostPort: cniPort, containerPort: 80, protocol: 'tcp' }]);
        times.pw.push(
          await untilAnswering(pwPort, () =>
            pipewright(stateDir, 'attach', bridge, `netns:${pwNs}`, 'pool:fl', '-p', `${pwPort}:80`),
          ),
        );
        times.cni.push(
          await untilAnswering(cniPort, () => {
            const added = JSON.parse(cni('bridge', 'ADD', bridgeConf, `flo${r}`, `/run/netns/${cniNs}`));
            cni('portmap', 'ADD', { ...conf, prevResult: added }, `flo${r}`, `/run/netns/${cniNs}`);
          }),
        );
        pipewright(stateDir, 'detach', `netns:${pwNs}`);
        cni('portmap', 'DEL', conf, `flo${r}`, `/run/netns/${cniNs}`);
        cni('bridge', 'DEL', bridgeConf, `flo${r}`, `/run/netns/${cniNs}`);
      }
      at[k] = times;
      record(
        `fleet cli: attach -p, one more with ${k} published`,
        times.pw,
        times.cni,
        k === STEPS.at(-1) ? ratioAtMost(0.5, 'CNI bridge + portmap') : null,
        {
          published: k,
        },
      );
    }
    flatness(record, 'fleet cli: attach -p', at);
  } finally {
    for (const s of httpd) s.kill('SIGKILL');
    // What the fleets published goes with them (the namespaces themselves go in cleanupHost).
    const bestEffort = (fn) => {
      try {
        fn();
      } catch {
        // already gone
      }
    };
    for (let i = 0; i < members; i++) {
      bestEffort(() => pipewright(stateDir, 'detach', `netns:${guestName('flf', i)}`));
      bestEffort(() => cni('portmap', 'DEL', portmapMember(i), `flf${i}`, '/run/netns/x'));
    }
    bestEffort(() => pipewright(stateDir, 'network', 'rm', `${PREFIX}fln`));
    bestEffort(() => pipewright(stateDir, 'pool', 'rm', 'fl'));
  }
}

/** Both fleets, where Docker answers with the test image; the CLI's alone otherwise. */
export async function fleet(stateDir, tmp, record, results) {
  await cliFleet(stateDir, tmp, record);
  const noDocker = spawnSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' }).status !== 0;
  if (noDocker) results.push({ scenario: 'fleet: docker run -p', skipped: `no Docker engine or no ${IMAGE}` });
  else await dockerFleet(stateDir, record);
}
