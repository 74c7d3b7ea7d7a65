/**
 * Real tools agree with the certificate authority (issue 4 "Must show"): OpenSSL's `verify` accepts an
 * issued SVID against the bundle and refuses one from another CA, an expired one and one outside the
 * name constraint; `openssl x509 -text` shows exactly one URI SAN and CA:FALSE; during a rotation the
 * old CA's SVIDs still verify against the bundle and stop verifying once it retired. Node's TLS (OpenSSL
 * underneath) completes mutual TLS with two SVIDs and refuses a client without one.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate as NodeX509Certificate, type webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { IssuedSvid, TrustBundle } from '../src/control/ca/index.ts';
import { caKeyContext } from '../src/control/ca/signing-ca.ts';
import { makeCsr, openTestCa, type TestCa } from '../src/control/ca/testing.ts';
import { crypto, x509 } from '../src/control/ca/x509.ts';
import { svidIdentity } from '../src/core/spiffe.ts';

const HOUR = 3_600_000;

let fileCounter = 0;
function file(t: TestCa, content: string): string {
  const path = join(t.dir, `f-${fileCounter++}.pem`);
  writeFileSync(path, content);
  return path;
}

/** `openssl verify` of `leafPem` against `bundle`; `at` (ms) sets the verification time. */
function verify(t: TestCa, bundle: TrustBundle | string, leafPem: string, at?: number, purpose = 'sslclient') {
  const args = [
    'verify',
    '-x509_strict',
    '-purpose',
    purpose,
    '-CAfile',
    file(t, typeof bundle === 'string' ? bundle : bundle.pem),
  ];
  if (at !== undefined) args.push('-attime', String(Math.floor(at / 1000)));
  const result = spawnSync('openssl', [...args, file(t, leafPem)], { encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

function text(t: TestCa, pem: string): string {
  const result = spawnSync('openssl', ['x509', '-noout', '-text', '-in', file(t, pem)], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

async function pkcs8Pem(keys: webcrypto.CryptoKeyPair): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({
    format: 'pem',
    type: 'pkcs8',
  }) as string;
}

/** Signs an arbitrary leaf with the CA's own key (unwrapped from the database with the KEK). */
async function forgeWithCaKey(t: TestCa, spiffeId: string): Promise<string> {
  const db = new DatabaseSync(t.databasePath, { readOnly: true });
  const row = db
    .prepare("SELECT generation, slot, wrapped_key, certificate FROM authorities WHERE state = 'active'")
    .get() as {
    generation: number;
    slot: 'A' | 'B';
    wrapped_key: Uint8Array;
    certificate: Uint8Array;
  };
  db.close();
  const pkcs8 = t.kek.unwrap(row.wrapped_key, caKeyContext(row.slot, row.generation));
  const signingKey = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
  ]);
  const caCert = new x509.X509Certificate(row.certificate);
  const leafKeys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: '4a',
      subject: 'O=Rampart',
      issuer: caCert.subject,
      notBefore: new Date(t.clock.now - 60_000),
      notAfter: new Date(t.clock.now + HOUR),
      signingKey,
      publicKey: leafKeys.publicKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }]),
        await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, crypto),
      ],
    },
    crypto,
  );
  return cert.toString('pem');
}

describe('openssl agrees with the CA', () => {
  let t: TestCa;
  let other: TestCa;
  let svid: IssuedSvid;
  before(async () => {
    t = await openTestCa();
    other = await openTestCa(); // another CA, same trust domain
    svid = await t.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
  });
  after(() => {
    t.cleanup();
    other.cleanup();
  });

  test('openssl verify accepts the SVID against the bundle, as client and as server', () => {
    for (const purpose of ['sslclient', 'sslserver']) {
      const result = verify(t, t.ca.bundle(), svid.certificatePem, undefined, purpose);
      assert.ok(result.ok, result.output);
      assert.match(result.output, /: OK\n/);
    }
  });

  test('openssl x509 -text: exactly one URI SAN, CA:FALSE, digitalSignature only, both EKUs', () => {
    const out = text(t, svid.certificatePem);
    assert.equal(out.match(/URI:/g)?.length, 1, out);
    assert.match(out, /URI:spiffe:\/\/shop\.local\/svc\/orders\n/);
    assert.doesNotMatch(out, /DNS:|admin/);
    assert.match(out, /X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/);
    assert.match(out, /X509v3 Key Usage: critical\n\s+Digital Signature\n/);
    assert.match(out, /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication, TLS Web Client Authentication\n/);
    assert.match(out, /Signature Algorithm: ecdsa-with-SHA256/);
  });

  test('openssl x509 -text of the CA: pathlen 0, critical name constraint on the trust domain', () => {
    const out = text(t, t.ca.bundle().pem);
    assert.match(out, /X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0\n/);
    assert.match(out, /X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
    assert.match(out, /X509v3 Name Constraints: critical\n\s+Permitted:\n\s+URI:shop\.local\n/);
    assert.match(out, /URI:spiffe:\/\/shop\.local\n/);
  });

  test('an SVID from another CA is refused', async () => {
    const foreign = await other.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
    const result = verify(t, t.ca.bundle(), foreign.certificatePem);
    assert.equal(result.ok, false);
    assert.match(result.output, /unable to get local issuer certificate/);
    assert.ok(verify(other, other.ca.bundle(), foreign.certificatePem).ok, 'valid against its own bundle');
  });

  test('an expired SVID is refused (issued an hour and more ago through the injectable clock)', async () => {
    const past = await openTestCa({ now: Date.now() - 3 * HOUR });
    try {
      const old = await past.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
      const result = verify(past, past.ca.bundle(), old.certificatePem);
      assert.equal(result.ok, false);
      assert.match(result.output, /certificate has expired/);
      // The same chain at a time inside the SVID's lifetime is fine: expiry is the only reason.
      assert.ok(verify(past, past.ca.bundle(), old.certificatePem, past.clock.now).ok);
    } finally {
      past.cleanup();
    }
  });

  test('the name constraint binds even the CA key: a leaf for another trust domain is refused', async () => {
    const inside = await forgeWithCaKey(t, 'spiffe://shop.local/svc/forged');
    assert.ok(verify(t, t.ca.bundle(), inside).ok, 'the forging path itself yields valid certificates');
    const outside = await forgeWithCaKey(t, 'spiffe://evil.local/svc/orders');
    const result = verify(t, t.ca.bundle(), outside);
    assert.equal(result.ok, false);
    assert.match(result.output, /permitted subtree violation/);
  });
});

describe('openssl across a rotation', () => {
  test('old SVIDs verify during the overlap; after retirement the old root leaves the bundle', async () => {
    const t = await openTestCa({ now: Date.now() - 30 * HOUR });
    try {
      const csr = (await makeCsr()).pem;
      const { prepareAt = 0, activateAt = 0 } = t.ca.status().schedule ?? {};
      await t.ca.tick(prepareAt);
      const published = t.ca.bundle();
      t.clock.now = activateAt - 30 * 60_000;
      const old = await t.ca.issue({ csr, serviceName: 'orders' });
      // Published before it signs: the bundle that trusts the new CA was out before activation, and it
      // already verifies the old CA's SVIDs.
      assert.ok(verify(t, published, old.certificatePem, t.clock.now).ok);
      await t.ca.tick(activateAt);
      t.clock.now = activateAt + 60_000;
      const fresh = await t.ca.issue({ csr, serviceName: 'orders' });
      assert.equal([old.generation, fresh.generation].join(), '1,2');
      const overlap = t.ca.bundle();
      assert.deepEqual(overlap.pem, published.pem, 'activation does not change the bundle');
      const during = t.clock.now;
      assert.ok(verify(t, overlap, old.certificatePem, during).ok, 'old SVID during the overlap');
      assert.ok(verify(t, overlap, fresh.certificatePem, during).ok, 'new SVID');
      // A peer still on the bundle from before the rotation (generation 1 only) would refuse the new
      // SVID: why the successor is published long before it signs.
      const before = verify(t, overlap.authorities[0]?.pem ?? '', fresh.certificatePem, during);
      assert.equal(before.ok, false);
      await t.ca.tick(old.notAfter);
      const retired = t.ca.bundle();
      assert.equal(retired.authorities.length, 1);
      assert.equal(retired.sequence, overlap.sequence + 1);
      // Checked at a time the old SVID was still valid, so the only reason left is the missing root.
      const result = verify(t, retired, old.certificatePem, during);
      assert.equal(result.ok, false);
      assert.match(result.output, /unable to get local issuer certificate/);
      assert.ok(verify(t, retired, fresh.certificatePem, during).ok);
    } finally {
      t.cleanup();
    }
  });
});

describe("Node's TLS agrees: mutual TLS with two SVIDs, SPIFFE IDs checked instead of host names", () => {
  let t: TestCa;
  let other: TestCa;
  before(async () => {
    t = await openTestCa();
    other = await openTestCa();
  });
  after(() => {
    t.cleanup();
    other.cleanup();
  });

  async function credentials(ca: TestCa, serviceName: string) {
    const csr = await makeCsr();
    const issued = await ca.ca.issue({ csr: csr.pem, serviceName });
    return { key: await pkcs8Pem(csr.keys), cert: issued.certificatePem };
  }

  /** Handshake; resolves with the SPIFFE IDs each side saw, or the error. */
  async function handshake(client: { key: string; cert: string } | null, clientCa: string) {
    const server = await credentials(t, 'payments');
    const bundle = t.ca.bundle().pem;
    return new Promise<{ serverSaw?: string; clientSaw?: string; error?: string }>((resolve) => {
      const srv = tls.createServer(
        { ...server, ca: bundle, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
        (socket) => {
          const peer = socket.getPeerX509Certificate();
          socket.end(peer ? svidIdentity(peer, 'shop.local').id : 'none');
        },
      );
      srv.on('tlsClientError', () => undefined);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number };
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ca: clientCa,
          ...(client ?? {}),
          // Node checks host names; Rampart checks the SPIFFE ID of the server instead.
          checkServerIdentity: (_host, cert) => {
            const id = svidIdentity(new NodeX509Certificate(cert.raw), 'shop.local').id;
            return id === 'spiffe://shop.local/svc/payments' ? undefined : new Error(`unexpected server ${id}`);
          },
        });
        let data = '';
        let clientSaw: string | undefined;
        socket.on('secureConnect', () => {
          const peer = socket.getPeerX509Certificate();
          clientSaw = peer ? svidIdentity(peer, 'shop.local').id : undefined;
        });
        socket.on('data', (chunk) => {
          data += chunk;
        });
        socket.on('end', () => {
          srv.close();
          resolve(data ? { serverSaw: data, clientSaw } : { error: 'closed without data' });
        });
        socket.on('error', (err) => {
          srv.close();
          resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message });
        });
      });
    });
  }

  test('two SVIDs of the same CA: both sides see each other’s SPIFFE ID', async () => {
    const result = await handshake(await credentials(t, 'orders'), t.ca.bundle().pem);
    assert.deepEqual(result, {
      serverSaw: 'spiffe://shop.local/svc/orders',
      clientSaw: 'spiffe://shop.local/svc/payments',
    });
  });

  test('a client without a certificate is refused', async () => {
    const result = await handshake(null, t.ca.bundle().pem);
    assert.ok(result.error, JSON.stringify(result));
  });

  test('a client certificate from another CA is refused', async () => {
    const result = await handshake(await credentials(other, 'orders'), t.ca.bundle().pem);
    assert.ok(result.error, JSON.stringify(result));
  });
});
