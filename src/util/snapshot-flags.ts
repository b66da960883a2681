/**
 * The V8 flags the CLI's startup snapshot (dist/pipewright.blob) is built and started with. Node
 * loads a snapshot only under the flags it was built with (another set: "Failed to load the
 * startup snapshot", exit 14), and V8's code cache for etcd3 (src/cli/code-cache.ts) is accepted
 * only under them too: everything that builds or starts the snapshot passes these, and
 * scripts/build-native.sh compiles them into dist/bin/pipewright.
 *
 * --no-rehash-snapshot: by default V8 draws a new hash seed at each start and rehashes every table
 * in the snapshot's heap with it; for this CLI that was 6 ms of a 30 ms start (`--version` 1.48x
 * `node -e 0` with it, 1.20x without, interleaved). A process started from the snapshot then hashes
 * strings with the seed V8 was built with, the same on every host with this Node binary. Why that
 * is acceptable here: the seed guards hash tables (V8's string table, dictionaries, Maps) against
 * strings chosen to collide, and the strings a command keys or parses as JSON are its own names
 * and what root-held callers give it (an operator, a CNI runtime, the Docker engine, whose
 * container JSON carries the labels of the image the operator chose to run). What a guest names
 * is read over rtnetlink into arrays (its links, addresses, routes; Maps of them by ifindex, an
 * integer V8 hashes without the seed), never through JSON. A warm worker keeps a caller's
 * environment as pairs until it has taken the caller. A long-lived process started from the
 * snapshot (`daemon`, `watch`) replaces itself with Node running the bundle, which draws its own
 * seed (src/cli/own-seed.ts).
 */
export const SNAPSHOT_FLAGS: readonly string[] = ['--no-rehash-snapshot'];
