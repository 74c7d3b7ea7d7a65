import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Counter, Gauge, Registry } from 'prom-client';
import { isRampartError } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import type { Validity } from './renewal-schedule.ts';
import { createRenewingCredential } from './renewing-credential.ts';

interface Cred extends Validity {
  serial: number;
}

const HOUR = 3_600_000;
const FAST = { retryInitialMs: 5, retryMaxMs: 10, firstSvidDeadlineMs: 200 };
const unavailable = () => apiError(CONTROL_API_ERRORS.unavailable, { reason: 'test' });
const refused = () => apiError(CONTROL_API_ERRORS.wrongIdentity, { reason: 'test' });

/** A credential source over scripted answers: each call takes the next answer (an Error is thrown). */
function setup(answers: (Cred | Error)[], now = { t: 1_000_000 }) {
  const registry = new Registry();
  const metrics = {
    expiry: new Gauge({ name: 'test_expiry', help: 'x', registers: [registry] }),
    renewals: new Counter({ name: 'test_renewals', help: 'x', labelNames: ['outcome'], registers: [registry] }),
    overdue: new Gauge({ name: 'test_overdue', help: 'x', registers: [registry] }),
  };
  const calls: string[] = [];
  const next = async (kind: string) => {
    calls.push(kind);
    const answer = answers.shift();
    if (!answer) throw new Error('no more answers');
    if (answer instanceof Error) throw answer;
    return answer;
  };
  const installed: number[] = [];
  const credential = createRenewingCredential<Cred>({
    names: { name: 'test credential', short: 'credential', first: 'the first one' },
    obtainFirst: () => next('first'),
    obtainNext: (current) => next(`next-after-${current.serial}`),
    describe: (c) => ({ serial: c.serial }),
    onInstall: (c) => installed.push(c.serial),
    metrics,
    logger: createLogger({ name: 'test', level: 'silent' }),
    timings: FAST,
    clock: () => now.t,
    random: () => 0,
  });
  const value = async (name: string, labels?: Record<string, string>) => {
    const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
    const found = metric?.values.find((v) => !labels || Object.entries(labels).every(([k, l]) => v.labels[k] === l));
    return found?.value ?? 0;
  };
  return { credential, calls, installed, value, now };
}

const cred = (serial: number, notBefore = 1_000_000): Cred => ({ serial, notBefore, notAfter: notBefore + HOUR });

describe('renewing credential', () => {
  test('start retries while the control plane is unreachable, then installs and sets the expiry', async () => {
    const { credential, calls, installed, value } = setup([unavailable(), unavailable(), cred(1)]);
    assert.throws(
      () => credential.current(),
      (err: unknown) => isRampartError(err, CONTROL_API_ERRORS.unavailable),
    );
    assert.equal(credential.peek(), null);
    const first = await credential.start();
    credential.close();
    assert.equal(first.serial, 1);
    assert.deepEqual(calls, ['first', 'first', 'first']);
    assert.deepEqual(installed, [1]);
    assert.equal(credential.current(), first);
    assert.equal(await value('test_expiry'), cred(1).notAfter / 1000);
  });

  test('start does not retry a refusal, nor an unknown error', async () => {
    for (const err of [refused(), new Error('bug')]) {
      const { credential, calls } = setup([err, cred(1)]);
      await assert.rejects(credential.start(), (e: unknown) => e === err);
      assert.deepEqual(calls, ['first']);
      credential.close();
    }
  });

  test('start gives up at the deadline', async () => {
    const now = { t: 1_000_000 };
    const { credential, calls } = setup([unavailable(), unavailable(), unavailable(), cred(1)], now);
    const started = credential.start();
    now.t += FAST.firstSvidDeadlineMs;
    await assert.rejects(started, (err: unknown) => isRampartError(err, CONTROL_API_ERRORS.unavailable));
    credential.close();
    assert.deepEqual(calls, ['first']);
  });

  test('renewal before start is refused; concurrent renewals share one attempt', async () => {
    const early = setup([cred(1)]);
    await assert.rejects(early.credential.renewNow(), (err: unknown) =>
      isRampartError(err, CONTROL_API_ERRORS.unavailable),
    );
    assert.deepEqual(early.calls, []);
    const { credential, calls } = setup([cred(1), cred(2)]);
    await credential.start();
    const [a, b] = await Promise.all([credential.renewNow(), credential.renewNow()]);
    credential.close();
    assert.equal(a, b);
    assert.equal(a.serial, 2);
    assert.deepEqual(calls, ['first', 'next-after-1']);
  });

  test('a failed renewal keeps the credential; overdue only below a quarter of the lifetime; a success clears it', async () => {
    const { credential, value, now } = setup([cred(1), unavailable(), unavailable(), cred(2, 1_000_000 + HOUR)]);
    await credential.start();
    const listened: number[] = [];
    credential.onRenewed((c) => listened.push(c.serial));
    now.t += HOUR / 2;
    await assert.rejects(credential.renewNow());
    assert.equal(credential.current().serial, 1);
    assert.equal(await value('test_overdue'), 0);
    now.t += HOUR / 4 + 1;
    await assert.rejects(credential.renewNow());
    assert.equal(await value('test_overdue'), 1);
    assert.equal(await value('test_renewals', { outcome: 'error' }), 2);
    await credential.renewNow();
    credential.close();
    assert.equal(await value('test_overdue'), 0);
    assert.equal(await value('test_renewals', { outcome: 'ok' }), 1);
    assert.deepEqual(listened, [2]);
  });

  test('replace puts a credential in place for the listeners without counting a renewal', async () => {
    const { credential, installed, value } = setup([cred(1)]);
    await credential.start();
    const listened: number[] = [];
    credential.onRenewed((c) => listened.push(c.serial));
    credential.onRenewed(() => {
      throw new Error('a listener that throws does not stop the others');
    });
    credential.onRenewed((c) => listened.push(c.serial * 10));
    credential.replace(cred(7));
    credential.close();
    assert.equal(credential.current().serial, 7);
    assert.deepEqual(installed, [1, 7]);
    assert.deepEqual(listened, [7, 70]);
    assert.equal(await value('test_renewals', { outcome: 'ok' }), 0);
  });

  test('close stops the retries of start', async () => {
    const { credential, calls } = setup([unavailable(), unavailable(), unavailable(), cred(1)]);
    const started = credential.start();
    credential.close();
    assert.equal(credential.closed, true);
    await assert.rejects(started);
    assert.deepEqual(calls, ['first']);
  });
});
