// Run inside a network namespace by test/integration/self-heal.test.ts.
//   serve <port>   a TCP server that answers every connection with one line (until killed)
//   probe          reads lines "<t0> <host> <port> <ping-address>" on stdin; for each, starts a TCP
//                  connection to host:port and a one-packet ping every EVERY_MS (each attempt on its
//                  own, so one that waits does not delay the next) and prints one JSON line
//                  {"port": ms, "ping": ms}: from t0 (the caller's Date.now() before its disruption)
//                  to the first answer of each, -1 when none came within LIMIT_MS.
import net from 'node:net';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { clearInterval, setInterval } from 'node:timers';

const EVERY_MS = 10;
const LIMIT_MS = 5000;

function tcpAnswers(host, port) {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('data', () => done(true));
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

function pingAnswers(addr) {
  return new Promise((resolve) => {
    const p = spawn('ping', ['-n', '-q', '-c', '1', '-W', '1', addr], { stdio: 'ignore' });
    p.once('exit', (code) => resolve(code === 0));
    p.once('error', () => resolve(false));
  });
}

/** Ms from t0 to the first attempt that succeeded (attempts start every EVERY_MS), or -1. */
function firstAnswer(t0, attempt) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ms) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      resolve(ms);
    };
    const timer = setInterval(() => {
      if (Date.now() - t0 > LIMIT_MS) return finish(-1);
      void attempt().then((ok) => ok && finish(Date.now() - t0));
    }, EVERY_MS);
  });
}

const [mode, arg] = process.argv.slice(2);
if (mode === 'serve') {
  // A client that gave up resets its connection: that must not end the server.
  net
    .createServer((s) => s.on('error', () => {}).end('hello\n'))
    .listen(Number(arg), '0.0.0.0', () => console.log('ready'));
} else {
  console.log('ready');
  for await (const line of createInterface({ input: process.stdin })) {
    const [t0, host, port, pingAddr] = line.split(' ');
    const [portMs, pingMs] = await Promise.all([
      firstAnswer(Number(t0), () => tcpAnswers(host, Number(port))),
      firstAnswer(Number(t0), () => pingAnswers(pingAddr)),
    ]);
    console.log(JSON.stringify({ port: portMs, ping: pingMs }));
  }
}
