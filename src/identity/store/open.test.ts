import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { requireService } from '../../../test/helpers/require-service.ts';
import { parseManifest } from '../../config/load.ts';
import { openConfiguredStore } from './open.ts';

const manifest = (store: string) =>
  parseManifest(
    `trustDomain: t.local
gateway: { listen: { host: 127.0.0.1, port: 18080 }, tls: off }
identity:
  builtin: { port: 18444${store} }
services:
  a: { run: /dev/null, routes: [{ path: /a, methods: [GET], auth: none }] }
`,
    '/tmp/identity-store/rampart.yaml',
    { checkFiles: false },
  );

test('the manifest selects the store: SQLite by default, PostgreSQL by URL', () => {
  const sqlite = manifest('').identity;
  assert.ok(sqlite.mode === 'builtin');
  assert.deepEqual(sqlite.store, { kind: 'sqlite' });
  const postgres = manifest(', store: { postgres: "postgres://postgres@127.0.0.1:5432/idp" }').identity;
  assert.ok(postgres.mode === 'builtin');
  assert.deepEqual(postgres.store, { kind: 'postgres', url: 'postgres://postgres@127.0.0.1:5432/idp' });
  for (const bad of [
    ', store: mysql',
    ', store: { postgres: "http://x" }',
    ', store: { postgres: "postgres://x", pool: 3 }',
  ]) {
    assert.throws(() => manifest(bad), { code: 'CFG_ERR_INVALID' }, bad);
  }
});

test('SQLite store: a file in the data directory', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-idp-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await openConfiguredStore({ kind: 'sqlite' }, dir);
  assert.equal(typeof (await store.keysVersion()), 'number');
  await store.close();
  assert.ok(existsSync(join(dir, 'identity.db')));
});

test('PostgreSQL store: opens the named database', async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const database = `rampart_idp_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  t.after(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  });
  const target = new URL(url);
  target.pathname = `/${database}`;
  const store = await openConfiguredStore({ kind: 'postgres', url: target.href }, '/nonexistent');
  assert.equal(typeof (await store.keysVersion()), 'number');
  await store.close();
});
