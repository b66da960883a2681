#!/usr/bin/env bash
# Builds pipewright's small native pieces into dist/:
#   bin/pipewright    (the executable: hands a command to a daemon's warm worker, else starts Node from the snapshot)
#   pipewright-mount  (a program: mounts into a container's mount namespace)
#   cni-plugin/pipewright (the CNI plugin's entry: hands a call to a running daemon, else runs the CLI)
#   netavark-plugin/pipewright (the netavark plugin: the CLI with --netavark-plugin)
#   cpu-key, pipewright.blob.cpu (the CPU features the snapshot was built with, native/cpu-key.h)
#   syscalls.node     (a Node addon: rtnetlink sockets and requests; setns, to open them inside a guest's network namespace;
#                      flock, for host locks the kernel releases when their holder dies; kernel change events;
#                      host tools started by posix_spawn)
# Node's headers: next to the running node (as node-gyp finds them), or npm's nodedir.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
cc -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -o dist/pipewright-mount native/pipewright-mount.c
mkdir -p dist/bin dist/cni-plugin dist/netavark-plugin
install -m 755 native/pipewright-netavark.sh dist/netavark-plugin/pipewright
# The build's id (scripts/bundle.mjs wrote it): a warm worker of another build declines this launcher's calls.
build_id=$(cat dist/build-id 2>/dev/null || true)
[[ $build_id =~ ^[0-9a-f]{16}$ ]] || { echo "build-native: no build id in dist/build-id; run node scripts/bundle.mjs first (npm run build does)" >&2; exit 1; }
# The V8 flags the snapshot is built with, as build-snapshot.mjs reads them, as C strings: "a","b".
snapshot_flags=$(node --input-type=module -e "const { snapshotFlags } = await import('./scripts/build-snapshot.mjs'); console.log(JSON.stringify(await snapshotFlags()).slice(1, -1))")
cc -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -DBUILD_ID="\"$build_id\"" -DSNAPSHOT_FLAGS="$snapshot_flags" -o dist/bin/pipewright native/pipewright.c
cc -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -o dist/cni-plugin/pipewright native/pipewright-cni.c
# The CPU the snapshot was built on (native/cpu-key.h): the executable runs the bundle on another.
cc -O2 -Wall -Wextra -Werror -o dist/cpu-key native/cpu-key.c
if [ -f dist/pipewright.blob ]; then dist/cpu-key >dist/pipewright.blob.cpu; fi
inc=$(node -p "require('path').resolve(process.execPath, '../../include/node')")
[ -f "$inc/node_api.h" ] || inc="$(npm config get nodedir 2>/dev/null)/include/node"
[ -f "$inc/node_api.h" ] || { echo "build-native: Node's headers (node_api.h) not found; install the headers of your Node.js" >&2; exit 1; }
cc -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -shared -fPIC -I"$inc" -o dist/syscalls.node native/syscalls.c native/nl-events.c native/announce.c native/spawn-tool.c
