// Writes the man pages (dist/man/*.1) and the bash and zsh completions (dist/completion/) from
// the CLI's own command tree, the one `--help` prints: dist/cli/main.js's buildProgram(). Run by
// `npm run build` after tsc; one source, so a page never says what --help does not.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { buildProgram } from '../dist/cli/main.js';

const VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
const MAN_DIR = 'dist/man';
const COMPLETION_DIR = 'dist/completion';

/** Every command of the tree with its path of names (the root's is ['pipewright']). */
function commands(cmd, path = [cmd.name()]) {
  return [{ cmd, path }, ...cmd.commands.flatMap((sub) => commands(sub, [...path, sub.name()]))];
}

/** The text a command adds after its help (its examples), as --help prints it. */
function afterHelp(cmd) {
  let text = '';
  cmd.emit('afterHelp', { error: false, command: cmd, write: (s) => (text += s) });
  return text;
}

/** Example lines: the indented lines of the after-help text, without its "Examples:" heading. */
export function examples(cmd) {
  return afterHelp(cmd)
    .split('\n')
    .filter((line) => /^\s{2}\S/.test(line))
    .map((line) => line.slice(2));
}

const subcommands = (cmd) => cmd.commands;
const pageName = (path) => path.join('-');

// roff: backslashes escaped, a line never starts with a control character, hyphens are minus signs.
const esc = (s) => s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
const line = (s) => (/^[.']/.test(s) ? `\\&${s}` : s);
const text = (s) => line(esc(s));

function manPage({ cmd, path }, root) {
  const help = cmd.createHelp();
  const name = pageName(path);
  const out = [
    `.TH ${name.toUpperCase()} 1 "" "pipewright ${VERSION}" "pipewright manual"`,
    '.SH NAME',
    `${esc(name)} \\- ${esc(cmd.description())}`,
    '.SH SYNOPSIS',
    `.B ${esc(path.join(' '))}`,
    text(cmd.usage()),
    '.SH DESCRIPTION',
    text(cmd.description()),
  ];
  const section = (title, items) => {
    if (items.length === 0) return;
    out.push(`.SH ${title}`);
    for (const [term, description] of items) out.push('.TP', `.B ${esc(term)}`, text(description));
  };
  section(
    'ARGUMENTS',
    help.visibleArguments(cmd).map((a) => [help.argumentTerm(a), help.argumentDescription(a)]),
  );
  section(
    'OPTIONS',
    help.visibleOptions(cmd).map((o) => [help.optionTerm(o), help.optionDescription(o)]),
  );
  if (cmd !== root) {
    section(
      'GLOBAL OPTIONS',
      help
        .visibleOptions(root)
        .filter((o) => o.long !== '--help' && o.long !== '--version')
        .map((o) => [help.optionTerm(o), help.optionDescription(o)]),
    );
  }
  section(
    'COMMANDS',
    subcommands(cmd).map((c) => [`${c.name()}`, `${c.description()} (see ${pageName([...path, c.name()])}(1))`]),
  );
  const ex = examples(cmd);
  if (ex.length > 0) out.push('.SH EXAMPLES', '.nf', '.RS 4', ...ex.map(text), '.RE', '.fi');
  const related = [
    ...(path.length > 1 ? [pageName(path.slice(0, -1))] : []),
    ...subcommands(cmd).map((c) => pageName([...path, c.name()])),
  ];
  out.push('.SH SEE ALSO', esc([...related.map((r) => `${r}(1)`), 'the guides in docs/ (see README.md)'].join(', ')));
  return `${out.join('\n')}\n`;
}

/** Every flag a command takes, and those of them that take a value (they consume the next word). */
const flags = (cmd) => cmd.options.flatMap((o) => [o.short, o.long].filter(Boolean));
const valueFlags = (tree) => [
  ...new Set(
    tree.flatMap(({ cmd }) =>
      cmd.options.filter((o) => o.required || o.optional).flatMap((o) => [o.short, o.long].filter(Boolean)),
    ),
  ),
];

const shWords = (words) => words.join(' ');

function bashCompletion(tree, root) {
  const cases = (pick) =>
    tree.map(({ cmd, path }) => `    '${path.slice(1).join(' ')}') echo '${shWords(pick(cmd))}' ;;`);
  return `# bash completion for pipewright, generated from its command tree by scripts/gen-docs.mjs
_pipewright_commands() {
  case "$1" in
${cases((c) => subcommands(c).map((s) => s.name())).join('\n')}
  esac
}
_pipewright_options() {
  case "$1" in
${cases((c) => [...flags(c), '--help']).join('\n')}
  esac
}
_pipewright() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path='' word i subs
  local takes_value=' ${shWords(valueFlags(tree))} '
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=\${COMP_WORDS[i]}
    if [[ $word == -* ]]; then
      [[ $takes_value == *" $word "* ]] && ((i++))
      continue
    fi
    subs=" $(_pipewright_commands "$path") "
    [[ $subs == *" $word "* ]] && path="\${path:+$path }$word"
  done
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_pipewright_options "$path") ${shWords(flags(root))}" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_pipewright_commands "$path")" -- "$cur"))
  fi
}
complete -o default -F _pipewright pipewright
`;
}

function zshCompletion(tree, root) {
  const q = (s) => s.replace(/'/g, "'\\''").replace(/:/g, '\\:');
  const cases = (pick) =>
    tree.map(
      ({ cmd, path }) =>
        `    '${path.slice(1).join(' ')}') items=(${pick(cmd)
          .map((i) => `'${i}'`)
          .join(' ')}) ;;`,
    );
  const described = (list) => list.map(([term, d]) => `${q(term)}:${q(d)}`);
  return `#compdef pipewright
# zsh completion for pipewright, generated from its command tree by scripts/gen-docs.mjs
_pipewright() {
  local -a items subs
  local cmdpath='' word i
  local takes_value=' ${shWords(valueFlags(tree))} '
  for ((i = 2; i < CURRENT; i++)); do
    word=\${words[i]}
    if [[ $word == -* ]]; then
      [[ $takes_value == *" $word "* ]] && ((i++))
      continue
    fi
    subs=(\${(f)"$(_pipewright_names "$cmdpath")"})
    (( \${subs[(Ie)$word]} )) && cmdpath="\${cmdpath:+$cmdpath }$word"
  done
  if [[ $PREFIX == -* ]]; then
    case $cmdpath in
${cases((c) => described([...c.options, ...(c === root ? [] : root.options)].map((o) => [o.long ?? o.short, o.description]))).join('\n')}
    esac
    _describe -t options 'option' items
  else
    case $cmdpath in
${cases((c) => described(subcommands(c).map((s) => [s.name(), s.description()]))).join('\n')}
    esac
    (( \${#items} )) && _describe -t commands 'command' items || _files
  fi
}
_pipewright_names() {
  case "$1" in
${tree.map(({ cmd, path }) => `    '${path.slice(1).join(' ')}') print -l ${shWords(subcommands(cmd).map((s) => s.name()))} ;;`).join('\n')}
  esac
}
_pipewright "$@"
`;
}

export function generate(program = buildProgram()) {
  const tree = commands(program);
  rmSync(MAN_DIR, { recursive: true, force: true });
  mkdirSync(MAN_DIR, { recursive: true });
  for (const entry of tree) writeFileSync(`${MAN_DIR}/${pageName(entry.path)}.1`, manPage(entry, program));
  mkdirSync(COMPLETION_DIR, { recursive: true });
  writeFileSync(`${COMPLETION_DIR}/pipewright.bash`, bashCompletion(tree, program));
  writeFileSync(`${COMPLETION_DIR}/_pipewright`, zshCompletion(tree, program));
  return tree.length;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const pages = generate();
  console.log(`gen-docs: ${pages} man pages in ${MAN_DIR}, bash and zsh completion in ${COMPLETION_DIR}`);
}
