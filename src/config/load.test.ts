import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { ConfigError } from './config-error.ts';
import { DEFAULTS } from './defaults.ts';
import { ISSUE } from './issue-codes.ts';
import { loadManifest, parseManifest } from './load.ts';
import type { ConfigIssue } from './model.ts';
import { manifestSchema } from './schema.ts';

const validateSchema = new Ajv({ strict: true, strictRequired: false }).compile(manifestSchema);

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/manifests/', import.meta.url));
const fixture = (name: string) => join(FIXTURES, name);

/** The issues a load throws (fails the test when it does not throw a ConfigError). */
function issuesOf(load: () => unknown): readonly ConfigIssue[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'CFG_ERR_INVALID');
    return err.issues;
  }
  assert.fail('expected the manifest to be rejected');
}

const brief = (issues: readonly ConfigIssue[]) => issues.map((i) => [i.code, i.line, i.path]);

/** One fixture per kind of mistake: exactly these issues (code, 1-based line, dotted path). */
const BROKEN: Record<string, [string, number, string][]> = {
  'unknown-key.yaml': [[ISSUE.UNKNOWN_KEY, 10, 'services.catalog.rotues']],
  'wrong-type.yaml': [[ISSUE.TYPE, 11, 'services.catalog.env.CATALOG_PAGE_SIZE']],
  'missing-required.yaml': [[ISSUE.REQUIRED, 8, 'services.catalog.run']],
  'yaml-syntax.txt': [
    [ISSUE.YAML, 11, 'services.catalog.routes[0].methods'],
    [ISSUE.YAML, 11, ''],
  ],
  'duplicate-key.yaml': [[ISSUE.DUPLICATE_KEY, 12, 'services.catalog.routes']],
  'bad-pattern.yaml': [
    [ISSUE.PATTERN, 11, 'services.orders.routes[0].path'],
    [ISSUE.PATTERN, 13, 'services.orders.calls[0].paths[0]'],
  ],
  'bad-rate.yaml': [[ISSUE.RATE, 13, 'services.orders.routes[0].rateLimit']],
  'lowercase-method.yaml': [[ISSUE.METHOD, 11, 'services.catalog.routes[0].methods[1]']],
  'unknown-call.yaml': [[ISSUE.UNKNOWN_SERVICE, 11, 'services.orders.calls[0].service']],
  'self-call.yaml': [[ISSUE.SELF_CALL, 11, 'services.orders.calls[0].service']],
  'route-conflict.yaml': [[ISSUE.ROUTE_CONFLICT, 15, 'services.catalog.routes[0].path']],
  'undeclared-secret.yaml': [[ISSUE.UNKNOWN_SECRET, 12, 'services.payments.secrets[1]']],
  'unused-secret.yaml': [[ISSUE.UNUSED_SECRET, 9, 'secrets.legacy-api-key']],
  'missing-run-file.yaml': [[ISSUE.RUN_MISSING, 9, 'services.catalog.run']],
  'tls-off-public.yaml': [[ISSUE.TLS, 5, 'gateway.tls']],
  'tls-auto.yaml': [[ISSUE.TLS, 4, 'gateway.tls']],
  'bad-cidr.yaml': [
    [ISSUE.CIDR, 7, 'gateway.trustedProxies[1]'],
    [ISSUE.CIDR, 8, 'gateway.trustedProxies[2]'],
  ],
  'subject-rate-public.yaml': [[ISSUE.RATE_KEY, 11, 'services.catalog.routes[0].rateLimit']],
  'both-identities.yaml': [[ISSUE.EXCLUSIVE, 7, 'identity.external']],
  'duplicate-id.yaml': [[ISSUE.DUPLICATE_ID, 12, 'services.catalog.routes[1].id']],
  'port-conflict.yaml': [[ISSUE.PORT_CONFLICT, 5, 'gateway.admin.port']],
  'reserved-env.yaml': [[ISSUE.ENV, 11, 'services.catalog.env.RAMPART_SERVICE']],
  'reserved-env-launcher.yaml': [
    [ISSUE.ENV, 12, 'services.catalog.env.NODE_OPTIONS'],
    [ISSUE.ENV, 13, 'services.catalog.env.LD_PRELOAD'],
    [ISSUE.ENV, 14, 'services.catalog.env.DYLD_INSERT_LIBRARIES'],
    [ISSUE.ENV, 15, 'services.catalog.env.NODE_PATH'],
  ],
  'reserved-service.yaml': [[ISSUE.NAME, 10, 'services.identity']],
  'workers-range.yaml': [[ISSUE.VALUE, 5, 'gateway.workers']],
  'redirect-tls-off.yaml': [[ISSUE.REDIRECT, 5, 'gateway.redirectHttp']],
  'redirect-port-conflict.yaml': [[ISSUE.PORT_CONFLICT, 7, 'gateway.redirectHttp.port']],
  'limits-unknown-key.yaml': [[ISSUE.UNKNOWN_KEY, 7, 'gateway.limits.headerTimeoutMs']],
  'hsts-range.yaml': [[ISSUE.VALUE, 5, 'gateway.hsts.maxAge']],
  'hsts-negative.yaml': [[ISSUE.VALUE, 6, 'gateway.hsts.maxAge']],
  'hsts-type.yaml': [[ISSUE.TYPE, 6, 'gateway.hsts.maxAge']],
  'hsts-unknown-key.yaml': [[ISSUE.UNKNOWN_KEY, 7, 'gateway.hsts.includeSubdomains']],
  'limits-range.yaml': [
    [ISSUE.VALUE, 6, 'gateway.limits.maxBodyBytes'],
    [ISSUE.VALUE, 7, 'gateway.limits.keepAliveTimeoutMs'],
    [ISSUE.TYPE, 8, 'gateway.limits.maxHeadersCount'],
  ],
  'limits-conflict.yaml': [
    [ISSUE.LIMITS, 7, 'gateway.limits.maxConnectionsPerClient'],
    [ISSUE.LIMITS, 8, 'gateway.limits.requestTimeoutMs'],
  ],
  'cors-wildcard.yaml': [
    [ISSUE.CORS, 15, 'services.catalog.routes[0].cors.credentials'],
    [ISSUE.CORS, 18, 'services.catalog.routes[1].cors.origins[1]'],
  ],
  'cors-bad-origin.yaml': [
    [ISSUE.CORS_ORIGIN, 15, 'services.catalog.routes[0].cors.origins[0]'],
    [ISSUE.CORS_ORIGIN, 16, 'services.catalog.routes[0].cors.origins[1]'],
    [ISSUE.CORS_ORIGIN, 17, 'services.catalog.routes[0].cors.origins[2]'],
    [ISSUE.CORS_ORIGIN, 18, 'services.catalog.routes[0].cors.origins[3]'],
    [ISSUE.DUPLICATE_ITEM, 20, 'services.catalog.routes[0].cors.origins[5]'],
  ],
  'cors-bad-header.yaml': [
    [ISSUE.CORS_HEADER, 16, 'services.catalog.routes[0].cors.headers[0]'],
    [ISSUE.DUPLICATE_ITEM, 18, 'services.catalog.routes[0].cors.headers[2]'],
    [ISSUE.CORS_HEADER, 19, 'services.catalog.routes[0].cors.headers[3]'],
    [ISSUE.VALUE, 20, 'services.catalog.routes[0].cors.maxAge'],
  ],
  'several-mistakes.yaml': [
    [ISSUE.VALUE, 2, 'trustDomain'],
    [ISSUE.VALUE, 4, 'gateway.listen.port'],
    [ISSUE.TLS, 5, 'gateway.tls'],
    [ISSUE.CIDR, 6, 'gateway.trustedProxies[0]'],
    [ISSUE.UNKNOWN_KEY, 9, 'identity.audiense'],
    [ISSUE.UNUSED_SECRET, 11, 'secrets.unused-key'],
    [ISSUE.METHOD, 16, 'services.catalog.routes[0].methods[0]'],
    [ISSUE.RATE_KEY, 16, 'services.catalog.routes[0].rateLimit'],
    [ISSUE.UNKNOWN_KEY, 19, 'services.orders.rnu'],
    [ISSUE.TYPE, 22, 'services.orders.routes[0].methods'],
    [ISSUE.RATE, 23, 'services.orders.routes[0].rateLimit'],
    [ISSUE.UNKNOWN_SERVICE, 25, 'services.orders.calls[0].service'],
    [ISSUE.UNKNOWN_SECRET, 26, 'services.orders.secrets[0]'],
  ],
};

describe('broken manifests: one issue per mistake, with code, line and path', () => {
  for (const [name, expected] of Object.entries(BROKEN)) {
    test(name, () => {
      const file = fixture(`broken/${name}`);
      const issues = issuesOf(() => loadManifest(file));
      assert.deepEqual(brief(issues), expected);
      for (const issue of issues) {
        assert.equal(issue.file, file);
        assert.ok(issue.column >= 1);
        assert.ok(issue.message.length > 0);
      }
    });
  }

  test('issues are sorted by line, then column', () => {
    const issues = issuesOf(() => loadManifest(fixture('broken/several-mistakes.yaml')));
    const positions = issues.map((i) => i.line * 1000 + i.column);
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
    );
  });

  test('points at the offending key for unknown keys and at the value for bad values', () => {
    const [unknown] = issuesOf(() => loadManifest(fixture('broken/unknown-key.yaml')));
    assert.equal(unknown!.column, 5); // `    rotues:`
    const [rate] = issuesOf(() => loadManifest(fixture('broken/bad-rate.yaml')));
    assert.equal(rate!.column, 20); // `        rateLimit: 20/sek per subject`
  });

  test('a missing file is one CFG_ERR_FILE issue', () => {
    const file = fixture('does-not-exist.yaml');
    const issues = issuesOf(() => loadManifest(file));
    assert.deepEqual(brief(issues), [[ISSUE.FILE, 1, '']]);
    assert.equal(issues[0]!.file, file);
  });

  test('a directory is one CFG_ERR_FILE issue', () => {
    assert.deepEqual(brief(issuesOf(() => loadManifest(FIXTURES))), [[ISSUE.FILE, 1, '']]);
  });
});

describe('the valid manifest', () => {
  const file = fixture('valid.yaml');
  const m = loadManifest(file);

  test('absolute file, dir and run paths', () => {
    assert.equal(m.file, file);
    assert.equal(m.dir, resolve(FIXTURES));
    assert.equal(m.services['catalog']!.run, join(FIXTURES, 'services/catalog.ts'));
  });

  test('routes in declaration order, the same objects in services and in the flat list', () => {
    assert.deepEqual(
      m.routes.map((r) => r.id),
      ['catalog.0', 'catalog-create', 'orders.0'],
    );
    assert.equal(m.routes[0], m.services['catalog']!.routes[0]);
    assert.equal(m.routes[2], m.services['orders']!.routes[0]);
    assert.deepEqual(m.routes[0]!.where, { file, line: 19, column: 9 });
  });

  test('normalized values', () => {
    assert.deepEqual(m.gateway.listen, { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(m.gateway.tls, { mode: 'off' });
    assert.deepEqual(m.gateway.trustedProxies, ['10.0.0.0/8', '192.168.1.7/32', 'fd00::/8']);
    assert.deepEqual(m.identity, {
      mode: 'builtin',
      port: 8444,
      issuer: 'http://127.0.0.1:8444',
      audience: 'https://shop.local',
      store: { kind: 'sqlite' },
    });
    const [open, create] = m.services['catalog']!.routes;
    assert.deepEqual(open!.auth, { kind: 'none' });
    assert.deepEqual(open!.rateLimit, { limit: 100, periodMs: 60_000, key: { kind: 'ip' }, source: '100/min per ip' });
    assert.deepEqual(create!.auth, { kind: 'token', scopes: ['catalog:write'], scopeMatch: 'all', roles: ['admin'] });
    assert.equal(create!.rateLimit, null);
    const orders = m.services['orders']!;
    assert.deepEqual(orders.routes[0]!.path, { source: '/orders/**', segments: ['orders', '**'] });
    assert.deepEqual(orders.routes[0]!.rateLimit?.periodMs, 10_000);
    assert.deepEqual(orders.calls[0], {
      service: 'payments',
      methods: ['POST'],
      paths: [{ source: '/charges', segments: ['charges'] }],
    });
    assert.deepEqual(m.services['payments']!.secrets, ['payment-provider-key']);
    assert.deepEqual(m.secrets, {
      'payment-provider-key': { name: 'payment-provider-key', description: 'card processor API key' },
    });
    assert.deepEqual(m.services['catalog']!.env, { CATALOG_PAGE_SIZE: '20' });
  });

  test('the gateway keys take their defaults when omitted', () => {
    assert.equal(m.gateway.workers, DEFAULTS.gatewayWorkers);
    assert.equal(m.gateway.redirectHttp, null);
    assert.deepEqual(m.gateway.limits, DEFAULTS.gatewayLimits);
    assert.deepEqual(m.gateway.hsts, { maxAgeSeconds: DEFAULTS.hstsMaxAgeSeconds });
    assert.notEqual(m.gateway.limits, DEFAULTS.gatewayLimits, 'a copy, not the shared defaults');
    assert.deepEqual(
      m.routes.map((r) => r.cors),
      [null, null, null],
    );
  });

  test('is deeply frozen', () => {
    assert.ok(Object.isFrozen(m));
    assert.ok(Object.isFrozen(m.gateway.listen));
    assert.ok(Object.isFrozen(m.routes));
    assert.ok(Object.isFrozen(m.routes[1]!.auth));
    assert.ok(Object.isFrozen(m.services['orders']!.calls[0]!.paths[0]!.segments));
    assert.throws(() => {
      (m.gateway.listen as { port: number }).port = 1;
    }, TypeError);
    assert.throws(() => {
      (m.routes as unknown[]).push(null);
    }, TypeError);
  });

  test('the gateway variant: workers, redirect listener, limits and CORS as written', () => {
    const g = loadManifest(fixture('valid-gateway.yaml'));
    assert.equal(g.gateway.workers, 4);
    assert.deepEqual(g.gateway.redirectHttp, { port: 8080 });
    assert.deepEqual(g.gateway.hsts, { maxAgeSeconds: 86_400 });
    assert.deepEqual(g.gateway.limits, {
      ...DEFAULTS.gatewayLimits,
      maxBodyBytes: 10_485_760,
      headersTimeoutMs: 5_000,
      requestTimeoutMs: 60_000,
      maxConnections: 2_000,
      maxConnectionsPerClient: 2_000,
    });
    assert.deepEqual(g.routes[0]!.cors, {
      origins: ['*'],
      credentials: DEFAULTS.corsCredentials,
      headers: [],
      maxAgeSeconds: DEFAULTS.corsMaxAgeSeconds,
    });
    assert.deepEqual(g.routes[1]!.cors, {
      origins: ['https://shop.example.com', 'https://admin.example.com:8443', 'http://localhost:5173'],
      credentials: true,
      headers: ['authorization', 'content-type', 'x-request-id'],
      maxAgeSeconds: 3600,
    });
    assert.deepEqual(g.services['catalog']!.env, {
      NODE_ENV: 'production',
      NODE_EXTRA_CA_CERTS: '/etc/ssl/extra.pem',
    });
    assert.ok(Object.isFrozen(g.gateway.limits));
    assert.ok(Object.isFrozen(g.routes[1]!.cors!.headers));
  });

  test('the TLS-files variant: files resolved, external identity, redis store', () => {
    const t = loadManifest(fixture('valid-tls.yaml'));
    assert.deepEqual(t.gateway.tls, {
      mode: 'files',
      cert: join(FIXTURES, 'tls/edge.crt'),
      key: join(FIXTURES, 'tls/edge.key'),
    });
    assert.deepEqual(t.identity, {
      mode: 'external',
      issuer: 'https://idp.example.com',
      jwksUri: null,
      audience: 'https://api.example.com/v1',
    });
    assert.deepEqual(t.gateway.rateLimit, { store: 'redis', url: 'redis://127.0.0.1:6379', onStoreDown: 'deny' });
    assert.deepEqual(t.routes[0]!.rateLimit?.key, { kind: 'header', name: 'x-api-key' });
  });
});

describe('parseManifest', () => {
  const head = 'trustDomain: shop.local\ngateway:\n  tls: off\nidentity:\n  builtin: {}\nservices:\n';

  test('resolves relative paths from the directory of the file it is given', () => {
    const m = parseManifest(`${head}  catalog:\n    run: services/catalog.ts\n`, fixture('inline.yaml'));
    assert.equal(m.services['catalog']!.run, join(FIXTURES, 'services/catalog.ts'));
  });

  test('checkFiles: false skips the existence of files', () => {
    const text = `${head}  catalog:\n    run: nowhere.ts\n`;
    assert.deepEqual(brief(issuesOf(() => parseManifest(text, '/tmp/x/rampart.yaml'))), [
      [ISSUE.RUN_MISSING, 8, 'services.catalog.run'],
    ]);
    assert.equal(
      parseManifest(text, '/tmp/x/rampart.yaml', { checkFiles: false }).services['catalog']!.run,
      '/tmp/x/nowhere.ts',
    );
  });

  test('TLS certificate and key must exist', () => {
    const text =
      'trustDomain: shop.local\ngateway:\n  listen: { host: 0.0.0.0 }\n  tls: { cert: tls/edge.crt, key: tls/nope.key }\n' +
      'identity:\n  builtin: {}\nservices:\n  catalog:\n    run: services/catalog.ts\n';
    assert.deepEqual(brief(issuesOf(() => parseManifest(text, fixture('inline.yaml')))), [
      [ISSUE.TLS_FILE, 4, 'gateway.tls.key'],
    ]);
  });

  test('an empty file reports the missing top-level keys', () => {
    const issues = issuesOf(() => parseManifest('', '/tmp/rampart.yaml', { checkFiles: false }));
    assert.deepEqual(
      issues.map((i) => i.code),
      [ISSUE.TYPE],
    );
    const empty = issuesOf(() => parseManifest('{}', '/tmp/rampart.yaml', { checkFiles: false }));
    assert.deepEqual(
      empty.map((i) => [i.code, i.path]),
      [
        [ISSUE.REQUIRED, 'gateway'],
        [ISSUE.REQUIRED, 'identity'],
        [ISSUE.REQUIRED, 'services'],
        [ISSUE.REQUIRED, 'trustDomain'],
      ],
    );
  });
});

for (const base of ['valid.yaml', 'valid-gateway.yaml'])
  describe(`hostile edits of ${base}`, () => {
    const valid: unknown = parseYaml(readFileSync(fixture(base), 'utf8'));

    /** Every path to a value in the data. */
    const paths = (node: unknown, prefix: (string | number)[] = []): (string | number)[][] => {
      if (node === null || typeof node !== 'object') return [prefix];
      const entries = Array.isArray(node) ? node.map((v, i) => [i, v] as const) : Object.entries(node);
      return [prefix, ...entries.flatMap(([k, v]) => paths(v, [...prefix, k]))];
    };
    const all = paths(valid).filter((p) => p.length > 0);

    test('either load, or fail with positioned, specific issues; never crash', () => {
      const edit = fc.record({
        path: fc.constantFrom(...all),
        action: fc.constantFrom('delete', 'replace', 'rename'),
        value: fc.oneof(
          fc.jsonValue({ maxDepth: 2 }),
          fc.constantFrom('GET', 'get', '/x/**', '100/min per ip', 'off', 'none', 'auto', 8443, '10.0.0.0/8'),
          fc.constantFrom('*', 'https://a.example', 'http://a.example', 'null', 'Cookie', true, 0, 65, 99, 2 ** 31),
        ),
        key: fc.constantFrom('rotues', 'x', 'RAMPART_X', 'NODE_OPTIONS', 'Catalog', 'gateway', 'run', 'id', 'cors'),
      });
      fc.assert(
        fc.property(fc.array(edit, { minLength: 1, maxLength: 3 }), (edits) => {
          const data = structuredClone(valid) as Record<string, unknown>;
          for (const { path, action, value, key } of edits) {
            const parent = path
              .slice(0, -1)
              .reduce<unknown>((node, k) => (node as Record<string, unknown> | undefined)?.[k], data);
            if (parent === null || typeof parent !== 'object') continue;
            const last = path.at(-1)!;
            const p = parent as Record<string | number, unknown>;
            if (!(last in p)) continue;
            if (action === 'replace') p[last] = value;
            else if (Array.isArray(p)) p.splice(Number(last), 1);
            else {
              if (action === 'rename') p[key] = p[last];
              delete p[last];
            }
          }
          let issues: readonly ConfigIssue[] = [];
          let loaded = false;
          try {
            parseManifest(stringifyYaml(data), fixture('fuzz.yaml'));
            loaded = true;
          } catch (err) {
            assert.ok(err instanceof ConfigError, `unexpected ${String(err)}`);
            issues = err.issues;
          }
          if (loaded) {
            assert.equal(validateSchema(data), true, 'loaded a manifest the schema rejects');
            return;
          }
          assert.ok(issues.length > 0);
          for (const i of issues) {
            assert.match(i.code, /^CFG_ERR_[A-Z_]+$/);
            assert.notEqual(i.code, ISSUE.SCHEMA, `unmapped schema error: ${i.path} ${i.message}`);
            assert.ok(i.line >= 1 && i.column >= 1);
          }
        }),
        { numRuns: 400 },
      );
    });
  });
