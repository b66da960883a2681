// A test peer run inside a network namespace: `server tcp|udp <port> [<bind>]` answers every
// connection or datagram with the address it came from (bind :: for IPv6 and IPv4); `client
// tcp|udp <host> <port>` prints the answer.
// Exits by itself (server after 20 s, client after 3 s).
import net from 'node:net';
import dgram from 'node:dgram';

const [role, proto, a, b = '0.0.0.0'] = process.argv.slice(2);
if (role === 'server') {
  setTimeout(() => process.exit(0), 20_000).unref();
  if (proto === 'tcp')
    net
      .createServer((s) => s.end(`${s.remoteAddress?.replace(/^::ffff:/, '')}\n`))
      .listen(Number(a), b, () => console.log('ready'));
  else {
    const sock = dgram.createSocket(b.includes(':') ? 'udp6' : 'udp4');
    sock.on('message', (_m, r) => sock.send(`${r.address.replace(/^::ffff:/, '')}\n`, r.port, r.address));
    sock.bind(Number(a), b, () => console.log('ready'));
  }
} else {
  setTimeout(() => {
    console.log('timeout');
    process.exit(1);
  }, 3000);
  if (proto === 'tcp') {
    const s = net.connect(Number(b), a);
    s.on('data', (d) => {
      process.stdout.write(d);
      process.exit(0);
    });
    s.on('error', (e) => {
      console.log(`error ${e.code}`);
      process.exit(1);
    });
  } else {
    const sock = dgram.createSocket(a.includes(':') ? 'udp6' : 'udp4');
    sock.on('message', (m) => {
      process.stdout.write(m);
      process.exit(0);
    });
    sock.send('hi', Number(b), a);
  }
}
