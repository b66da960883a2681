#!/usr/bin/env bash
# The whole test suite, as CI runs it (as root, on a fresh Debian 12 machine):
#   installs what is missing (setup-host.sh), starts dockerd if none answers (and stops it again
#   afterwards), builds the busybox test image, then `npm test`: typecheck (src and test), lint,
#   and every tap test (unit and integration); then the chaos and fuzz suites, small, and the VM
#   harness's small form (test/vm/drivers.suite.ts). `npm test` itself installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh

started_dockerd=""
before_docker=0
if [ "$(id -u)" = 0 ] && ! docker info >/dev/null 2>&1; then
  # The chaos suite's many-processes part on a host without Docker's chains (the whole suite runs later, with them).
  echo "test: chaos (many processes) without a Docker engine"
  CHAOS_N=8 CHAOS_K=4 npx tap --timeout 900 test/chaos/suite.ts --grep "many processes" || before_docker=1
  log=$(mktemp /tmp/pipewright-dockerd.XXXXXX.log)
  echo "test: starting dockerd (log $log)"
  dockerd >"$log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "test: dockerd did not start; see $log"; exit 1; }
  # Tests compare whole rule sets: let the engine finish installing its own chains first.
  for _ in $(seq 1 40); do iptables -S DOCKER-USER >/dev/null 2>&1 && break; sleep 0.25; done
  sleep 1
  # Ours to restart: the lifecycle test restarts the engine under `pipewright watch`.
  export PIPEWRIGHT_TEST_RESTART_DOCKERD=1 PIPEWRIGHT_TEST_DOCKERD_LOG="$log"
fi
stop_dockerd() {
  if [ -n "$started_dockerd" ]; then
    # The engine may have been restarted by a test (a new pid): stop whichever dockerd runs now.
    pkill -x dockerd 2>/dev/null || true
    for _ in $(seq 1 40); do pgrep -x dockerd >/dev/null || break; sleep 0.25; done
  fi
}
trap stop_dockerd EXIT
if docker info >/dev/null 2>&1; then bash scripts/build-test-image.sh; fi
# The CNI plugin's podman test (CNI backend) runs the same image from podman's own store.
if [ "$(id -u)" = 0 ] && command -v podman >/dev/null; then bash scripts/build-test-image.sh podman; fi

out=$(mktemp /tmp/pipewright-tap.XXXXXX)
set +e
npm test --silent -- "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
if [ "$#" -eq 0 ] && [ "$(id -u)" = 0 ]; then
  # The chaos suite, small: the README's guarantees under concurrency, faults and kill -9.
  CHAOS_N="${CHAOS_N:-24}" CHAOS_K="${CHAOS_K:-4}" npm run --silent chaos 2>&1 | tee -a "$out"
  chaos=${PIPESTATUS[0]}
  [ "$status" -ne 0 ] || status=$chaos
  # The fuzz suite, small: bad inputs are refused in one line and change nothing.
  FUZZ_N="${FUZZ_N:-150}" npm run --silent fuzz 2>&1 | tee -a "$out"
  fuzz=${PIPESTATUS[0]}
  [ "$status" -ne 0 ] || status=$fuzz
  # The VM harness, small: one QEMU guest with Debian's stock kernel runs the link-kind tests this
  # host's kernel skips (ipvlan, 802.1q VLAN), another is reset under its containers (reboot).
  # `npm run vm-test` runs the whole harness.
  npx tap --timeout 3600 test/vm/drivers.suite.ts test/vm/reboot.suite.ts 2>&1 | tee -a "$out"
  vm=${PIPESTATUS[0]}
  [ "$status" -ne 0 ] || status=$vm
fi
[ "$status" -ne 0 ] || status=$before_docker
set -e
# tap's own summary is "# { total: N, pass: N, fail: N }"; also say it in the plain form.
sum() { grep -E '^# \{ total:' "$out" | sed -nE "s/.*$1: ([0-9]+).*/\\1/p" | awk '{ s += $1 } END { print s + 0 }'; }
pass=$(sum pass); fail=$(sum fail); skip=$(sum skip)
rm -f "$out"
echo "tests: ${pass:-0} passed, ${fail:-0} failed, ${skip:-0} skipped"
exit "$status"
