/**
 * What every firewalld test proves, on whichever host runs firewalld (Debian 12's firewalld in a
 * stand-in host's netns, Debian 13's in the trixie environment): a network is refused in one line
 * while firewalld's forward chain would drop its bridge's traffic, and once the admin puts the
 * bridges in the trusted zone, forwarding, masquerade and a published port (from a guest and from
 * another host) work, also after `firewall-cmd --reload`, which leaves pipewright's table in place.
 */
import type { Test } from 'tap';
import { UPLINK } from './host.js';

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** The host where firewalld runs, as the scenario uses it; guests are netns it makes there. */
export interface FirewalldHost {
  /** pipewright with the nftables backend, against the test's store. */
  pw: (...args: string[]) => Promise<Outcome>;
  firewallCmd: (...args: string[]) => Promise<Outcome>;
  /** Another host: a netns wired to this one, at UPLINK's addresses (its uplink in no zone: firewalld's default). */
  outside: string;
  /** A new netns (removed at the end), by the name `attach` takes. */
  guest: () => Promise<string>;
  /** A peer server (test/helpers/peer.mjs) on TCP `port` in `ns`, answering with the client's address. */
  serve: (ns: string, port: number) => Promise<void>;
  ping: (ns: string, addr: string) => Promise<boolean>;
  /** What the peer server at host:port answered a client in `ns`. */
  ask: (ns: string, host: string, port: number) => Promise<string>;
  /** `nft list tables` there. */
  tables: () => Promise<string>;
  /** The store's IPv4 nftables table ("ip pipewright_<id>"). */
  table: string;
}

/** The scenario; the guest netns that asks the published port, and the port, for a test's own checks after it. */
export async function firewalldScenario(t: Test, h: FirewalldHost): Promise<{ client: string; port: number }> {
  const { pw } = h;
  t.equal((await pw('pool', 'create', 'wa', '10.247.91.0/24')).code, 0);
  t.equal((await pw('pool', 'create', 'wb', '10.247.92.0/24')).code, 0);
  const refused = await pw('network', 'create', 'na', '--bridge', 'bra', '--pool', 'wa');
  t.equal(refused.code, 1);
  t.match(
    refused.stderr.trim(),
    /^pipewright: nftables chain inet firewalld filter_FORWARD \(a last rule that drops\) would drop bra's forwarded traffic; .*firewall-cmd --permanent --zone=trusted --add-interface=bra/,
    'refused in one line, naming the chain and the firewall-cmd that lets it through',
  );
  t.equal(refused.stderr.trim().split('\n').length, 1, 'one line');
  t.equal((await pw('network', 'ls', '--json')).stdout.trim(), '[]', 'the refusal made no network');

  for (const br of ['bra', 'brb'])
    t.equal((await h.firewallCmd('--permanent', '--zone=trusted', `--add-interface=${br}`)).code, 0);
  t.equal((await h.firewallCmd('--reload')).code, 0);
  const [srv, client] = [await h.guest(), await h.guest()];
  for (const args of [
    ['network', 'create', 'na', '--bridge', 'bra', '--pool', 'wa'],
    ['network', 'create', 'nb', '--bridge', 'brb', '--pool', 'wb', '--masquerade'],
    ['attach', 'bra', srv, 'pool:wa', '-p', '18591:8080'],
    ['attach', 'brb', client, 'pool:wb'],
  ]) {
    const r = await pw(...args);
    t.equal(r.code, 0, `${args.join(' ')} ${r.stderr}`);
  }
  t.teardown(() => pw('detach', srv).then(() => pw('detach', client)));
  await h.serve(srv, 8080);
  const works = async (when: string) => {
    t.ok(await h.ping(client, '10.247.91.2'), `${when}: forwarding and masquerade (ping across networks)`);
    t.equal(await h.ask(client, '10.247.92.1', 18591), '10.247.91.1', `${when}: the published port`);
    t.equal(
      await h.ask(h.outside, UPLINK.host4, 18591),
      UPLINK.client4,
      `${when}: the published port from another host`,
    );
  };
  await works('in a trusted zone');
  t.equal((await h.firewallCmd('--reload')).code, 0);
  await works('after firewall-cmd --reload');
  t.match(await h.tables(), `table ${h.table}`, "firewalld's reload leaves pipewright's table");
  return { client, port: 18591 };
}
