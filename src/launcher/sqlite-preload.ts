/**
 * Preloaded (`node --import`) into every process the launcher starts, before the process's own code.
 * Routes every way of reaching `node:sqlite` to the guarded module (sqlite-module.ts):
 *
 * - `import`, `import()` and `require()` of `node:sqlite` or `sqlite`: a synchronous resolve hook
 *   (`module.registerHooks`, Node >= 23.5), which covers the ESM and CommonJS loaders alike;
 * - resolve hooks the process registers later: their results are rewritten the same way, so a hook
 *   that short-circuits to `node:sqlite` still gets the guard;
 * - `process.getBuiltinModule('node:sqlite')`: wrapped.
 *
 * Seat belt, not sandbox: see sqlite-guard.ts. Hostile code has other ways out of a Node process.
 */
import module from 'node:module';
import * as guarded from './sqlite-module.ts';

// The guarded module's own URL, with the extension this file runs with (.ts from source, .js built).
const GUARD_URL = new URL(`./sqlite-module${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href;
const SQLITE_IDS = new Set(['node:sqlite', 'sqlite']);

type ResolveResult = { url: string; format?: string | null | undefined; shortCircuit?: boolean | undefined };

const redirect = <R extends ResolveResult>(result: R): R =>
  SQLITE_IDS.has(result.url) ? { ...result, url: GUARD_URL, format: undefined } : result;

const registerHooks = module.registerHooks;

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (SQLITE_IDS.has(specifier)) return { url: GUARD_URL, shortCircuit: true };
    return redirect(nextResolve(specifier, context));
  },
});

module.registerHooks = function guardedRegisterHooks(hooks: module.RegisterHooksOptions) {
  const resolve = hooks.resolve;
  if (typeof resolve !== 'function') return registerHooks.call(this, hooks);
  return registerHooks.call(this, {
    ...hooks,
    resolve: (specifier, context, nextResolve) => redirect(resolve(specifier, context, nextResolve)),
  });
};
module.syncBuiltinESMExports();

const getBuiltinModule = process.getBuiltinModule;
process.getBuiltinModule = function guardedGetBuiltinModule(id: string) {
  return SQLITE_IDS.has(id) ? guarded : getBuiltinModule.call(process, id);
} as typeof process.getBuiltinModule;
