import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './config-error.ts';
import { redactUrlPasswords, show } from './config-path.ts';
import { ISSUE } from './issue-codes.ts';
import { parseManifest } from './load.ts';
import type { ConfigIssue, Manifest } from './model.ts';

/**
 * The stores a manifest chooses (`control.store`, `identity.builtin.store`): one shape, SQLite by
 * default or `{ postgres: <url> }`, every mistake reported with its line and path, and a password in a
 * URL never repeated in a message.
 */

const FILE = '/tmp/rampart-store/rampart.yaml';

/** A manifest whose line 5 is `control` and line 4 the builtin identity provider. */
const manifest = (control: string, identityStore = '') =>
  parseManifest(
    `trustDomain: t.local
gateway: { listen: { host: 127.0.0.1, port: 18080 }, tls: off }
identity:
  builtin: { port: 18444${identityStore} }
${control}
services:
  a: { run: /dev/null, routes: [{ path: /a, methods: [GET], auth: none }] }
`,
    FILE,
    { checkFiles: false },
  );

function issuesOf(load: () => Manifest): readonly ConfigIssue[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'CFG_ERR_INVALID');
    return err.issues;
  }
  assert.fail('expected the manifest to be rejected');
}

const PASSWORD = 'hunter2-Zq9';

describe('control.store', () => {
  test('absent, `sqlite`, or an empty control section: SQLite', () => {
    for (const control of ['', 'control: {}', 'control: { store: sqlite }']) {
      assert.deepEqual(manifest(control).control, { store: { kind: 'sqlite' } }, control);
    }
  });

  test('{ postgres: <url> }: that database, URL kept exactly', () => {
    for (const url of [
      'postgres://rampart@127.0.0.1:5432/rampart',
      'postgresql://db.internal/control?sslmode=require',
    ]) {
      assert.deepEqual(manifest(`control: { store: { postgres: "${url}" } }`).control, {
        store: { kind: 'postgres', url },
      });
    }
  });

  test('is independent of the identity provider’s store', () => {
    const m = manifest('control: { store: { postgres: "postgres://h/c" } }');
    assert.ok(m.identity.mode === 'builtin');
    assert.deepEqual(m.identity.store, { kind: 'sqlite' });
    const other = manifest('control: { store: sqlite }', ', store: { postgres: "postgres://h/i" }');
    assert.ok(other.identity.mode === 'builtin');
    assert.deepEqual(other.identity.store, { kind: 'postgres', url: 'postgres://h/i' });
    assert.deepEqual(other.control.store, { kind: 'sqlite' });
  });

  /** [control section as written, issues (code, line, dotted path)]; line 5 is `control`. */
  const BAD: [string, [string, number, string][]][] = [
    ['control: { store: mysql }', [[ISSUE.VALUE, 5, 'control.store']]],
    ['control: { store: SQLite }', [[ISSUE.VALUE, 5, 'control.store']]],
    ['control: { store: "" }', [[ISSUE.VALUE, 5, 'control.store']]],
    ['control: { store: 1 }', [[ISSUE.TYPE, 5, 'control.store']]],
    ['control: { store: null }', [[ISSUE.TYPE, 5, 'control.store']]],
    ['control: { store: [sqlite] }', [[ISSUE.TYPE, 5, 'control.store']]],
    ['control: { store: {} }', [[ISSUE.REQUIRED, 5, 'control.store.postgres']]],
    ['control: { store: { postgres: 5 } }', [[ISSUE.TYPE, 5, 'control.store.postgres']]],
    ['control: { store: { postgres: [postgres://h/d] } }', [[ISSUE.TYPE, 5, 'control.store.postgres']]],
    ['control: { store: { postgres: "http://h/d" } }', [[ISSUE.URL, 5, 'control.store.postgres']]],
    ['control: { store: { postgres: "redis://h:6379" } }', [[ISSUE.URL, 5, 'control.store.postgres']]],
    ['control: { store: { postgres: "postgres://" } }', [[ISSUE.URL, 5, 'control.store.postgres']]],
    ['control: { store: { postgres: "postgres://[::1/d" } }', [[ISSUE.URL, 5, 'control.store.postgres']]],
    ['control: { store: { postgres: " postgres://h/d" } }', [[ISSUE.URL, 5, 'control.store.postgres']]],
    ['control: { store: { postgres: "postgres://h/d", pool: 3 } }', [[ISSUE.UNKNOWN_KEY, 5, 'control.store.pool']]],
    [
      'control: { store: { sqlite: true } }',
      [
        [ISSUE.REQUIRED, 5, 'control.store.postgres'],
        [ISSUE.UNKNOWN_KEY, 5, 'control.store.sqlite'],
      ],
    ],
    [
      'control: { store: { redis: "redis://h" } }',
      [
        [ISSUE.REQUIRED, 5, 'control.store.postgres'],
        [ISSUE.UNKNOWN_KEY, 5, 'control.store.redis'],
      ],
    ],
    // A misspelled key is the whole story (its "did you mean" names `postgres`).
    ['control:\n  store:\n    postgress: "postgres://h/d"', [[ISSUE.UNKNOWN_KEY, 7, 'control.store.postgress']]],
    ['control: { stores: sqlite }', [[ISSUE.UNKNOWN_KEY, 5, 'control.stores']]],
    ['control: { store: sqlite, ca: sqlite }', [[ISSUE.UNKNOWN_KEY, 5, 'control.ca']]],
    ['control: 5', [[ISSUE.TYPE, 5, 'control']]],
    ['control: [store]', [[ISSUE.TYPE, 5, 'control']]],
  ];
  for (const [control, expected] of BAD) {
    test(`refused with file, line and path: ${JSON.stringify(control)}`, () => {
      const issues = issuesOf(() => manifest(control));
      assert.deepEqual(
        issues.map((i) => [i.code, i.line, i.path]),
        expected,
      );
      assert.ok(issues.every((i) => i.file === FILE));
    });
  }

  test('the same table holds for identity.builtin.store (one shape for both)', () => {
    for (const [store, code] of [
      ['mysql', ISSUE.VALUE],
      ['{ postgres: "http://h/d" }', ISSUE.URL],
      ['{ postgres: "postgres://" }', ISSUE.URL],
      ['{ postgres: "postgres://h/d", pool: 3 }', ISSUE.UNKNOWN_KEY],
    ] as const) {
      const issues = issuesOf(() => manifest('', `, store: ${store}`));
      assert.deepEqual(
        issues.map((i) => [i.code, i.line]),
        [[code, 4]],
        store,
      );
      assert.match(issues[0]!.path, /^identity\.builtin\.store/);
    }
  });

  test('a URL written where the map goes gets a hint with the shape', () => {
    const [issue] = issuesOf(() => manifest('control: { store: "postgres://h/d" }'));
    assert.equal(issue?.code, ISSUE.VALUE);
    assert.match(issue?.hint ?? '', /\{ postgres: /);
    const [other] = issuesOf(() => manifest('control: { store: mysql }'));
    assert.doesNotMatch(other?.hint ?? '', /\{ postgres: /);
  });

  test('a password in a refused URL is never repeated in the issue', () => {
    for (const control of [
      `control: { store: { postgres: "mysql://u:${PASSWORD}@h/d" } }`,
      `control: { store: { postgres: "postgres://u:${PASSWORD}@[::1/d" } }`,
      `control: { store: { postgres: "http://u:${PASSWORD}@h/d" } }`,
      `control: { store: "postgres://u:${PASSWORD}@h/d" }`,
      `control: { store: ["postgres://u:${PASSWORD}@h/d"] }`,
      `control: { store: { postgres: "postgres://u:${PASSWORD}@h/d", extra: "postgres://u:${PASSWORD}@h" } }`,
      `control: { "postgres://u:${PASSWORD}@h/d": sqlite }`,
    ]) {
      const issues = issuesOf(() => manifest(control));
      assert.ok(issues.length > 0);
      const text = JSON.stringify(issues);
      assert.ok(!text.includes(PASSWORD), `${control} → ${text}`);
      assert.ok(!text.includes(PASSWORD.slice(0, 6)), `${control} → ${text}`);
    }
  });
});

describe('redactUrlPasswords', () => {
  const CASES: [string, string][] = [
    ['postgres://u:pw@h/d', 'postgres://u:***@h/d'],
    ['postgresql://rampart:s3cr%40t@10.0.0.1:5432/db', 'postgresql://rampart:***@10.0.0.1:5432/db'],
    // Unescaped `@` and `/` in the password: hidden whole (up to the last `@`).
    ['postgres://u:p@ss@h/d', 'postgres://u:***@h/d'],
    ['postgres://u:p/ss@h/d', 'postgres://u:***@h/d'],
    ['postgres://:pw@h/d', 'postgres://:***@h/d'],
    // A space in the password (URL parsers accept it, as %20): hidden whole, and not past its `@`.
    ['postgres://u:pa ss@h/d', 'postgres://u:***@h/d'],
    ['postgres://u:a  b\tc@h/d and x@y', 'postgres://u:***@h/d and x@y'],
    ['"postgres://u:pa ss@h/d"', '"postgres://u:***@h/d"'],
    ['"redis://default:pw@127.0.0.1:6379"', '"redis://default:***@127.0.0.1:6379"'],
    ['two: postgres://a:one@h and redis://b:two@h', 'two: postgres://a:***@h and redis://b:***@h'],
    ['POSTGRES://U:PW@H/D', 'POSTGRES://U:***@H/D'],
    // Nothing to hide.
    ['postgres://u@h/d', 'postgres://u@h/d'],
    ['postgres://h:5432/d', 'postgres://h:5432/d'],
    ['postgres://h:5432/d\nmail a@b', 'postgres://h:5432/d\nmail a@b'],
    ['https://idp.example.com/realms/a', 'https://idp.example.com/realms/a'],
    ['mailto:a@b', 'mailto:a@b'],
    ['', ''],
  ];
  for (const [input, expected] of CASES) {
    test(JSON.stringify(input), () => assert.equal(redactUrlPasswords(input), expected));
  }

  test('show() redacts before it shortens, so a long URL cannot leak the start of its password', () => {
    const long = `postgres://user:${PASSWORD}${'x'.repeat(100)}@host/db`;
    const shown = show(long);
    assert.ok(!shown.includes(PASSWORD.slice(0, 4)), shown);
    assert.ok(shown.length <= 80);
  });
});
