import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RampartError } from '../../core/errors.ts';
import { SPIFFE_ERRORS, svidIdentity } from '../../core/spiffe.ts';
import { CA_ERRORS } from './errors.ts';
import { makeCsr, openTestCa, type TestCa } from './testing.ts';
import { x509 } from './x509.ts';

const HOUR = 3_600_000;

function code(err: unknown): string {
  return err instanceof RampartError ? err.code : String(err);
}

let counter = 0;
function openssl(t: TestCa, args: string[], pems: Record<string, string>) {
  const files = Object.fromEntries(
    Object.entries(pems).map(([name, pem]) => {
      const path = join(t.dir, `edge-${counter++}-${name}.pem`);
      writeFileSync(path, pem);
      return [name, path];
    }),
  );
  const resolved = args.map((arg) => (arg.startsWith('@') ? (files[arg.slice(1)] as string) : arg));
  const result = spawnSync('openssl', resolved, { encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

describe('edge certificate profile', () => {
  let t: TestCa;
  before(async () => {
    t = await openTestCa({ now: Date.UTC(2026, 5, 1) });
  });
  after(() => t.cleanup());

  test('carries exactly the names, serverAuth only, cA=false, digitalSignature, no URI SAN', async () => {
    const csr = await makeCsr();
    const issued = await t.ca.issueEdgeCertificate({
      csr: csr.pem,
      names: ['LocalHost', '127.0.0.1', '::1', 'shop.example.test', 'localhost'],
    });
    const cert = new x509.X509Certificate(issued.certificateDer);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    assert.deepEqual(
      san?.names.items.map((n) => [n.type, n.value]),
      [
        ['dns', 'localhost'],
        ['ip', '127.0.0.1'],
        ['ip', '::1'],
        ['dns', 'shop.example.test'],
      ],
    );
    const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
    assert.deepEqual([...(eku?.usages ?? [])], [x509.ExtendedKeyUsage.serverAuth]);
    const basic = cert.getExtension(x509.BasicConstraintsExtension);
    assert.equal(basic?.ca, false);
    assert.equal(basic?.critical, true);
    const usage = cert.getExtension(x509.KeyUsagesExtension);
    assert.equal(usage?.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(usage?.critical, true);
    // Names in the CSR (a SPIFFE ID, admin.local, a CA flag) are ignored.
    const node = new NodeX509Certificate(issued.certificatePem);
    assert.equal(node.checkHost('admin.local'), undefined);
    assert.equal(node.ca, false);
    assert.throws(() => svidIdentity(node, 'shop.local'));
    assert.equal(issued.notAfter - issued.notBefore, t.ca.settings.edgeCertificateTtlMs + t.ca.settings.clockSkewMs);
    assert.ok(node.checkIssued(new NodeX509Certificate(issued.bundle.pem)));
  });

  test('openssl verifies it against the bundle as an SSL server for its name, and not as a client', async () => {
    const csr = await makeCsr();
    const issued = await t.ca.issueEdgeCertificate({ csr: csr.pem, names: ['localhost', '127.0.0.1'] });
    const at = String(Math.floor(t.clock.now / 1000));
    const base = ['verify', '-x509_strict', '-attime', at, '-CAfile', '@bundle'];
    const pems = { bundle: issued.bundle.pem, leaf: issued.certificatePem };
    const server = openssl(t, [...base, '-purpose', 'sslserver', '-verify_hostname', 'localhost', '@leaf'], pems);
    assert.ok(server.ok, server.output);
    const ip = openssl(t, [...base, '-purpose', 'sslserver', '-verify_ip', '127.0.0.1', '@leaf'], pems);
    assert.ok(ip.ok, ip.output);
    const otherHost = openssl(t, [...base, '-purpose', 'sslserver', '-verify_hostname', 'evil.test', '@leaf'], pems);
    assert.equal(otherHost.ok, false, 'a name it was not issued for');
    const client = openssl(t, [...base, '-purpose', 'sslclient', '@leaf'], pems);
    assert.equal(client.ok, false, 'serverAuth only: never a client certificate');
    const later = String(Math.floor((issued.notAfter + 1_000) / 1000));
    const expired = openssl(t, ['verify', '-attime', later, '-CAfile', '@bundle', '@leaf'], pems);
    assert.equal(expired.ok, false);
  });

  test('is journaled: its CA stays in the bundle until it expires, and it cannot renew an SVID', async () => {
    const csr = await makeCsr();
    const issued = await t.ca.issueEdgeCertificate({ csr: csr.pem, names: ['localhost'] });
    const status = t.ca.status();
    assert.ok(status.authorities.some((a) => a.generation === issued.generation && a.liveSvids > 0));
    await assert.rejects(
      t.ca.renew({ peerCertificate: new NodeX509Certificate(issued.certificatePem), csr: (await makeCsr()).pem }),
      (err) => code(err) === SPIFFE_ERRORS.extendedKeyUsage,
    );
  });

  test('an edge certificate is not a bundle holder: a forced rotation need not wait for it', async () => {
    const own = await openTestCa({ now: Date.UTC(2026, 5, 1) });
    try {
      await own.ca.issueEdgeCertificate({ csr: (await makeCsr()).pem, names: ['localhost'] });
      own.clock.now += 1_000;
      const rotation = await own.ca.rotateNow();
      assert.equal(rotation.activated, true);
    } finally {
      own.cleanup();
    }
  });

  test('RSA keys get keyEncipherment as well', async () => {
    const issued = await t.ca.issueEdgeCertificate({
      csr: (await makeCsr({ key: 'rsa2048' })).pem,
      names: ['localhost'],
    });
    const usage = new x509.X509Certificate(issued.certificateDer).getExtension(x509.KeyUsagesExtension);
    assert.equal(usage?.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
  });

  const hostileNames: [string, unknown[]][] = [
    ['no names', []],
    ['wildcard', ['*.example.test']],
    ['partial wildcard', ['w*.example.test']],
    ['bare wildcard', ['*']],
    ['trailing dot', ['localhost.']],
    ['leading dot', ['.example.test']],
    ['double dot', ['a..example.test']],
    ['underscore', ['_srv.example.test']],
    ['space', ['local host']],
    ['unicode', ['bücher.example']],
    ['URI', ['spiffe://shop.local/svc/gateway']],
    ['URL', ['https://localhost']],
    ['host:port', ['localhost:8443']],
    ['email', ['root@localhost']],
    ['label of 64', [`${'a'.repeat(64)}.test`]],
    ['name over 253', [Array.from({ length: 40 }, () => 'abcdefg').join('.')]],
    ['hyphen at a label edge', ['-bad.example.test']],
    ['numeric last label (short IPv4)', ['127.1']],
    ['IPv4 with leading zeros', ['127.000.000.001']],
    ['IPv6 zone', ['fe80::1%eth0']],
    ['NUL', ['local\u0000host']],
    ['newline', ['localhost\nevil.test']],
    ['not a string', [42]],
    ['null', [null]],
    ['empty', ['']],
    ['too many', Array.from({ length: 17 }, (_, i) => `n${i}.example.test`)],
  ];
  for (const [name, names] of hostileNames) {
    test(`refuses names: ${name}`, async () => {
      const csr = await makeCsr();
      await assert.rejects(
        t.ca.issueEdgeCertificate({ csr: csr.pem, names: names as string[] }),
        (err) => code(err) === CA_ERRORS.edgeName,
      );
    });
  }

  test('refuses a bad CSR with the CSR codes, before signing anything', async () => {
    await assert.rejects(
      t.ca.issueEdgeCertificate({ csr: 'not a csr', names: ['localhost'] }),
      (err) => code(err) === CA_ERRORS.csrMalformed,
    );
  });

  test('lifetime is cut at the active CA expiry and settings are validated', async () => {
    const short = await openTestCa({
      now: Date.UTC(2026, 5, 1),
      caLifetimeMs: 6 * HOUR,
      svidTtlMs: HOUR,
      edgeCertificateTtlMs: HOUR,
    });
    try {
      short.clock.now += 5.5 * HOUR;
      // Rotation has not run (no tick): the active CA has half an hour left.
      const issued = await short.ca.issueEdgeCertificate({ csr: (await makeCsr()).pem, names: ['localhost'] });
      assert.ok(issued.notAfter <= Date.UTC(2026, 5, 1) + 6 * HOUR);
    } finally {
      short.cleanup();
    }
    await assert.rejects(openTestCa({ edgeCertificateTtlMs: 500 }), (err) => code(err) === CA_ERRORS.config);
    await assert.rejects(
      openTestCa({ caLifetimeMs: 24 * HOUR, edgeCertificateTtlMs: 5 * HOUR }),
      (err) => code(err) === CA_ERRORS.config,
    );
    await assert.rejects(
      openTestCa({ edgeCertificateTtlMs: 30_000 }),
      (err) => code(err) === CA_ERRORS.config,
      'the clock skew (60 s) must be below the lifetime',
    );
  });
});
