// Commit subjects since the convention began (commit c7d89d9): "area: what changed", at most 72
// characters, so `git log --oneline` reads as a list of changes. Part of `npm run lint`; a checkout
// without that history (a tarball, a shallow clone) has nothing to check.
import { spawnSync } from 'node:child_process';

const SINCE = 'c7d89d9';
const MAX = 72;
const git = (...args) => spawnSync('git', args, { encoding: 'utf8' });

if (git('rev-parse', '-q', '--verify', `${SINCE}^{commit}`).status !== 0) {
  console.log(`check-commits: no history since ${SINCE} here; nothing to check`);
  process.exit(0);
}
const bad = git('log', '--format=%h %s', `${SINCE}..HEAD`)
  .stdout.split('\n')
  .filter(Boolean)
  .filter((line) => {
    const subject = line.slice(line.indexOf(' ') + 1);
    return [...subject].length > MAX || !/^[a-z0-9][a-z0-9/ ,.+-]*: \S/.test(subject);
  });
if (bad.length) {
  console.error(`check-commits: a subject is "area: what changed" in at most ${MAX} characters; these are not:`);
  for (const line of bad) console.error(`  ${line}`);
  process.exit(1);
}
