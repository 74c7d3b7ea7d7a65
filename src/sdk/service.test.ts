import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { type EchoUpstream, startEchoUpstream } from '../../test/helpers/http.ts';
import { startTestIssuer, type TestIssuer } from '../../test/helpers/issuer.ts';
import { freePort } from '../../test/helpers/processes.ts';
import { isRampartError } from '../core/errors.ts';
import { type RampartService, service } from './service.ts';

const AUDIENCE = 'https://api.sdk.test';

describe('sdk service', () => {
  let issuer: TestIssuer;
  let peer: EchoUpstream;
  let svc: RampartService;
  let base: string;
  let dataDir: string;

  before(async () => {
    issuer = await startTestIssuer(AUDIENCE);
    peer = await startEchoUpstream();
    dataDir = mkdtempSync(join(tmpdir(), 'rampart-sdk-'));
    const port = await freePort();
    svc = service({
      logger: pino({ level: 'silent' }),
      runtime: {
        kind: 'service',
        name: 'orders',
        dataDir,
        adminPort: await freePort(),
        manifestFile: '/dev/null',
        port,
        identity: { issuer: issuer.issuer, audience: AUDIENCE, jwksUri: issuer.jwksUri },
        peers: { payments: peer.url },
      },
    });
    svc.app.get('/whoami', async (req) => ({ subject: svc.user(req).subject, scopes: [...svc.user(req).scopes] }));
    svc.app.get('/public', async (req) => ({ user: req.user?.subject ?? null }));
    svc.app.get('/boom', async () => {
      throw new Error('connection string postgres://admin:hunter2@db');
    });
    svc.app.post('/pay', async (req) => {
      const res = await svc.call('payments', '/charges', { from: req, json: { amount: 1 } });
      return { status: res.status };
    });
    svc.app.get('/forbidden-peer', async (req) => svc.call('catalog', '/x', { from: req }));
    await svc.start();
    base = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    await svc.close();
    await peer.close();
    await issuer.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('the service verifies the user token again (defense in depth)', async () => {
    const token = await issuer.mint({ sub: 'alice', scope: 'orders' });
    const ok = await fetch(`${base}/whoami`, { headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual(await ok.json(), { subject: 'alice', scopes: ['orders'] });

    const none = await fetch(`${base}/whoami`);
    assert.equal(none.status, 401);
    assert.match(String(none.headers.get('www-authenticate')), /^Bearer realm="rampart"/);

    const forged = `${token.slice(0, -4)}AAAA`;
    assert.equal((await fetch(`${base}/whoami`, { headers: { authorization: `Bearer ${forged}` } })).status, 401);
    const otherAudience = await issuer.mint({ aud: 'https://elsewhere' });
    assert.equal(
      (await fetch(`${base}/public`, { headers: { authorization: `Bearer ${otherAudience}` } })).status,
      401,
    );
    assert.equal((await fetch(`${base}/public`, { headers: { authorization: 'Basic eDp5' } })).status, 401);
    assert.deepEqual(await (await fetch(`${base}/public`)).json(), { user: null });
  });

  test('server errors reveal nothing but an error id', async () => {
    const res = await fetch(`${base}/boom`);
    assert.equal(res.status, 500);
    const text = await res.text();
    assert.ok(!text.includes('hunter2') && !text.includes('postgres'), text);
    assert.match((JSON.parse(text) as { error_id: string }).error_id, /^[A-Za-z0-9_-]{12}$/);
  });

  test('calls go only to manifest peers and carry the user, request id and trace', async () => {
    const token = await issuer.mint({ sub: 'alice', scope: 'orders' });
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const res = await fetch(`${base}/pay`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'x-request-id': 'req-123456789', traceparent },
    });
    assert.deepEqual(await res.json(), { status: 200 });
    const seen = peer.seen.at(-1)!;
    assert.equal(seen.url, '/charges');
    assert.equal(seen.headers.authorization, `Bearer ${token}`);
    assert.equal(seen.headers['x-request-id'], 'req-123456789');
    assert.equal(seen.headers.traceparent, traceparent);
    assert.equal(seen.body, '{"amount":1}');

    await assert.rejects(svc.call('catalog', '/x'), (err) => isRampartError(err, 'SDK_ERR_CALL_NOT_ALLOWED'));
    assert.equal((await fetch(`${base}/forbidden-peer`)).status, 500);
  });

  test('the database lives in the data directory with durable settings', () => {
    const db = svc.database();
    assert.equal(svc.database(), db, 'opened once');
    const mode = db.prepare('PRAGMA journal_mode').get() as { journal_mode: string };
    const sync = db.prepare('PRAGMA synchronous').get() as { synchronous: number };
    assert.equal(mode.journal_mode, 'wal');
    assert.equal(sync.synchronous, 2, 'FULL: an acknowledged write survives a crash');
    assert.equal(db.location(), join(dataDir, 'orders.db'));
  });
});
