/** firewalld's StrictForwardPorts as its configuration file spells it (net/firewall/firewalld.ts). */
import t from 'tap';
import { strictInConf } from '../../src/net/firewall/firewalld.js';

t.test('StrictForwardPorts=yes is found; no, comments and other keys are not', async (t) => {
  t.ok(strictInConf('DefaultZone=public\nStrictForwardPorts=yes\n'));
  t.ok(strictInConf('  StrictForwardPorts = true\n'), 'blanks and "true"');
  t.notOk(strictInConf('StrictForwardPorts=no\n'), 'the default');
  t.notOk(strictInConf('# StrictForwardPorts=yes\n'), 'a comment');
  t.notOk(strictInConf('NoStrictForwardPorts=yes\n'), 'another key');
  t.notOk(strictInConf(''), 'no firewalld');
});
