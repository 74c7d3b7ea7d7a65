import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from './config-error.ts';
import { ISSUE } from './issue-codes.ts';
import { parseManifest } from './load.ts';
import type { ConfigIssue } from './model.ts';

/**
 * Builds a manifest whose first 6 lines are fixed, so the line of every issue in `services` (which
 * starts on line 7) is predictable. `gateway` and `identity` lines can be replaced.
 */
function manifest(parts: { gateway?: string; identity?: string; services?: string; extra?: string }): string {
  return [
    'trustDomain: shop.local',
    'gateway:',
    parts.gateway ?? '  tls: off',
    'identity:',
    parts.identity ?? '  builtin: {}',
    'services:',
    parts.services ?? '  catalog:\n    run: c.ts',
    parts.extra ?? '',
  ].join('\n');
}

function issues(text: string): readonly ConfigIssue[] {
  try {
    parseManifest(text, '/tmp/rampart.yaml', { checkFiles: false });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues;
  }
  return [];
}

const brief = (list: readonly ConfigIssue[]) => list.map((i) => [i.code, i.line, i.path]);

describe('Ajv errors are collapsed to one issue per mistake', () => {
  test('tls of the wrong type: one type issue, not one per alternative', () => {
    const found = issues(manifest({ gateway: '  tls: 3' }));
    assert.deepEqual(brief(found), [[ISSUE.TYPE, 3, 'gateway.tls']]);
  });

  test('tls with cert but no key: the missing key of the map alternative', () => {
    const found = issues(manifest({ gateway: '  tls: { cert: a.pem }' }));
    assert.deepEqual(brief(found), [[ISSUE.REQUIRED, 3, 'gateway.tls.key']]);
  });

  test('rate-limit store: a misspelt discriminator is one value issue with a suggestion', () => {
    const found = issues(manifest({ gateway: '  tls: off\n  rateLimit: { store: redsi }' }));
    assert.deepEqual(brief(found), [[ISSUE.VALUE, 4, 'gateway.rateLimit.store']]);
    assert.match(found[0]!.hint ?? '', /redis/);
  });

  test('rate-limit store redis without url: only the redis alternative is reported', () => {
    const found = issues(manifest({ gateway: '  tls: off\n  rateLimit: { store: redis }' }));
    assert.deepEqual(brief(found), [[ISSUE.REQUIRED, 4, 'gateway.rateLimit.url']]);
  });

  test('rate-limit store memory with a url: an unknown key', () => {
    const found = issues(manifest({ gateway: '  tls: off\n  rateLimit: { store: memory, url: "redis://x" }' }));
    assert.deepEqual(brief(found), [[ISSUE.UNKNOWN_KEY, 4, 'gateway.rateLimit.url']]);
  });

  test('a redis URL with another scheme', () => {
    const found = issues(manifest({ gateway: '  tls: off\n  rateLimit: { store: redis, url: "http://x" }' }));
    assert.deepEqual(brief(found), [[ISSUE.URL, 4, 'gateway.rateLimit.url']]);
  });

  test('identity with neither alternative: one required issue', () => {
    const found = issues(manifest({ identity: '  audience: x' }));
    assert.deepEqual(brief(found), [[ISSUE.REQUIRED, 4, 'identity']]);
  });

  test('auth of an unknown word, and a misspelt key inside auth', () => {
    const found = issues(
      manifest({
        services:
          '  catalog:\n    run: c.ts\n    routes:\n' +
          '      - { path: /a, methods: [GET], auth: public }\n' +
          '      - { path: /b, methods: [GET], auth: { scope: [x] } }',
      }),
    );
    assert.deepEqual(brief(found), [
      [ISSUE.VALUE, 10, 'services.catalog.routes[0].auth'],
      [ISSUE.UNKNOWN_KEY, 11, 'services.catalog.routes[1].auth.scope'],
    ]);
    assert.match(found[1]!.hint ?? '', /`scopes`/);
  });

  test('a misspelt required key is reported once, as the unknown key', () => {
    const found = issues(manifest({ services: '  catalog:\n    rnu: c.ts' }));
    assert.deepEqual(brief(found), [[ISSUE.UNKNOWN_KEY, 8, 'services.catalog.rnu']]);
  });

  test('an unknown key far from every allowed key lists the allowed keys', () => {
    const found = issues(manifest({ extra: 'flavour: vanilla' }));
    assert.deepEqual(brief(found), [[ISSUE.UNKNOWN_KEY, 9, 'flavour']]);
    assert.match(found[0]!.hint ?? '', /allowed here/);
  });

  test('duplicate methods, out-of-range port, bad names, wrong version', () => {
    const found = issues(
      [
        'version: 2',
        'trustDomain: shop.local',
        'gateway:',
        '  listen: { port: 70000 }',
        '  tls: off',
        'identity:',
        '  builtin: { port: 0 }',
        'services:',
        '  Catalog:',
        '    run: c.ts',
        '    env: { page_size: "1" }',
        '    routes:',
        '      - { path: /a, methods: [GET, GET], id: Bad }',
      ].join('\n'),
    );
    assert.deepEqual(brief(found), [
      [ISSUE.VALUE, 1, 'version'],
      [ISSUE.VALUE, 4, 'gateway.listen.port'],
      [ISSUE.VALUE, 7, 'identity.builtin.port'],
      [ISSUE.NAME, 9, 'services.Catalog'],
      [ISSUE.ENV, 11, 'services.Catalog.env.page_size'],
      [ISSUE.DUPLICATE_ITEM, 13, 'services.Catalog.routes[0].methods[1]'],
      [ISSUE.NAME, 13, 'services.Catalog.routes[0].id'],
    ]);
    assert.match(found[3]!.hint ?? '', /catalog/);
    assert.match(found[4]!.hint ?? '', /PAGE_SIZE/);
  });

  test('scalar where a list is expected hints at the list form', () => {
    const found = issues(
      manifest({ services: '  catalog:\n    run: c.ts\n    routes:\n      - { path: /a, methods: GET }' }),
    );
    assert.deepEqual(brief(found), [[ISSUE.TYPE, 10, 'services.catalog.routes[0].methods']]);
    assert.match(found[0]!.hint ?? '', /\[GET\]/);
  });

  test('an unknown HTTP method (not just lower case)', () => {
    const found = issues(
      manifest({ services: '  catalog:\n    run: c.ts\n    routes:\n      - { path: /a, methods: [FETCH] }' }),
    );
    assert.deepEqual(brief(found), [[ISSUE.METHOD, 10, 'services.catalog.routes[0].methods[0]']]);
  });

  test('no services at all', () => {
    assert.deepEqual(brief(issues(manifest({ services: '  {}' }))), [[ISSUE.VALUE, 7, 'services']]);
  });
});

describe('cross-checks', () => {
  const routes = (lines: string[]) =>
    manifest({ services: `  catalog:\n    run: c.ts\n    routes:\n${lines.map((l) => `      - ${l}`).join('\n')}` });

  test('within one service, overlapping patterns conflict unless the methods are disjoint', () => {
    assert.deepEqual(
      brief(issues(routes(['{ path: /a/*, methods: [GET] }', '{ path: /a/b, methods: [GET, POST] }']))),
      [[ISSUE.ROUTE_CONFLICT, 11, 'services.catalog.routes[1].path']],
    );
    assert.deepEqual(brief(issues(routes(['{ path: /a/*, methods: [GET] }', '{ path: /a/b, methods: [POST] }']))), []);
  });

  test('the same pattern twice is a conflict; disjoint patterns are not', () => {
    assert.equal(issues(routes(['{ path: /a, methods: [GET] }', '{ path: /a, methods: [GET] }'])).length, 1);
    assert.deepEqual(brief(issues(routes(['{ path: /a/**, methods: [GET] }', '{ path: /b/**, methods: [GET] }']))), []);
  });

  test('a client-keyed rate limit on a public route; an ip-keyed one is fine', () => {
    assert.deepEqual(brief(issues(routes(['{ path: /a, methods: [GET], auth: none, rateLimit: 1/s per client }']))), [
      [ISSUE.RATE_KEY, 10, 'services.catalog.routes[0].rateLimit'],
    ]);
    assert.deepEqual(brief(issues(routes(['{ path: /a, methods: [GET], auth: none, rateLimit: 1/s per ip }']))), []);
    assert.deepEqual(brief(issues(routes(['{ path: /a, methods: [GET], rateLimit: 1/s per subject }']))), []);
  });

  test('an explicit port equal to a default port is blamed on the explicit one', () => {
    const found = issues(manifest({ identity: '  builtin: { port: 8443 }' }));
    assert.deepEqual(brief(found), [[ISSUE.PORT_CONFLICT, 5, 'identity.builtin.port']]);
  });

  test('two ports 0 never conflict', () => {
    assert.deepEqual(brief(issues(manifest({ gateway: '  listen: { port: 0 }\n  tls: off' }))), []);
  });

  test('tls off is allowed on every loopback form and refused elsewhere', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '"::ffff:127.0.0.1"']) {
      assert.deepEqual(brief(issues(manifest({ gateway: `  listen: { host: ${host} }\n  tls: off` }))), [], host);
    }
    for (const host of ['0.0.0.0', '"::"', '10.0.0.1', 'shop.example.com']) {
      assert.deepEqual(
        brief(issues(manifest({ gateway: `  listen: { host: ${host} }\n  tls: off` }))),
        [[ISSUE.TLS, 4, 'gateway.tls']],
        host,
      );
    }
  });

  test('a listen host that is no address or name', () => {
    assert.deepEqual(brief(issues(manifest({ gateway: '  listen: { host: "1.2.3.400" }\n  tls: off' }))), [
      [ISSUE.HOST, 3, 'gateway.listen.host'],
    ]);
  });

  test('issuer URLs: https, or http on loopback only, never with a query', () => {
    const ext = (issuer: string) => issues(manifest({ identity: `  external: { issuer: "${issuer}" }` }));
    assert.deepEqual(brief(ext('https://idp.example.com/realms/x')), []);
    assert.deepEqual(brief(ext('http://localhost:8080/realms/x')), []);
    assert.deepEqual(brief(ext('http://idp.example.com')), [[ISSUE.URL, 5, 'identity.external.issuer']]);
    assert.deepEqual(brief(ext('https://idp.example.com/?tenant=1')), [[ISSUE.URL, 5, 'identity.external.issuer']]);
  });
});
