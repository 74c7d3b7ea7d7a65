/**
 * SVID renewal in a real SDK service: with a 4 s SVID the service renews at about half its lifetime,
 * swaps the server certificate live (setSecureContext): a connection opened before the swap keeps
 * working, and a new handshake gets the new certificate.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { connect, type TLSSocket } from 'node:tls';
import {
  type ControlApi,
  createControlApi,
  createServerCertificate,
  createWorkloadKey,
  requestJoinToken,
  type ServerCertificate,
} from '../../src/control/api/index.ts';
import { openTestCa, type TestCa } from '../../src/control/ca/testing.ts';
import type { AccessTokenVerifier } from '../../src/core/access-token.ts';
import { createLogger } from '../../src/core/logger.ts';
import { type RampartService, service } from '../../src/sdk/index.ts';
import { freePort } from '../helpers/processes.ts';

const CREDENTIAL = 'r'.repeat(43);
const noTokens = (async () => {
  throw new Error('no user tokens');
}) as unknown as AccessTokenVerifier;

/** Sends one keep-alive request on `socket` and resolves with the status line. */
function ask(socket: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const head = text.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(text);
      if (head !== -1 && length && text.length >= head + 4 + Number(length[1])) {
        socket.off('data', onData);
        resolve(text.slice(0, text.indexOf('\r\n')));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(
      'POST /charges HTTP/1.1\r\nhost: payments\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}',
    );
  });
}

describe('SVID renewal with a live swap', { timeout: 60_000 }, () => {
  let t: TestCa;
  let cert: ServerCertificate;
  let api: ControlApi;
  let payments: RampartService;
  let port: number;
  let dir: string;

  before(async () => {
    t = await openTestCa({ svidTtlMs: 4_000, clockSkewMs: 500, caLifetimeMs: 3_600_000, bundlePropagationMs: 60_000 });
    // The CA's clock is the real one here: TLS checks dates against it.
    const realClock = setInterval(() => {
      t.clock.now = Date.now();
    }, 50);
    realClock.unref();
    const logger = createLogger({ name: 'control', level: 'silent' });
    let ref: ControlApi | null = null;
    cert = await createServerCertificate({ ca: t.ca, logger, onRenewed: () => ref?.refreshTls() });
    api = createControlApi({ ca: t.ca, launcherCredential: CREDENTIAL, credentials: () => cert.current(), logger });
    ref = api;
    const controlUrl = `https://127.0.0.1:${await api.listen(0)}`;
    const control = { url: controlUrl, bundle: t.ca.bundle().pem, trustDomain: 'shop.local' };
    const { token } = await requestJoinToken(control, CREDENTIAL, 'payments');
    dir = mkdtempSync(join(tmpdir(), 'rampart-renewal-'));
    port = await freePort();
    payments = service({
      runtime: {
        kind: 'service',
        name: 'payments',
        dataDir: dir,
        adminPort: await freePort(),
        manifestFile: join(dir, 'rampart.yaml'),
        port,
        identity: { issuer: 'https://issuer.invalid', audience: 'https://api.shop.local', jwksUri: null },
        peers: {},
        policy: {
          version: 1,
          callers: { 'spiffe://shop.local/svc/orders': [{ methods: ['POST'], paths: ['/charges'] }] },
        },
        control,
        joinToken: token,
      },
      verifier: noTokens,
      logger: createLogger({ name: 'payments', level: 'silent' }),
    });
    payments.app.post('/charges', async () => ({ ok: true }));
    await payments.start();
  });
  after(async () => {
    await payments.close();
    cert.close();
    await api.close();
    t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const ordersCredentials = async () => {
    const key = await createWorkloadKey();
    const svid = await t.ca.issue({ csr: key.csrPem, serviceName: 'orders' });
    return { cert: svid.certificatePem, key: key.keyPem };
  };
  const open = async () => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: t.ca.bundle().pem,
      ...(await ordersCredentials()),
      checkServerIdentity: () => undefined,
    });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    return socket;
  };

  test('the service renews at about half its lifetime; old connections stay, new ones get the new certificate', async () => {
    const first = payments.svid()!;
    const old = await open();
    try {
      assert.equal(old.getPeerX509Certificate()?.serialNumber, new X509Certificate(first.certificatePem).serialNumber);
      assert.match(await ask(old), /^HTTP\/1\.1 200/);

      const deadline = Date.now() + 15_000;
      while (payments.svid()!.certificatePem === first.certificatePem && Date.now() < deadline) await delay(100);
      const second = payments.svid()!;
      assert.notEqual(second.certificatePem, first.certificatePem, 'renewed');
      assert.equal(second.spiffeId, first.spiffeId);

      assert.match(await ask(old), /^HTTP\/1\.1 200/, 'the connection opened before the swap still serves');
      const fresh = await open();
      try {
        assert.equal(
          fresh.getPeerX509Certificate()?.serialNumber,
          new X509Certificate(second.certificatePem).serialNumber,
          'a new handshake gets the new SVID',
        );
        assert.match(await ask(fresh), /^HTTP\/1\.1 200/);
      } finally {
        fresh.destroy();
      }
    } finally {
      old.destroy();
    }
  });
});
