import { type Dirent, existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';

/**
 * Node's permission model has allow-lists only (`--allow-fs-read=<path>` grants that path and all
 * below it): there is no "everything under the project except `.rampart/`". So the launcher grants
 * the project piecewise: walking from each readable root down to the hidden tree, it allows every
 * entry beside the branch that leads there, then the process's own data directory.
 *
 *   roots: [/p]   hidden: /p/a/.rampart   own: /p/a/.rampart/orders
 *   → /p/<every entry but a>, /p/a/<every entry but .rampart>, /p/a/.rampart/orders
 */
export interface ReadAllowListInput {
  /** Absolute directories (or files) the process may read. */
  roots: readonly string[];
  /** Absolute directory no process may read, except for its own part (`<manifest dir>/.rampart`). */
  hidden: string;
  /** Absolute path of the process's own data directory, inside `hidden`. */
  own: string;
  /** Names of the entries of a directory; `fs.readdirSync` in production, a table in tests. */
  list: (dir: string) => readonly string[];
}

export interface ReadAllowList {
  /** Paths for `--allow-fs-read`, sorted, none inside another. */
  allow: string[];
  /**
   * Entries left out because their name contains `*`, which Node reads as a wildcard
   * (`--allow-fs-read=/p/.r*` would also grant `/p/.rampart`). The caller should say so.
   */
  skipped: string[];
}

/** Computes the exact read allow-list of one process. Pure: the file system is seen through `list`. */
export function computeReadAllowList(input: ReadAllowListInput): ReadAllowList {
  const hidden = resolve(input.hidden);
  const own = resolve(input.own);
  if (!isInside(own, hidden) || own === hidden) {
    throw new RangeError(`own data directory ${own} is not inside ${hidden}`);
  }
  const allow = new Set<string>();
  const skipped = new Set<string>();
  const grant = (path: string) => {
    if (path.includes('*')) skipped.add(path);
    else allow.add(path);
  };

  for (const raw of input.roots) {
    const root = resolve(raw);
    if (isInside(root, hidden)) continue; // the root is in the hidden tree (or is it): nothing of it
    if (!isInside(hidden, root)) {
      grant(root);
      continue;
    }
    let dir = root;
    for (const segment of relative(root, hidden).split(sep)) {
      for (const name of input.list(dir)) {
        if (name !== segment) grant(join(dir, name));
      }
      dir = join(dir, segment);
    }
  }
  allow.add(own);
  return { allow: withoutNested([...allow]), skipped: [...skipped].sort() };
}

/** True when `path` is `dir` or below it. Both absolute and normalized. */
export function isInside(path: string, dir: string): boolean {
  if (path === dir) return true;
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

function withoutNested(paths: string[]): string[] {
  const sorted = paths.sort();
  return sorted.filter((path) => !sorted.some((other) => other !== path && isInside(path, other)));
}

/**
 * The nearest directory at or above `start` that holds a package.json (the project root), or
 * `start` itself when there is none.
 */
export function findPackageRoot(start: string): string {
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return resolve(start);
  }
}

/** The root of the `rampart` package this file belongs to (from source or from dist/). */
export function rampartPackageRoot(from: string = import.meta.dirname): string {
  for (let dir = realpathSync(from); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'rampart') return dir;
    if (dirname(dir) === dir) throw new Error(`no rampart package.json above ${from}`);
  }
}

/**
 * What every child may read before the `.rampart` carve-out: the project (nearest package root of the
 * manifest's directory), the rampart package, the `node_modules` directories above both (Node's
 * resolver walks up to them for dependencies hoisted by workspaces), and the real location of every
 * linked package in those `node_modules` (`npm link`, workspaces, pnpm), since Node loads a module
 * from its real path.
 */
export function readableRoots(manifestDir: string, rampartRoot: string): string[] {
  const roots = [realpathSync(findPackageRoot(manifestDir)), realpathSync(rampartRoot)];
  const result = new Set(roots);
  const modules: string[] = [];
  for (const root of roots) {
    for (let dir = root; dirname(dir) !== dir; dir = dirname(dir)) {
      const candidate = join(dir, 'node_modules');
      if (existsSync(candidate) && statSync(candidate).isDirectory()) {
        modules.push(candidate);
        if (dir !== root) result.add(candidate);
      }
    }
  }
  for (const dir of modules) {
    for (const target of linkedPackages(dir)) result.add(target);
  }
  return [...result];
}

/** Real paths of the packages in a `node_modules` directory that are symbolic links (scopes included). */
export function linkedPackages(nodeModules: string): string[] {
  const targets: string[] = [];
  const visit = (dir: string, depth: number) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isSymbolicLink()) {
        try {
          if (statSync(path).isDirectory()) targets.push(realpathSync(path));
        } catch {
          // a dangling link: nothing to read there
        }
      } else if (depth === 0 && entry.isDirectory() && entry.name.startsWith('@')) {
        visit(path, 1);
      }
    }
  };
  visit(nodeModules, 0);
  return targets;
}

/** `fs.readdirSync` as the `list` of {@link computeReadAllowList}. */
export function listDirectory(dir: string): string[] {
  return readdirSync(dir);
}
