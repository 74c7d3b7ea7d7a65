/**
 * The module every `import`/`require` of `node:sqlite` (or `sqlite`) resolves to in a process the
 * launcher started; see sqlite-guard.ts for what it enforces and sqlite-preload.ts for the routing.
 */
import { RUNTIME_ENV } from '../core/runtime.ts';
import { guardSqlite } from './sqlite-guard.ts';

function ownDataDir(): string | null {
  try {
    const runtime = JSON.parse(process.env[RUNTIME_ENV] ?? 'null') as { dataDir?: unknown } | null;
    return typeof runtime?.dataDir === 'string' ? runtime.dataDir : null;
  } catch {
    return null;
  }
}

// Evaluated by the preload before it wraps process.getBuiltinModule, so this is the real module.
const guarded = guardSqlite(process.getBuiltinModule('node:sqlite'), ownDataDir());

export const DatabaseSync = guarded.DatabaseSync;
export const StatementSync = guarded.StatementSync;
export const Session = guarded.Session;
export const constants = guarded.constants;
export const backup = guarded.backup;
export default { DatabaseSync, StatementSync, Session, constants, backup };
