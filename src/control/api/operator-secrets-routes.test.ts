import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, beforeEach, describe, test } from 'node:test';
import { createLogger } from '../../core/logger.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { compileSecretsAcl } from '../secrets/acl.ts';
import { SECRETS_API_DEFAULTS } from '../secrets/defaults.ts';
import { openSecretsService, type SecretsService } from '../secrets/service.ts';
import { openSqliteSecretsStore } from '../secrets/sqlite-store.ts';
import type { ControlTarget } from './client.ts';
import { CONTROL_API_ERRORS } from './errors.ts';
import {
  createOperatorSecretsRoutes,
  OPERATOR_SECRETS_ROUTES,
  operatorSecretsPath,
} from './operator-secrets-routes.ts';
import { TestAuditSink } from './secrets-testing.ts';
import { type ApiRefusal, type ControlApi, createControlApi } from './server.ts';
import { createServerCertificate, type ServerCertificate } from './server-certificate.ts';

const OPERATOR = 'o'.repeat(43);
const ACTOR = { subject: 'alice' };
const path = (route: keyof typeof OPERATOR_SECRETS_ROUTES) => operatorSecretsPath(OPERATOR_SECRETS_ROUTES[route]);
const b64 = (text: string) => Buffer.from(text).toString('base64');

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown> & { error?: string };
}

/** A request as any client could send it (the operator CLI sends only well-formed ones). Trusts the bundle. */
function send(target: ControlTarget, route: string, body: string | undefined, bearer: string | null): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (bearer !== null) headers['authorization'] = `Bearer ${bearer}`;
    const req = request(new URL(route, target.url), {
      method: 'POST',
      headers,
      ca: target.bundle,
      agent: false,
      checkServerIdentity: () => undefined,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) : {} });
      });
    });
    req.end(body);
  });
}

describe('operator secrets routes', () => {
  let ca: TestCa;
  let cert: ServerCertificate;
  let api: ControlApi;
  let target: ControlTarget;
  let secrets: SecretsService;
  const audit = new TestAuditSink();
  const refusals: ApiRefusal[] = [];
  const call = (route: keyof typeof OPERATOR_SECRETS_ROUTES, body: unknown, bearer: string | null = OPERATOR) =>
    send(target, path(route), body === undefined ? undefined : JSON.stringify(body), bearer);

  before(async () => {
    ca = await openTestCa();
    const logger = createLogger({ name: 'control', level: 'silent' });
    secrets = await openSecretsService({
      store: openSqliteSecretsStore({ path: ':memory:' }),
      kek: ca.kek,
      audit,
      acl: compileSecretsAcl({ trustDomain: 'shop.local', services: {}, secrets: {} }),
      auditTimeoutMs: 1_000,
    });
    let apiRef: ControlApi | null = null;
    cert = await createServerCertificate({ ca: ca.ca, logger, onRenewed: () => apiRef?.refreshTls() });
    api = createControlApi({
      ca: ca.ca,
      launcherCredential: 'l'.repeat(43),
      credentials: () => cert.current(),
      logger,
      onRefusal: (refusal) => refusals.push(refusal),
      routes: [createOperatorSecretsRoutes({ secrets, credential: OPERATOR, actor: ACTOR })],
    });
    apiRef = api;
    target = { url: `https://127.0.0.1:${await api.listen(0)}`, bundle: ca.ca.bundle().pem, trustDomain: 'shop.local' };
  });
  after(async () => {
    cert.close();
    await api.close();
    await secrets.close();
    ca.cleanup();
  });
  beforeEach(() => {
    audit.fail = false;
  });

  test('set, reveal, rotate, promote, rollback, history, list: each audited with the operator as actor', async () => {
    let r = await call('set', { name: 'db-password', value: b64('first'), rotationIntervalMs: 86_400_000 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['version'], 1);
    r = await call('set', { name: 'db-password', value: b64('second'), stage: true });
    assert.deepEqual(r.body['labels'], { current: 1, previous: null, pending: 2 });
    r = await call('reveal', { name: 'db-password', label: 'pending' });
    assert.equal(r.status, 200);
    assert.equal(Buffer.from(String(r.body['value']), 'base64').toString(), 'second');
    assert.equal(r.headers['cache-control'], 'no-store');
    r = await call('promote', { name: 'db-password' });
    assert.deepEqual(r.body, { current: 2, previous: 1, pending: null });
    r = await call('rollback', { name: 'db-password' });
    assert.deepEqual(r.body, { current: 1, previous: 2, pending: null });
    r = await call('reveal', { name: 'db-password', version: 2 });
    assert.equal(Buffer.from(String(r.body['value']), 'base64').toString(), 'second');
    r = await call('history', { name: 'db-password' });
    assert.equal((r.body['versions'] as unknown[]).length, 2);
    assert.equal((r.body['secret'] as { createdBy: string }).createdBy, 'user:alice');
    r = await call('list', {});
    assert.equal(r.status, 200);
    assert.deepEqual(
      (r.body as unknown as { name: string }[]).map((s) => s.name),
      ['db-password'],
    );
    assert.equal((await call('list', undefined)).status, 200, 'list takes an empty body too');

    const actions = audit.events.map((e) => `${e.action}:${e.decision}`);
    for (const expected of [
      'secret.write:allow',
      'secret.reveal:allow',
      'secret.promote:allow',
      'secret.rollback:allow',
      'secret.history:allow',
      'secret.list:allow',
    ]) {
      assert.ok(actions.includes(expected), expected);
    }
    assert.ok(audit.events.every((e) => e.actor?.subject === 'alice'));
    const logged = JSON.stringify(audit.events);
    for (const plaintext of ['first', 'second', b64('first'), b64('second'), 'db-password']) {
      assert.ok(!logged.includes(plaintext), `${plaintext} is not in the events`);
    }
  });

  // A missing or wrong credential: one table for every operator route in operator-access.test.ts.

  const hostile: ReadonlyArray<
    readonly [string, keyof typeof OPERATOR_SECRETS_ROUTES, string | undefined, number, string]
  > = [
    ['no body', 'set', undefined, 400, CONTROL_API_ERRORS.badRequest],
    ['not JSON', 'set', '{"name":', 400, CONTROL_API_ERRORS.badRequest],
    ['an array', 'set', '[]', 400, CONTROL_API_ERRORS.badRequest],
    ['a string', 'promote', '"db-password"', 400, CONTROL_API_ERRORS.badRequest],
    [
      'an unknown field',
      'set',
      JSON.stringify({ name: 'a', value: b64('v'), stag: true }),
      400,
      CONTROL_API_ERRORS.badRequest,
    ],
    ['__proto__ field', 'promote', '{"name":"a","__proto__":{"x":1}}', 400, CONTROL_API_ERRORS.badRequest],
    ['no name', 'promote', '{}', 400, CONTROL_API_ERRORS.badRequest],
    ['a number as name', 'history', '{"name":7}', 400, CONTROL_API_ERRORS.badRequest],
    ['an empty name', 'history', '{"name":""}', 400, CONTROL_API_ERRORS.badRequest],
    ['an over-long name', 'history', JSON.stringify({ name: 'a'.repeat(65) }), 400, CONTROL_API_ERRORS.badRequest],
    ['a path as name', 'history', '{"name":"../secrets"}', 400, 'SEC_ERR_NAME'],
    ['a name with NUL', 'history', JSON.stringify({ name: 'a\u0000b' }), 400, 'SEC_ERR_NAME'],
    ['upper case name', 'set', JSON.stringify({ name: 'DB', value: b64('v') }), 400, 'SEC_ERR_NAME'],
    ['no value', 'set', '{"name":"a"}', 400, CONTROL_API_ERRORS.badRequest],
    ['a number as value', 'set', '{"name":"a","value":12}', 400, CONTROL_API_ERRORS.badRequest],
    ['an empty value', 'set', '{"name":"a","value":""}', 400, CONTROL_API_ERRORS.badRequest],
    ['base64url value', 'set', '{"name":"a","value":"-_-_"}', 400, CONTROL_API_ERRORS.badRequest],
    ['unpadded base64', 'set', '{"name":"a","value":"dmFsdWU"}', 400, CONTROL_API_ERRORS.badRequest],
    ['base64 with a newline', 'set', '{"name":"a","value":"dmFs\\ndWU="}', 400, CONTROL_API_ERRORS.badRequest],
    [
      'a value over the limit',
      'set',
      JSON.stringify({ name: 'a', value: Buffer.alloc(64 * 1024 + 3).toString('base64') }),
      400,
      CONTROL_API_ERRORS.badRequest,
    ],
    [
      'stage as a string',
      'set',
      JSON.stringify({ name: 'a', value: b64('v'), stage: 'true' }),
      400,
      CONTROL_API_ERRORS.badRequest,
    ],
    [
      'a fractional interval',
      'set',
      JSON.stringify({ name: 'a', value: b64('v'), rotationIntervalMs: 1.5 }),
      400,
      CONTROL_API_ERRORS.badRequest,
    ],
    [
      'an interval as a string',
      'set',
      JSON.stringify({ name: 'a', value: b64('v'), rotationIntervalMs: '90d' }),
      400,
      CONTROL_API_ERRORS.badRequest,
    ],
    ['label and version', 'reveal', '{"name":"a","label":"current","version":1}', 400, CONTROL_API_ERRORS.badRequest],
    ['an unknown label', 'reveal', '{"name":"a","label":"latest"}', 400, 'SEC_ERR_SELECTOR'],
    ['version 0', 'reveal', '{"name":"a","version":0}', 400, 'SEC_ERR_SELECTOR'],
    ['a version as a string', 'reveal', '{"name":"a","version":"1"}', 400, CONTROL_API_ERRORS.badRequest],
    ['a huge version', 'reveal', '{"name":"a","version":1e300}', 400, 'SEC_ERR_SELECTOR'],
    ['list with a field', 'list', '{"all":true}', 400, CONTROL_API_ERRORS.badRequest],
    ['an unknown secret', 'promote', '{"name":"missing"}', 404, 'SEC_ERR_NOT_FOUND'],
  ];
  for (const [label, route, body, status, code] of hostile) {
    test(`hostile body: ${label} → ${status} ${code}, nothing written`, async () => {
      const before = await secrets.list(ACTOR);
      const r = await send(target, path(route), body, OPERATOR);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.error, code);
      assert.deepEqual(Object.keys(r.body).sort(), ['error', 'error_id']);
      const after = await secrets.list(ACTOR);
      assert.deepEqual(
        after.map((s) => [s.name, s.latestVersion]),
        before.map((s) => [s.name, s.latestVersion]),
      );
    });
  }

  test('a body over the route limit is 413 before it is read', async () => {
    const body = JSON.stringify({ name: 'a', value: 'A'.repeat(SECRETS_API_DEFAULTS.maxOperatorBodyBytes) });
    const r = await send(target, path('set'), body, OPERATOR);
    assert.equal(r.status, 413);
    assert.equal(
      (await send(target, path('promote'), JSON.stringify({ name: 'a'.repeat(2000) }), OPERATOR)).status,
      413,
    );
  });

  test('the audit log down: a set is refused and not written, a reveal returns no value (503)', async () => {
    await call('set', { name: 'api-key', value: b64('kept') });
    audit.fail = true;
    let r = await call('set', { name: 'api-key', value: b64('lost') });
    assert.equal(r.status, 503);
    assert.equal(r.body.error, 'SEC_ERR_AUDIT_UNAVAILABLE');
    r = await call('reveal', { name: 'api-key' });
    assert.equal(r.status, 503);
    assert.equal(r.body.error, 'SEC_ERR_AUDIT_UNAVAILABLE');
    assert.equal(r.body['value'], undefined);
    audit.fail = false;
    r = await call('reveal', { name: 'api-key' });
    assert.equal(Buffer.from(String(r.body['value']), 'base64').toString(), 'kept');
  });
});
