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

describe('gateway keys: workers, redirectHttp, limits, tls', () => {
  /** `gateway:` text (line 3 onward) → the exact issues. Line 3 is `tls` unless the case says otherwise. */
  const CASES: [string, string, [string, number, string][]][] = [
    ['workers at the bounds', '  tls: off\n  workers: 0', []],
    ['workers 64', '  tls: off\n  workers: 64', []],
    ['workers negative', '  tls: off\n  workers: -1', [[ISSUE.VALUE, 4, 'gateway.workers']]],
    ['workers too many', '  tls: off\n  workers: 65', [[ISSUE.VALUE, 4, 'gateway.workers']]],
    ['workers fraction', '  tls: off\n  workers: 1.5', [[ISSUE.TYPE, 4, 'gateway.workers']]],
    ['workers quoted', '  tls: off\n  workers: "4"', [[ISSUE.TYPE, 4, 'gateway.workers']]],
    ['workers auto', '  tls: off\n  workers: auto', [[ISSUE.TYPE, 4, 'gateway.workers']]],
    ['redirect with cert files', '  tls: { cert: a.pem, key: b.pem }\n  redirectHttp: { port: 8080 }', []],
    [
      'redirect with tls off',
      '  tls: off\n  redirectHttp: { port: 8080 }',
      [[ISSUE.REDIRECT, 4, 'gateway.redirectHttp']],
    ],
    [
      'redirect port 0',
      '  tls: { cert: a, key: b }\n  redirectHttp: { port: 0 }',
      [[ISSUE.VALUE, 4, 'gateway.redirectHttp.port']],
    ],
    [
      'redirect port too large',
      '  tls: { cert: a, key: b }\n  redirectHttp: { port: 65536 }',
      [[ISSUE.VALUE, 4, 'gateway.redirectHttp.port']],
    ],
    [
      'redirect without port',
      '  tls: { cert: a, key: b }\n  redirectHttp: {}',
      [[ISSUE.REQUIRED, 4, 'gateway.redirectHttp.port']],
    ],
    [
      'redirect as a number',
      '  tls: { cert: a, key: b }\n  redirectHttp: 80',
      [[ISSUE.TYPE, 4, 'gateway.redirectHttp']],
    ],
    ['redirect as true', '  tls: { cert: a, key: b }\n  redirectHttp: true', [[ISSUE.TYPE, 4, 'gateway.redirectHttp']]],
    [
      'redirect with a host',
      '  tls: { cert: a, key: b }\n  redirectHttp: { port: 80, host: 0.0.0.0 }',
      [[ISSUE.UNKNOWN_KEY, 4, 'gateway.redirectHttp.host']],
    ],
    [
      'redirect on the gateway port',
      '  listen: { port: 8443 }\n  tls: { cert: a, key: b }\n  redirectHttp: { port: 8443 }',
      [[ISSUE.PORT_CONFLICT, 5, 'gateway.redirectHttp.port']],
    ],
    [
      'redirect on the admin port',
      '  admin: { port: 9000 }\n  tls: { cert: a, key: b }\n  redirectHttp: { port: 9000 }',
      [[ISSUE.PORT_CONFLICT, 5, 'gateway.redirectHttp.port']],
    ],
    [
      'redirect on the default identity port',
      '  tls: { cert: a, key: b }\n  redirectHttp: { port: 8444 }',
      [[ISSUE.PORT_CONFLICT, 4, 'gateway.redirectHttp.port']],
    ],
    [
      'redirect with tls off on a conflicting port: both mistakes',
      '  tls: off\n  redirectHttp: { port: 8443 }',
      [
        [ISSUE.REDIRECT, 4, 'gateway.redirectHttp'],
        [ISSUE.PORT_CONFLICT, 4, 'gateway.redirectHttp.port'],
      ],
    ],
    ['limits empty', '  tls: off\n  limits: {}', []],
    ['limits as a list', '  tls: off\n  limits: [1]', [[ISSUE.TYPE, 4, 'gateway.limits']]],
    [
      'limits snake_case key',
      '  tls: off\n  limits: { max_body_bytes: 1 }',
      [[ISSUE.UNKNOWN_KEY, 4, 'gateway.limits.max_body_bytes']],
    ],
    [
      'limits key with a unit',
      '  tls: off\n  limits: { maxBody: 1MB }',
      [[ISSUE.UNKNOWN_KEY, 4, 'gateway.limits.maxBody']],
    ],
    [
      'limits value with a unit',
      '  tls: off\n  limits: { maxBodyBytes: 1MB }',
      [[ISSUE.TYPE, 4, 'gateway.limits.maxBodyBytes']],
    ],
    [
      'limits negative',
      '  tls: off\n  limits: { maxConnections: -1 }',
      [[ISSUE.VALUE, 4, 'gateway.limits.maxConnections']],
    ],
    ['limits 1 GiB body', '  tls: off\n  limits: { maxBodyBytes: 1073741824 }', []],
    [
      'limits past 1 GiB',
      '  tls: off\n  limits: { maxBodyBytes: 1073741825 }',
      [[ISSUE.VALUE, 4, 'gateway.limits.maxBodyBytes']],
    ],
    [
      'limits timeout 99 ms',
      '  tls: off\n  limits: { tlsHandshakeTimeoutMs: 99 }',
      [[ISSUE.VALUE, 4, 'gateway.limits.tlsHandshakeTimeoutMs']],
    ],
    ['limits timeout 10 min', '  tls: off\n  limits: { keepAliveTimeoutMs: 600000 }', []],
    [
      'limits timeout 0',
      '  tls: off\n  limits: { requestTimeoutMs: 0 }',
      [[ISSUE.VALUE, 4, 'gateway.limits.requestTimeoutMs']],
    ],
    [
      'limits infinity',
      '  tls: off\n  limits: { requestTimeoutMs: .inf }',
      [[ISSUE.TYPE, 4, 'gateway.limits.requestTimeoutMs']],
    ],
    [
      'limits huge number',
      '  tls: off\n  limits: { maxConnections: 1e300 }',
      [[ISSUE.VALUE, 4, 'gateway.limits.maxConnections']],
    ],
    [
      'per-client cap above the total, both written',
      '  tls: off\n  limits:\n    maxConnections: 10\n    maxConnectionsPerClient: 11',
      [[ISSUE.LIMITS, 6, 'gateway.limits.maxConnectionsPerClient']],
    ],
    [
      'per-client cap equal to the total',
      '  tls: off\n  limits: { maxConnections: 10, maxConnectionsPerClient: 10 }',
      [],
    ],
    [
      'total below the default per-client cap: blamed on the written total',
      '  tls: off\n  limits: { maxConnections: 100 }',
      [[ISSUE.LIMITS, 4, 'gateway.limits.maxConnections']],
    ],
    [
      'per-client cap above the default total',
      '  tls: off\n  limits: { maxConnectionsPerClient: 20000 }',
      [[ISSUE.LIMITS, 4, 'gateway.limits.maxConnectionsPerClient']],
    ],
    [
      'headers timeout above the request timeout',
      '  tls: off\n  limits: { headersTimeoutMs: 40000 }',
      [[ISSUE.LIMITS, 4, 'gateway.limits.headersTimeoutMs']],
    ],
    [
      'target length not below the header size',
      '  tls: off\n  limits: { maxHeaderBytes: 4096, maxTargetLength: 4096 }',
      [[ISSUE.LIMITS, 4, 'gateway.limits.maxTargetLength']],
    ],
    [
      'an out-of-range value is one issue, not also a conflict',
      '  tls: off\n  limits: { maxConnections: 0 }',
      [[ISSUE.VALUE, 4, 'gateway.limits.maxConnections']],
    ],
    ['tls auto', '  tls: auto', []],
    ['tls auto with names', '  tls: { auto: [shop.local, 127.0.0.1] }', []],
    ['tls auto in the model form', '  tls: { mode: auto, names: [shop.local] }', [[ISSUE.TLS, 3, 'gateway.tls']]],
    ['tls auto names only', '  tls: { names: [shop.local] }', [[ISSUE.TLS, 3, 'gateway.tls']]],
    ['tls auto with no names', '  tls: { auto: [] }', [[ISSUE.VALUE, 3, 'gateway.tls.auto']]],
    ['tls auto with a non-string name', '  tls: { auto: [8443] }', [[ISSUE.TYPE, 3, 'gateway.tls.auto[0]']]],
    ['tls auto with a wildcard', '  tls: { auto: ["*.shop.local"] }', [[ISSUE.TLS, 3, 'gateway.tls.auto[0]']]],
    ['tls auto with a URL', '  tls: { auto: [a.test, "https://b.test"] }', [[ISSUE.TLS, 3, 'gateway.tls.auto[1]']]],
    ['tls auto with a port', '  tls: { auto: ["localhost:8443"] }', [[ISSUE.TLS, 3, 'gateway.tls.auto[0]']]],
    [
      'tls auto: 15 names and localhost on a wildcard address make 16, accepted',
      '  listen: { host: 0.0.0.0 }\n  tls: { auto: [a1.test, a2.test, a3.test, a4.test, a5.test, a6.test, a7.test, a8.test, a9.test, a10.test, a11.test, a12.test, a13.test, a14.test, a15.test] }',
      [],
    ],
    [
      'tls auto: 16 names plus the listen host and localhost are more than the CA signs',
      '  tls: { auto: [a1.test, a2.test, a3.test, a4.test, a5.test, a6.test, a7.test, a8.test, a9.test, a10.test, a11.test, a12.test, a13.test, a14.test, a15.test, a16.test] }',
      [[ISSUE.TLS, 3, 'gateway.tls']],
    ],
    [
      'tls auto: a listen host the CA would not put on a certificate',
      '  listen: { host: box.1 }\n  tls: auto',
      [[ISSUE.TLS, 4, 'gateway.tls']],
    ],
    ['tls auto with an extra key', '  tls: { auto: [a.test], cert: x }', [[ISSUE.UNKNOWN_KEY, 3, 'gateway.tls.cert']]],
    [
      'tls files with an extra key',
      '  tls: { cert: a, key: b, mode: files }',
      [[ISSUE.UNKNOWN_KEY, 3, 'gateway.tls.mode']],
    ],
  ];
  for (const [name, gateway, expected] of CASES) {
    test(name, () => {
      assert.deepEqual(brief(issues(manifest({ gateway }))), expected);
    });
  }

  test('tls: auto in the wrong shape shows the right one', () => {
    const [issue] = issues(manifest({ gateway: '  tls: { mode: auto }' }));
    assert.equal(issue?.code, ISSUE.TLS);
    assert.match(issue!.hint ?? '', /\{ auto: \[/);
  });

  test('the workers, redirect and limits written are the ones loaded', () => {
    const m = parseManifest(
      manifest({
        gateway:
          '  tls: { cert: a, key: b }\n  workers: 2\n  redirectHttp: { port: 80 }\n  limits: { maxHeadersCount: 50 }',
      }),
      '/tmp/rampart.yaml',
      { checkFiles: false },
    );
    assert.equal(m.gateway.workers, 2);
    assert.deepEqual(m.gateway.redirectHttp, { port: 80 });
    assert.equal(m.gateway.limits.maxHeadersCount, 50);
    assert.equal(m.gateway.limits.maxBodyBytes, 1_048_576);
  });
});

describe('route cors', () => {
  /** The `cors:` value of route 0 (line 10) → the exact issues. */
  const route = (cors: string) =>
    manifest({
      services: `  catalog:\n    run: c.ts\n    routes:\n      - { path: /a, methods: [GET], cors: ${cors} }`,
    });
  const at = (suffix: string) => `services.catalog.routes[0].cors${suffix}`;
  const CASES: [string, [string, number, string][]][] = [
    ['{ origins: ["*"] }', []],
    ['{ origins: ["https://a.example", "https://b.example:8443"], credentials: true }', []],
    ['{ origins: ["http://localhost:3000"], headers: [Authorization], maxAge: 0 }', []],
    ['{ origins: ["https://a.example"], maxAge: 86400 }', []],
    ['"*"', [[ISSUE.TYPE, 10, at('')]]],
    ['true', [[ISSUE.TYPE, 10, at('')]]],
    ['{}', [[ISSUE.REQUIRED, 10, at('.origins')]]],
    ['{ origins: [] }', [[ISSUE.VALUE, 10, at('.origins')]]],
    ['{ origins: "*" }', [[ISSUE.TYPE, 10, at('.origins')]]],
    ['{ origin: ["*"] }', [[ISSUE.UNKNOWN_KEY, 10, at('.origin')]]],
    ['{ origins: ["*"], methods: [GET] }', [[ISSUE.UNKNOWN_KEY, 10, at('.methods')]]],
    ['{ origins: ["*"], exposeHeaders: [x] }', [[ISSUE.UNKNOWN_KEY, 10, at('.exposeHeaders')]]],
    ['{ origins: [1] }', [[ISSUE.TYPE, 10, at('.origins[0]')]]],
    ['{ origins: ["https://a.example/"] }', [[ISSUE.CORS_ORIGIN, 10, at('.origins[0]')]]],
    ['{ origins: ["https://a.example/app"] }', [[ISSUE.CORS_ORIGIN, 10, at('.origins[0]')]]],
    ['{ origins: ["a.example"] }', [[ISSUE.CORS_ORIGIN, 10, at('.origins[0]')]]],
    ['{ origins: ["http://a.example"] }', [[ISSUE.CORS_ORIGIN, 10, at('.origins[0]')]]],
    ['{ origins: ["https://*.a.example"] }', [[ISSUE.CORS_ORIGIN, 10, at('.origins[0]')]]],
    ['{ origins: ["null"] }', [[ISSUE.CORS_ORIGIN, 10, at('.origins[0]')]]],
    ['{ origins: ["https://A.example"] }', [[ISSUE.CORS_ORIGIN, 10, at('.origins[0]')]]],
    ['{ origins: ["https://a.example:443"] }', [[ISSUE.CORS_ORIGIN, 10, at('.origins[0]')]]],
    ['{ origins: ["https://a.example", "https://a.example"] }', [[ISSUE.DUPLICATE_ITEM, 10, at('.origins[1]')]]],
    ['{ origins: ["*", "*"] }', [[ISSUE.DUPLICATE_ITEM, 10, at('.origins[1]')]]],
    ['{ origins: ["*", "https://a.example"] }', [[ISSUE.CORS, 10, at('.origins[0]')]]],
    ['{ origins: ["https://a.example", "*"] }', [[ISSUE.CORS, 10, at('.origins[1]')]]],
    [
      '{ origins: ["*", "a.example"] }',
      [
        [ISSUE.CORS, 10, at('.origins[0]')],
        [ISSUE.CORS_ORIGIN, 10, at('.origins[1]')],
      ],
    ],
    ['{ origins: ["*"], credentials: true }', [[ISSUE.CORS, 10, at('.credentials')]]],
    ['{ origins: ["*"], credentials: false }', []],
    ['{ origins: ["*"], credentials: "true" }', [[ISSUE.TYPE, 10, at('.credentials')]]],
    ['{ origins: ["*"], credentials: yes }', [[ISSUE.TYPE, 10, at('.credentials')]]],
    ['{ origins: ["*"], headers: x-api-key }', [[ISSUE.TYPE, 10, at('.headers')]]],
    ['{ origins: ["*"], headers: [cookie] }', [[ISSUE.CORS_HEADER, 10, at('.headers[0]')]]],
    ['{ origins: ["*"], headers: [Host] }', [[ISSUE.CORS_HEADER, 10, at('.headers[0]')]]],
    ['{ origins: ["*"], headers: [x-rampart-subject] }', [[ISSUE.CORS_HEADER, 10, at('.headers[0]')]]],
    ['{ origins: ["*"], headers: ["*"] }', [[ISSUE.CORS_HEADER, 10, at('.headers[0]')]]],
    ['{ origins: ["*"], headers: ["x api"] }', [[ISSUE.CORS_HEADER, 10, at('.headers[0]')]]],
    ['{ origins: ["*"], headers: [X-A, x-a] }', [[ISSUE.DUPLICATE_ITEM, 10, at('.headers[1]')]]],
    ['{ origins: ["*"], headers: [x-a, x-a] }', [[ISSUE.DUPLICATE_ITEM, 10, at('.headers[1]')]]],
    ['{ origins: ["*"], maxAge: -1 }', [[ISSUE.VALUE, 10, at('.maxAge')]]],
    ['{ origins: ["*"], maxAge: 86401 }', [[ISSUE.VALUE, 10, at('.maxAge')]]],
    ['{ origins: ["*"], maxAge: 10m }', [[ISSUE.TYPE, 10, at('.maxAge')]]],
  ];
  for (const [cors, expected] of CASES) {
    test(`cors: ${cors}`, () => {
      assert.deepEqual(brief(issues(route(cors))), expected);
    });
  }

  test('header names are stored in lower case', () => {
    const m = parseManifest(route('{ origins: ["*"], headers: [X-Api-Key, Authorization] }'), '/tmp/rampart.yaml', {
      checkFiles: false,
    });
    assert.deepEqual(m.routes[0]!.cors?.headers, ['x-api-key', 'authorization']);
  });

  test('a non-canonical origin gets the form browsers send as hint', () => {
    const [issue] = issues(route('{ origins: ["https://Shop.Example.com:443/"] }'));
    assert.match(issue!.hint ?? '', /https:\/\/shop\.example\.com$/);
  });
});

describe('reserved names', () => {
  for (const name of ['control', 'identity', 'gateway', 'rampart']) {
    test(`service name ${name}`, () => {
      const found = issues(manifest({ services: `  ${name}:\n    run: c.ts` }));
      assert.deepEqual(brief(found), [[ISSUE.NAME, 7, `services.${name}`]]);
      assert.match(found[0]!.hint ?? '', /another/);
    });
  }

  test('names that merely contain a reserved word are fine', () => {
    for (const name of ['gateway-admin', 'my-control', 'identity2', 'rampart-docs']) {
      assert.deepEqual(brief(issues(manifest({ services: `  ${name}:\n    run: c.ts` }))), [], name);
    }
  });

  test('env names the launcher refuses, each once', () => {
    const env = (name: string) => manifest({ services: `  catalog:\n    run: c.ts\n    env: { ${name}: "x" }` });
    for (const name of ['RAMPART_RUNTIME', 'NODE_OPTIONS', 'NODE_PATH', 'LD_PRELOAD', 'DYLD_INSERT_LIBRARIES']) {
      assert.deepEqual(brief(issues(env(name))), [[ISSUE.ENV, 9, `services.catalog.env.${name}`]], name);
    }
    for (const name of ['NODE_ENV', 'NODE_EXTRA_CA_CERTS', 'MY_NODE_OPTIONS']) {
      assert.deepEqual(brief(issues(env(name))), [], name);
    }
  });
});
