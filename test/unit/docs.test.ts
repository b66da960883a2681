/**
 * The man pages and completions `npm run build` writes (scripts/gen-docs.mjs) come from the same
 * command tree as --help: every command has its page with its options and examples, a page
 * renders with man(1), and bash completes a command's name from the tree.
 */
import t from 'tap';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { EventEmitter } from 'node:events';
import { buildProgram } from '../../src/cli/main.js';

const DIST = fileURLToPath(new URL('../../dist', import.meta.url));

function tree(cmd: Command, path: string[] = [cmd.name()]): { cmd: Command; path: string[] }[] {
  return [{ cmd, path }, ...cmd.commands.flatMap((sub) => tree(sub, [...path, sub.name()]))];
}

/** The example lines --help prints after a command's options. */
function helpExamples(cmd: Command): string[] {
  let text = '';
  // commander's addHelpText is a listener on this event (its types leave the emitter out).
  (cmd as unknown as EventEmitter).emit('afterHelp', { error: false, command: cmd, write: (s: string) => (text += s) });
  return text
    .split('\n')
    .filter((l) => /^\s{2}\S/.test(l))
    .map((l) => l.trim());
}

// roff as gen-docs writes it: backslashes as \e, hyphens as \-.
const roff = (s: string) => s.replace(/\\/g, '\\e').replace(/-/g, '\\-');

t.test('every command of the tree has a man page with its options and examples', async (t) => {
  const commands = tree(buildProgram());
  t.ok(commands.length > 30, `${commands.length} commands`);
  for (const { cmd, path } of commands) {
    const file = `${DIST}/man/${path.join('-')}.1`;
    if (!t.ok(existsSync(file), `${path.join(' ')} has ${file}`)) continue;
    const page = readFileSync(file, 'utf8');
    t.match(page, `.TH ${path.join('-').toUpperCase()} 1`, file);
    for (const option of cmd.options) t.ok(page.includes(roff(option.flags)), `${file} names ${option.flags}`);
    const examples = helpExamples(cmd);
    if (cmd.commands.length === 0) t.ok(examples.length > 0, `${path.join(' ')} has examples in --help`);
    for (const example of examples) t.ok(page.includes(roff(example)), `${file} shows "${example}"`);
  }
});

t.test('man renders pipewright-attach(1)', async (t) => {
  // Piped, man prints plain text (no overstrike).
  const r = await execa('man', ['-l', `${DIST}/man/pipewright-attach.1`], { env: { MANWIDTH: '100' } });
  const shown = r.stdout;
  t.match(shown, /^PIPEWRIGHT-ATTACH\(1\)/);
  t.match(shown, /SYNOPSIS\s+pipewright attach \[options\] <host-if> <guest> <address\.\.\.>/);
  t.match(shown, /-i, --ifname <name>\s+interface name in the guest/);
  t.match(shown, /EXAMPLES\s+pipewright attach br0 web 10\.10\.0\.5\/24@10\.10\.0\.1/);
  t.notMatch(r.stderr, /warning|error/i, 'groff has nothing to complain about');
});

/** What bash's completion function offers for a command line, as <TAB> at its last word would. */
async function complete(...words: string[]): Promise<string[]> {
  const script = `source '${DIST}/completion/pipewright.bash'
complete -p pipewright >/dev/null || exit 3
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_pipewright; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = await execa('bash', ['--norc', '-c', script]);
  return r.stdout.split('\n').filter(Boolean);
}

t.test('bash completes from the command tree', async (t) => {
  t.same(await complete('pipewright', 'at'), ['attach']);
  t.same(
    await complete('pipewright', '--state-dir', '/tmp/x', 'pool', 'cr'),
    ['create'],
    'past a global option and its value',
  );
  t.same((await complete('pipewright', 'volume', '')).sort(), ['create', 'inspect', 'ls', 'path', 'prune', 'rm']);
  t.same(await complete('pipewright', 'attach', '--if'), ['--ifname']);
});

t.test(
  'the zsh completion is valid zsh',
  { skip: existsSync('/bin/zsh') ? false : 'zsh is not installed' },
  async (t) => {
    const r = await execa('zsh', ['-n', `${DIST}/completion/_pipewright`], { reject: false });
    t.equal(r.exitCode, 0, r.stderr);
  },
);

t.test('npm links every man page at a global install', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const pages = tree(buildProgram()).map(({ path }) => `./dist/man/${path.join('-')}.1`);
  t.same([...pkg.man].sort(), pages.sort(), "package.json's man lists the page of every command");
  t.match(pkg.scripts.build, /node scripts\/gen-docs\.mjs/);
});
