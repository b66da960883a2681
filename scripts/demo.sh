#!/usr/bin/env bash
# A real demo of pipewright's main job on this host, as root:
# two throwaway guests (busybox containers when Docker runs, network namespaces otherwise) on a
# fresh bridge with addresses, one pings the other, then everything is torn down.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only what pipewright runs and builds with: nothing of the tests' or the VM harness's.
bash scripts/setup-host.sh runtime >/dev/null

tag="pwdemo$$"
# The host's own store, as any command uses it: the firewall's tables are the host's, made from one
# store, so a second store beside a pipewright already at work would rewrite that one's rules.
br="${tag:0:11}br"
pw() { dist/bin/pipewright "$@"; }
guests=()
kind=netns
if docker info >/dev/null 2>&1; then kind=docker; bash scripts/build-test-image.sh >/dev/null; fi

cleanup() {
  for g in "${guests[@]}"; do
    pw detach "$g" >/dev/null 2>&1 || true
    if [ "$kind" = docker ]; then docker rm -f "$g" >/dev/null 2>&1 || true; else ip netns del "$g" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT

net="10.199.$((RANDOM % 200))"
for i in 1 2; do
  g="${tag}-$i"
  if [ "$kind" = docker ]; then
    docker run -d --net=none --name "$g" pipewright-test/busybox:latest sleep 600 >/dev/null
  else
    ip netns add "$g"
  fi
  guests+=("$g")
  echo "demo: $kind guest $g"
  pw --verbose attach "$br" "$g" "$net.$((i + 1))/24" 2>&1 | sed 's/^/  /'
done
pw ls
a="${guests[0]}"; b_addr=$(pw inspect "${guests[1]}" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].kernel.addresses[0].split("/")[0]))')
echo "demo: $a pings $b_addr"
if [ "$kind" = docker ]; then docker exec "$a" ping -c 3 -W 2 "$b_addr"; else ip netns exec "$a" ping -c 3 -W 2 "$b_addr"; fi
for g in "${guests[@]}"; do pw detach "$g"; done
cleanup
guests=()
trap - EXIT
echo "demo: done; guests, interfaces, bridge $br and their firewall rules removed"
