#!/usr/bin/env bash
# Builds the local test image pipewright-test/busybox:latest from busybox-static (no registry needed),
# for Docker (default; needs a running engine) or podman: scripts/build-test-image.sh [docker|podman].
# Idempotent: does nothing when the image exists.
set -euo pipefail
engine=${1:-docker}
case "$engine" in docker | podman) ;; *) echo "build-test-image: docker or podman, not $engine" >&2; exit 2 ;; esac
image=pipewright-test/busybox:latest
"$engine" image inspect "$image" >/dev/null 2>&1 && exit 0
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,data,root}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
tar -C "$root" -c . | "$engine" import --change 'CMD ["/bin/sh"]' - "$image" >/dev/null
echo "build-test-image: built $image for $engine"
