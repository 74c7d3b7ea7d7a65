import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { type AuditLog, type AuditLogOptions, openAuditLog } from '../../src/control/audit/log.ts';
import {
  openPostgresAuditLog,
  type PostgresAuditLog,
  type PostgresAuditLogOptions,
} from '../../src/control/audit/postgres-log.ts';
import { type AuditEvent, createAuditEvent } from '../../src/core/audit-event.ts';
import { type Kek, loadKek } from '../../src/core/kek.ts';
import { requireService } from '../helpers/require-service.ts';

/** The part of node:test's context the helpers need. */
export interface After {
  after(fn: () => unknown): void;
}

/** A private scratch directory removed when the test ends. */
export function scratchDir(t: After, prefix = 'rampart-audit-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A random KEK in base64, as RAMPART_KEK would hold it. */
export function kekText(): string {
  return randomBytes(32).toString('base64');
}

export function kekFrom(text: string): Kek {
  return loadKek({ env: 'KEK', environment: { KEK: text } });
}

export const ORIGIN = 'shop.local/rampart/audit';

/** Opens a log in `dir` (closed when the test ends unless already closed). */
export function openTestLog(t: After, dir: string, options: Partial<AuditLogOptions> = {}): AuditLog {
  const log = openAuditLog({
    path: join(dir, 'audit.db'),
    origin: ORIGIN,
    kek: options.kek ?? kekFrom(kekText()),
    checkpointIntervalMs: 0,
    ...options,
  });
  t.after(() => log.close().catch(() => {}));
  return log;
}

const ACTIONS = ['http.request', 'secret.read', 'svid.issue', 'login.password'] as const;
const DECISIONS = ['allow', 'deny', 'error'] as const;

/** A plausible event, varied by `n`. */
export function sampleEvent(n: number, time = Date.UTC(2026, 2, 1) + n * 1_000): AuditEvent {
  return createAuditEvent(
    {
      component: n % 5 === 0 ? 'secrets' : 'gateway',
      action: ACTIONS[n % ACTIONS.length]!,
      decision: DECISIONS[n % DECISIONS.length]!,
      reason: n % 3 === 1 ? 'GW_ERR_TOKEN_EXPIRED' : undefined,
      resource: `/orders/${n}`,
      actor:
        n % 2 === 0
          ? { subject: `user-${n % 7}` }
          : { spiffeId: 'spiffe://shop.local/svc/orders', clientId: 'shop-web' },
      requestId: `req-${n}`,
      detail: { status: n % 2 === 0 ? 200 : 403, method: 'GET' },
    },
    { now: () => time },
  );
}

/**
 * A fresh PostgreSQL database on the machine's server (RAMPART_TEST_POSTGRES_URL), dropped when the test
 * ends; null when the server is unreachable (the test is skipped, or fails under CI=true).
 */
export async function postgresDatabase(t: TestContext): Promise<string | null> {
  const server = await requireService(t, 'postgres');
  if (server === null) return null;
  const name = `rampart_audit_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  t.after(async () => {
    const drop = new pg.Client({ connectionString: server });
    await drop.connect();
    try {
      // WITH (FORCE): a connection a failed test left open must not keep the database alive.
      await drop.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await drop.end();
    }
  });
  const url = new URL(server);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Opens a PostgreSQL log in `url` (closed when the test ends unless already closed). */
export async function openTestPostgresLog(
  t: After,
  url: string,
  options: Partial<PostgresAuditLogOptions> = {},
): Promise<PostgresAuditLog> {
  const log = await openPostgresAuditLog({
    postgres: { connectionString: url },
    origin: ORIGIN,
    kek: options.kek ?? kekFrom(kekText()),
    checkpointIntervalMs: 0,
    ...options,
  });
  t.after(() => log.close().catch(() => {}));
  return log;
}
