import { chmodSync, lstatSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RampartError } from '../core/errors.ts';

/**
 * Creates (or checks) a directory only its owner can enter (0700). Refuses a symbolic link or a
 * directory owned by someone else: either would let another user or another process's data stand in
 * for this one's. Throws LAUNCH_ERR_DATA_DIR.
 */
export function ensurePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const stat = lstatSync(path);
  if (stat.isSymbolicLink() || !stat.isDirectory()) {
    throw new RampartError('LAUNCH_ERR_DATA_DIR', `${path} must be a directory, not a link or a file`);
  }
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new RampartError('LAUNCH_ERR_DATA_DIR', `${path} belongs to another user (uid ${stat.uid})`);
  }
  if ((stat.mode & 0o777) !== 0o700) chmodSync(path, 0o700);
}

/**
 * Creates `<manifest dir>/.rampart/` and one private directory per process in it. The tree holds
 * databases and keys, so it also gets a `.gitignore` that keeps it out of version control.
 */
export function prepareDataDirs(dataRoot: string, names: readonly string[]): void {
  ensurePrivateDir(dataRoot);
  try {
    // 'wx': never follow or overwrite whatever is there already.
    writeFileSync(join(dataRoot, '.gitignore'), '# Created by `rampart start`: process data, never commit it.\n*\n', {
      mode: 0o600,
      flag: 'wx',
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  for (const name of names) ensurePrivateDir(join(dataRoot, name));
}

/**
 * Claims `<dataRoot>/launcher.pid` for this process: two launchers on one manifest would share data
 * directories (and fight over ports). A file left by a launcher that died (its pid gone) is taken
 * over. Returns the release function. Throws LAUNCH_ERR_RUNNING when another live launcher holds it.
 */
export function acquireLauncherLock(dataRoot: string, pid: number = process.pid): () => void {
  const file = join(dataRoot, 'launcher.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${pid}\n`, { mode: 0o600, flag: 'wx' });
      return () => {
        try {
          if (readFileSync(file, 'utf8').trim() === String(pid)) unlinkSync(file);
        } catch {
          // gone already
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number.parseInt(readFileSync(file, 'utf8'), 10);
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
      throw new RampartError(
        'LAUNCH_ERR_RUNNING',
        `another \`rampart start\` (pid ${holder}) is running this manifest; stop it first (or delete ${file} if it is not rampart)`,
      );
    }
    unlinkSync(file); // stale: its launcher is gone
  }
  throw new RampartError('LAUNCH_ERR_RUNNING', `could not claim ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
