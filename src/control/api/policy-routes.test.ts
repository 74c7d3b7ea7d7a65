import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../core/logger.ts';
import { Registry } from '../../core/metrics.ts';
import { createPolicySource } from '../../sdk/policy-source.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { callersDigest } from '../policy/digest.ts';
import { PolicyStore, type ServicePolicy } from '../policy/policy-store.ts';
import { POLICY_STATE_FILE } from '../policy/state-file.ts';
import type { PolicyRequest } from '../policy/wire.ts';
import { type ControlTarget, controlRequest } from './client.ts';
import { policyRoutes } from './policy-routes.ts';
import {
  issueTestSvid,
  type RawAnswer,
  rawRequest,
  startTestControlPlane,
  type TestControlPlane,
  type TestCredentials,
} from './testing.ts';

const TD = 'spiffe://shop.local/svc';
const POLICIES: Record<string, ServicePolicy['callers']> = {
  payments: { [`${TD}/orders`]: [{ methods: ['POST'], paths: ['/charges'] }] },
  catalog: {
    [`${TD}/gateway`]: [{ methods: ['GET'], paths: ['/catalog/products'] }],
    [`${TD}/orders`]: [{ methods: ['GET'], paths: ['/catalog/products/*'] }],
  },
};

const BAD = 'CA_ERR_API_BAD_REQUEST';
/** What payments sends while it holds the launcher's snapshot. */
const GOOD_HELD: Record<string, unknown> = {
  epoch: null,
  version: 0,
  digest: callersDigest({ [`${TD}/orders`]: [{ methods: ['POST'], paths: ['/charges'] }] }),
};
const GOOD = JSON.stringify(GOOD_HELD);
/** GOOD with `changes` (a field set to undefined is left out). */
const held = (changes: Record<string, unknown>) => JSON.stringify({ ...GOOD_HELD, ...changes });

/** A raw request the SDK would never send; trusts the bundle, presents `credentials` if given. */
function send(
  target: ControlTarget,
  credentials: TestCredentials | null,
  body: string | Buffer | undefined,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<RawAnswer> {
  return rawRequest(target, { path: '/v1/policy', body, credentials, headers });
}

describe('control plane: POST /v1/policy', () => {
  let plane: TestControlPlane;
  let other: TestCa;
  let target: ControlTarget;
  /** What the fake store answers: null before any manifest loaded. */
  let version: number | null = 3;
  const EPOCH = 'EEEEEEEEEEEEEEEEEEEEEE';
  const OTHER_EPOCH = 'ffffffffffffffffffffff';
  const digestOf = (name: string) => callersDigest(POLICIES[name] ?? {});
  const asked: string[] = [];
  const creds: Record<string, TestCredentials> = {};

  before(async () => {
    other = await openTestCa({ trustDomain: 'other.local' });
    const policy = {
      policyOf(service: string): ServicePolicy | null {
        asked.push(service);
        if (version === null) return null;
        const callers = Object.hasOwn(POLICIES, service) ? (POLICIES[service] ?? {}) : {};
        return { epoch: EPOCH, version, digest: callersDigest(callers), callers };
      },
    };
    plane = await startTestControlPlane({ routes: () => [policyRoutes({ policy, trustDomain: 'shop.local' })] });
    ({ target } = plane);
    for (const name of ['payments', 'catalog', 'orders', 'gateway', 'control', 'identity']) {
      creds[name] = await issueTestSvid(plane.testCa, name);
    }
  });
  after(async () => {
    await plane.close();
    other.cleanup();
  });

  /** What a service holding the launcher's snapshot of `name`'s policy sends. */
  const snapshot = (name: string): PolicyRequest => ({ epoch: null, version: 0, digest: digestOf(name) });
  const ask = (name: string, held: PolicyRequest = snapshot(name)) =>
    controlRequest<Record<string, unknown>>(target, {
      method: 'POST',
      path: '/v1/policy',
      body: held,
      ...creds[name],
    });
  const served = (name: string) => ({ epoch: EPOCH, version: 3, digest: digestOf(name) });

  test('each service gets its own inbound policy, chosen by its certificate, and never another one', async () => {
    assert.deepEqual(await ask('payments'), { ...served('payments'), callers: POLICIES['payments'] });
    assert.deepEqual(await ask('catalog'), { ...served('catalog'), callers: POLICIES['catalog'] });
    // orders has no inbound rules: an empty policy (deny everyone), not someone else's.
    assert.deepEqual(await ask('orders', { epoch: EPOCH, version: 2, digest: digestOf('payments') }), {
      epoch: EPOCH,
      version: 3,
      digest: callersDigest({}),
      callers: {},
    });
  });

  test('no rules only for a caller that holds exactly what is served: same epoch, version and digest', async () => {
    const exact = served('payments');
    assert.deepEqual(await ask('payments', exact), exact);
    const differs: [string, PolicyRequest][] = [
      ['the launcher snapshot (no epoch)', { ...exact, epoch: null }],
      ['the launcher snapshot at version 3', { epoch: null, version: 3, digest: exact.digest }],
      ['another epoch (a lost history)', { ...exact, epoch: OTHER_EPOCH }],
      ['another digest', { ...exact, digest: digestOf('catalog') }],
      ['an older version', { ...exact, version: 2 }],
      ['a newer version', { ...exact, version: 9 }],
    ];
    for (const [what, held] of differs) {
      assert.deepEqual(await ask('payments', held), { ...exact, callers: POLICIES['payments'] }, what);
    }
  });

  test('components and identities that are not services are refused 403', async () => {
    for (const name of ['gateway', 'control', 'identity']) {
      await assert.rejects(ask(name), { code: 'POLICY_ERR_FORBIDDEN', status: 403 }, name);
    }
  });

  test('no policy loaded yet: 503 POLICY_ERR_UNAVAILABLE', async () => {
    version = null;
    try {
      await assert.rejects(ask('payments'), { code: 'POLICY_ERR_UNAVAILABLE', status: 503 });
    } finally {
      version = 3;
    }
  });

  test('no client certificate, or one of another trust domain, is 401 before the body is parsed', async () => {
    const before = asked.length;
    for (const body of [GOOD, 'not json at all', '[]']) {
      const res = await send(target, null, body);
      assert.equal(res.status, 401, body);
      assert.equal(res.body['error'], 'CA_ERR_API_NO_CLIENT_CERTIFICATE');
      assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id']);
    }
    const foreign = await issueTestSvid(other, 'payments');
    const res = await send(target, foreign, GOOD);
    assert.equal(res.status, 401);
    assert.equal(res.body['error'], 'CA_ERR_API_NO_CLIENT_CERTIFICATE');
    assert.equal(asked.length, before, 'the store was never asked');
  });

  const hostile: {
    what: string;
    body?: string | Buffer;
    headers?: Record<string, string>;
    status: number;
    code: string;
    /** The field the refusal's (internal) detail names. */
    field?: string;
  }[] = [
    { what: 'no body', status: 400, code: BAD },
    { what: 'not JSON', body: '{"epoch":', status: 400, code: BAD },
    { what: 'an array', body: `[${GOOD}]`, status: 400, code: BAD },
    { what: 'null', body: 'null', status: 400, code: BAD },
    { what: 'a number', body: '0', status: 400, code: BAD },
    { what: 'an empty object', body: '{}', status: 400, code: BAD },
    { what: 'the old knownVersion alone', body: '{"knownVersion":0}', status: 400, code: BAD },
    { what: 'knownVersion beside the fields', body: held({ knownVersion: 3 }), status: 400, code: BAD },
    // The epoch.
    { what: 'no epoch', body: held({ epoch: undefined }), status: 400, code: BAD, field: 'epoch' },
    { what: 'a number epoch', body: held({ epoch: 1 }), status: 400, code: BAD, field: 'epoch' },
    { what: 'an empty epoch', body: held({ epoch: '' }), status: 400, code: BAD, field: 'epoch' },
    { what: 'a short epoch', body: held({ epoch: 'E'.repeat(21) }), status: 400, code: BAD, field: 'epoch' },
    { what: 'a long epoch', body: held({ epoch: 'E'.repeat(23) }), status: 400, code: BAD, field: 'epoch' },
    {
      what: 'an epoch with padding',
      body: held({ epoch: `${'E'.repeat(20)}==` }),
      status: 400,
      code: BAD,
      field: 'epoch',
    },
    {
      what: 'an epoch with a slash',
      body: held({ epoch: `${'E'.repeat(21)}/` }),
      status: 400,
      code: BAD,
      field: 'epoch',
    },
    {
      what: 'an epoch with a newline',
      body: held({ epoch: `${'E'.repeat(21)}\n` }),
      status: 400,
      code: BAD,
      field: 'epoch',
    },
    { what: 'an epoch object', body: held({ epoch: { toString: 'E' } }), status: 400, code: BAD, field: 'epoch' },
    { what: 'an epoch array', body: held({ epoch: ['E'.repeat(22)] }), status: 400, code: BAD, field: 'epoch' },
    // The version.
    { what: 'no version', body: held({ version: undefined }), status: 400, code: BAD, field: 'version' },
    { what: 'a string version', body: held({ version: '3' }), status: 400, code: BAD, field: 'version' },
    { what: 'a negative version', body: held({ version: -1 }), status: 400, code: BAD, field: 'version' },
    { what: 'a fraction', body: held({ version: 1.5 }), status: 400, code: BAD, field: 'version' },
    {
      what: 'beyond 2^53',
      body: GOOD.replace('"version":0', '"version":9007199254740993'),
      status: 400,
      code: BAD,
      field: 'version',
    },
    { what: '1e400', body: GOOD.replace('"version":0', '"version":1e400'), status: 400, code: BAD, field: 'version' },
    { what: 'null version', body: held({ version: null }), status: 400, code: BAD, field: 'version' },
    { what: 'an object version', body: held({ version: { valueOf: 3 } }), status: 400, code: BAD, field: 'version' },
    // The digest.
    { what: 'no digest', body: held({ digest: undefined }), status: 400, code: BAD, field: 'digest' },
    { what: 'a null digest', body: held({ digest: null }), status: 400, code: BAD, field: 'digest' },
    { what: 'an uppercase digest', body: held({ digest: 'A'.repeat(64) }), status: 400, code: BAD, field: 'digest' },
    { what: 'a short digest', body: held({ digest: 'a'.repeat(63) }), status: 400, code: BAD, field: 'digest' },
    { what: 'a long digest', body: held({ digest: 'a'.repeat(65) }), status: 400, code: BAD, field: 'digest' },
    {
      what: 'a digest with a newline',
      body: held({ digest: `${'a'.repeat(64)}\n` }),
      status: 400,
      code: BAD,
      field: 'digest',
    },
    { what: 'a number digest', body: held({ digest: 1 }), status: 400, code: BAD, field: 'digest' },
    // Fields that could look like they select a service.
    { what: 'a service field naming another service', body: held({ service: 'catalog' }), status: 400, code: BAD },
    { what: 'a spiffeId field', body: held({ spiffeId: `${TD}/catalog` }), status: 400, code: BAD },
    {
      what: '__proto__ field',
      body: GOOD.replace('{', '{"__proto__":{"service":"catalog"},'),
      status: 400,
      code: BAD,
    },
    {
      what: 'a duplicate key (the last one wins in JSON.parse; still only the three fields)',
      body: GOOD.replace('{', '{"version":"x",'),
      status: 200,
      code: '',
    },
    {
      what: 'a body over the limit',
      body: held({ epoch: 'E'.repeat(2_000) }),
      status: 413,
      code: 'CA_ERR_API_TOO_LARGE',
    },
    { what: 'text/plain', body: GOOD, headers: { 'content-type': 'text/plain' }, status: 400, code: BAD },
    { what: 'no content type', body: GOOD, headers: {}, status: 400, code: BAD },
  ];
  for (const c of hostile) {
    test(`hostile body: ${c.what} → ${c.status}`, async () => {
      const res = await send(target, creds['payments'] ?? null, c.body, c.headers);
      assert.equal(res.status, c.status);
      if (c.status === 200) assert.deepEqual(res.body, { ...served('payments'), callers: POLICIES['payments'] });
      else {
        assert.equal(res.body['error'], c.code);
        assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id']);
        if (c.field) assert.equal(plane.refusals.at(-1)?.detail?.['field'], c.field);
      }
    });
  }

  test('GET is not a route', async () => {
    await assert.rejects(controlRequest(target, { method: 'GET', path: '/v1/policy', ...creds['payments'] }), {
      code: 'CA_ERR_API_NOT_FOUND',
    });
  });
});

/** A manifest in which orders may POST to `charges` on payments. */
function shopManifest(charges: string[]): string {
  return [
    'version: 1',
    'trustDomain: shop.local',
    'gateway:',
    '  listen: { host: 127.0.0.1, port: 8080 }',
    '  tls: off',
    'identity:',
    '  builtin: { port: 8444 }',
    '  audience: https://api.shop.local',
    'services:',
    '  orders:',
    '    run: orders.ts',
    '    calls:',
    `      - { service: payments, methods: [POST], paths: [${charges.join(', ')}] }`,
    '  payments:',
    '    run: payments.ts',
    '',
  ].join('\n');
}

const NARROW = ['/charges'];
const WIDE = ['/charges', '/refunds'];

describe('a control plane whose policy history restarted: services take its policy', () => {
  let plane: TestControlPlane;
  /** The control plane's store of the moment: each case replaces it as a restart would. */
  let store: PolicyStore | null = null;
  let payments: TestCredentials;

  before(async () => {
    const policy = { policyOf: (service: string) => store?.policyOf(service) ?? null };
    plane = await startTestControlPlane({ routes: () => [policyRoutes({ policy, trustDomain: 'shop.local' })] });
    payments = await issueTestSvid(plane.testCa, 'payments');
  });
  after(async () => {
    await plane.close();
  });

  /** A project directory; `start` opens a control plane's store on it (closing the previous one). */
  function project(t: { after: (fn: () => void) => void }) {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-policy-epoch-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    for (const file of ['orders.ts', 'payments.ts']) writeFileSync(join(dir, file), '');
    const manifestFile = join(dir, 'rampart.yaml');
    return {
      stateFile: join(dir, POLICY_STATE_FILE),
      write: (charges: string[]) => writeFileSync(manifestFile, shopManifest(charges)),
      start: () => {
        store = new PolicyStore({
          manifestFile,
          dataDir: dir,
          trustDomain: 'shop.local',
          logger: createLogger({ name: 'control', level: 'silent' }),
          registry: new Registry(),
        });
        return store;
      },
    };
  }

  /** payments' policy source, started from a launcher snapshot that grants refunds. */
  function paymentsSource() {
    const registry = new Registry();
    const source = createPolicySource({
      initial: { version: 0, callers: { [`${TD}/orders`]: [{ methods: ['POST'], paths: WIDE }] } },
      control: { url: plane.target.url, trustDomain: 'shop.local' },
      svid: () => ({
        spiffeId: `${TD}/payments`,
        keyPem: payments.key,
        certificatePem: payments.cert,
        notBefore: 0,
        notAfter: Number.MAX_SAFE_INTEGER,
        bundlePem: plane.target.bundle,
        bundleSequence: 1,
      }),
      logger: createLogger({ name: 'payments', level: 'silent' }),
      registry,
    });
    const refunds = () => source.decide(`${TD}/orders`, 'POST', '/refunds');
    const restarts = async () => {
      const line = (await registry.metrics())
        .split('\n')
        .find((l) => l.startsWith('rampart_service_policy_epoch_changes_total{history="restarted"} '));
      assert.ok(line);
      return Number(line.split(' ')[1]);
    };
    return { source, refunds, restarts };
  }

  const cases: {
    what: string;
    /** Runs the control plane until the service holds WIDE (`sync` refreshes it once). */
    history: (p: ReturnType<typeof project>, sync: () => Promise<void>) => Promise<void>;
    /** What happens to policy.json and the manifest while the control plane is down. */
    meanwhile: (p: ReturnType<typeof project>) => void;
    /** The version the new run serves. */
    version: number;
  }[] = [
    {
      what: 'policy.json lost, versions start again below the one held',
      history: async (p, sync) => {
        p.write(NARROW);
        p.start();
        p.write(['/charges', '/disputes']);
        store?.reload();
        p.write(WIDE);
        store?.reload();
        await sync();
      },
      meanwhile: (p) => {
        rmSync(p.stateFile);
        p.write(NARROW);
      },
      version: 1,
    },
    {
      what: 'policy.json lost, versions start again at the very version held',
      history: async (p, sync) => {
        p.write(WIDE);
        p.start();
        await sync();
      },
      meanwhile: (p) => {
        rmSync(p.stateFile);
        p.write(NARROW);
      },
      version: 1,
    },
    {
      what: 'policy.json restored from a backup older than the version held',
      history: async (p, sync) => {
        p.write(NARROW);
        p.start();
        copyFileSync(p.stateFile, `${p.stateFile}.backup`);
        p.write(WIDE);
        store?.reload();
        await sync();
      },
      meanwhile: (p) => {
        copyFileSync(`${p.stateFile}.backup`, p.stateFile);
        p.write(NARROW);
      },
      version: 1,
    },
  ];
  for (const c of cases) {
    test(`${c.what}: the revoked grant is refused after one refresh`, async (t) => {
      const p = project(t);
      const { source, refunds, restarts } = paymentsSource();
      await c.history(p, async () => {
        assert.equal(await source.refresh(), 'updated');
      });
      const held = source.version();
      const oldEpoch = source.epoch();
      assert.equal(oldEpoch, store?.epoch);
      assert.equal(refunds().allowed, true, 'granted before');
      assert.equal(await source.refresh(), 'unchanged');
      c.meanwhile(p);
      const restarted = p.start();
      assert.equal(restarted.current?.version, c.version);
      assert.ok(c.version <= held, 'the version does not move forward');

      assert.equal(await source.refresh(), 'updated');
      assert.deepEqual(refunds(), { allowed: false, reason: 'no_rule' }, 'the revoked grant is denied');
      assert.equal(source.decide(`${TD}/orders`, 'POST', '/charges').allowed, true);
      assert.equal(source.version(), c.version);
      assert.equal(source.epoch(), restarted.epoch);
      assert.notEqual(source.epoch(), oldEpoch);
      assert.equal(await restarts(), 1);
      assert.equal(await source.refresh(), 'unchanged', 'then it holds exactly what is served');
    });
  }

  test('an ordinary restart (policy.json intact) changes the epoch and no decision; no restart is counted', async (t) => {
    const p = project(t);
    const { source, refunds, restarts } = paymentsSource();
    p.write(WIDE);
    const first = p.start();
    assert.equal(await source.refresh(), 'updated');
    const second = p.start();
    assert.notEqual(second.epoch, first.epoch);
    assert.equal(await source.refresh(), 'updated');
    assert.equal(source.epoch(), second.epoch);
    assert.equal(source.version(), 1);
    assert.equal(refunds().allowed, true);
    assert.equal(await restarts(), 0);
  });
});
