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
