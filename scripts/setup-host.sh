#!/usr/bin/env bash
# Installs what pipewright needs on a Debian 12 / Ubuntu host, from this checkout. Idempotent.
# Usage: scripts/setup-host.sh [runtime|test|vm|all]...     (default: all)
#   runtime  what pipewright runs with, and what building it from source needs; then the npm
#            dependencies, `npm run build`, and links: $PREFIX/bin/pipewright, its man pages,
#            bash completion, the CNI plugin in /opt/cni/bin and /usr/lib/cni, and the netavark
#            plugin in /usr/local/libexec/netavark
#   test     runtime, plus what the test suite uses (Docker, etcd, a DHCP server, podman, ...)
#   vm       runtime, plus the VM harness's guests (QEMU, Debian's stock kernel; test/vm/) and its
#            Debian 13 roots for Podman 5 and netavark, and for Docker 26
#            (scripts/build-trixie-root.sh, cached)
# PREFIX (default /usr/local) is where the executable, man pages and completion are linked.
set -euo pipefail
cd "$(dirname "$0")/.."

# Run time: links, addresses and routes (iproute2), the firewall (iptables or nftables), DHCP
# (udhcpc, busybox's), mounts and volumes (util-linux, mount, e2fsprogs for --size), /proc
# readers (procps), modprobe (kmod), ping for the demo.
runtime_pkgs=(iproute2 iptables nftables udhcpc busybox-static util-linux mount procps e2fsprogs kmod
              iputils-ping ca-certificates)
# Building from source: our C helpers and addon, better-sqlite3's compile where no prebuilt fits.
build_pkgs=(gcc g++ make python3 libc6-dev)
# The tests: a Docker engine and compose, containerd and podman (CNI), etcd (the shared store),
# dnsmasq (a DHCP server), arping, strace (what a command opens), the CNI reference plugins
# (compared with), man and zsh (docs), firewalld (run by its test inside a namespace of its own).
test_pkgs=(docker.io docker-compose containerd podman etcd-server dnsmasq-base arping strace
           containernetworking-plugins man-db groff-base zsh firewalld)
# The VM harness (test/vm/): QEMU and Debian's stock kernel, its initramfs tools; debootstrap for
# the Debian 13 root.
vm_pkgs=(qemu-system-x86 linux-image-amd64 cpio debootstrap)

parts=("$@")
[ "${#parts[@]}" -gt 0 ] || parts=(all)
pkgs=("${runtime_pkgs[@]}" "${build_pkgs[@]}")
vm=""
for part in "${parts[@]}"; do
  case "${part#--}" in
    runtime) ;;
    test) pkgs+=("${test_pkgs[@]}") ;;
    vm) pkgs+=("${vm_pkgs[@]}"); vm=1 ;;
    all) pkgs+=("${test_pkgs[@]}" "${vm_pkgs[@]}"); vm=1 ;;
    *) echo "setup-host: unknown part '$part'; give runtime, test, vm or all" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # firewalld must never become the host's firewall: masked before its package could start it.
  if [[ " ${missing[*]} " == *" firewalld "* ]] && [ -d /run/systemd/system ]; then
    systemctl mask firewalld.service >/dev/null
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup-host: installing npm dependencies"
  # better-sqlite3 compiles SQLite where its prebuilt binary cannot be downloaded (a host that
  # reaches only the npm registry): at -O1 that takes a third of node-gyp's -O3 (measured 37 s
  # against 112 s), and a store's transactions take the same time (~50-70 us either way). A
  # CFLAGS of your own wins.
  CFLAGS="${CFLAGS:--O1}" npm ci --no-audit --no-fund --loglevel=error
fi
built=(dist/bundle/pipewright.mjs dist/bin/pipewright dist/pipewright-mount dist/cni-plugin/pipewright
       dist/netavark-plugin/pipewright dist/syscalls.node dist/man/pipewright.1 dist/completion/pipewright.bash)
stale=""
for f in "${built[@]}"; do [ -f "$f" ] || stale=1; done
[ -n "$stale" ] || [ -z "$(find src native scripts/gen-docs.mjs -newer dist/bundle/pipewright.mjs -print -quit)" ] || stale=1
if [ -n "$stale" ]; then
  echo "setup-host: building"
  npm run --silent build
fi

# On the host's PATH, in man's path and bash's completion; a runtime finds the CNI plugin (a small
# client that hands the call to a running daemon, else runs the CLI) in its plugin directories, and
# netavark (Podman 5) its plugin in the first of containers.conf's default netavark_plugin_dirs.
if [ "$(id -u)" = 0 ]; then
  prefix=${PREFIX:-/usr/local}
  mkdir -p "$prefix/bin" "$prefix/share/man/man1" "$prefix/share/bash-completion/completions"
  ln -sfn "$PWD/dist/bin/pipewright" "$prefix/bin/pipewright"
  for page in dist/man/*.1; do ln -sfn "$PWD/$page" "$prefix/share/man/man1/"; done
  ln -sfn "$PWD/dist/completion/pipewright.bash" "$prefix/share/bash-completion/completions/pipewright"
  for d in /opt/cni/bin /usr/lib/cni; do
    mkdir -p "$d"
    ln -sfn "$PWD/dist/cni-plugin/pipewright" "$d/pipewright"
  done
  mkdir -p /usr/local/libexec/netavark
  ln -sfn "$PWD/dist/netavark-plugin/pipewright" /usr/local/libexec/netavark/pipewright
fi

# The Debian 13 root of test/vm/netavark.test.ts (Podman 5.4, netavark 1.14): built once, cached.
if [ -n "$vm" ] && [ "$(id -u)" = 0 ]; then
  bash scripts/build-trixie-root.sh ||
    echo "setup-host: no Debian 13 root (see above); test/vm/netavark.test.ts will skip" >&2
  bash scripts/build-trixie-root.sh "" docker ||
    echo "setup-host: no Debian 13 Docker root (see above); test/vm/docker26.test.ts will skip" >&2
fi
