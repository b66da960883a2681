import t from 'tap';
import { forwardDelta } from '../../src/net/firewall/forward.js';

const EMPTY = `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n`;
const WITH_ONE = `*filter\n:FORWARD DROP [0:0]\n:PIPEWRIGHT-FORWARD - [0:0]\n-A FORWARD -j PIPEWRIGHT-FORWARD\n-A FORWARD -j DOCKER-USER\n-A PIPEWRIGHT-FORWARD -i br0 -o br0 -j ACCEPT\nCOMMIT\n`;

t.test('first bridge creates chain, hook and rule; nothing else is touched', async (t) => {
  t.equal(forwardDelta(EMPTY, 'br0', true),
    '*filter\n:PIPEWRIGHT-FORWARD - [0:0]\n-I FORWARD 1 -j PIPEWRIGHT-FORWARD\n-A PIPEWRIGHT-FORWARD -i br0 -o br0 -j ACCEPT\nCOMMIT\n');
});

t.test('present rule: no change; second bridge: only its rule', async (t) => {
  t.equal(forwardDelta(WITH_ONE, 'br0', true), null);
  t.equal(forwardDelta(WITH_ONE, 'br1', true), '*filter\n-A PIPEWRIGHT-FORWARD -i br1 -o br1 -j ACCEPT\nCOMMIT\n');
});

t.test('removing the last rule removes hook and chain; absent rule: no change', async (t) => {
  t.equal(forwardDelta(WITH_ONE, 'br0', false),
    '*filter\n-D PIPEWRIGHT-FORWARD -i br0 -o br0 -j ACCEPT\n-D FORWARD -j PIPEWRIGHT-FORWARD\n-X PIPEWRIGHT-FORWARD\nCOMMIT\n');
  t.equal(forwardDelta(WITH_ONE, 'br1', false), null);
  const two = WITH_ONE.replace('COMMIT', '-A PIPEWRIGHT-FORWARD -i br1 -o br1 -j ACCEPT\nCOMMIT');
  t.equal(forwardDelta(two, 'br1', false), '*filter\n-D PIPEWRIGHT-FORWARD -i br1 -o br1 -j ACCEPT\nCOMMIT\n');
});
