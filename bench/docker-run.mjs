// The `docker-run` scenario: `docker run --rm --network <net> <image> true` on a pipewright network
// (network and IPAM driver: `pipewright daemon` on a socket of the bench's own) against the same on
// a network of Docker's own bridge driver, interleaved run by run. Also the time the daemon spends
// per endpoint: the sum of its logged request times (network and IPAM calls) per container.
// Skipped, with the reason, where no Docker engine or test image is there.
import { spawnSync } from 'node:child_process';
import { dockerNetworks, perEndpoint, PREFIX, progress, sh, startDaemon, stats, timed } from './lib.mjs';
import { ratioAtMost } from './targets.mjs';

const IMAGE = 'pipewright-test/busybox:latest';
const DRIVER = `${PREFIX}pw`;

function dockerReady() {
  if (spawnSync('docker', ['info'], { stdio: 'ignore' }).status !== 0) return 'no Docker engine answers';
  if (spawnSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' }).status !== 0)
    return `no ${IMAGE} (scripts/build-test-image.sh)`;
  return null;
}

export async function dockerRun(n, stateDir, results) {
  const why = dockerReady();
  if (why) {
    results.push({ scenario: 'docker-run', skipped: why });
    return;
  }
  const runs = Math.min(n, 30);
  const [pwNet, dockerNet] = [`${PREFIX}dpw`, `${PREFIX}dbr`];
  // Its own plugin socket, and no CNI socket (a daemon of the host's may hold the default one).
  const { lines, stop } = await startDaemon(stateDir, [
    '--socket',
    `/run/docker/plugins/${DRIVER}.sock`,
    '--cni-socket',
    '',
  ]);
  try {
    dockerNetworks(DRIVER, {
      pw: { name: pwNet, subnet: '10.248.0.0/24' },
      docker: { name: dockerNet, subnet: '10.249.0.0/24' },
    });
    const run = (net) => timed(() => sh('docker', ['run', '--rm', '--network', net, IMAGE, 'true']));
    run(pwNet); // the first start loads the image's layers: not counted
    run(dockerNet);
    await new Promise((resolve) => setTimeout(resolve, 300)); // its log lines, before the count starts
    const before = lines.length;
    const pw = [],
      own = [];
    for (let i = 0; i < runs; i++) {
      progress('docker-run', i + 1, runs);
      pw.push(run(pwNet));
      own.push(run(dockerNet));
    }
    const p = stats(pw);
    const c = stats(own);
    // The runs block this process (spawnSync): let the daemon's log lines in before counting them.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const daemon = perEndpoint(lines.slice(before), runs);
    results.push({
      scenario: 'docker-run',
      n: runs,
      pipewright: p,
      cni: c,
      ratio: p.median / c.median,
      target: ratioAtMost(1, "Docker's bridge"),
    });
    // No target of its own: what counts is docker run beside Docker's bridge (above); this is where the daemon's share goes.
    results.push({
      scenario: 'docker-run: daemon time per endpoint',
      n: runs,
      pipewright: { median: daemon.total, p95: null },
      cni: null,
      ratio: null,
      target: null,
      byMethod: daemon.by,
    });
  } finally {
    spawnSync('docker', ['network', 'rm', pwNet, dockerNet], { stdio: 'ignore' });
    await stop();
  }
}
