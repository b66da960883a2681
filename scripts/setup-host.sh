#!/usr/bin/env bash
# Installs what pipewright needs on a Debian 12 / Ubuntu host. Idempotent: safe to run again.
# (gcc, make, python3: the native pieces — better-sqlite3's fallback build, our C helpers and addon;
#  qemu-system-x86, linux-image-amd64, cpio, kmod: the VM harness's guests, test/vm/ and `npm run vm-test`.)
# Usage: scripts/setup-host.sh            (system packages + npm dependencies + test image if dockerd runs)
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(iproute2 iptables nftables docker.io busybox-static etcd-server dnsmasq-base udhcpc
      iputils-ping arping containernetworking-plugins util-linux mount procps e2fsprogs docker-compose podman
      gcc g++ make python3 libc6-dev ca-certificates
      qemu-system-x86 linux-image-amd64 cpio kmod containerd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup-host: installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ ! -f dist/bundle/pipewright.mjs ] || [ ! -f dist/bin/pipewright ] || [ ! -f dist/pipewright-mount ] || [ ! -f dist/cni-plugin/pipewright ] || [ ! -f dist/syscalls.node ] || [ -n "$(find src native -newer dist/bundle/pipewright.mjs -print -quit)" ]; then
  echo "setup-host: building"
  npm run --silent build
fi
# The CNI plugin: a runtime finds `pipewright` in its plugin directories (a small client that hands
# the call to a running daemon, else runs the CLI).
if [ "$(id -u)" = 0 ]; then
  for d in /opt/cni/bin /usr/lib/cni; do
    mkdir -p "$d"
    ln -sfn "$PWD/dist/cni-plugin/pipewright" "$d/pipewright"
  done
fi
