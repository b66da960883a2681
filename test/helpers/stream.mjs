// A TCP stream for throughput tests, run inside a network namespace: `sink <port>` takes one
// connection and prints the rate it received in bits per second, over the stream less its first
// second (slow start and the shaper's first burst); `source <host> <port> <seconds>` sends as fast
// as the path takes for that long. Both exit by themselves (the sink after 60 s at most).
import net from 'node:net';

const [role, a, b, c] = process.argv.slice(2);
if (role === 'sink') {
  setTimeout(() => process.exit(2), 60_000).unref();
  const server = net.createServer((s) => {
    const t0 = Date.now();
    let from = 0;
    let bytes = 0;
    s.on('data', (d) => {
      const now = Date.now();
      if (now - t0 < 1000) return;
      if (!from) from = now;
      else bytes += d.length;
    });
    s.on('end', () => {
      console.log(JSON.stringify({ bps: Math.round((bytes * 8 * 1000) / (Date.now() - from)) }));
      process.exit(0);
    });
  });
  server.listen(Number(a), '0.0.0.0', () => console.log('ready'));
} else {
  const chunk = Buffer.alloc(64 * 1024);
  const s = net.connect(Number(b), a, () => {
    const end = Date.now() + Number(c) * 1000;
    const pump = () => {
      while (Date.now() < end) if (!s.write(chunk)) return void s.once('drain', pump);
      s.end();
    };
    pump();
  });
  s.on('error', (e) => {
    console.error(`error ${e.code}`);
    process.exit(1);
  });
}
