/** The call a warm worker reads (native/pipewright.c writes it), and the command word it declines by. */
import t from 'tap';
import { buildProgram } from '../../src/cli/main.js';
import { commandWord, parseCall } from '../../src/cli/warm-worker.js';

const call = (...parts: string[]) => Buffer.from(parts.map((p) => `${p}\0`).join(''));

t.test('a call: version, build, cwd, umask, argc, argv, environment', async (t) => {
  t.same(
    parseCall(
      call(
        'pipewright-call-2',
        '0123456789abcdef',
        '/srv',
        '27',
        '3',
        'pipewright',
        'pool',
        'ls',
        'A=1',
        'B=x=y',
        'junk',
      ),
    ),
    {
      build: '0123456789abcdef',
      cwd: '/srv',
      umask: 0o27,
      argv: ['pipewright', 'pool', 'ls'],
      env: [
        ['A', '1'],
        ['B', 'x=y'],
      ],
    },
  );
  t.same(parseCall(call('pipewright-call-2', 'b', '/', '0', '1', 'pipewright'))?.env, [], 'no environment');
});

t.test('anything else is no call', async (t) => {
  for (const bad of [
    call('pipewright-call-1', '/', '22', '1', 'pipewright'),
    call('pipewright-call-3', 'b', '/', '22', '1', 'pipewright'),
    call('pipewright-call-2', '', '/', '22', '1', 'pipewright'),
    call('pipewright-call-2', 'b', 'relative', '22', '1', 'pipewright'),
    call('pipewright-call-2', 'b', '/', '99', '1', 'pipewright'),
    call('pipewright-call-2', 'b', '/', '22', '0'),
    call('pipewright-call-2', 'b', '/', '22', '3', 'pipewright'),
    call('pipewright-call-2', 'b', '/', '22', 'x', 'pipewright'),
    Buffer.from('pipewright-call-2'),
    Buffer.alloc(0),
  ]) {
    t.equal(parseCall(bad), undefined, JSON.stringify(bad.toString()));
  }
});

t.test('the command word skips global options and their values', async (t) => {
  const program = buildProgram();
  t.equal(commandWord(program, ['--state-dir', '/x', '--verbose', 'daemon']), 'daemon');
  t.equal(commandWord(program, ['--store', 'daemon', 'ls']), 'ls', "an option's value is not the command");
  t.equal(commandWord(program, ['--state-dir=/x', 'watch']), 'watch');
  t.equal(commandWord(program, ['--version']), undefined);
});
