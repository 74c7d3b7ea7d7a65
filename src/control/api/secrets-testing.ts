import { createLogger } from '../../core/logger.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { compileSecretsAcl } from '../secrets/acl.ts';
import type { AuditSink, SecretsAuditEvent } from '../secrets/audit.ts';
import { openSecretsService, type SecretsService } from '../secrets/service.ts';
import { openSqliteSecretsStore } from '../secrets/sqlite-store.ts';
import { createSecretsRoutes } from './secrets-routes.ts';
import { type ApiRefusal, type ControlApi, createControlApi } from './server.ts';
import { createServerCertificate, type ServerCertificate } from './server-certificate.ts';
import type { CurrentSvid } from './svid-source.ts';
import { createWorkloadKey } from './workload-key.ts';

/**
 * Test support for the served secrets (route tests, SDK tests, the benchmark): a control plane API in
 * process with a real CA, the secrets routes over an in-memory (or file) SQLite store, and an audit sink
 * that records events and can be made to fail. Not used at run time.
 */

/** Records events; `fail` makes every append reject (the audit log is down). */
export class TestAuditSink implements AuditSink {
  events: SecretsAuditEvent[] = [];
  fail = false;
  async append(event: SecretsAuditEvent): Promise<void> {
    if (this.fail) throw new Error('audit log down');
    this.events.push(structuredClone(event));
  }
  /** Events of services' reads: `<decision>:<reason>:<actor SPIFFE ID>`. */
  reads(): string[] {
    return this.events
      .filter((e) => e.action === 'secret.read')
      .map((e) => `${e.decision}:${e.reason}:${(e.actor as { spiffeId?: string } | undefined)?.spiffeId ?? '-'}`);
  }
}

export interface SecretsTestPlane {
  url: string;
  trustDomain: string;
  testCa: TestCa;
  api: ControlApi;
  secrets: SecretsService;
  audit: TestAuditSink;
  refusals: ApiRefusal[];
  /** A client certificate and key for `service`, issued by the plane's CA. */
  credentialsFor(service: string): Promise<{ cert: string; key: string }>;
  /** The same as a workload's current SVID. */
  svidFor(service: string): Promise<CurrentSvid>;
  close(): Promise<void>;
}

export const OPERATOR = { subject: 'test-operator' } as const;

/**
 * Starts the plane. `grants` maps service names to the secrets the manifest lets them read (trust
 * domain `shop.local`); `database` defaults to `:memory:`.
 */
export async function startSecretsTestPlane(
  grants: Record<string, string[]>,
  options: { database?: string; audit?: AuditSink } = {},
): Promise<SecretsTestPlane> {
  const testCa = await openTestCa();
  const trustDomain = testCa.ca.trustDomain;
  const names = [...new Set(Object.values(grants).flat())];
  const acl = compileSecretsAcl({
    trustDomain,
    secrets: Object.fromEntries(names.map((name) => [name, { name, description: '' }])),
    services: Object.fromEntries(
      Object.entries(grants).map(([name, secrets]) => [
        name,
        { name, run: '/x.ts', routes: [], calls: [], secrets, env: {} },
      ]),
    ),
  });
  const audit = new TestAuditSink();
  const secrets = await openSecretsService({
    store: openSqliteSecretsStore({ path: options.database ?? ':memory:' }),
    kek: testCa.kek,
    audit: options.audit ?? audit,
    acl,
    auditTimeoutMs: 1_000,
  });
  const logger = createLogger({ name: 'control', level: 'silent' });
  const refusals: ApiRefusal[] = [];
  let api: ControlApi | null = null;
  const certificate: ServerCertificate = await createServerCertificate({
    ca: testCa.ca,
    logger,
    onRenewed: () => api?.refreshTls(),
  });
  api = createControlApi({
    ca: testCa.ca,
    launcherCredential: 'l'.repeat(43),
    credentials: () => certificate.current(),
    logger,
    onRefusal: (refusal) => refusals.push(refusal),
    routes: [createSecretsRoutes({ secrets, trustDomain })],
  });
  const port = await api.listen(0);
  const svidFor = async (service: string): Promise<CurrentSvid> => {
    const key = await createWorkloadKey();
    const svid = await testCa.ca.issue({ csr: key.csrPem, serviceName: service });
    return {
      spiffeId: svid.spiffeId,
      keyPem: key.keyPem,
      certificatePem: svid.certificatePem,
      notBefore: svid.notBefore,
      notAfter: svid.notAfter,
      bundlePem: svid.bundle.pem,
      bundleSequence: svid.bundle.sequence,
    };
  };
  const plane: SecretsTestPlane = {
    url: `https://127.0.0.1:${port}`,
    trustDomain,
    testCa,
    api,
    secrets,
    audit,
    refusals,
    svidFor,
    async credentialsFor(service) {
      const svid = await svidFor(service);
      return { cert: svid.certificatePem, key: svid.keyPem };
    },
    async close() {
      certificate.close();
      await api?.close();
      await secrets.close();
      testCa.cleanup();
    },
  };
  return plane;
}
