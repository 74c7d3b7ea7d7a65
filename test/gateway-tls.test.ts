/**
 * Edge TLS against a real gateway: protocol versions and ciphers (each refusal checked against a
 * control server that accepts the same client, so a refusal is the gateway's doing), HSTS, the
 * handshake timeout, hot certificate reload across a live keep-alive connection, refusal of bad new
 * pairs, and the plain-HTTP redirect listener with hostile Host headers.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type ConnectionOptions,
  createServer as createTlsServer,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import { makeCertificate, type TestCertificate } from './helpers/certificates.ts';
import { RUN_FILE, type RunningGateway, startGateway, testManifest } from './helpers/gateway-harness.ts';
import { type EchoUpstream, rawExchange, startEchoUpstream, statuses } from './helpers/http.ts';

const MANIFEST = `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18443 }
  tls: off
identity:
  external: { issuer: "https://issuer.test", jwksUri: "https://issuer.test/jwks" }
  audience: https://api.test
services:
  echo:
    run: ${RUN_FILE}
    routes:
      - { id: public, path: /public/**, methods: [GET, POST], auth: none }
`;

/** Connects with TLS and resolves once the handshake is done, or rejects with the handshake error. */
function handshake(port: number, options: ConnectionOptions = {}): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      rejectUnauthorized: false,
      ...options,
    });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** One HTTP/1.1 exchange on an open TLS socket (keep-alive), resolving with the raw response. */
function exchange(socket: TLSSocket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      const head = text.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(text);
      const complete = length ? text.length >= head + 4 + Number(length[1]) : text.endsWith('\r\n0\r\n\r\n');
      if (head !== -1 && complete) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  });
}

function httpsGet(
  port: number,
  path: string,
  host = `127.0.0.1:${port}`,
): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        servername: 'localhost',
        rejectUnauthorized: false,
        agent: false,
        headers: { host },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('gateway TLS', () => {
  let dir: string;
  let first: TestCertificate;
  let upstream: EchoUpstream;
  let gw: RunningGateway;
  let certFile: string;
  let keyFile: string;

  /** Replaces the pair the way certificate managers do: write aside, then rename over. */
  async function install(pair: { cert: string; key: string }) {
    await writeFile(`${keyFile}.new`, pair.key, { mode: 0o600 });
    await writeFile(`${certFile}.new`, pair.cert);
    await rename(`${keyFile}.new`, keyFile);
    await rename(`${certFile}.new`, certFile);
  }

  async function servedFingerprint(): Promise<string> {
    const socket = await handshake(gw.port);
    const fingerprint = socket.getPeerCertificate().fingerprint256;
    socket.destroy();
    return fingerprint;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rampart-tls-'));
    certFile = join(dir, 'edge.crt');
    keyFile = join(dir, 'edge.key');
    first = await makeCertificate();
    await install(first);
    upstream = await startEchoUpstream();
    const manifest = testManifest(MANIFEST, {
      tls: { mode: 'files', cert: certFile, key: keyFile },
      redirectHttp: { port: 0 },
      limits: { tlsHandshakeTimeoutMs: 500, keepAliveTimeoutMs: 30_000 },
    });
    gw = await startGateway(manifest, { echo: upstream.url });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('TLS 1.3 is negotiated when offered, with ALPN http/1.1', async () => {
    const socket = await handshake(gw.port, { ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(socket.getProtocol(), 'TLSv1.3');
    assert.equal(socket.alpnProtocol, 'http/1.1');
    assert.equal(socket.getPeerCertificate().fingerprint256, first.fingerprint);
    socket.destroy();
  });

  test('HSTS on every response over TLS to a DNS name, denials included; never to IP literals or localhost', async () => {
    const ok = await httpsGet(gw.port, '/public/a', 'api.example.com');
    assert.equal(ok.status, 200);
    // Certificate files: a browser reads the header only after accepting the certificate for that host.
    assert.equal(ok.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    assert.equal(upstream.seen.at(-1)!.headers['x-forwarded-proto'], 'https');
    const missing = await httpsGet(gw.port, '/nowhere', `api.example.com:${gw.port}`);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    for (const [host, expected] of [
      [`127.0.0.1:${gw.port}`, undefined],
      ['[::1]', undefined],
      [`localhost:${gw.port}`, 'max-age=0'],
      ['dev.localhost', 'max-age=0'],
    ] as const) {
      const res = await httpsGet(gw.port, '/public/a', host);
      assert.equal(res.status, 200, host);
      assert.equal(res.headers['strict-transport-security'], expected, host);
    }
  });

  test('TLS 1.2 works with an ECDHE AEAD suite', async () => {
    const socket = await handshake(gw.port, { maxVersion: 'TLSv1.2' });
    assert.equal(socket.getProtocol(), 'TLSv1.2');
    assert.match(socket.getCipher().name, /^ECDHE-ECDSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$/);
    socket.destroy();
  });

  test('TLS 1.0 and 1.1 are refused (a control server shows the client really offers them)', async () => {
    const control = createTlsServer({
      cert: first.cert,
      key: first.key,
      minVersion: 'TLSv1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    control.on('secureConnection', (s) => s.end());
    await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
    const controlPort = (control.address() as { port: number }).port;
    try {
      for (const version of ['TLSv1', 'TLSv1.1'] as const) {
        const old = { minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' };
        const accepted = await handshake(controlPort, old);
        assert.equal(accepted.getProtocol(), version, 'control accepts');
        accepted.destroy();
        await assert.rejects(handshake(gw.port, old), `${version} refused`);
      }
    } finally {
      control.close();
    }
  });

  test('TLS 1.2 with CBC or SHA-1 MAC suites is refused', async () => {
    const control = createTlsServer({ cert: first.cert, key: first.key, ciphers: 'ALL@SECLEVEL=0' });
    control.on('secureConnection', (s) => s.end());
    await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
    const controlPort = (control.address() as { port: number }).port;
    try {
      for (const ciphers of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'ECDHE-ECDSA-AES128-SHA256']) {
        const weak = { maxVersion: 'TLSv1.2' as const, ciphers: `${ciphers}@SECLEVEL=0` };
        const accepted = await handshake(controlPort, weak);
        assert.equal(accepted.getCipher().name, ciphers, 'control accepts');
        accepted.destroy();
        await assert.rejects(handshake(gw.port, weak), `${ciphers} refused`);
      }
    } finally {
      control.close();
    }
  });

  test('renegotiation is refused', async () => {
    const socket = await handshake(gw.port, { maxVersion: 'TLSv1.2' });
    const outcome = await new Promise<string>((resolve) => {
      socket.once('error', () => resolve('error'));
      socket.once('close', () => resolve('closed'));
      const started = socket.renegotiate({ rejectUnauthorized: false }, (err) =>
        resolve(err ? 'refused' : 'renegotiated'),
      );
      if (!started) resolve('refused');
    });
    assert.notEqual(outcome, 'renegotiated');
    socket.destroy();
  });

  test('a client that never completes the handshake is closed after the handshake timeout', async () => {
    const before = await gw.denials('tls', 'handshake_timeout');
    const started = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      const socket = netConnect({ host: '127.0.0.1', port: gw.port });
      socket.on('error', () => {});
      socket.on('close', () => resolve(Date.now() - started));
    });
    assert.ok(closedAfter >= 400 && closedAfter < 5_000, `closed after ${closedAfter} ms`);
    assert.equal(await gw.denials('tls', 'handshake_timeout'), before + 1);
  });

  test('hot reload: a keep-alive connection survives the swap; new connections get the new certificate', async () => {
    const live = await handshake(gw.port);
    assert.match(await exchange(live, '/public/before'), /^HTTP\/1\.1 200/);
    const second = await makeCertificate();
    await install(second);
    // The directory watcher picks the change up on its own (debounced).
    const deadline = Date.now() + 10_000;
    while ((await servedFingerprint()) !== second.fingerprint) {
      assert.ok(Date.now() < deadline, 'the new certificate is served within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(await exchange(live, '/public/after'), /^HTTP\/1\.1 200/, 'the old connection still works');
    assert.equal(live.getPeerCertificate().fingerprint256, first.fingerprint, 'on its original certificate');
    assert.deepEqual(
      upstream.seen.slice(-2).map((s) => s.url),
      ['/public/before', '/public/after'],
    );
    live.destroy();
    first = second;
  });

  test('a bad new pair is refused and the certificate in service stays', async () => {
    const other = await makeCertificate();
    const cases: [string, { cert: string; key: string }, string][] = [
      ['key of another certificate', { cert: first.cert, key: other.key }, 'GW_ERR_TLS_KEY_MISMATCH'],
      [
        'expired certificate',
        await makeCertificate({
          notBefore: new Date(Date.now() - 7_200_000),
          notAfter: new Date(Date.now() - 3_600_000),
        }),
        'GW_ERR_TLS_EXPIRED',
      ],
      [
        'not yet valid',
        await makeCertificate({ notBefore: new Date(Date.now() + 3_600_000) }),
        'GW_ERR_TLS_NOT_YET_VALID',
      ],
      ['garbage certificate', { cert: 'not a certificate', key: other.key }, 'GW_ERR_TLS_CERT_INVALID'],
      ['garbage key', { cert: other.cert, key: 'not a key' }, 'GW_ERR_TLS_KEY_INVALID'],
      [
        'RSA 1024 (below OpenSSL security level 2)',
        await makeCertificate({ algorithm: 'rsa-1024' }),
        'GW_ERR_TLS_REJECTED',
      ],
    ];
    for (const [name, pair, code] of cases) {
      await install(pair);
      const result = await gw.gateway.reloadCertificate();
      assert.deepEqual(result, { outcome: 'rejected', code }, name);
      assert.equal(await servedFingerprint(), first.fingerprint, `${name}: old certificate still served`);
    }
    await rm(keyFile);
    assert.deepEqual(await gw.gateway.reloadCertificate(), { outcome: 'rejected', code: 'GW_ERR_TLS_UNREADABLE' });
    // Back to a good pair: an explicit reload (SIGHUP) picks it up, and a second one changes nothing.
    const good = await makeCertificate();
    await install(good);
    assert.equal((await gw.gateway.reloadCertificate()).outcome, 'reloaded');
    assert.equal((await gw.gateway.reloadCertificate()).outcome, 'unchanged');
    assert.equal(await servedFingerprint(), good.fingerprint);
    first = good;
    const metric = await gw.deps.registry.getSingleMetric('rampart_gateway_tls_certificate_reloads_total')!.get();
    const rejected = metric.values.find((v) => v.labels.outcome === 'rejected')?.value ?? 0;
    assert.ok(rejected >= cases.length + 1);
  });

  describe('redirect listener', () => {
    let port: number;
    before(() => {
      port = (gw.gateway.redirect!.server.address() as { port: number }).port;
    });
    const ask = (bytes: string) => rawExchange(port, bytes, 1_000);
    const location = (text: string) => /\r\nlocation: ([^\r]*)/i.exec(text)?.[1] ?? null;

    test('redirects to the same path on HTTPS for the hosts the gateway serves', async () => {
      const cases: [string, string, string][] = [
        ['localhost', '/public/a?x=1', `https://localhost:${gw.port}/public/a?x=1`],
        [`localhost:${port}`, '/p', `https://localhost:${gw.port}/p`],
        ['LOCALHOST', '/', `https://localhost:${gw.port}/`],
        ['127.0.0.1', '/p', `https://127.0.0.1:${gw.port}/p`],
        // Targets that are not a plain origin-form path are not carried over.
        ['localhost', '//evil.test/x', `https://localhost:${gw.port}/`],
        ['localhost', '/\\evil.test', `https://localhost:${gw.port}/`],
        ['localhost', 'http://evil.test/x', `https://localhost:${gw.port}/`],
      ];
      for (const [host, target, expected] of cases) {
        const res = await ask(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        assert.deepEqual(statuses(res.text), [308], `${host} ${target}`);
        assert.equal(location(res.text), expected, `${host} ${target}`);
        assert.ok(res.closed, 'one answer per connection');
        assert.doesNotMatch(res.text, /strict-transport-security/i, 'no HSTS over plain HTTP');
      }
    });

    test('any other Host gets 400 and no Location (no open redirect)', async () => {
      const hostile = [
        'evil.test',
        'localhost.evil.test',
        'evil.test.localhost',
        'localhost@evil.test',
        'evil.test@localhost',
        'localhost/evil.test',
        'localhost:443@evil.test',
        'localhost evil.test',
        'localhost.',
        'localhost%2eevil.test',
        '[::1]',
        '[localhost]',
        '127.0.0.2',
        '',
      ];
      for (const host of hostile) {
        const res = await ask(`GET /p HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        assert.deepEqual(statuses(res.text), [400], host);
        assert.equal(location(res.text), null, host);
      }
      const duplicated = await ask('GET /p HTTP/1.1\r\nHost: localhost\r\nHost: evil.test\r\n\r\n');
      assert.deepEqual(statuses(duplicated.text), [400]);
      const http10 = await ask('GET /p HTTP/1.0\r\n\r\n');
      assert.deepEqual(statuses(http10.text), [400], 'no Host, nothing to redirect to');
      assert.ok((await gw.denials('redirect', 'host')) >= hostile.length + 2);
    });

    test('bodies are never read or forwarded; the connection closes after the answer', async () => {
      const seen = upstream.seen.length;
      const res = await ask(
        `POST /public/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`,
      );
      assert.deepEqual(statuses(res.text), [308]);
      assert.ok(res.closed);
      assert.equal(upstream.seen.length, seen);
    });
  });
});
