#!/usr/bin/env bash
# Builds the local test image pipewright-test/busybox:latest from busybox-static (no registry needed).
# Idempotent: does nothing when the image exists. Needs a running Docker engine.
set -euo pipefail
image=pipewright-test/busybox:latest
docker image inspect "$image" >/dev/null 2>&1 && exit 0
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,data,root}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
tar -C "$root" -c . | docker import --change 'CMD ["/bin/sh"]' - "$image" >/dev/null
echo "build-test-image: built $image"
