import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isRampartError } from '../../core/errors.ts';
import type { CaStatus, RotationResult } from '../ca/index.ts';
import type { TestCa } from '../ca/testing.ts';
import { type ControlTarget, controlRequest } from './client.ts';
import { CONTROL_API_ERRORS } from './errors.ts';
import { createOperatorRoutes } from './operator-routes.ts';
import { rawJsonRequest, startTestControlPlane, type TestControlPlane } from './testing.ts';

const OPERATOR = 'o'.repeat(43);
const LAUNCHER = 'l'.repeat(43);

/** A request the CLI would never send. Trusts the bundle only. */
const raw = rawJsonRequest;

describe('operator routes', () => {
  let plane: TestControlPlane;
  let ca: TestCa;
  let target: ControlTarget;
  const rotated: RotationResult[] = [];

  before(async () => {
    plane = await startTestControlPlane({
      launcherCredential: LAUNCHER,
      routes: ({ testCa, refreshTls }) => [
        createOperatorRoutes({
          ca: testCa.ca,
          credential: OPERATOR,
          onRotated: (result) => {
            rotated.push(result);
            refreshTls();
          },
        }),
      ],
    });
    ({ testCa: ca, target } = plane);
  });
  after(async () => {
    await plane.close();
  });

  const generations = () =>
    ca.ca
      .status()
      .authorities.map((a) => `${a.generation}:${a.state}`)
      .join(',');

  test('status with the operator credential is the CA status', async () => {
    const status = await controlRequest<CaStatus>(target, {
      method: 'POST',
      path: '/v1/ca/status',
      bearer: OPERATOR,
      body: {},
    });
    assert.deepEqual({ ...status, now: 0 }, { ...ca.ca.status(status.now), now: 0 });
    assert.equal(status.trustDomain, 'shop.local');
  });

  test('hostile bodies, methods and paths are refused with a code, and rotate nothing', async () => {
    const before = { generations: generations(), sequence: ca.ca.bundle().sequence };
    const auth = { authorization: `Bearer ${OPERATOR}` };
    const rows: [string, string, string | Buffer | undefined, Record<string, string>, number, string][] = [
      // Credentials: one table for every operator route in operator-access.test.ts.
      ['POST', '/v1/ca/rotate', 'not json', auth, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/rotate', '[]', auth, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/rotate', 'null', auth, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/rotate', '"immediate"', auth, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/rotate', '{"immediate":"true"}', auth, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/rotate', '{"immediate":1}', auth, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/rotate', '{"immediate":null}', auth, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/rotate', '{"immediat":true}', auth, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/rotate', '{"__proto__":{"immediate":true}}', auth, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/status', '{"generation":1}', auth, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/rotate', '{}', { ...auth, 'content-type': 'text/plain' }, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/ca/rotate', Buffer.alloc(2048, 0x20), auth, 413, CONTROL_API_ERRORS.tooLarge],
      ['GET', '/v1/ca/status', undefined, auth, 404, CONTROL_API_ERRORS.notFound],
      ['GET', '/v1/ca/rotate', undefined, auth, 404, CONTROL_API_ERRORS.notFound],
      ['POST', '/v1/ca/rotate?immediate=true', '{}', auth, 404, CONTROL_API_ERRORS.notFound],
      ['POST', '/v1/ca/rotate/', '{}', auth, 404, CONTROL_API_ERRORS.notFound],
      ['POST', '/v1/CA/rotate', '{}', auth, 404, CONTROL_API_ERRORS.notFound],
    ];
    for (const [method, path, body, headers, status, code] of rows) {
      const res = await raw(target, method, path, body, headers);
      const label = `${method} ${path} ${JSON.stringify(headers)} ${String(body).slice(0, 40)}`;
      assert.equal(res.status, status, label);
      assert.equal(res.body.error, code, label);
      assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id'], label);
    }
    assert.deepEqual({ generations: generations(), sequence: ca.ca.bundle().sequence }, before, 'nothing rotated');
    assert.equal(rotated.length, 0);
  });

  test('rotate publishes a successor; immediate activates it; the control plane is told', async () => {
    const sequence = ca.ca.bundle().sequence;
    const scheduled = await controlRequest<RotationResult>(target, {
      method: 'POST',
      path: '/v1/ca/rotate',
      bearer: OPERATOR,
      body: {},
    });
    assert.equal(scheduled.publishedSequence, sequence + 1);
    assert.equal(ca.ca.bundle().sequence, sequence + 1);
    assert.deepEqual(rotated, [scheduled]);
    // No SVID holder lacks the bundle, so a forced rotation may activate at once; either way it is forced.
    const prepared = ca.ca.status().authorities.find((a) => a.generation === scheduled.generation);
    assert.ok(prepared?.forced);

    const immediate = await controlRequest<RotationResult>(target, {
      method: 'POST',
      path: '/v1/ca/rotate',
      bearer: OPERATOR,
      body: { immediate: true },
    });
    assert.equal(immediate.activated, true);
    assert.equal(ca.ca.status().authorities.find((a) => a.state === 'active')?.generation, immediate.generation);
    assert.equal(rotated.length, 2);
  });

  test('an empty body is an empty request; a wrong credential through the typed client is CA_ERR_API_UNAUTHORIZED', async () => {
    const res = await raw(target, 'POST', '/v1/ca/status', undefined, {
      authorization: `Bearer ${OPERATOR}`,
      'content-type': 'application/json',
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.trustDomain, 'shop.local');
    await assert.rejects(
      controlRequest(target, { method: 'POST', path: '/v1/ca/rotate', bearer: LAUNCHER, body: {} }),
      (err) => isRampartError(err, CONTROL_API_ERRORS.unauthorized),
    );
  });
});
