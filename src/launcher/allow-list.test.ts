import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { computeReadAllowList, isInside, readableRoots } from './allow-list.ts';

/** A file system as a table: directory → entry names. */
const tree: Record<string, string[]> = {
  '/p': ['node_modules', 'package.json', 'src', 'examples', '.git', '.env'],
  '/p/examples': ['shop', 'blog'],
  '/p/examples/shop': ['rampart.yaml', 'services', '.rampart', '.rampart-notes', '.r*'],
  '/p/examples/shop/.rampart': ['catalog', 'orders', 'gateway'],
  '/q': ['package.json', 'rampart.yaml', '.rampart', 'services'],
  '/q/.rampart': ['catalog', 'orders'],
};
const list = (dir: string) => {
  const entries = tree[dir];
  if (!entries) throw new Error(`listed ${dir}, which the walk should not need`);
  return entries;
};

test('allow-list: every entry beside the branch to .rampart, then the own data dir', () => {
  const cases: { name: string; roots: string[]; hidden: string; own: string; allow: string[]; skipped?: string[] }[] = [
    {
      name: 'nested manifest inside the root (rampart checkout running examples/shop)',
      roots: ['/p'],
      hidden: '/p/examples/shop/.rampart',
      own: '/p/examples/shop/.rampart/catalog',
      allow: [
        '/p/.env',
        '/p/.git',
        '/p/examples/blog',
        '/p/examples/shop/.rampart-notes',
        '/p/examples/shop/.rampart/catalog',
        '/p/examples/shop/rampart.yaml',
        '/p/examples/shop/services',
        '/p/node_modules',
        '/p/package.json',
        '/p/src',
      ],
      skipped: ['/p/examples/shop/.r*'],
    },
    {
      name: 'manifest at the project root, rampart package elsewhere (granted whole)',
      roots: ['/q', '/opt/rampart'],
      hidden: '/q/.rampart',
      own: '/q/.rampart/orders',
      allow: ['/opt/rampart', '/q/.rampart/orders', '/q/package.json', '/q/rampart.yaml', '/q/services'],
    },
    {
      name: 'roots given twice or nested are merged',
      roots: ['/q', '/q/services', '/q/'],
      hidden: '/q/.rampart',
      own: '/q/.rampart/catalog',
      allow: ['/q/.rampart/catalog', '/q/package.json', '/q/rampart.yaml', '/q/services'],
    },
    {
      name: 'a root inside the hidden tree grants nothing of it',
      roots: ['/q/.rampart/orders', '/q/.rampart'],
      hidden: '/q/.rampart',
      own: '/q/.rampart/catalog',
      allow: ['/q/.rampart/catalog'],
    },
    {
      name: 'an unrelated root is granted whole',
      roots: ['/elsewhere'],
      hidden: '/q/.rampart',
      own: '/q/.rampart/catalog',
      allow: ['/elsewhere', '/q/.rampart/catalog'],
    },
  ];
  for (const c of cases) {
    const result = computeReadAllowList({ roots: c.roots, hidden: c.hidden, own: c.own, list });
    assert.deepEqual(result.allow, c.allow, c.name);
    assert.deepEqual(result.skipped, c.skipped ?? [], c.name);
    // The property that matters, stated directly: nothing granted reaches into another data dir.
    for (const path of result.allow) {
      const inHidden = isInside(path, c.hidden) || isInside(c.hidden, path);
      assert.ok(!inHidden || isInside(path, c.own), `${c.name}: ${path} exposes ${c.hidden}`);
    }
  }
});

test('allow-list: the own directory must be inside the hidden tree', () => {
  assert.throws(
    () => computeReadAllowList({ roots: ['/q'], hidden: '/q/.rampart', own: '/q/.rampart', list }),
    RangeError,
  );
  assert.throws(
    () => computeReadAllowList({ roots: ['/q'], hidden: '/q/.rampart', own: '/q/services', list }),
    RangeError,
  );
});

test('isInside compares path segments, not string prefixes', () => {
  const cases: [string, string, boolean][] = [
    ['/a/b', '/a', true],
    ['/a', '/a', true],
    ['/ab', '/a', false],
    ['/a/../b', '/a', false],
    ['/a/..b', '/a', true],
    ['/', '/a', false],
    ['/a', '/', true],
  ];
  for (const [path, dir, expected] of cases) assert.equal(isInside(path, dir), expected, `${path} in ${dir}`);
});

test('readable roots: the project, the rampart package, node_modules above, and where linked packages really are', (t) => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'rampart-roots-')));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const dirs = [
    'mono/node_modules',
    'mono/app/node_modules/@scope',
    'mono/app/deploy',
    'store/lib',
    'store/scoped',
    'rampart',
  ];
  for (const dir of dirs) mkdirSync(join(base, dir), { recursive: true });
  writeFileSync(join(base, 'mono/app/package.json'), '{}');
  symlinkSync(join(base, 'store/lib'), join(base, 'mono/app/node_modules/lib'));
  symlinkSync(join(base, 'store/scoped'), join(base, 'mono/app/node_modules/@scope/pkg'));
  symlinkSync(join(base, 'store/gone'), join(base, 'mono/app/node_modules/dangling'));

  const roots = readableRoots(join(base, 'mono/app/deploy'), join(base, 'rampart'));
  assert.deepEqual(roots.sort(), [
    join(base, 'mono/app'), // nearest package.json above the manifest's directory
    join(base, 'mono/node_modules'), // hoisted dependencies
    join(base, 'rampart'),
    join(base, 'store/lib'), // linked packages, where Node will load them from
    join(base, 'store/scoped'),
  ]);
});
