/**
 * The front ends' one reading of flags and environment (the CLI's global options, the CNI
 * plugin's and the daemon's calls): state dir, store, etcd access, firewall, Docker socket and
 * --verbose, turned into the options of the core's openContext. Nothing below reads either.
 */
import { readFileSync } from 'node:fs';
import type { EtcdAccess } from '../net/ipam/backend.js';
import { printable } from '../model/validate.js';
import type { CoreContext } from '../ops/context.js';
import { socketOf } from '../runtime/docker-socket.js';
import { PipewrightError, UsageError } from '../util/errors.js';
import { silent, stderrLog } from '../util/log.js';
import { DEFAULT_STATE_DIR } from '../util/paths.js';

export interface GlobalOptions {
  stateDir?: string;
  store?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
  firewall?: string;
  verbose?: boolean;
  json?: boolean;
}

export interface Context extends CoreContext {
  json: boolean;
}

/** The Docker Engine API socket: DOCKER_HOST (unix:// only) or Docker's default. */
export const dockerSocket = () => socketOf(process.env.DOCKER_HOST);

/** The front end's whole reading of flags and environment: the core is handed the result. */
export async function contextFromFlags(opts: GlobalOptions): Promise<Context> {
  const { openContext } = await import('../ops/context.js');
  const { checkFirewallChoice } = await import('../ops/firewall-sync.js');
  const firewall = checkFirewallChoice(opts.firewall ?? process.env.PIPEWRIGHT_FIREWALL ?? 'auto');
  const stateDir = opts.stateDir ?? process.env.PIPEWRIGHT_STATE_DIR ?? DEFAULT_STATE_DIR;
  if (!stateDir.startsWith('/') || /[\n\r]/.test(stateDir))
    throw new UsageError(`state dir "${printable(stateDir)}" must be an absolute path`);
  const core = await openContext({
    stateDir,
    store: opts.store ?? process.env.PIPEWRIGHT_STORE,
    etcd: etcdAccess(opts),
    firewall,
    docker: dockerSocket(),
    log: opts.verbose ? stderrLog() : silent,
  });
  return { ...core, json: Boolean(opts.json) };
}

/**
 * TLS files, user and call timeout for an etcd store: flags, else PIPEWRIGHT_ETCD_*; the password
 * from the environment or a file only.
 */
function etcdAccess(opts: GlobalOptions): EtcdAccess {
  const env = process.env;
  const passwordFile = opts.etcdPasswordFile ?? env.PIPEWRIGHT_ETCD_PASSWORD_FILE;
  let password = env.PIPEWRIGHT_ETCD_PASSWORD;
  if (passwordFile) {
    try {
      password = readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new PipewrightError(
        `cannot read the etcd password file ${printable(passwordFile)} (${(err as NodeJS.ErrnoException).code})`,
      );
    }
  }
  return {
    ca: opts.etcdCa ?? env.PIPEWRIGHT_ETCD_CA,
    cert: opts.etcdCert ?? env.PIPEWRIGHT_ETCD_CERT,
    key: opts.etcdKey ?? env.PIPEWRIGHT_ETCD_KEY,
    user: opts.etcdUser ?? env.PIPEWRIGHT_ETCD_USER,
    password,
    callTimeoutMs: etcdCallTimeoutMs(env.PIPEWRIGHT_ETCD_TIMEOUT_MS),
  };
}

/** PIPEWRIGHT_ETCD_TIMEOUT_MS, for slow hosts: whole milliseconds, at least 100; else the backend's default. */
function etcdCallTimeoutMs(text: string | undefined): number | undefined {
  const given = Number(text);
  return Number.isInteger(given) && given >= 100 ? given : undefined;
}

/** Runs a command body with a context, closing the store afterwards. */
export async function withContext<T>(opts: GlobalOptions, body: (ctx: Context) => Promise<T>): Promise<T> {
  const ctx = await contextFromFlags(opts);
  try {
    return await body(ctx);
  } finally {
    // The store stays open: the command ends with process.exit (main.ts), and SQLite keeps its
    // write-ahead log for the next command. Closing checkpoints and deletes the log (two fsyncs),
    // and the next command's first write then starts a new one with a synced header (1-8 ms here,
    // measured); a connection left open is what a crash leaves, which SQLite is made for.
    await ctx.ipam.close();
  }
}

/** Where a context's data lives, as contextFromFlags resolves the options: state dir and store. */
function placeOf(opts: GlobalOptions): string {
  const store = opts.store ?? process.env.PIPEWRIGHT_STORE;
  return JSON.stringify([
    opts.stateDir ?? process.env.PIPEWRIGHT_STATE_DIR ?? DEFAULT_STATE_DIR,
    !store || store === 'sqlite' ? 'sqlite' : store,
  ]);
}

/** A long-lived process's own context (the daemon's), with the options it was opened with. */
export interface SharedContext {
  ctx: Context;
  opts: GlobalOptions;
}

/**
 * A call served by a long-lived process: the process's own context when `opts` name the same
 * state dir and store, else one opened for the call and closed after it, store and all (unlike
 * withContext's, which a one-shot process leaves to its exit: here one would stay per call).
 */
export async function withCallContext<T>(
  opts: GlobalOptions,
  shared: SharedContext,
  body: (ctx: Context) => Promise<T>,
): Promise<T> {
  if (placeOf(opts) === placeOf(shared.opts)) return body(shared.ctx);
  const ctx = await contextFromFlags(opts);
  try {
    return await body(ctx);
  } finally {
    await ctx.ipam.close();
    ctx.store.close();
  }
}
