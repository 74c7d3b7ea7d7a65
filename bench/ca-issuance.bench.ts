/**
 * SVID issuance rate of the certificate authority (issue 4 goal: ≥ 500/s). Not a test:
 * `node --conditions=rampart-source bench/ca-issuance.bench.ts [seconds] [concurrency]`.
 *
 * Each issuance is the whole path a renewal takes: parse the PEM CSR, check its key, verify its
 * signature, sign the leaf, and record it in the issuance log in a file-backed SQLite database with
 * WAL and synchronous=FULL (one durable commit per SVID). CSRs are generated up front (the workload's
 * cost, not the CA's); a pool of distinct CSRs is cycled so nothing is cached.
 */
import { randomBytes, type webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCertificateAuthority } from '../src/control/ca/index.ts';
import { crypto, x509 } from '../src/control/ca/x509.ts';
import { loadKek } from '../src/core/kek.ts';

const seconds = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 8);
const CSR_POOL = 64;

const dir = mkdtempSync(join(tmpdir(), 'rampart-ca-bench-'));
const kek = loadKek({ env: 'KEK', environment: { KEK: randomBytes(32).toString('base64') } });
const ca = await openCertificateAuthority({ trustDomain: 'bench.local', databasePath: join(dir, 'ca.db'), kek });

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const csrs: string[] = [];
for (let i = 0; i < CSR_POOL; i++) {
  const keys = (await crypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: 'CN=bench', keys, signingAlgorithm: alg },
    crypto,
  );
  csrs.push(csr.toString('pem'));
}

async function run(durationMs: number): Promise<number> {
  let issued = 0;
  const deadline = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = worker; performance.now() < deadline; i += concurrency) {
        await ca.issue({ csr: csrs[i % CSR_POOL] as string, serviceName: `svc-${i % 16}` });
        issued++;
      }
    }),
  );
  return issued;
}

try {
  await run(1_000); // warm up the JIT
  const start = performance.now();
  const cpu = process.cpuUsage();
  const issued = await run(seconds * 1_000);
  const elapsed = (performance.now() - start) / 1_000;
  const used = process.cpuUsage(cpu);
  // CPU time of this process (main thread, libuv pool doing the ECDSA work, SQLite) per SVID: on a
  // shared machine the wall-clock rate depends on the neighbours, this does not.
  const cpuMs = (used.user + used.system) / 1_000 / issued;
  process.stdout.write(
    `SVID issuance: ${issued} SVIDs in ${elapsed.toFixed(2)} s = ${(issued / elapsed).toFixed(0)} SVIDs/s ` +
      `(concurrency ${concurrency}, P-256 CSRs, WAL + synchronous=FULL; goal ≥ 500/s); ` +
      `CPU ${cpuMs.toFixed(2)} ms per SVID = ${(1_000 / cpuMs).toFixed(0)} SVIDs per CPU-second; ` +
      `load average ${(await import('node:os')).loadavg()[0]?.toFixed(2)}\n`,
  );
} finally {
  ca.close();
  kek.destroy();
  rmSync(dir, { recursive: true, force: true });
}
