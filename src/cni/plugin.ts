/**
 * pipewright as a CNI plugin: the same executable, run by a runtime with CNI_COMMAND set and no
 * arguments. The configuration comes on stdin; only the result (or the spec's error object) goes
 * to stdout. See commands.ts for what each command does to the host.
 */
import { withCallContext, withContext, type Context, type SharedContext } from '../frontend/context.js';
import { asCniError, CniError, ERR } from './errors.js';
import { addIpam, addMain, checkIpam, checkMain, delIpam, delMain, gcNetwork, status } from './commands.js';
import {
  isIpamMode,
  parseNetconf,
  readEnv,
  SUPPORTED_VERSIONS,
  type CniEnv,
  type CniResult,
  type NetConf,
} from './netconf.js';
import { versioned } from './result.js';
import type { CoreContext } from '../ops/context.js';
import { readStdin } from '../util/stdin.js';

const LATEST = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1];

/** A configuration for another plugin is refused before any store is opened (or made). */
function refuseOtherType(conf: NetConf): void {
  if (!isIpamMode(conf) && conf.type !== 'pipewright')
    throw new CniError(
      ERR.invalidConfig,
      `"type" is ${String(conf.type).slice(0, 20)}; pipewright is "pipewright" (or the "ipam" type of another plugin)`,
    );
}

async function dispatch(ctx: CoreContext, conf: NetConf, env: CniEnv): Promise<CniResult | null> {
  const ipam = isIpamMode(conf);
  switch (env.command) {
    case 'ADD':
      return ipam ? addIpam(ctx, conf, env) : addMain(ctx, conf, env);
    case 'DEL':
      await (ipam ? delIpam(ctx, conf, env) : delMain(ctx, conf, env));
      return null;
    case 'CHECK':
      if (conf.cniVersion === '0.3.1')
        throw new CniError(ERR.incompatibleVersion, 'CHECK needs cniVersion 0.4.0 or later');
      await (ipam ? checkIpam(ctx, conf, env) : checkMain(ctx, conf, env));
      return null;
    case 'GC':
      await gcNetwork(ctx, conf);
      return null;
    default:
      await status(ctx, conf);
      return null;
  }
}

/** What one CNI call answers: the exit code and what goes to stdout (the result, or the error object). */
export interface CniAnswer {
  code: number;
  out: string;
}

const line = (value: object) => `${JSON.stringify(value)}\n`;

/**
 * One CNI call: its CNI_* variables and configuration text in, the answer out. A daemon serving
 * the calls passes its own context (`shared`): a call on the same state dir and store uses it.
 */
export async function handleCni(
  environment: NodeJS.ProcessEnv,
  text: string,
  shared?: SharedContext,
): Promise<CniAnswer> {
  let conf: NetConf | undefined;
  try {
    const env = readEnv(environment);
    if (env.command === 'VERSION') {
      const asked = (JSON.parse(text || '{}') as { cniVersion?: string }).cniVersion ?? LATEST;
      return {
        code: 0,
        out: line({
          cniVersion: SUPPORTED_VERSIONS.includes(asked) ? asked : LATEST,
          supportedVersions: SUPPORTED_VERSIONS,
        }),
      };
    }
    conf = parseNetconf(text);
    refuseOtherType(conf);
    const c = conf;
    const where = c.type === 'pipewright' ? c : (c.ipam ?? {});
    const opts = { stateDir: where.stateDir, store: where.store };
    const body = (ctx: Context) => dispatch(ctx, c, env);
    const result = await (shared ? withCallContext(opts, shared, body) : withContext(opts, body)).catch((err) => {
      // STATUS: whatever keeps pipewright from serving an ADD (an unreachable etcd) is "not available".
      throw env.command === 'STATUS' && !(err instanceof CniError)
        ? new CniError(ERR.notAvailable, asCniError(err).message)
        : err;
    });
    return { code: 0, out: result ? line(versioned(c, result)) : '' };
  } catch (err) {
    const e = asCniError(err);
    return {
      code: 1,
      out: line({
        cniVersion: conf?.cniVersion ?? LATEST,
        code: e.code,
        msg: e.message,
        ...(e.details ? { details: e.details } : {}),
      }),
    };
  }
}

/** The plugin run by a runtime: stdin in, stdout out; the exit code. */
export async function runCni(environment: NodeJS.ProcessEnv): Promise<number> {
  const answer = await handleCni(environment, await readStdin());
  process.stdout.write(answer.out);
  return answer.code;
}
