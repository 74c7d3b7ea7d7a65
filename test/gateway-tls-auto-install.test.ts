/**
 * The gateway in `tls: auto` mode, in process: it refuses to start without a certificate from the
 * main thread, serves the one it is given over HTTPS with HSTS, installs a renewed one for new
 * connections while a keep-alive connection keeps its own, refuses a bad one, and runs the redirect
 * listener. (The launched system, with the real CA and renewals, is test/gateway-tls-auto.test.ts.)
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { isRampartError } from '../src/core/errors.ts';
import { createGateway, type Gateway } from '../src/gateway/gateway.ts';
import { makeCertificate, type TestCertificate } from './helpers/certificates.ts';
import { RUN_FILE, testDeps, testManifest } from './helpers/gateway-harness.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/http.ts';

const MANIFEST = `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18443 }
  tls: auto
identity:
  external: { issuer: "https://issuer.test", jwksUri: "https://issuer.test/jwks" }
  audience: https://api.test
services:
  echo:
    run: ${RUN_FILE}
    routes:
      - { id: public, path: /public/**, methods: [GET], auth: none }
`;

function get(
  port: number,
  ca: string,
  agent: Agent | false = false,
  host = `localhost:${port}`,
): Promise<{ status: number; hsts: string | undefined; fingerprint: string; localPort: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: '/public/x',
      ca,
      servername: 'localhost',
      agent,
      headers: { host },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const socket = res.socket as TLSSocket;
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      const localPort = socket.localPort ?? 0;
      res.resume();
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          hsts: res.headers['strict-transport-security'],
          fingerprint,
          localPort,
          reused: req.reusedSocket,
        }),
      );
    });
    req.end();
  });
}

describe('gateway with tls: auto (in process)', () => {
  let upstream: EchoUpstream;
  let first: TestCertificate;
  let second: TestCertificate;
  let gateway: Gateway;
  let port: number;

  before(async () => {
    upstream = await startEchoUpstream();
    first = await makeCertificate({ dns: ['localhost'] });
    second = await makeCertificate({ dns: ['localhost'] });
    gateway = createGateway(testDeps(testManifest(MANIFEST), { echo: upstream.url }), undefined, {
      edgeCertificate: { certPem: first.cert, keyPem: first.key },
    });
    port = await gateway.listen('127.0.0.1', 0);
  });

  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  test('refuses to start without a certificate (GW_ERR_TLS_AUTO)', () => {
    assert.throws(
      () => createGateway(testDeps(testManifest(MANIFEST), { echo: upstream.url })),
      (err) => isRampartError(err, 'GW_ERR_TLS_AUTO'),
    );
  });

  test('serves the given certificate over HTTPS; HSTS per host: localhost is released, never pinned', async () => {
    const res = await get(port, first.cert);
    assert.equal(res.status, 200);
    assert.equal(res.fingerprint, first.fingerprint);
    assert.equal(res.hsts, 'max-age=0');
  });

  test('HSTS per host: includeSubDomains only for the DNS names of the edge certificate, nothing for IP literals', async () => {
    const named = createGateway(
      testDeps(
        testManifest(MANIFEST.replace('tls: auto', 'tls: { auto: [shop.example.test] }\n  hsts: { maxAge: 86400 }')),
        { echo: upstream.url },
      ),
      undefined,
      { edgeCertificate: { certPem: first.cert, keyPem: first.key } },
    );
    const namedPort = await named.listen('127.0.0.1', 0);
    try {
      const cases: [string, string | undefined][] = [
        ['shop.example.test', 'max-age=86400; includeSubDomains'],
        [`SHOP.example.test:${namedPort}`, 'max-age=86400; includeSubDomains'],
        ['www.shop.example.test', 'max-age=86400'],
        ['other.example', 'max-age=86400'],
        [`localhost:${namedPort}`, 'max-age=0'],
        ['app.localhost', 'max-age=0'],
        [`127.0.0.1:${namedPort}`, undefined],
        [`[::1]:${namedPort}`, undefined],
      ];
      for (const [host, expected] of cases) {
        const res = await get(namedPort, first.cert, false, host);
        assert.equal(res.status, 200, host);
        assert.equal(res.hsts, expected, host);
      }
    } finally {
      await named.close(100);
    }
  });

  test('a renewed certificate serves new connections; the open keep-alive connection keeps going', async () => {
    // The two test certificates are self-signed with the same subject: each is trusted on its own.
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: first.cert });
    try {
      const before = await get(port, first.cert, agent);
      assert.equal(before.fingerprint, first.fingerprint);
      assert.equal(gateway.installCertificate(second.cert, first.key).outcome, 'rejected');
      assert.equal((await get(port, first.cert)).fingerprint, first.fingerprint, 'a bad pair changes nothing');
      assert.equal(gateway.installCertificate(second.cert, second.key).outcome, 'reloaded');
      assert.equal((await get(port, second.cert)).fingerprint, second.fingerprint);
      const kept = await get(port, first.cert, agent);
      assert.equal(kept.status, 200);
      assert.equal(kept.reused, true);
      assert.equal(kept.localPort, before.localPort);
      assert.equal(kept.fingerprint, first.fingerprint);
    } finally {
      agent.destroy();
    }
  });

  test('the redirect listener is allowed with auto', async () => {
    const redirect = createGateway(
      testDeps(testManifest(MANIFEST, { redirectHttp: { port: 0 } }), { echo: upstream.url }),
      undefined,
      { edgeCertificate: { certPem: first.cert, keyPem: first.key } },
    );
    try {
      assert.ok(redirect.redirect, 'a redirect listener');
    } finally {
      await redirect.close(100);
    }
  });
});
