#!/usr/bin/env bash
# Builds (once) a Debian 13 (trixie) root for the tests that need Podman 5 and netavark: Podman 5.4
# and netavark 1.14 are in trixie only. Cached: a root whose package list matches is kept.
# Usage: scripts/build-trixie-root.sh [dir] [podman|docker]   (default /var/cache/pipewright-vm/trixie-root)
# `docker`: a second root (default dir trixie-docker-root) with Docker 26 instead of Podman, and
# firewalld 2.3 (test/vm/firewalld2.test.ts).
# MIRROR (default: the host's Debian mirror, else deb.debian.org) is where debootstrap fetches.
set -euo pipefail
set=${2:-podman}
case "$set" in
podman) root=${1:-${PIPEWRIGHT_TRIXIE_ROOT:-/var/cache/pipewright-vm/trixie-root}} ;;
docker) root=${1:-${PIPEWRIGHT_TRIXIE_DOCKER_ROOT:-/var/cache/pipewright-vm/trixie-docker-root}} ;;
*) echo "build-trixie-root: podman or docker, not $set" >&2; exit 2 ;;
esac
# Podman and its runtime, the firewall tools netavark and pipewright use, busybox for a test image,
# kmod for a VM guest booted on this root (test/vm/stage2-init);
# libstdc++6 for the host's Node binary, which the tests bind in (its V8 snapshot is that binary's).
pkgs=podman,netavark,crun,conmon,iproute2,nftables,iptables,busybox-static,libstdc++6,ca-certificates,procps,kmod
# The docker set: Docker 26 (docker.io 26.1.5; its CLI is docker-cli) with containerd and runc,
# e2fsprogs for pipewright's sized volumes; firewalld (2.3, nftables backend) with its D-Bus daemon
# (libpam-systemd: a logind for its polkitd, which debootstrap does not choose itself).
[ "$set" = docker ] &&
  pkgs=docker.io,docker-cli,containerd,runc,iptables,iproute2,nftables,busybox-static,libstdc++6,ca-certificates,procps,kmod,e2fsprogs,firewalld,dbus,libpam-systemd
stamp="$root/.pipewright-root"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "trixie $pkgs" ]; then exit 0; fi
command -v debootstrap >/dev/null || { echo "build-trixie-root: debootstrap is missing; run scripts/setup-host.sh vm" >&2; exit 1; }
mirror=${MIRROR:-$(sed -n 's|^URIs: *\(http[^ ]*/debian\)$|\1|p; s|^deb  *\(http[^ ]*/debian\)  *bookworm .*|\1|p' \
  /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
tmp="$root.tmp"
rm -rf "$tmp"
mkdir -p "$(dirname "$root")"
start=$(date +%s)
echo "build-trixie-root: debootstrap trixie from $mirror into $root"
debootstrap --variant=minbase --include="$pkgs" trixie "$tmp" "$mirror" >"$tmp.log" 2>&1 ||
  { tail -n 20 "$tmp.log" >&2; echo "build-trixie-root: debootstrap failed (log: $tmp.log)" >&2; exit 1; }
rm -rf "$tmp/var/cache/apt/archives/"*.deb
echo "trixie $pkgs" >"$tmp/.pipewright-root"
# A stale root stays until its successor is whole.
rm -rf "$root"
mv "$tmp" "$root"
rm -f "$tmp.log"
echo "build-trixie-root: built in $(($(date +%s) - start)) s"
