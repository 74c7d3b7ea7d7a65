import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../core/logger.ts';
import { CA_WARNINGS } from '../ca/index.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { createServerCertificate, type ServerCertificate } from './server-certificate.ts';

const logger = createLogger({ name: 'test', level: 'silent' });

describe('the control plane as the holder of its own SVIDs', () => {
  let t: TestCa;
  let cert: ServerCertificate;
  before(async () => {
    t = await openTestCa();
    cert = await createServerCertificate({ ca: t.ca, logger, onRenewed: () => {} });
    // A direct re-issue leaves the first certificate live and not superseded: both must be acknowledged.
    await cert.renew();
  });
  after(() => {
    cert.close();
    t.cleanup();
  });

  const behind = () =>
    t.ca.status().warnings.find((w) => w.code === CA_WARNINGS.bundleNotDistributed)?.detail.holdersBehind ?? 0;
  const active = () => t.ca.status().authorities.find((a) => a.state === 'active')?.generation;

  test('a forced rotation waits for it until it acknowledges, then activates early', async () => {
    const rotation = await t.ca.rotateNow();
    await t.ca.tick();
    assert.equal(behind(), 2, 'both of its certificates are behind the new bundle');
    assert.notEqual(active(), rotation.generation, 'not activated while a holder is behind');

    cert.acknowledge(t.ca.bundle().sequence);
    assert.equal(behind(), 0);
    await t.ca.tick();
    assert.equal(active(), rotation.generation, 'activated before the propagation time');
  });
});

describe('the server certificate renewal timer', () => {
  test('after a direct renew() and close(), no renewal fires', async () => {
    let issued = 0;
    // A CA stub whose SVIDs live 200 ms: the renewal timer is armed ~90–100 ms ahead.
    const ca = {
      issue: async () => {
        issued++;
        const now = Date.now();
        return { serial: `s${issued}`, certificatePem: 'pem', notBefore: now, notAfter: now + 200 };
      },
      acknowledgeBundle: () => {},
    } as unknown as Parameters<typeof createServerCertificate>[0]['ca'];
    const cert = await createServerCertificate({ ca, logger, onRenewed: () => {} });
    await cert.renew();
    cert.close();
    assert.equal(issued, 2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(issued, 2, 'the timer armed before renew() was replaced, and close() disarmed the last one');
  });
});
