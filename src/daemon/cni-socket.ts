/**
 * The CNI plugin's fast path: the small CNI client (native/pipewright-cni.c, installed as the
 * `pipewright` CNI plugin) hands a runtime's call to the running daemon over this unix socket
 * instead of starting Node for it. One HTTP POST per call: the CNI_* variables as X-Cni-*
 * headers, the configuration as the body; the answer is the plugin's exit code (X-Cni-Exit) and
 * its stdout as the body. The same handler serves it as serves a plugin run by itself. A caller
 * weaker than the daemon (daemon/callers.ts) gets a 403, and its client runs the plugin itself.
 */
import type { RequestListener, Server } from 'node:http';
import type { SharedContext } from '../frontend/context.js';
import { handleCni } from '../cni/plugin.js';
import { listenUnix, readText, type RequestLog } from './server.js';

const VARS = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'];
/** CNI_NETNS -> x-cni-netns (as Node names a request header). */
const header = (name: string) => `x-${name.toLowerCase().replaceAll('_', '-')}`;

export function serveCni(socketPath: string, log: RequestLog, daemon: SharedContext): Promise<Server> {
  return listenUnix(socketPath, serve(log, daemon), (res, why) => {
    // Not a 200: the CNI client runs the plugin in the caller's own process, with its own powers.
    res.writeHead(403, { 'X-Cni-Declined': why });
    res.end();
    log({ method: 'CNI.refused', ms: 0, err: why });
  });
}

function serve(log: RequestLog, daemon: SharedContext): RequestListener {
  return (req, res) => {
    void (async () => {
      const started = performance.now();
      const env: NodeJS.ProcessEnv = {};
      for (const name of VARS) {
        const value = req.headers[header(name)];
        if (typeof value === 'string') env[name] = value;
      }
      const answer = await handleCni(env, await readText(req), daemon);
      res.writeHead(200, {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(answer.out),
        'X-Cni-Exit': String(answer.code),
      });
      res.end(answer.out);
      log({
        method: `CNI.${env.CNI_COMMAND ?? '?'}`,
        ms: performance.now() - started,
        ...(answer.code ? { err: answer.out.trim() } : {}),
      });
    })().catch(() => res.destroy()); // a client gone mid-request: nothing to answer
  };
}
