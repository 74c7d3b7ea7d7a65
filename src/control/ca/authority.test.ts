import assert from 'node:assert/strict';
import { createHash, X509Certificate as NodeX509Certificate, randomBytes, type webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { RampartError } from '../../core/errors.ts';
import { KEK_ERRORS } from '../../core/kek.ts';
import { SPIFFE_ERRORS, svidIdentity } from '../../core/spiffe.ts';
import { openCertificateAuthority } from './authority.ts';
import { CA_ERRORS } from './errors.ts';
import { caKeyContext } from './signing-ca.ts';
import { makeCsr, openTestCa, type TestCa, type TestCsr, testKek } from './testing.ts';
import { crypto, x509 } from './x509.ts';

const TD = 'shop.local';
const HOUR = 3_600_000;

async function codeOf(promise: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    assert.ok(err instanceof RampartError, `not a RampartError: ${String(err)}`);
    return err.code;
  }
  return 'ok';
}

function ext<T>(cert: InstanceType<typeof x509.X509Certificate>, type: new (...args: never[]) => T): T {
  const found = cert.getExtension(type as never) as T | null;
  assert.ok(found, `missing ${type.name}`);
  return found;
}

describe('issuance', () => {
  let t: TestCa;
  let csr: TestCsr;
  before(async () => {
    t = await openTestCa();
    csr = await makeCsr();
  });
  after(() => t.cleanup());

  test('an X509-SVID per the standard, whatever the CSR asked for', async () => {
    const now = t.clock.now;
    const svid = await t.ca.issue({ csr: csr.pem, serviceName: 'orders' });
    const cert = new x509.X509Certificate(svid.certificateDer);
    assert.equal(svid.spiffeId, `spiffe://${TD}/svc/orders`);
    assert.equal(svid.serviceName, 'orders');
    // Exactly one SAN, the URI; the CSR's admin URI and DNS name are ignored.
    const san = ext(cert, x509.SubjectAlternativeNameExtension);
    assert.deepEqual(
      san.names.items.map((n) => [n.type, n.value]),
      [['url', `spiffe://${TD}/svc/orders`]],
    );
    assert.equal(cert.subject, 'O=Rampart');
    const basic = ext(cert, x509.BasicConstraintsExtension);
    assert.equal(basic.ca, false);
    assert.equal(basic.pathLength, undefined);
    assert.equal(basic.critical, true);
    const usage = ext(cert, x509.KeyUsagesExtension);
    assert.equal(usage.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(usage.critical, true);
    assert.deepEqual([...ext(cert, x509.ExtendedKeyUsageExtension).usages].sort(), [
      x509.ExtendedKeyUsage.serverAuth,
      x509.ExtendedKeyUsage.clientAuth,
    ]);
    // Identifiers: SKI from the workload's key, AKI = the CA's SKI.
    const expectedSki = await x509.SubjectKeyIdentifierExtension.create(csr.keys.publicKey, false, crypto);
    assert.equal(ext(cert, x509.SubjectKeyIdentifierExtension).keyId, expectedSki.keyId);
    const caCert = new x509.X509Certificate(svid.bundle.authorities[0]?.pem ?? '');
    assert.equal(
      ext(cert, x509.AuthorityKeyIdentifierExtension).keyId,
      ext(caCert, x509.SubjectKeyIdentifierExtension).keyId,
    );
    assert.equal(cert.extensions.length, 6);
    // Times: backdated 60 s for skew, 1 h TTL (X.509 has one-second resolution).
    const floor = (ms: number) => Math.floor(ms / 1000) * 1000;
    assert.equal(cert.notBefore.getTime(), floor(now - 60_000));
    assert.equal(cert.notAfter.getTime(), floor(now + HOUR));
    assert.equal(svid.notAfter, cert.notAfter.getTime());
    // Serial: the one returned, 16 octets, positive without padding.
    assert.equal(cert.serialNumber, svid.serial);
    assert.match(svid.serial, /^[4-7][0-9a-f]{31}$/);
    // Signed by the bundle's CA, with the workload's own key in it.
    const node = new NodeX509Certificate(svid.certificateDer);
    assert.ok(node.verify(new NodeX509Certificate(svid.bundle.pem).publicKey));
    assert.ok(node.checkIssued(new NodeX509Certificate(svid.bundle.pem)));
    const spki = Buffer.from(await crypto.subtle.exportKey('spki', csr.keys.publicKey));
    assert.deepEqual(node.publicKey.export({ format: 'der', type: 'spki' }), spki);
    // And it passes our own SVID rules.
    assert.equal(svidIdentity(node, TD).id, svid.spiffeId);
    assert.equal(svid.certificatePem, node.toString());
  });

  test('RSA keys also get keyEncipherment; Ed25519 and P-384 keys do not', async () => {
    const rsa = await t.ca.issue({ csr: (await makeCsr({ key: 'rsa2048' })).pem, serviceName: 'orders' });
    const rsaUsage = ext(new x509.X509Certificate(rsa.certificateDer), x509.KeyUsagesExtension).usages;
    assert.equal(rsaUsage, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    for (const key of ['ed25519', 'p384'] as const) {
      const svid = await t.ca.issue({ csr: (await makeCsr({ key })).der, serviceName: 'orders' });
      const usage = ext(new x509.X509Certificate(svid.certificateDer), x509.KeyUsagesExtension).usages;
      assert.equal(usage, x509.KeyUsageFlags.digitalSignature, key);
    }
  });

  test('every issuance is recorded durably, with a unique serial and the key hash', async () => {
    const serials = new Set<string>();
    const issued = await Promise.all(
      Array.from({ length: 40 }, () => t.ca.issue({ csr: csr.pem, serviceName: 'payments' })),
    );
    for (const svid of issued) serials.add(svid.serial);
    assert.equal(serials.size, 40);
    const db = new DatabaseSync(t.databasePath, { readOnly: true });
    try {
      const spki = Buffer.from(await crypto.subtle.exportKey('spki', csr.keys.publicKey));
      for (const svid of issued) {
        const row = db.prepare('SELECT * FROM issuance_log WHERE serial = ?').get(svid.serial) as Record<
          string,
          unknown
        >;
        assert.equal(row.spiffe_id, `spiffe://${TD}/svc/payments`);
        assert.equal(row.not_after, svid.notAfter);
        assert.equal(row.attestation, 'direct');
        assert.equal(row.public_key_sha256, createHash('sha256').update(spki).digest('hex'));
      }
    } finally {
      db.close();
    }
  });

  test('SVIDs never outlive their CA', async () => {
    const s = await openTestCa({ caLifetimeMs: 6 * HOUR });
    try {
      const caNotAfter = s.ca.bundle().authorities[0]?.notAfter ?? 0;
      s.clock.now = caNotAfter - 10 * 60_000; // 10 min left, no tick: no rotation in between
      const svid = await s.ca.issue({ csr: csr.pem, serviceName: 'orders' });
      assert.equal(svid.notAfter, Math.floor(caNotAfter / 1000) * 1000);
      s.clock.now = caNotAfter;
      assert.equal(await codeOf(s.ca.issue({ csr: csr.pem, serviceName: 'orders' })), CA_ERRORS.noActiveCa);
    } finally {
      s.cleanup();
    }
  });

  const badNames = ['', 'Orders', '../admin', 'a/b', 'svc/x', 'x'.repeat(64), 'a b', 'a%2fb', 'ü', '-x', '1x'];
  for (const name of badNames) {
    test(`service name ${JSON.stringify(name)} is refused`, async () => {
      assert.equal(await codeOf(t.ca.issue({ csr: csr.pem, serviceName: name })), CA_ERRORS.serviceName);
    });
  }

  test('bad CSRs are refused before anything is signed', async () => {
    const before = t.ca.status().authorities[0]?.liveSvids;
    assert.equal(await codeOf(t.ca.issue({ csr: 'nope', serviceName: 'orders' })), CA_ERRORS.csrMalformed);
    assert.equal(
      await codeOf(t.ca.issue({ csr: (await makeCsr({ key: 'p521' })).pem, serviceName: 'orders' })),
      CA_ERRORS.csrWeakKey,
    );
    assert.equal(t.ca.status().authorities[0]?.liveSvids, before);
  });
});

describe('join tokens', () => {
  let t: TestCa;
  let csr: TestCsr;
  before(async () => {
    t = await openTestCa();
    csr = await makeCsr();
  });
  after(() => t.cleanup());

  test('a token is ≥ 128 bits of base64url, stored only as a selector and a SHA-256', () => {
    const minted = t.ca.mintJoinToken('orders');
    assert.match(minted.token, /^[A-Za-z0-9_-]{64}$/);
    assert.equal(minted.expiresAt, t.clock.now + 600_000);
    const raw = Buffer.from(minted.token, 'base64url');
    const file = readFileSync(t.databasePath);
    const wal = readFileSync(`${t.databasePath}-wal`);
    for (const content of [file, wal]) {
      assert.equal(content.includes(Buffer.from(minted.token)), false);
      assert.equal(content.includes(raw.subarray(16)), false, 'the secret half is on disk');
    }
    const db = new DatabaseSync(t.databasePath, { readOnly: true });
    try {
      const row = db
        .prepare('SELECT * FROM join_tokens WHERE selector = ?')
        .get(raw.subarray(0, 16).toString('hex')) as {
        token_sha256: Uint8Array;
      };
      assert.deepEqual(Buffer.from(row.token_sha256), createHash('sha256').update(raw).digest());
    } finally {
      db.close();
    }
  });

  test('single use: the first redemption wins, the second is CA_ERR_TOKEN_REUSED', async () => {
    const { token } = t.ca.mintJoinToken('orders');
    const svid = await t.ca.issueWithJoinToken({ token, csr: csr.pem });
    assert.equal(svid.spiffeId, `spiffe://${TD}/svc/orders`);
    assert.equal(await codeOf(t.ca.issueWithJoinToken({ token, csr: csr.pem })), CA_ERRORS.tokenReused);
    assert.equal(await codeOf(() => t.ca.redeemJoinToken(token)), CA_ERRORS.tokenReused);
  });

  test('concurrent redemptions of one token: exactly one SVID', async () => {
    const { token } = t.ca.mintJoinToken('payments');
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => t.ca.issueWithJoinToken({ token, csr: csr.pem })),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1);
    for (const r of results) {
      if (r.status === 'rejected') assert.equal((r.reason as RampartError).code, CA_ERRORS.tokenReused);
    }
  });

  test('the service comes from the token, not from the CSR', async () => {
    const { token } = t.ca.mintJoinToken('catalog');
    const svid = await t.ca.issueWithJoinToken({ token, csr: csr.pem }); // the CSR asks for svc/admin
    assert.equal(svid.serviceName, 'catalog');
    const row = new DatabaseSync(t.databasePath, { readOnly: true });
    try {
      const { attestation } = row.prepare('SELECT attestation FROM issuance_log WHERE serial = ?').get(svid.serial) as {
        attestation: string;
      };
      assert.equal(attestation, 'join-token');
    } finally {
      row.close();
    }
  });

  test('a bad CSR does not burn the token', async () => {
    const { token } = t.ca.mintJoinToken('orders');
    assert.equal(await codeOf(t.ca.issueWithJoinToken({ token, csr: 'garbage' })), CA_ERRORS.csrMalformed);
    assert.equal((await t.ca.issueWithJoinToken({ token, csr: csr.pem })).serviceName, 'orders');
  });

  test('expiry: valid until the last millisecond, then CA_ERR_TOKEN_EXPIRED; used-then-expired is still REUSED', async () => {
    const a = t.ca.mintJoinToken('orders', 10_000);
    const b = t.ca.mintJoinToken('orders', 10_000);
    const c = t.ca.mintJoinToken('orders', 10_000);
    const start = t.clock.now;
    try {
      t.clock.now = start + 9_999;
      assert.equal(t.ca.redeemJoinToken(a.token), 'orders');
      t.clock.now = start + 10_000;
      assert.equal(await codeOf(() => t.ca.redeemJoinToken(b.token)), CA_ERRORS.tokenExpired);
      t.clock.now = start + HOUR;
      assert.equal(await codeOf(() => t.ca.redeemJoinToken(c.token)), CA_ERRORS.tokenExpired);
      assert.equal(await codeOf(() => t.ca.redeemJoinToken(a.token)), CA_ERRORS.tokenReused);
    } finally {
      t.clock.now = start;
    }
  });

  test('hostile tokens', async () => {
    const real = t.ca.mintJoinToken('orders').token;
    const raw = Buffer.from(real, 'base64url');
    const forged = Buffer.concat([raw.subarray(0, 16), randomBytes(32)]).toString('base64url');
    const flipped = Buffer.from(raw);
    flipped[40] = (flipped[40] ?? 0) ^ 1;
    const table: readonly (readonly [string, unknown, string])[] = [
      ['unknown (random, well-formed)', randomBytes(48).toString('base64url'), CA_ERRORS.tokenUnknown],
      ['forged: real selector, other secret', forged, CA_ERRORS.tokenForged],
      ['forged: one bit of the secret flipped', flipped.toString('base64url'), CA_ERRORS.tokenForged],
      ['empty', '', CA_ERRORS.tokenMalformed],
      ['short', real.slice(0, 63), CA_ERRORS.tokenMalformed],
      ['long', `${real}A`, CA_ERRORS.tokenMalformed],
      // The same bytes in standard base64, with a '+' forced in: a random token may contain neither '-' nor
      // '_', and then both alphabets spell it the same (this row was flaky that way).
      ['standard base64 alphabet', `+${raw.toString('base64').slice(1)}`, CA_ERRORS.tokenMalformed],
      ['padded', `${real.slice(0, 62)}==`, CA_ERRORS.tokenMalformed],
      ['with whitespace', ` ${real.slice(1)}`, CA_ERRORS.tokenMalformed],
      ['not a string', 42, CA_ERRORS.tokenMalformed],
      ['a SQL wildcard', '%'.repeat(64), CA_ERRORS.tokenMalformed],
    ];
    for (const [name, token, expected] of table) {
      assert.equal(await codeOf(() => t.ca.redeemJoinToken(token as string)), expected, name);
    }
    // None of those consumed the real token.
    assert.equal(t.ca.redeemJoinToken(real), 'orders');
  });

  test('refusals are 401 with one message for all reasons (the code is for audit)', async () => {
    for (const token of ['', randomBytes(48).toString('base64url')]) {
      try {
        t.ca.redeemJoinToken(token);
        assert.fail('accepted');
      } catch (err) {
        assert.ok(err instanceof RampartError);
        assert.equal(err.status, 401);
        assert.equal(err.message, 'join token refused');
      }
    }
  });

  test('minting validates the service and the TTL', async () => {
    for (const ttl of [0, 999, 24 * HOUR + 1, Number.NaN, 1.5e3 + 0.5]) {
      assert.equal(await codeOf(() => t.ca.mintJoinToken('orders', ttl)), CA_ERRORS.tokenTtl, String(ttl));
    }
    assert.equal(await codeOf(() => t.ca.mintJoinToken('../admin')), CA_ERRORS.serviceName);
  });
});

describe('renewal', () => {
  let t: TestCa;
  let other: TestCa;
  let csr: TestCsr;
  before(async () => {
    t = await openTestCa();
    other = await openTestCa(); // same trust domain, another CA
    csr = await makeCsr();
  });
  after(() => {
    t.cleanup();
    other.cleanup();
  });

  test('the current SVID renews for the same service, in every certificate form', async () => {
    const first = await t.ca.issue({ csr: csr.pem, serviceName: 'orders' });
    for (const peerCertificate of [
      new NodeX509Certificate(first.certificateDer),
      new x509.X509Certificate(first.certificateDer),
      first.certificateDer,
    ]) {
      const next = await t.ca.renew({ peerCertificate, csr: (await makeCsr()).pem });
      assert.equal(next.spiffeId, first.spiffeId);
      assert.notEqual(next.serial, first.serial);
      const db = new DatabaseSync(t.databasePath, { readOnly: true });
      try {
        const row = db.prepare('SELECT attestation, renews_serial FROM issuance_log WHERE serial = ?').get(next.serial);
        assert.deepEqual({ ...row }, { attestation: 'svid', renews_serial: first.serial });
      } finally {
        db.close();
      }
    }
  });

  test('an SVID from another CA of the same trust domain is refused', async () => {
    const foreign = await other.ca.issue({ csr: csr.pem, serviceName: 'orders' });
    assert.equal(
      await codeOf(t.ca.renew({ peerCertificate: foreign.certificateDer, csr: csr.pem })),
      CA_ERRORS.renewalUnknown,
    );
  });

  test('a look-alike with a known serial, identity and key but another signer is refused', async () => {
    const real = await t.ca.issue({ csr: csr.pem, serviceName: 'orders' });
    const attackerKeys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'sign',
    ])) as webcrypto.CryptoKeyPair;
    const realCert = new x509.X509Certificate(real.certificateDer);
    const lookalike = await x509.X509CertificateGenerator.create(
      {
        serialNumber: real.serial,
        subject: realCert.subject,
        issuer: realCert.issuer,
        notBefore: realCert.notBefore,
        notAfter: realCert.notAfter,
        publicKey: realCert.publicKey,
        signingKey: attackerKeys.privateKey,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        extensions: realCert.extensions,
      },
      crypto,
    );
    assert.equal(
      await codeOf(t.ca.renew({ peerCertificate: new Uint8Array(lookalike.rawData), csr: csr.pem })),
      CA_ERRORS.renewalUnknown,
    );
  });

  test('an expired SVID is refused', async () => {
    const svid = await t.ca.issue({ csr: csr.pem, serviceName: 'orders' });
    const start = t.clock.now;
    t.clock.now = svid.notAfter;
    try {
      assert.equal(
        await codeOf(t.ca.renew({ peerCertificate: svid.certificateDer, csr: csr.pem })),
        CA_ERRORS.renewalExpired,
      );
    } finally {
      t.clock.now = start;
    }
  });

  test('a CA certificate or a garbage certificate is refused by the SVID rules', async () => {
    const caPem = t.ca.bundle().authorities[0]?.pem ?? '';
    assert.equal(
      await codeOf(t.ca.renew({ peerCertificate: new NodeX509Certificate(caPem), csr: csr.pem })),
      SPIFFE_ERRORS.notLeaf,
    );
    assert.equal(
      await codeOf(t.ca.renew({ peerCertificate: new Uint8Array([1, 2, 3]), csr: csr.pem })),
      SPIFFE_ERRORS.notX509,
    );
  });
});

describe('sealing and persistence', () => {
  test('state survives a restart: same CA, same bundle sequence, issuance continues', async () => {
    const t = await openTestCa();
    const kek = testKek();
    try {
      await t.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
      const before = t.ca.bundle();
      t.ca.close();
      const reopened = await openCertificateAuthority({
        trustDomain: TD,
        databasePath: t.databasePath,
        kek: t.kek,
        clock: () => t.clock.now,
      });
      try {
        assert.deepEqual(reopened.bundle(), before);
        const svid = await reopened.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
        assert.ok(new NodeX509Certificate(svid.certificateDer).verify(new NodeX509Certificate(before.pem).publicKey));
      } finally {
        reopened.close();
      }
      // Another KEK: the CA stays sealed, with a clear code, never garbage.
      await assert.rejects(
        openCertificateAuthority({ trustDomain: TD, databasePath: t.databasePath, kek, clock: () => t.clock.now }),
        (err: unknown) => {
          assert.ok(err instanceof RampartError);
          assert.equal(err.code, CA_ERRORS.sealed);
          assert.equal(err.message, 'certificate authority is sealed');
          assert.equal((err.cause as RampartError).code, KEK_ERRORS.wrongKey);
          return true;
        },
      );
      // Another trust domain: refused, not silently re-initialized.
      assert.equal(
        await codeOf(
          openCertificateAuthority({ trustDomain: 'other.local', databasePath: t.databasePath, kek: t.kek }),
        ),
        CA_ERRORS.trustDomainMismatch,
      );
    } finally {
      kek.destroy();
      t.cleanup();
    }
  });

  /** Opens the file, runs `mutate` on it, and returns the code of reopening the CA. */
  async function tamper(mutate: (db: DatabaseSync) => void): Promise<{ code: string; cause?: string }> {
    const t = await openTestCa();
    try {
      await t.ca.tick(t.clock.now + 13 * HOUR); // past ½ of 24 h: a second live CA (prepared) to swap with
      t.ca.close();
      const db = new DatabaseSync(t.databasePath);
      mutate(db);
      db.close();
      try {
        const ca = await openCertificateAuthority({ trustDomain: TD, databasePath: t.databasePath, kek: t.kek });
        ca.close();
        return { code: 'ok' };
      } catch (err) {
        assert.ok(err instanceof RampartError);
        return { code: err.code, cause: (err.cause as RampartError | undefined)?.code };
      }
    } finally {
      t.cleanup();
    }
  }

  test('a flipped byte in a wrapped key: sealed (authentication fails)', async () => {
    const result = await tamper((db) => {
      const { wrapped_key } = db.prepare('SELECT wrapped_key FROM authorities WHERE generation = 1').get() as {
        wrapped_key: Uint8Array;
      };
      const changed = Buffer.from(wrapped_key);
      changed[changed.length - 5] = (changed[changed.length - 5] ?? 0) ^ 1;
      db.prepare('UPDATE authorities SET wrapped_key = ? WHERE generation = 1').run(changed);
    });
    assert.deepEqual(result, { code: CA_ERRORS.sealed, cause: KEK_ERRORS.unwrap });
  });

  test("a wrapped key copied into the other slot's row: sealed (the context binds slot and generation)", async () => {
    const result = await tamper((db) => {
      db.exec(
        'UPDATE authorities SET wrapped_key = (SELECT wrapped_key FROM authorities WHERE generation = 2) WHERE generation = 1',
      );
    });
    assert.deepEqual(result, { code: CA_ERRORS.sealed, cause: KEK_ERRORS.unwrap });
  });

  test("a certificate swapped for the other slot's: refused (key and certificate must match)", async () => {
    const result = await tamper((db) => {
      db.exec(
        'UPDATE authorities SET certificate = (SELECT certificate FROM authorities WHERE generation = 2) WHERE generation = 1',
      );
    });
    assert.equal(result.code, CA_ERRORS.keyMismatch);
  });

  test('the stored key is wrapped under the right context and matches the certificate', async () => {
    const t = await openTestCa();
    try {
      const db = new DatabaseSync(t.databasePath, { readOnly: true });
      const row = db.prepare('SELECT wrapped_key, certificate FROM authorities WHERE generation = 1').get() as {
        wrapped_key: Uint8Array;
        certificate: Uint8Array;
      };
      db.close();
      const pkcs8 = t.kek.unwrap(row.wrapped_key, caKeyContext('A', 1));
      const cert = new NodeX509Certificate(row.certificate);
      const { createPrivateKey, createPublicKey } = await import('node:crypto');
      assert.deepEqual(
        createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({
          format: 'der',
          type: 'spki',
        }),
        cert.publicKey.export({ format: 'der', type: 'spki' }),
      );
      assert.equal(Buffer.from(row.wrapped_key).includes(pkcs8), false);
    } finally {
      t.cleanup();
    }
  });
});

describe('configuration and lifecycle', () => {
  const table: readonly (readonly [string, Record<string, unknown>])[] = [
    ['upper-case trust domain', { trustDomain: 'Shop.local' }],
    ['trust domain with a port', { trustDomain: 'shop.local:1' }],
    ['SVID TTL under 1 s', { svidTtlMs: 500 }],
    ['CA lifetime under 6 SVID TTLs', { caLifetimeMs: 5 * HOUR }],
    ['propagation longer than a third of the CA lifetime', { bundlePropagationMs: 9 * HOUR }],
    ['skew not below the SVID TTL', { svidTtlMs: 60_000, caLifetimeMs: HOUR, clockSkewMs: 60_000 }],
    ['negative', { clockSkewMs: -1 }],
    ['not an integer', { svidTtlMs: Number.NaN }],
  ];
  for (const [name, options] of table) {
    test(`refused: ${name}`, async () => {
      assert.equal(
        await codeOf(
          openCertificateAuthority({ trustDomain: TD, databasePath: ':memory:', kek: testKek(), ...options }),
        ),
        CA_ERRORS.config,
      );
    });
  }

  test('after close every call is CA_ERR_CLOSED; close is idempotent', async () => {
    const t = await openTestCa();
    t.ca.close();
    t.ca.close();
    assert.equal(await codeOf(t.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' })), CA_ERRORS.closed);
    assert.equal(await codeOf(() => t.ca.bundle()), CA_ERRORS.closed);
    assert.equal(await codeOf(() => t.ca.mintJoinToken('orders')), CA_ERRORS.closed);
    assert.equal(await codeOf(t.ca.tick()), CA_ERRORS.closed);
    t.cleanup();
  });
});

describe('join-token checks come before costly work', () => {
  test('a forged or unknown token is refused before the CSR is even parsed', async () => {
    const t = await openTestCa();
    try {
      // An unparseable CSR with a bad token: the token is what is reported.
      const real = t.ca.mintJoinToken('orders').token;
      const forged = Buffer.concat([Buffer.from(real, 'base64url').subarray(0, 16), randomBytes(32)]).toString(
        'base64url',
      );
      assert.equal(await codeOf(t.ca.issueWithJoinToken({ token: forged, csr: 'garbage' })), CA_ERRORS.tokenForged);
      assert.equal(
        await codeOf(t.ca.issueWithJoinToken({ token: randomBytes(48).toString('base64url'), csr: 'garbage' })),
        CA_ERRORS.tokenUnknown,
      );
      // A spent token too, and an expired one.
      await t.ca.issueWithJoinToken({ token: real, csr: (await makeCsr()).pem });
      assert.equal(await codeOf(t.ca.issueWithJoinToken({ token: real, csr: 'garbage' })), CA_ERRORS.tokenReused);
      const late = t.ca.mintJoinToken('orders', 1_000);
      t.clock.now += 1_000;
      assert.equal(
        await codeOf(t.ca.issueWithJoinToken({ token: late.token, csr: 'garbage' })),
        CA_ERRORS.tokenExpired,
      );
    } finally {
      t.cleanup();
    }
  });
});
