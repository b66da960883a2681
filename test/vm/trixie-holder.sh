#!/usr/bin/env bash
# The Debian 13 environment's first process, run by test/vm/trixie.ts under
# `unshare --mount --net --propagation private --fork`: in that private mount namespace and new
# network namespace it lays a writable overlay over the cached trixie root, mounts what podman
# needs, shares the checkout in read-only, and then waits, chrooted, for commands (nsenter).
# Usage: trixie-holder.sh <root> <run dir> <checkout> [dir to share read-only]...
set -euo pipefail
root=$1 run=$2
shift 2
m=$run/merged
mkdir -p "$run/upper" "$run/work" "$m" "$run/containers"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$run/upper,workdir=$run/work" "$m"
mount -t proc proc "$m/proc"
mount -t sysfs sysfs "$m/sys"
mount -t cgroup2 cgroup2 "$m/sys/fs/cgroup"
mount --rbind /dev "$m/dev"
mount --make-rslave "$m/dev"
mount -t tmpfs tmpfs "$m/run"
mount -t tmpfs tmpfs "$m/tmp"
# podman's storage off the overlay (overlayfs cannot be the upper layer of its own mounts).
mkdir -p "$m/var/lib/containers"
mount --bind "$run/containers" "$m/var/lib/containers"
for dir in "$@"; do
  mkdir -p "$m$dir"
  mount --bind "$dir" "$m$dir"
  mount -o remount,bind,ro "$m$dir"
done
# The host's Node: the checkout's snapshot and addons were built by it (trixie's glibc runs it).
node=$(command -v node)
touch "$m/usr/bin/node"
mount --bind "$node" "$m/usr/bin/node"
ip link set lo up
exec chroot "$m" /bin/sh -c 'echo ready; exec sleep infinity'
