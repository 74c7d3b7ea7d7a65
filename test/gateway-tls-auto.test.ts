/**
 * `tls: auto` end to end: a launched project (control plane, one service, a two-worker gateway) whose
 * gateway serves HTTPS with a certificate from the local CA. A client that trusts only
 * `.rampart/control/bundle.pem` (curl included, as the README tells users) verifies it for the
 * configured names and no other; HSTS is set; the redirect listener works; and with edge certificates
 * shortened to a few seconds (the Launcher's `ca` option), renewed certificates are installed while a
 * keep-alive connection that started on an old one keeps being served.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate as NodeX509Certificate, type X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { loadManifest } from '../src/config/load.ts';
import { Launcher } from '../src/launcher/launcher.ts';
import { startTestIssuer, type TestIssuer } from './helpers/issuer.ts';
import { freePort } from './helpers/processes.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const AUDIENCE = 'https://api.edge.test';
/** Edge certificates live 6 s (+0.5 s skew): renewed every ~3 s. */
const EDGE_TTL_MS = 6_000;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The leaf the server presented on the connection that carried this request. */
  peer: X509Certificate | undefined;
  reused: boolean;
  localPort: number | undefined;
}

function get(
  url: string,
  options: { ca?: string; servername?: string; agent?: Agent; host?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      ca: options.ca,
      servername: options.servername,
      ...(options.host ? { headers: { host: options.host } } : {}),
      agent: options.agent ?? false,
      timeout: 5_000,
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.on('response', (res) => {
      const socket = res.socket as TLSSocket;
      const peer = socket.getPeerX509Certificate();
      const localPort = socket.localPort;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          peer,
          reused: req.reusedSocket,
          localPort,
        }),
      );
    });
    req.end();
  });
}

function plainGet(port: number, host: string): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/hello?x=1', headers: { host }, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location }));
    });
    req.end();
  });
}

describe('gateway tls: auto, launched', { timeout: 120_000 }, () => {
  let issuer: TestIssuer;
  let dir: string;
  let launcher: Launcher;
  let port: number;
  let redirectPort: number;
  let bundlePath: string;
  let ca: string;
  const out = new PassThrough();
  let output = '';
  out.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });

  before(async () => {
    issuer = await startTestIssuer(AUDIENCE);
    port = await freePort();
    redirectPort = await freePort();
    // Inside the repository, so that `import 'rampart/sdk'` resolves as it does in the example.
    dir = join(root, 'test', '.scratch', `tls-auto-${process.pid}-${Date.now()}`);
    mkdirSync(join(dir, 'services'), { recursive: true });
    writeFileSync(
      join(dir, 'services', 'hello.ts'),
      [
        "import { service } from 'rampart/sdk';",
        'const svc = service();',
        "svc.app.get('/hello', async () => ({ hello: 'world' }));",
        'await svc.start();',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'rampart.yaml'),
      [
        'version: 1',
        'trustDomain: edge.test',
        'gateway:',
        `  listen: { host: 127.0.0.1, port: ${port} }`,
        '  tls: { auto: [shop.example.test] }',
        `  redirectHttp: { port: ${redirectPort} }`,
        '  workers: 2',
        '  trustedProxies: []',
        '  rateLimit: { store: memory }',
        'identity:',
        `  external: { issuer: ${issuer.issuer}, jwksUri: ${issuer.jwksUri} }`,
        `  audience: ${AUDIENCE}`,
        'services:',
        '  hello:',
        '    run: services/hello.ts',
        '    routes:',
        '      - { id: hello, path: /hello, methods: [GET], auth: none }',
        '',
      ].join('\n'),
    );
    launcher = new Launcher(loadManifest(join(dir, 'rampart.yaml')), {
      stdout: out,
      stderr: out,
      color: false,
      cwd: dir,
      ca: { edgeCertificateTtlMs: EDGE_TTL_MS, clockSkewMs: 500 },
    });
    await launcher.start();
    bundlePath = join(dir, '.rampart', 'control', 'bundle.pem');
    ca = readFileSync(bundlePath, 'utf8');
  });

  after(async () => {
    await launcher?.stop();
    writeFileSync(`${dir}.log`, output);
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the banner tells the developer what to pass to curl', () => {
    assert.match(output, /trust {5}\.rampart\/control\/bundle\.pem/);
    assert.match(output, new RegExp(`curl --cacert \\.rampart/control/bundle\\.pem https://localhost:${port}/hello`));
    assert.equal(statSync(bundlePath).mode & 0o777, 0o644);
  });

  test('HTTPS verifies against bundle.pem for localhost, the listen address and the configured name; HSTS is set', async () => {
    const local = await get(`https://localhost:${port}/hello`, { ca });
    assert.equal(local.status, 200);
    assert.deepEqual(JSON.parse(local.body), { hello: 'world' });
    // localhost is never pinned (HSTS ignores ports); an IP literal gets nothing; the configured name
    // gets the manifest's default with its subdomains.
    assert.equal(local.headers['strict-transport-security'], 'max-age=0');
    const byAddress = await get(`https://127.0.0.1:${port}/hello`, { ca });
    assert.equal(byAddress.status, 200);
    assert.equal(byAddress.headers['strict-transport-security'], undefined);
    const byName = await get(`https://127.0.0.1:${port}/hello`, {
      ca,
      servername: 'shop.example.test',
      host: `shop.example.test:${port}`,
    });
    assert.equal(byName.status, 200);
    assert.equal(byName.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    // The leaf is the edge profile: serverAuth only, no URI SAN, issued by a CA in the bundle.
    const leaf = local.peer as NodeX509Certificate;
    assert.equal(leaf.ca, false);
    assert.equal(leaf.keyUsage?.includes('1.3.6.1.5.5.7.3.2'), false);
    assert.doesNotMatch(leaf.subjectAltName ?? '', /URI:/);
  });

  test('a name the manifest does not list, or a client without the bundle, is refused', async () => {
    await assert.rejects(get(`https://127.0.0.1:${port}/hello`, { ca, servername: 'evil.test' }), (err: Error) => {
      assert.equal((err as NodeJS.ErrnoException).code, 'ERR_TLS_CERT_ALTNAME_INVALID');
      return true;
    });
    await assert.rejects(get(`https://localhost:${port}/hello`), (err: Error) => {
      assert.match(String((err as NodeJS.ErrnoException).code), /UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
      return true;
    });
  });

  test('curl --cacert bundle.pem https://localhost:<port>/hello works as the README says', () => {
    const ok = spawnSync(
      'curl',
      ['--silent', '--show-error', '--max-time', '5', '--cacert', bundlePath, `https://localhost:${port}/hello`],
      { encoding: 'utf8' },
    );
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { hello: 'world' });
    const without = spawnSync('curl', ['--silent', '--max-time', '5', `https://localhost:${port}/hello`], {
      encoding: 'utf8',
    });
    assert.equal(without.status, 60, 'curl: peer certificate cannot be authenticated with known CA certificates');
  });

  test('the redirect listener sends to HTTPS for names the certificate covers, and refuses others', async () => {
    const local = await plainGet(redirectPort, `localhost:${redirectPort}`);
    assert.equal(local.status, 308);
    assert.equal(local.location, `https://localhost:${port}/hello?x=1`);
    const named = await plainGet(redirectPort, 'shop.example.test');
    assert.equal(named.status, 308);
    assert.equal(named.location, `https://shop.example.test:${port}/hello?x=1`);
    const other = await plainGet(redirectPort, 'evil.test');
    assert.equal(other.status, 400);
    assert.equal(other.location, undefined);
  });

  test('renewed certificates are installed without dropping an open keep-alive connection', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
    try {
      const first = await get(`https://localhost:${port}/hello`, { agent });
      assert.equal(first.status, 200);
      const original = (first.peer as NodeX509Certificate).fingerprint256;
      // Keep the connection busy (the gateway closes idle keep-alive connections after 5 s) while
      // new connections watch for a renewed certificate.
      let renewed: NodeX509Certificate | undefined;
      const deadline = Date.now() + 3 * EDGE_TTL_MS;
      while (!renewed && Date.now() < deadline) {
        await delay(500);
        const kept = await get(`https://localhost:${port}/hello`, { agent });
        assert.equal(kept.status, 200);
        assert.equal(kept.reused, true, 'the same connection');
        assert.equal(kept.localPort, first.localPort);
        const fresh = await get(`https://localhost:${port}/hello`, { ca });
        assert.equal(fresh.status, 200);
        if ((fresh.peer as NodeX509Certificate).fingerprint256 !== original) renewed = fresh.peer;
      }
      assert.ok(renewed, 'a renewed certificate was served to a new connection');
      assert.ok(new NodeX509Certificate(renewed.raw).validToDate > (first.peer as NodeX509Certificate).validToDate);
      // Every worker installed a new one: several new connections, none with the original.
      await delay(1_000);
      for (let i = 0; i < 6; i++) {
        const fresh = await get(`https://localhost:${port}/hello`, { ca });
        assert.notEqual((fresh.peer as NodeX509Certificate).fingerprint256, original);
      }
      // And the connection that started on the original is still served.
      const last = await get(`https://localhost:${port}/hello`, { agent });
      assert.equal(last.status, 200);
      assert.equal(last.reused, true);
      assert.equal(last.localPort, first.localPort);
      assert.equal((last.peer as NodeX509Certificate).fingerprint256, original);
    } finally {
      agent.destroy();
    }
  });
});
