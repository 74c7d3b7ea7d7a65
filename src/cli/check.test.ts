import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCheck } from './check.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = 'test/fixtures/manifests';
/** A stack frame line, which must never reach a user. */
const STACK = /^\s+at /m;
// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for ANSI escapes
const ANSI = /\u001b\[/;

class Sink {
  text = '';
  write(chunk: string | Uint8Array): boolean {
    this.text += String(chunk);
    return true;
  }
}

async function check(args: string[], options: { cwd?: string; color?: boolean } = {}) {
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await runCheck(args, {
    stdout: stdout as unknown as NodeJS.WritableStream,
    stderr: stderr as unknown as NodeJS.WritableStream,
    cwd: options.cwd ?? ROOT,
    color: options.color ?? false,
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('rampart check', () => {
  test('a valid manifest: exit 0 and a summary of the system', async () => {
    const r = await check([`${FIXTURES}/valid.yaml`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    for (const expected of [
      'shop.local',
      'http://127.0.0.1:8080',
      '/catalog/products',
      '/orders/**',
      '100/min per ip',
      '20/10s per subject',
      'catalog-create',
      'orders -> payments',
      '/charges',
      'payment-provider-key',
      'read by payments',
      'http://127.0.0.1:8444',
      'workers: one per core',
      'HTTP redirect: none',
      'limits: defaults',
      'CORS (0)',
    ]) {
      assert.ok(r.stdout.includes(expected), `summary lacks ${expected}:\n${r.stdout}`);
    }
    assert.doesNotMatch(r.stdout, /limit max/);
    assert.doesNotMatch(r.stdout, ANSI);
  });

  test('the gateway variant: workers, redirect listener, changed limits only, CORS per route', async () => {
    const r = await check([`${FIXTURES}/valid-gateway.yaml`]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const has = (pattern: RegExp) =>
      assert.ok(
        lines.some((l) => pattern.test(l)),
        `no line ${pattern}:\n${r.stdout}`,
      );
    has(/workers: 4$/);
    has(/HTTP redirect: http:\/\/0\.0\.0\.0:8080 -> https:\/\/0\.0\.0\.0:8443$/);
    has(/limit maxBodyBytes 10485760 \(default 1048576\)$/);
    has(/limit headersTimeoutMs 5000 \(default 10000\)$/);
    has(/limit maxConnectionsPerClient 2000 \(default 256\)$/);
    assert.equal(lines.filter((l) => /\blimit \w+ /.test(l)).length, 5, r.stdout);
    assert.doesNotMatch(r.stdout, /limits: defaults/);
    has(/^CORS \(2\)$/);
    has(/^ {2}catalog\.0 +\* +no +- +600s$/);
    has(
      /^ {2}catalog\.1 +https:\/\/shop\.example\.com https:\/\/admin\.example\.com:8443 http:\/\/localhost:5173 +yes +authorization,content-type,x-request-id +3600s$/,
    );
  });

  test('the example shop: TLS auto with the names its certificate will carry', async () => {
    const r = await check(['examples/shop/rampart.yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes('https://127.0.0.1:8443'), r.stdout);
    assert.ok(r.stdout.includes('TLS auto (local CA) for 127.0.0.1, localhost'), r.stdout);
  });

  test('the TLS-files variant: https, external issuer, and the store', async () => {
    const r = await check([`${FIXTURES}/valid-tls.yaml`]);
    assert.equal(r.code, 0, r.stderr);
    for (const expected of [
      'https://0.0.0.0:8443',
      'tls/edge.crt',
      'https://idp.example.com',
      'redis://127.0.0.1:6379',
    ]) {
      assert.ok(r.stdout.includes(expected), `summary lacks ${expected}:\n${r.stdout}`);
    }
  });

  test('store URLs in the summary: their passwords never printed', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-check-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'c.ts'), '');
    writeFileSync(
      join(dir, 'rampart.yaml'),
      [
        'version: 1',
        'trustDomain: shop.local',
        'gateway:',
        '  tls: off',
        '  rateLimit: { store: redis, url: "redis://:r3dis-pw@127.0.0.1:6379" }',
        'identity:',
        '  builtin: { store: { postgres: "postgres://idp:1dp-pw@127.0.0.1:5432/idp" } }',
        'control:',
        '  store: { postgres: "postgres://rampart:c0ntrol-pw@127.0.0.1:5432/rampart" }',
        'services:',
        '  catalog: { run: c.ts }',
        '',
      ].join('\n'),
    );
    const r = await check(['rampart.yaml'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    for (const password of ['r3dis-pw', '1dp-pw', 'c0ntrol-pw']) {
      assert.ok(!r.stdout.includes(password), `summary prints ${password}:\n${r.stdout}`);
    }
    for (const shown of [
      'redis://:***@127.0.0.1:6379',
      'postgres://idp:***@127.0.0.1:5432/idp',
      'postgres://rampart:***@127.0.0.1:5432/rampart',
    ]) {
      assert.ok(r.stdout.includes(shown), `summary lacks ${shown}:\n${r.stdout}`);
    }
  });

  const broken: [string, number, string][] = [
    ['unknown-key.yaml', 10, 'services.catalog.rotues'],
    ['bad-rate.yaml', 13, 'services.orders.routes[0].rateLimit'],
    ['lowercase-method.yaml', 11, 'services.catalog.routes[0].methods[1]'],
    ['route-conflict.yaml', 15, 'services.catalog.routes[0].path'],
    ['tls-off-public.yaml', 5, 'gateway.tls'],
    ['yaml-syntax.txt', 11, 'services.catalog.routes[0].methods'],
    ['duplicate-key.yaml', 12, 'services.catalog.routes'],
    ['missing-run-file.yaml', 9, 'services.catalog.run'],
    ['cors-wildcard.yaml', 15, 'services.catalog.routes[0].cors.credentials'],
    ['limits-conflict.yaml', 7, 'gateway.limits.maxConnectionsPerClient'],
    ['redirect-tls-off.yaml', 5, 'gateway.redirectHttp'],
    ['reserved-service.yaml', 10, 'services.identity'],
  ];
  for (const [name, line, path] of broken) {
    test(`broken/${name}: exit 2, file:line and path on stderr, no stack`, async () => {
      const file = `${FIXTURES}/broken/${name}`;
      const r = await check([file]);
      assert.equal(r.code, 2);
      assert.equal(r.stdout, '');
      assert.ok(r.stderr.includes(`${file}:${line}:`), r.stderr);
      assert.ok(r.stderr.includes(`  ${path}  `), r.stderr);
      assert.doesNotMatch(r.stderr, STACK);
    });
  }

  test('every issue of a manifest with several mistakes, and a count', async () => {
    const r = await check([`${FIXTURES}/broken/several-mistakes.yaml`]);
    assert.equal(r.code, 2);
    const located = r.stderr.split('\n').filter((l) => l.startsWith(`${FIXTURES}/broken/several-mistakes.yaml:`));
    assert.equal(located.length, 13);
    assert.match(r.stderr, /\b13\b/);
    assert.doesNotMatch(r.stderr, STACK);
  });

  test('paths are shown relative to the working directory', async () => {
    const r = await check(['broken/bad-rate.yaml'], { cwd: join(ROOT, FIXTURES) });
    assert.equal(r.code, 2);
    assert.ok(r.stderr.startsWith('broken/bad-rate.yaml:13:'), r.stderr);
  });

  test('colors only when asked', async () => {
    const r = await check([`${FIXTURES}/broken/bad-rate.yaml`], { color: true });
    assert.match(r.stderr, ANSI);
  });

  describe('default file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-check-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    test('a missing rampart.yaml: exit 2 with CFG_ERR_FILE', async () => {
      const r = await check([], { cwd: dir });
      assert.equal(r.code, 2);
      assert.ok(r.stderr.startsWith('rampart.yaml:1:1'), r.stderr);
      assert.ok(r.stderr.includes('CFG_ERR_FILE'));
    });

    test('./rampart.yaml when no file is named', async () => {
      cpSync(join(ROOT, FIXTURES, 'valid.yaml'), join(dir, 'rampart.yaml'));
      cpSync(join(ROOT, FIXTURES, 'services'), join(dir, 'services'), { recursive: true });
      const r = await check([], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.startsWith('rampart.yaml is valid'), r.stdout);
    });
  });

  test('usage: --help exits 0; unknown options and two files exit 2', async () => {
    const help = await check(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /rampart check \[file\]/);
    const unknown = await check(['--frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /rampart check \[file\]/);
    assert.equal((await check(['a.yaml', 'b.yaml'])).code, 2);
  });

  test('an unexpected error is one line and exit 1', async () => {
    const stderr = new Sink();
    const broken = {
      write() {
        throw new Error('disk on fire\n    at somewhere (x.ts:1:1)');
      },
    };
    const code = await runCheck([`${FIXTURES}/valid.yaml`], {
      stdout: broken as unknown as NodeJS.WritableStream,
      stderr: stderr as unknown as NodeJS.WritableStream,
      cwd: ROOT,
      color: false,
    });
    assert.equal(code, 1);
    assert.equal(stderr.text.split('\n').length, 2, stderr.text); // one line and its newline
    assert.doesNotMatch(stderr.text, STACK);
  });
});
