/**
 * The guard behind what `node:sqlite` is inside a process the launcher started (sqlite-preload.ts
 * routes every `import`/`require` of `node:sqlite` to sqlite-module.ts, built from this). Node 24's permission model does not cover
 * `node:sqlite`: a process limited by `--allow-fs-write` to its own directory can still open or create
 * a database anywhere, another service's included (verified on 24.21). This module closes that gap:
 *
 * - `new DatabaseSync(path)` opens only `:memory:` or a plain path inside the process's own data
 *   directory (resolved against the working directory, parent realpath'd; the file itself may not be
 *   a symbolic link or hard link). `file:` URIs, URL and Buffer locations, and `''` (a temporary
 *   file elsewhere) are refused.
 * - Every connection gets an authorizer that denies ATTACH of any file and DETACH (so SQL cannot open
 *   other files either), and the pragmas that move SQLite's temporary files. A user authorizer set with
 *   `setAuthorizer` runs after ours, never instead of it.
 * - Extension loading stays off (`allowExtension` is forced to false).
 * - `backup(db, path)` writes only where a database may be opened.
 *
 * Like Node's permission model itself (see its docs: "a seat belt", it "does not provide security
 * guarantees in the presence of malicious code"), this stops trusted code from reaching another
 * service's data by mistake or through an injected path; it is not a sandbox for hostile code, which
 * has other ways out of a Node process.
 */
import { lstatSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { isInside } from './allow-list.ts';

type Sqlite = typeof import('node:sqlite');
type DatabaseSyncType = Sqlite['DatabaseSync'];
type Authorizer = (
  actionCode: number,
  arg1: string | null,
  arg2: string | null,
  dbName: string | null,
  triggerOrView: string | null,
) => number;

/** Pragmas that change where SQLite writes files (deprecated in SQLite, still honoured). */
const FILE_PRAGMAS = new Set(['temp_store_directory', 'data_store_directory']);

/** The error a refused location raises; shaped like Node's own permission errors. */
export function accessDenied(resource: string, reason: string): Error {
  const error = new Error(`Access to this API has been restricted: node:sqlite ${reason}`);
  Object.assign(error, { code: 'ERR_ACCESS_DENIED', permission: 'FileSystemWrite', resource });
  return error;
}

/**
 * Checks a database location against the data directory and returns the path to hand to SQLite
 * (`:memory:`, or the canonical absolute path). Throws ERR_ACCESS_DENIED otherwise.
 */
export function checkDatabaseLocation(location: unknown, dataDir: string | null): string {
  if (location === ':memory:') return location;
  if (typeof location !== 'string') throw accessDenied(String(location), 'opens only string paths and :memory:');
  if (location === '' || /^file:/i.test(location) || location.includes('\0')) {
    throw accessDenied(location, 'refuses URIs, temporary and empty locations');
  }
  if (dataDir === null) throw accessDenied(location, 'has no data directory to open databases in');
  const absolute = resolve(location);
  let target: string;
  let own: string;
  try {
    own = realpathSync(dataDir);
    target = join(realpathSync(dirname(absolute)), basename(absolute));
  } catch {
    throw accessDenied(location, 'opens databases only inside the data directory');
  }
  if (target === own || !isInside(target, own)) {
    throw accessDenied(location, 'opens databases only inside the data directory');
  }
  let stat: ReturnType<typeof lstatSync> | undefined;
  try {
    stat = lstatSync(target);
  } catch {
    stat = undefined; // a new database: SQLite creates it
  }
  if (stat?.isSymbolicLink() || (stat?.isFile() && stat.nlink > 1)) {
    throw accessDenied(location, 'refuses links: they can point into another data directory');
  }
  return target;
}

/**
 * Makes `sqlite` (the real module) safe for a process whose data lives in `dataDir`, and returns the
 * members to export in its place. Patches the module's prototypes in place, so call it once per
 * process, in the preload, before any other code runs.
 */
export function guardSqlite(sqlite: Sqlite, dataDir: string | null) {
  const Raw = sqlite.DatabaseSync;
  const proto = Raw.prototype;
  const rawSetAuthorizer = proto.setAuthorizer;
  const rawOpen = proto.open;
  const rawBackup = sqlite.backup;
  const { SQLITE_OK, SQLITE_DENY, SQLITE_ATTACH, SQLITE_DETACH, SQLITE_PRAGMA, SQLITE_FUNCTION } = sqlite.constants;
  const userAuthorizers = new WeakMap<object, Authorizer | null>();

  const policy = (action: number, arg1: string | null, arg2: string | null): number => {
    // VACUUM attaches '' (a private temporary database); any named file would escape the data dir.
    if (action === SQLITE_ATTACH) return arg1 === '' ? SQLITE_OK : SQLITE_DENY;
    if (action === SQLITE_DETACH) return SQLITE_DENY;
    if (action === SQLITE_PRAGMA && FILE_PRAGMAS.has(String(arg1).toLowerCase())) return SQLITE_DENY;
    if (action === SQLITE_FUNCTION && String(arg2).toLowerCase() === 'load_extension') return SQLITE_DENY;
    return SQLITE_OK;
  };
  const install = (db: object) => {
    const authorizer: Authorizer = (action, arg1, arg2, dbName, triggerOrView) => {
      const verdict = policy(action, arg1, arg2);
      if (verdict !== SQLITE_OK) return verdict;
      const user = userAuthorizers.get(db);
      return user ? user(action, arg1, arg2, dbName, triggerOrView) : SQLITE_OK;
    };
    rawSetAuthorizer.call(db as InstanceType<DatabaseSyncType>, authorizer);
  };

  // A function, not `class extends Raw`: a subclass exposes its parent through
  // Object.getPrototypeOf(DatabaseSync), and the parent opens any path. Instances still come from
  // the real constructor (Reflect.construct), so every native method works and `extends` works.
  function DatabaseSync(this: unknown, location: unknown, options?: object) {
    if (new.target === undefined) throw new TypeError("Class constructor DatabaseSync cannot be invoked without 'new'");
    const path = checkDatabaseLocation(location, dataDir);
    const settings = { ...(options ?? {}), allowExtension: false } as { open?: boolean };
    const db = Reflect.construct(Raw, [path, settings], new.target) as object;
    if (settings.open !== false) install(db);
    return db;
  }
  DatabaseSync.prototype = proto;

  const seal = (name: string, value: unknown) =>
    Object.defineProperty(proto, name, { value, writable: false, configurable: false, enumerable: false });
  seal('constructor', DatabaseSync);
  seal('open', function open(this: InstanceType<DatabaseSyncType>) {
    rawOpen.call(this);
    install(this);
  });
  seal('setAuthorizer', function setAuthorizer(this: InstanceType<DatabaseSyncType>, callback: Authorizer | null) {
    if (callback !== null && typeof callback !== 'function') {
      throw new TypeError('The "callback" argument must be a function or null');
    }
    install(this); // throws for a receiver that is not an open database
    userAuthorizers.set(this, callback);
  });
  const noExtensions = () => {
    throw accessDenied('extension', 'does not load extensions in a Rampart process');
  };
  seal('enableLoadExtension', noExtensions);
  seal('loadExtension', noExtensions);

  function backup(sourceDb: InstanceType<DatabaseSyncType>, path: unknown, options?: object): Promise<number> {
    let destination: string;
    try {
      destination = checkDatabaseLocation(path, dataDir);
    } catch (error) {
      return Promise.reject(error);
    }
    if (destination === ':memory:') return Promise.reject(accessDenied(destination, 'backs up only to files'));
    return options === undefined ? rawBackup(sourceDb, destination) : rawBackup(sourceDb, destination, options);
  }

  return {
    DatabaseSync: DatabaseSync as unknown as DatabaseSyncType,
    StatementSync: sqlite.StatementSync,
    Session: (sqlite as { Session?: unknown }).Session,
    constants: sqlite.constants,
    backup: backup as Sqlite['backup'],
  };
}
