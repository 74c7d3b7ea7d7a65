/**
 * A real identity provider for tests: KEK in a temporary file, a SQLite (or PostgreSQL) store, the
 * provider on a loopback port, audit events in memory.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { type AuditEmitter, type AuditEvent, createMemoryAudit } from '../../src/identity/audit.ts';
import { createIdentity, type Identity, type IdentityOptions } from '../../src/identity/identity.ts';
import { type IssuerListener, listenIssuer } from '../../src/identity/listen.ts';
import { openKeyFile, type Sealer } from '../../src/identity/sealing.ts';
import { openPostgresStore } from '../../src/identity/store/postgres-store.ts';
import { openSqliteStore } from '../../src/identity/store/sqlite-store.ts';
import type { IdentityStore } from '../../src/identity/store/store.ts';

export const TEST_AUDIENCE = 'https://api.test';
export const TEST_SCOPES = ['orders', 'catalog:write'] as const;

export interface TestKek {
  kek: Sealer;
  dir: string;
  cleanup(): void;
}

export function testKek(): TestKek {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-idp-'));
  const { sealer: kek } = openKeyFile(join(dir, 'kek.key'));
  return {
    kek,
    dir,
    cleanup() {
      kek.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type StoreKind = 'sqlite' | 'postgres';

export interface TestStore {
  store: IdentityStore;
  cleanup(): Promise<void>;
}

/** A fresh store: SQLite in a temporary directory, or a schema of its own in PostgreSQL (dropped at cleanup). */
export async function testStore(kind: StoreKind, dir: string, postgresUrl?: string | null): Promise<TestStore> {
  if (kind === 'sqlite') {
    const store = openSqliteStore({ file: join(dir, `identity-${randomBytes(4).toString('hex')}.db`) });
    return { store, cleanup: () => store.close() };
  }
  if (!postgresUrl) throw new Error('postgres url required');
  const schema = `rampart_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const store = await openPostgresStore({ connectionString: postgresUrl, schema });
  return {
    store,
    async cleanup() {
      await store.close();
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}

export interface TestIdentity {
  identity: Identity;
  issuer: string;
  port: number;
  store: IdentityStore;
  kek: Sealer;
  audit: AuditEmitter & { events: AuditEvent[] };
  close(): Promise<void>;
}

export interface TestIdentityOptions
  extends Partial<Omit<IdentityOptions, 'issuer' | 'store' | 'kek' | 'logger' | 'audit'>> {
  store?: StoreKind;
  postgresUrl?: string | null;
  /** The issuer; default `http://127.0.0.1:<port>`. Another one needs requests with its Host. */
  issuer?: (port: number) => string;
}

export async function startTestIdentity(options: TestIdentityOptions = {}): Promise<TestIdentity> {
  const keks = testKek();
  const stores = await testStore(options.store ?? 'sqlite', keks.dir, options.postgresUrl);
  let handler: RequestListener = (_req, res) => void res.writeHead(503).end();
  const listener: IssuerListener = await listenIssuer((req, res) => handler(req, res), 0);
  const issuer = options.issuer?.(listener.port) ?? `http://127.0.0.1:${listener.port}`;
  const audit = createMemoryAudit();
  const { store: _s, postgresUrl: _p, issuer: _i, ...rest } = options;
  const identity = await createIdentity({
    audience: TEST_AUDIENCE,
    apiScopes: [...TEST_SCOPES],
    keyPollIntervalMs: 0,
    purgeIntervalMs: 0,
    ...rest,
    issuer,
    store: stores.store,
    kek: keks.kek,
    logger: pino({ level: 'silent' }),
    audit,
  });
  handler = identity.handler;
  return {
    identity,
    issuer,
    port: listener.port,
    store: stores.store,
    kek: keks.kek,
    audit,
    async close() {
      await identity.close();
      await listener.close();
      await stores.cleanup();
      keks.cleanup();
    },
  };
}
