import assert from 'node:assert/strict';
import { X509Certificate as NodeX509Certificate, type webcrypto } from 'node:crypto';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import { crypto, x509 } from '../control/ca/x509.ts';
import { RampartError } from './errors.ts';
import {
  MAX_SPIFFE_ID_BYTES,
  parseSpiffeId,
  parseTrustDomain,
  SPIFFE_ERRORS,
  SPIFFE_ID_REASONS,
  serviceNameOf,
  serviceSpiffeId,
  svidIdentity,
} from './spiffe.ts';

const R = SPIFFE_ID_REASONS;

function outcome(fn: () => { id: string } | string): string {
  try {
    const value = fn();
    return typeof value === 'string' ? value : value.id;
  } catch (err) {
    assert.ok(err instanceof RampartError, `not a RampartError: ${String(err)}`);
    if (err.code === SPIFFE_ERRORS.invalidId) return `reason:${String(err.detail?.reason)}`;
    return err.code;
  }
}

describe('parseSpiffeId', () => {
  const ok = (id: string) => [id, id] as const;
  const bad = (id: string, reason: string) => [id, `reason:${reason}`] as const;
  const table: readonly (readonly [string, string])[] = [
    ok('spiffe://shop.local/svc/orders'),
    ok('spiffe://shop.local'),
    ok('spiffe://a/b'),
    ok('spiffe://td_1-x.y/Path.With-Mixed_Case/0'),
    ok('spiffe://shop.local/...'),
    ok('spiffe://shop.local/.a/a.'),
    ok(`spiffe://${'a'.repeat(255)}/x`),
    bad('', R.scheme),
    bad('spiffe:', R.scheme),
    bad('spiffe:/td/x', R.scheme),
    bad('SPIFFE://td/x', R.scheme),
    bad('Spiffe://td/x', R.scheme),
    bad('https://td/x', R.scheme),
    bad(' spiffe://td/x', R.nonAscii),
    bad('spiffe://td/x ', R.nonAscii),
    bad('spiffe://td/x\n', R.nonAscii),
    bad('spiffe://td/ü', R.nonAscii),
    bad('spiffe://tḋ/x', R.nonAscii),
    bad('spiffe://', R.trustDomainEmpty),
    bad('spiffe:///x', R.trustDomainEmpty),
    bad('spiffe://TD/x', R.trustDomainChar),
    bad('spiffe://Shop.local/x', R.trustDomainChar),
    bad('spiffe://td!/x', R.trustDomainChar),
    bad('spiffe://user@td/x', R.userinfo),
    bad('spiffe://td:8443/x', R.port),
    bad('spiffe://td:/x', R.port),
    bad('spiffe://[::1]/x', R.trustDomainChar),
    bad('spiffe://td?x=1', R.queryOrFragment),
    bad('spiffe://td#frag', R.queryOrFragment),
    bad('spiffe://td/x?y', R.queryOrFragment),
    bad('spiffe://td/x#y', R.queryOrFragment),
    bad('spiffe://t%64/x', R.percentEncoding),
    bad('spiffe://td/%61', R.percentEncoding),
    bad('spiffe://td/svc%2Forders', R.percentEncoding),
    bad('spiffe://td/', R.emptySegment),
    bad('spiffe://td/x/', R.emptySegment),
    bad('spiffe://td//x', R.emptySegment),
    bad('spiffe://td/.', R.dotSegment),
    bad('spiffe://td/../x', R.dotSegment),
    bad('spiffe://td/x/./y', R.dotSegment),
    bad('spiffe://td/x/..', R.dotSegment),
    bad('spiffe://td/x~y', R.pathChar),
    bad('spiffe://td/x:y', R.pathChar),
    bad('spiffe://td/x@y', R.pathChar),
    bad('spiffe://td/x,URI:spiffe://td/admin', R.pathChar),
    bad('spiffe://td/x\\y', R.pathChar),
    bad(`spiffe://${'a'.repeat(256)}/x`, R.trustDomainTooLong),
    bad(`spiffe://td/${'a'.repeat(MAX_SPIFFE_ID_BYTES)}`, R.tooLong),
  ];
  for (const [input, expected] of table) {
    test(JSON.stringify(input.length > 60 ? `${input.slice(0, 60)}…` : input), () => {
      assert.equal(
        outcome(() => parseSpiffeId(input)),
        expected,
      );
    });
  }

  test('exactly 2048 bytes is accepted, 2049 is not', () => {
    const head = 'spiffe://td/';
    assert.equal(parseSpiffeId(head + 'a'.repeat(MAX_SPIFFE_ID_BYTES - head.length)).id.length, 2048);
    assert.equal(
      outcome(() => parseSpiffeId(head + 'a'.repeat(MAX_SPIFFE_ID_BYTES - head.length + 1))),
      `reason:${R.tooLong}`,
    );
  });

  test('non-strings are refused', () => {
    assert.equal(
      outcome(() => parseSpiffeId(42 as unknown as string)),
      `reason:${R.type}`,
    );
  });

  test('property: whatever parses is in the grammar and round-trips', () => {
    const grammar = /^spiffe:\/\/[a-z0-9._-]{1,255}(\/(?!\.\.?(\/|$))[A-Za-z0-9._-]+)*$/;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `spiffe://${s}`),
          fc
            .array(fc.constantFrom('a', 'Z', '0', '.', '-', '_', '/', '%', ':', '@', '?', '#', '..', 'ü'), {
              maxLength: 30,
            })
            .map((parts) => `spiffe://td${parts.join('')}`),
        ),
        (input) => {
          let id: ReturnType<typeof parseSpiffeId>;
          try {
            id = parseSpiffeId(input);
          } catch (err) {
            assert.ok(err instanceof RampartError && err.code === SPIFFE_ERRORS.invalidId);
            return;
          }
          assert.match(input, grammar);
          assert.equal(id.id, input);
          assert.equal(`spiffe://${id.trustDomain}${id.path}`, input);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('trust domains and service IDs', () => {
  test('parseTrustDomain', () => {
    assert.equal(parseTrustDomain('shop.local'), 'shop.local');
    for (const bad of ['', 'Shop.local', 'shop.local:1', 'a@b', 'a/b', 'a'.repeat(256)]) {
      assert.equal(outcome(() => parseTrustDomain(bad)).startsWith('reason:'), true, bad);
    }
  });

  test('serviceSpiffeId builds /svc/<name> from valid names only', () => {
    assert.equal(serviceSpiffeId('shop.local', 'orders').id, 'spiffe://shop.local/svc/orders');
    for (const bad of ['', 'Orders', '../x', 'a/b', 'a.b', '-a', '1a', 'a'.repeat(64), 'a b']) {
      assert.match(
        outcome(() => serviceSpiffeId('shop.local', bad)),
        /^reason:/,
        bad,
      );
    }
    assert.match(
      outcome(() => serviceSpiffeId('Shop', 'orders')),
      /^reason:/,
    );
  });

  test('serviceNameOf', () => {
    const cases: readonly (readonly [string, string | null])[] = [
      ['spiffe://td/svc/orders', 'orders'],
      ['spiffe://td/svc/orders/x', null],
      ['spiffe://td/svc/Orders', null],
      ['spiffe://td/svc', null],
      ['spiffe://td/svcx/orders', null],
      ['spiffe://td/other/orders', null],
      ['spiffe://td', null],
    ];
    for (const [id, name] of cases) assert.equal(serviceNameOf(parseSpiffeId(id)), name, id);
  });
});

describe('svidIdentity', () => {
  const TD = 'shop.local';
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  let issuerKeys: webcrypto.CryptoKeyPair;
  let leafKeys: webcrypto.CryptoKeyPair;
  before(async () => {
    issuerKeys = (await crypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    leafKeys = (await crypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  });

  const KU = x509.KeyUsageFlags;
  type Ext = InstanceType<typeof x509.Extension>;
  const basic = (ca = false, pathLen?: number) => new x509.BasicConstraintsExtension(ca, pathLen, true);
  const usage = (flags = KU.digitalSignature, critical = true) => new x509.KeyUsagesExtension(flags, critical);
  const eku = (...purposes: string[]) =>
    new x509.ExtendedKeyUsageExtension(
      purposes.length ? purposes : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    );
  const san = (...names: [string, string][]) =>
    new x509.SubjectAlternativeNameExtension(names.map(([type, value]) => ({ type, value }) as never));
  const uri = (value: string) => san(['url', value]);

  async function cert(extensions: Ext[]) {
    return x509.X509CertificateGenerator.create(
      {
        serialNumber: '01',
        subject: 'O=Test',
        issuer: 'O=Test CA',
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 3_600_000),
        signingKey: issuerKeys.privateKey,
        publicKey: leafKeys.publicKey,
        signingAlgorithm: alg,
        extensions,
      },
      crypto,
    );
  }
  const good = () => [basic(), usage(), eku(), uri(`spiffe://${TD}/svc/orders`)];

  const table: readonly (readonly [string, () => Ext[], string])[] = [
    ['a valid leaf', good, `spiffe://${TD}/svc/orders`],
    [
      'a valid leaf with a DNS SAN beside the URI (allowed by X509-SVID §2)',
      () => [basic(), usage(), eku(), san(['dns', 'orders.local'], ['url', `spiffe://${TD}/svc/orders`])],
      `spiffe://${TD}/svc/orders`,
    ],
    [
      'key usage with keyEncipherment and keyAgreement as well',
      () => [
        basic(),
        usage(KU.digitalSignature | KU.keyEncipherment | KU.keyAgreement),
        eku(),
        uri(`spiffe://${TD}/svc/x`),
      ],
      `spiffe://${TD}/svc/x`,
    ],
    ['no SAN extension', () => [basic(), usage(), eku()], SPIFFE_ERRORS.noUriSan],
    ['only a DNS SAN', () => [basic(), usage(), eku(), san(['dns', 'orders.local'])], SPIFFE_ERRORS.noUriSan],
    [
      'two SPIFFE URI SANs',
      () => [basic(), usage(), eku(), san(['url', `spiffe://${TD}/svc/orders`], ['url', `spiffe://${TD}/svc/admin`])],
      SPIFFE_ERRORS.multipleUriSans,
    ],
    [
      'a SPIFFE URI SAN and an https one',
      () => [basic(), usage(), eku(), san(['url', `spiffe://${TD}/svc/orders`], ['url', 'https://shop.local/'])],
      SPIFFE_ERRORS.multipleUriSans,
    ],
    [
      'the URI SAN has another scheme',
      () => [basic(), usage(), eku(), uri('https://shop.local/svc/orders')],
      SPIFFE_ERRORS.badSpiffeId,
    ],
    [
      'upper-case scheme',
      () => [basic(), usage(), eku(), uri('SPIFFE://shop.local/svc/orders')],
      SPIFFE_ERRORS.badSpiffeId,
    ],
    [
      'upper-case trust domain',
      () => [basic(), usage(), eku(), uri('spiffe://SHOP.local/svc/orders')],
      SPIFFE_ERRORS.badSpiffeId,
    ],
    ['dot segments', () => [basic(), usage(), eku(), uri(`spiffe://${TD}/svc/../admin`)], SPIFFE_ERRORS.badSpiffeId],
    [
      'percent-encoding',
      () => [basic(), usage(), eku(), uri(`spiffe://${TD}/svc/%6Frders`)],
      SPIFFE_ERRORS.badSpiffeId,
    ],
    ['userinfo', () => [basic(), usage(), eku(), uri(`spiffe://admin@${TD}/svc/orders`)], SPIFFE_ERRORS.badSpiffeId],
    ['port', () => [basic(), usage(), eku(), uri(`spiffe://${TD}:443/svc/orders`)], SPIFFE_ERRORS.badSpiffeId],
    ['query', () => [basic(), usage(), eku(), uri(`spiffe://${TD}/svc/orders?x`)], SPIFFE_ERRORS.badSpiffeId],
    [
      'a URI that renders like two names in text (", URI:")',
      () => [basic(), usage(), eku(), uri(`spiffe://${TD}/svc/orders, URI:spiffe://${TD}/svc/admin`)],
      SPIFFE_ERRORS.badSpiffeId,
    ],
    ['an empty URI', () => [basic(), usage(), eku(), uri('')], SPIFFE_ERRORS.badSpiffeId],
    [
      'the trust domain ID itself (no path)',
      () => [basic(), usage(), eku(), uri(`spiffe://${TD}`)],
      SPIFFE_ERRORS.noPath,
    ],
    [
      'another trust domain',
      () => [basic(), usage(), eku(), uri('spiffe://evil.local/svc/orders')],
      SPIFFE_ERRORS.trustDomain,
    ],
    [
      'a suffix of the trust domain',
      () => [basic(), usage(), eku(), uri('spiffe://local/svc/orders')],
      SPIFFE_ERRORS.trustDomain,
    ],
    [
      'a CA certificate used as a leaf',
      () => [basic(true, 0), usage(KU.keyCertSign | KU.cRLSign), uri(`spiffe://${TD}/svc/orders`)],
      SPIFFE_ERRORS.notLeaf,
    ],
    [
      'cA true with a leaf key usage',
      () => [basic(true), usage(), eku(), uri(`spiffe://${TD}/svc/orders`)],
      SPIFFE_ERRORS.notLeaf,
    ],
    [
      'cA false but a pathLen',
      () => [basic(false, 0), usage(), eku(), uri(`spiffe://${TD}/svc/orders`)],
      SPIFFE_ERRORS.notLeaf,
    ],
    ['no basic constraints', () => [usage(), eku(), uri(`spiffe://${TD}/svc/orders`)], SPIFFE_ERRORS.notLeaf],
    [
      'keyCertSign on a cA=false certificate',
      () => [basic(), usage(KU.digitalSignature | KU.keyCertSign), eku(), uri(`spiffe://${TD}/svc/orders`)],
      SPIFFE_ERRORS.notLeaf,
    ],
    [
      'cRLSign on a cA=false certificate',
      () => [basic(), usage(KU.digitalSignature | KU.cRLSign), eku(), uri(`spiffe://${TD}/svc/orders`)],
      SPIFFE_ERRORS.notLeaf,
    ],
    ['no key usage', () => [basic(), eku(), uri(`spiffe://${TD}/svc/orders`)], SPIFFE_ERRORS.keyUsage],
    [
      'key usage without digitalSignature',
      () => [basic(), usage(KU.keyEncipherment), eku(), uri(`spiffe://${TD}/svc/orders`)],
      SPIFFE_ERRORS.keyUsage,
    ],
    [
      'key usage not critical',
      () => [basic(), usage(KU.digitalSignature, false), eku(), uri(`spiffe://${TD}/svc/orders`)],
      SPIFFE_ERRORS.keyUsage,
    ],
    ['no EKU', () => [basic(), usage(), uri(`spiffe://${TD}/svc/orders`)], SPIFFE_ERRORS.extendedKeyUsage],
    [
      'EKU serverAuth only',
      () => [basic(), usage(), eku(x509.ExtendedKeyUsage.serverAuth), uri(`spiffe://${TD}/svc/orders`)],
      SPIFFE_ERRORS.extendedKeyUsage,
    ],
    [
      'EKU clientAuth only',
      () => [basic(), usage(), eku(x509.ExtendedKeyUsage.clientAuth), uri(`spiffe://${TD}/svc/orders`)],
      SPIFFE_ERRORS.extendedKeyUsage,
    ],
    [
      'two SAN extensions, one URI each',
      () => [basic(), usage(), eku(), uri(`spiffe://${TD}/svc/orders`), uri(`spiffe://${TD}/svc/admin`)],
      SPIFFE_ERRORS.duplicateExtension,
    ],
    [
      'two basic constraints extensions',
      () => [basic(), basic(true), usage(), eku(), uri(`spiffe://${TD}/svc/orders`)],
      SPIFFE_ERRORS.duplicateExtension,
    ],
  ];
  for (const [name, extensions, expected] of table) {
    test(name, async () => {
      const issued = await cert(extensions());
      assert.equal(
        outcome(() => svidIdentity(issued, TD)),
        expected,
      );
      // Node's X509Certificate and raw DER give the same answer.
      const der = new Uint8Array(issued.rawData);
      assert.equal(
        outcome(() => svidIdentity(new NodeX509Certificate(der), TD)),
        expected,
      );
      assert.equal(
        outcome(() => svidIdentity(der, TD)),
        expected,
      );
    });
  }

  test('CA checks come before name checks: a CA certificate with a good name is refused as a CA', async () => {
    const issued = await cert([basic(true, 0), usage(KU.keyCertSign), eku(), uri(`spiffe://${TD}/svc/orders`)]);
    assert.equal(
      outcome(() => svidIdentity(issued, TD)),
      SPIFFE_ERRORS.notLeaf,
    );
  });

  test('garbage, truncated DER and unsupported inputs are CA_ERR_SVID_NOT_X509', async () => {
    const der = new Uint8Array((await cert(good())).rawData);
    for (const input of [
      new Uint8Array(0),
      new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]),
      der.subarray(0, der.length - 10),
      Buffer.from('-----BEGIN CERTIFICATE-----'),
      { nope: true } as never,
    ]) {
      assert.equal(
        outcome(() => svidIdentity(input, TD)),
        SPIFFE_ERRORS.notX509,
      );
    }
  });

  test('errors are 401 with a fixed message', async () => {
    try {
      svidIdentity(await cert([basic(), usage(), eku()]), TD);
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof RampartError);
      assert.equal(err.status, 401);
      assert.equal(err.message, 'certificate is not a valid SVID');
    }
  });
});
