/**
 * SVID issuance rate of the certificate authority (issue 4 goal: ≥ 500/s). Not a test:
 * `node --conditions=rampart-source bench/ca-issuance.bench.ts [seconds] [concurrency] [signing threads]`.
 * Without a thread count it measures both: in this thread (0) and `auto` (one per core, up to 4).
 *
 * Each issuance is the whole path a renewal takes: parse the PEM CSR, check its key, verify its
 * signature, sign the leaf, and record it in the issuance log in a file-backed SQLite database with
 * WAL and synchronous=FULL (one durable commit per SVID). CSRs are generated up front (the workload's
 * cost, not the CA's); a pool of distinct CSRs is cycled so nothing is cached.
 */
import { randomBytes, type webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CertificateAuthority, openCertificateAuthority } from '../src/control/ca/index.ts';
import { crypto, x509 } from '../src/control/ca/x509.ts';
import { loadKek } from '../src/core/kek.ts';

const seconds = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 8);
const threadModes: (number | 'auto')[] =
  process.argv[4] === undefined ? [0, 'auto'] : [process.argv[4] === 'auto' ? 'auto' : Number(process.argv[4])];
const CSR_POOL = 64;

const dir = mkdtempSync(join(tmpdir(), 'rampart-ca-bench-'));
const kek = loadKek({ env: 'KEK', environment: { KEK: randomBytes(32).toString('base64') } });

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

async function run(ca: CertificateAuthority, durationMs: number): Promise<number> {
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
  for (const [index, signingThreads] of threadModes.entries()) {
    const ca = await openCertificateAuthority({
      trustDomain: 'bench.local',
      databasePath: join(dir, `ca-${index}.db`),
      kek,
      signingThreads,
    });
    try {
      await run(ca, 1_000); // warm up the JIT (and start the signing threads)
      const start = performance.now();
      const cpu = process.cpuUsage();
      const issued = await run(ca, seconds * 1_000);
      const elapsed = (performance.now() - start) / 1_000;
      const used = process.cpuUsage(cpu);
      // CPU time of the whole process (all threads, SQLite) per SVID: on a shared machine the
      // wall-clock rate depends on the neighbours, this much less.
      const cpuMs = (used.user + used.system) / 1_000 / issued;
      process.stdout.write(
        `SVID issuance, signing threads ${signingThreads} (= ${ca.settings.signingThreads}): ` +
          `${issued} SVIDs in ${elapsed.toFixed(2)} s = ${(issued / elapsed).toFixed(0)} SVIDs/s ` +
          `(goal ≥ 500/s); CPU ${cpuMs.toFixed(2)} ms per SVID; ` +
          `concurrency ${concurrency}, P-256 CSRs, WAL + synchronous=FULL, ` +
          `${availableParallelism()} cores, load average ${loadavg()[0]?.toFixed(2)}\n`,
      );
    } finally {
      ca.close();
    }
  }
} finally {
  kek.destroy();
  rmSync(dir, { recursive: true, force: true });
}
