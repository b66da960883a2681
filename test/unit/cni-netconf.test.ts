/**
 * The CNI front end's reading of a call, before anything is touched: the CNI_* variables and the
 * configuration, refused with the spec's codes; results in the runtime's version.
 */
import t from 'tap';
import { CniError } from '../../src/cni/errors.js';
import { isIpamMode, parseNetconf, readEnv } from '../../src/cni/netconf.js';
import { defaultRoutes, resultIps, versioned } from '../../src/cni/result.js';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof CniError ? err.code : -1;
  }
  return 0;
};

t.test('CNI_* variables', async (t) => {
  const base = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' };
  t.match(readEnv({ ...base, CNI_ARGS: 'IgnoreUnknown=1;IP=10.0.0.5' }), {
    command: 'ADD',
    containerId: 'c1',
    ifname: 'eth0',
  });
  t.equal(readEnv({ ...base, CNI_ARGS: 'IP=10.0.0.5' }).args.get('IP'), '10.0.0.5');
  t.equal(
    codeOf(() => readEnv({ ...base, CNI_COMMAND: 'FOO' })),
    4,
    'an unknown command',
  );
  t.equal(
    codeOf(() => readEnv({ ...base, CNI_NETNS: '' })),
    4,
    'ADD needs a netns',
  );
  t.equal(
    codeOf(() => readEnv({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: '' })),
    0,
    'DEL does not',
  );
  t.equal(
    codeOf(() => readEnv({ ...base, CNI_NETNS: 'x' })),
    4,
    'a relative netns',
  );
  t.equal(
    codeOf(() => readEnv({ ...base, CNI_IFNAME: 'a-name-far-too-long' })),
    4,
    'an interface name over 15 bytes',
  );
  t.equal(
    codeOf(() => readEnv({ ...base, CNI_ARGS: 'novalue' })),
    4,
    'CNI_ARGS without =',
  );
  t.equal(
    codeOf(() => readEnv({ CNI_COMMAND: 'VERSION', CNI_NETNS: 'dummy' })),
    0,
    'VERSION ignores the placeholders libcni sends',
  );
});

t.test('the configuration', async (t) => {
  t.equal(
    codeOf(() => parseNetconf('{')),
    6,
    'not JSON',
  );
  t.equal(
    codeOf(() => parseNetconf('{"cniVersion":"0.2.0","name":"n","type":"pipewright"}')),
    1,
    'a version not spoken',
  );
  t.equal(
    codeOf(() => parseNetconf('{"cniVersion":"1.0.0","name":"a/b","type":"pipewright"}')),
    7,
    'a name unfit for the store',
  );
  t.ok(isIpamMode(parseNetconf('{"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{"type":"pipewright"}}')));
  t.notOk(isIpamMode(parseNetconf('{"cniVersion":"1.0.0","name":"n","type":"pipewright"}')));
});

t.test('results in the runtime version', async (t) => {
  const addrs = [{ address: '10.1.0.2', prefix: 24, family: 4 as const, gateway: '10.1.0.1' }];
  const result = { ips: resultIps(addrs, 1), routes: defaultRoutes(addrs) };
  t.same(versioned({ cniVersion: '0.4.0', name: 'n', type: 'pipewright' }, result).ips, [
    { address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 1, version: '4' },
  ]);
  t.same(versioned({ cniVersion: '1.1.0', name: 'n', type: 'pipewright' }, result), {
    cniVersion: '1.1.0',
    ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
  });
});
