import { RampartError } from '../core/errors.ts';
import { RUNTIME_ENV, type Runtime } from '../core/runtime.ts';

/**
 * Variables copied from the launcher's environment, and only these: a child must not inherit the
 * operator's tokens and credentials (AWS_*, GITHUB_TOKEN, ...). PATH and HOME for tools and libraries
 * that expect them; LANG, LC_ALL and TZ so logs and dates read as the operator expects; NODE_ENV
 * because libraries switch behaviour on it.
 */
export const INHERITED_ENV: readonly string[] = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'NODE_ENV'];

/**
 * Manifest `env` keys the launcher refuses: they would change how the process is started or loaded
 * and so undo its restrictions (NODE_OPTIONS can grant permissions, LD_PRELOAD loads native code),
 * or impersonate the launcher's own contract (RAMPART_*).
 */
export function isReservedEnvName(name: string): boolean {
  if (name === 'NODE_ENV' || name === 'NODE_EXTRA_CA_CERTS') return false;
  return /^(NODE_|RAMPART_|LD_|DYLD_)/.test(name) || name === RUNTIME_ENV;
}

/** Throws LAUNCH_ERR_ENV, naming the key, when a service's manifest `env` holds a reserved name. */
export function checkManifestEnv(service: string, manifestEnv: Readonly<Record<string, string>>): void {
  for (const name of Object.keys(manifestEnv)) {
    if (isReservedEnvName(name)) {
      throw new RampartError(
        'LAUNCH_ERR_ENV',
        `services.${service}.env.${name}: the launcher does not pass ${name}; it would change how the process is started or loaded`,
      );
    }
  }
}

/**
 * The complete environment of a child: the inherited allow-list, the service's manifest `env`
 * entries, the launcher's own `component` variables (RAMPART_KEK for the control plane, nothing for
 * anyone else) and `RAMPART_RUNTIME`. Throws LAUNCH_ERR_ENV for a reserved manifest key.
 */
export function childEnv(
  runtime: Runtime,
  manifestEnv: Readonly<Record<string, string>>,
  parentEnv: NodeJS.ProcessEnv,
  component: Readonly<Record<string, string>> = {},
): Record<string, string> {
  checkManifestEnv(runtime.name, manifestEnv);
  const env: Record<string, string> = {};
  for (const name of INHERITED_ENV) {
    const value = parentEnv[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, manifestEnv, component);
  env[RUNTIME_ENV] = JSON.stringify(runtime);
  return env;
}
