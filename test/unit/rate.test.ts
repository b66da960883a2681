/** --rate and --metric: tc's units, canonical text, the CNI bandwidth capability, bad values refused. */
import t from 'tap';
import { checkAttachSpec, sameLink, sameSpec } from '../../src/model/attachment.js';
import { burstOf, formatRates, parseRates, ratesFromCni } from '../../src/model/rate.js';
import { checkMetric } from '../../src/model/validate.js';
import { configureGuestWords } from '../../src/net/addresses/guest-config.js';
import { UsageError } from '../../src/util/errors.js';
import { BAD_RATES } from '../helpers/bad-rates.js';

t.test("rates in tc's units, as bits per second and bytes", async (t) => {
  t.same(parseRates('10mbit'), { ingress: { rate: 10e6, burst: null }, egress: null });
  t.same(parseRates('10mbit/2mbit'), { ingress: { rate: 10e6, burst: null }, egress: { rate: 2e6, burst: null } });
  t.same(parseRates('-/512kbit:16kb'), { ingress: null, egress: { rate: 512e3, burst: 16384 } });
  t.same(parseRates('1mibit').ingress, { rate: 1048576, burst: null }, 'IEC units');
  t.same(parseRates('1mbps').ingress, { rate: 8e6, burst: null }, 'bps is bytes per second, as in tc');
  t.same(parseRates('1.5MBit').ingress, { rate: 1.5e6, burst: null }, 'decimals, any case');
  t.same(parseRates('64000').ingress, { rate: 64000, burst: null }, 'a bare number is bits per second');
  t.same(parseRates('1gbit:1m').ingress, { rate: 1e9, burst: 1048576 }, 'a bare size unit is 1024-based');
});

t.test('canonical text: largest exact unit, default burst left out', async (t) => {
  t.equal(formatRates(parseRates('10000kbit')), '10mbit');
  t.equal(formatRates(parseRates('10mbit/-')), '10mbit');
  t.equal(formatRates(parseRates('-/1mbps:2048')), '-/8mbit:2kb');
  t.equal(formatRates(parseRates('1mibit')), '1048576bit');
  t.equal(
    checkAttachSpec({ hostIf: 'br0', addresses: ['10.0.0.2/24'], rate: '20000kbit/10mbit' }).rate,
    '20mbit/10mbit',
  );
});

t.test('the default bucket is 10 ms at the rate, at least a full frame', async (t) => {
  t.equal(burstOf({ rate: 20e6, burst: null }), 25000);
  t.equal(burstOf({ rate: 64e3, burst: null }), 1600);
  t.equal(burstOf({ rate: 20e6, burst: 4096 }), 4096);
});

t.test('bad rates are refused with one line naming the value', async (t) => {
  for (const bad of BAD_RATES) {
    t.throws(() => parseRates(bad), UsageError, JSON.stringify(bad));
  }
  t.throws(() => parseRates('10xbit'), /ingress rate "10xbit" must be a number with one of tc's units/);
});

t.test('the CNI bandwidth capability: bits per second and bits, rate and burst together', async (t) => {
  t.equal(ratesFromCni({}), null);
  t.equal(ratesFromCni({ ingressRate: 20e6, ingressBurst: 200000 }), '20000000bit:25000b/-');
  t.equal(formatRates(parseRates(ratesFromCni({ egressRate: 1e6, egressBurst: 64000 })!)), '-/1mbit:8000b');
  t.throws(() => ratesFromCni({ ingressRate: 1e6 }), /ingressBurst must be a positive whole number with ingressRate/);
  t.throws(() => ratesFromCni({ egressBurst: 1e6 }), /egressRate/);
  t.throws(() => ratesFromCni({ ingressRate: -5, ingressBurst: 10 }), UsageError);
  t.throws(() => ratesFromCni({ ingressRate: '1e6' as unknown as number, ingressBurst: 10 }), UsageError);
});

t.test('metrics: whole numbers from 1 to 2^32-1', async (t) => {
  t.equal(checkMetric('100'), 100);
  t.equal(checkMetric(4294967295), 4294967295);
  for (const bad of ['0', '-1', '4294967296', '1e3', 'x', '1.5', '', '0x10'])
    t.throws(() => checkMetric(bad), UsageError);
});

t.test('metric and rate change in place: the same link, another spec', async (t) => {
  const base = { hostIf: 'br0', addresses: ['10.0.0.2/24@10.0.0.1'] };
  const a = checkAttachSpec(base);
  const b = checkAttachSpec({ ...base, metric: 100, rate: '10mbit' });
  t.notOk(sameSpec(a, b));
  t.ok(sameLink(a, b));
  t.notOk(sameLink(a, checkAttachSpec({ ...base, addresses: ['10.0.0.3/24'] })));
  // A record stored before metric and rate existed compares as one with neither.
  const old: Partial<typeof a> = { ...a };
  delete old.metric;
  delete old.rate;
  t.ok(sameSpec(old as typeof a, a));
  t.throws(() => checkAttachSpec({ hostIf: 'none', addresses: ['10.9.0.1/32'], rate: '1mbit' }), /drop --rate/);
  t.throws(
    () => checkAttachSpec({ hostIf: 'br0', addresses: ['dhcp'], sbr: true }),
    /--sbr needs static or pool addresses/,
  );
  t.notOk(sameLink(a, checkAttachSpec({ ...base, sbr: true })), '--sbr is not changed in place');
});

t.test("--verbose prints each route with the attachment's metric", async (t) => {
  const words = configureGuestWords({
    ifname: 'eth1',
    addresses: [{ address: '10.0.0.2', prefix: 24, family: 4, gateway: '10.0.0.1' }],
    routes: [],
    metric: 200,
  });
  t.same(words.at(-1), ['route', 'replace', '0.0.0.0/0', 'via', '10.0.0.1', 'dev', 'eth1', 'metric', '200']);
});
