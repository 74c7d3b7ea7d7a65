import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import pg from 'pg';
import { openPostgresAuditLog } from '../../src/control/audit/postgres-log.ts';
import { requireService } from '../helpers/require-service.ts';
import { kekFrom, kekText, ORIGIN, scratchDir } from './helpers.ts';
import { type Pristine, type TamperBackend, tamperSuite } from './tamper-suite.ts';

/**
 * The tamper suite on the machine's PostgreSQL: the pristine log is built once in a database of its
 * own (dropped at the end); each case tampers with a copy of its tables in a schema of its own.
 */

const TABLES = ['meta', 'entries', 'tree_nodes', 'checkpoints', 'signing_keys'];
let database: { server: string; name: string } | null = null;
let pristine: Promise<{ url: string; pristine: Pristine }> | null = null;

after(async () => {
  if (database === null) return;
  const admin = new pg.Client({ connectionString: database.server });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${database.name} WITH (FORCE)`);
  await admin.end();
});

const numbered = (sql: string) => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};

const postgres: TamperBackend = {
  async copy(t, build) {
    const server = await requireService(t, 'postgres');
    if (server === null) return null;
    pristine ??= (async () => {
      const name = `rampart_audit_tamper_${randomBytes(6).toString('hex')}`;
      const admin = new pg.Client({ connectionString: server });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      await admin.end();
      database = { server, name };
      const url = new URL(server);
      url.pathname = `/${name}`;
      const log = await openPostgresAuditLog({
        postgres: { connectionString: url.toString() },
        origin: ORIGIN,
        kek: kekFrom(kekText()),
        checkpointIntervalMs: 0,
      });
      const built = await build(log);
      await log.close();
      return { url: url.toString(), pristine: built };
    })();
    const ready = await pristine;
    const schema = `tamper_${randomBytes(6).toString('hex')}`;
    const client = new pg.Client({ connectionString: ready.url });
    await client.connect();
    t.after(() => client.end());
    await client.query(`CREATE SCHEMA ${schema}`);
    for (const table of TABLES) {
      await client.query(`CREATE TABLE ${schema}.${table} (LIKE rampart_audit.${table} INCLUDING ALL)`);
      await client.query(`INSERT INTO ${schema}.${table} SELECT * FROM rampart_audit.${table}`);
    }
    await client.query(`SET search_path TO ${schema}`);
    return {
      pristine: ready.pristine,
      copy: {
        dir: scratchDir(t),
        args: ['--postgres', ready.url, '--schema', schema],
        async exec(sql, params = []) {
          return (await client.query(numbered(sql), params)).rows;
        },
      },
    };
  },
};

tamperSuite('postgres', postgres);
