import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { RampartError } from '../../core/errors.ts';
import { type AuthorityRow, CA_SCHEMA_VERSION, CaStore, type IssuanceRow, openCaDatabase } from './database.ts';
import { CA_ERRORS } from './errors.ts';
import { newSerial } from './serial.ts';

const dir = mkdtempSync(join(tmpdir(), 'rampart-ca-db-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const freshPath = () => join(dir, `ca-${counter++}.db`);

function authority(generation: number, slot: 'A' | 'B', state: AuthorityRow['state']): AuthorityRow {
  return {
    generation,
    slot,
    state,
    certificate: new Uint8Array([1]),
    wrappedKey: state === 'retired' ? null : new Uint8Array([2]),
    notBefore: 0,
    notAfter: 1_000,
    createdAt: 0,
    publishedSequence: generation,
    activateAt: null,
    forced: false,
    activatedAt: null,
    retiringAt: null,
    retiredAt: null,
  };
}

function issuance(generation: number, serial = newSerial()): IssuanceRow {
  return {
    serial,
    generation,
    spiffeId: 'spiffe://shop.local/svc/orders',
    notBefore: 0,
    notAfter: 500,
    publicKeySha256: 'ab'.repeat(32),
    issuedAt: 0,
    attestation: 'direct',
    renewsSerial: null,
  };
}

describe('CA database', () => {
  test('pragmas are set explicitly: WAL, synchronous=FULL, foreign keys, secure delete', () => {
    const db = openCaDatabase(freshPath());
    try {
      assert.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal');
      assert.equal((db.prepare('PRAGMA synchronous').get() as { synchronous: number }).synchronous, 2); // FULL
      assert.equal((db.prepare('PRAGMA foreign_keys').get() as { foreign_keys: number }).foreign_keys, 1);
      assert.equal((db.prepare('PRAGMA secure_delete').get() as { secure_delete: number }).secure_delete, 1);
    } finally {
      db.close();
    }
  });

  test('the database and its WAL are created owner-only (0600)', () => {
    const path = freshPath();
    const previous = process.umask(0);
    let db: DatabaseSync;
    try {
      db = openCaDatabase(path);
    } finally {
      process.umask(previous);
    }
    try {
      for (const file of [path, `${path}-wal`, `${path}-shm`]) assert.equal(statSync(file).mode & 0o777, 0o600, file);
    } finally {
      db.close();
    }
  });

  test('a database from a newer schema is refused', () => {
    const path = freshPath();
    openCaDatabase(path).close();
    const raw = new DatabaseSync(path);
    raw.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(String(CA_SCHEMA_VERSION + 1));
    raw.close();
    assert.throws(
      () => openCaDatabase(path),
      (err: unknown) => err instanceof RampartError && err.code === CA_ERRORS.schema,
    );
  });

  test('the database itself refuses a third live CA, two active, two prepared or a slot used twice', () => {
    const store = new CaStore(openCaDatabase(freshPath()));
    try {
      store.insertAuthority(authority(1, 'A', 'retiring'));
      store.insertAuthority(authority(2, 'B', 'active'));
      assert.throws(() => store.insertAuthority(authority(3, 'A', 'prepared')), /UNIQUE/);
      assert.throws(() => store.insertAuthority(authority(3, 'B', 'prepared')), /UNIQUE/);
      store.insertAuthority(authority(3, 'A', 'retired'));
      store.insertAuthority(authority(4, 'B', 'retired'));
      assert.throws(
        () => store.insertAuthority({ ...authority(5, 'A', 'retired'), wrappedKey: new Uint8Array([1]) }),
        /CHECK/,
      );
      assert.throws(() => store.insertAuthority({ ...authority(5, 'A', 'active'), wrappedKey: null }), /CHECK/);
    } finally {
      store.close();
    }
  });

  test('serials are unique; a CA that no longer signs records nothing', () => {
    const store = new CaStore(openCaDatabase(freshPath()));
    try {
      store.insertAuthority(authority(1, 'A', 'retired'));
      store.insertAuthority(authority(2, 'B', 'active'));
      const row = issuance(2);
      assert.deepEqual(store.recordIssuances([row]), [true]);
      assert.deepEqual(store.recordIssuances([{ ...row }]), [false], 'duplicate serial');
      assert.deepEqual(
        store.recordIssuances([issuance(1), issuance(2), issuance(7)]),
        [false, true, false],
        'retired and unknown generations record nothing; the rest of the batch does',
      );
      assert.throws(() => store.recordIssuances([{ ...issuance(2), serial: 'short' }]), /CHECK/);
      assert.equal(store.lastLeafNotAfter(2), 500);
      assert.equal(store.lastLeafNotAfter(1), null);
    } finally {
      store.close();
    }
  });

  test('consuming a join token is atomic across connections and threads: exactly one winner', async () => {
    const path = freshPath();
    const store = new CaStore(openCaDatabase(path));
    store.insertJoinToken('sel', new Uint8Array(32), 'orders', 0, Number.MAX_SAFE_INTEGER);
    store.close();
    const THREADS = 6;
    const barrier = new Int32Array(new SharedArrayBuffer(4));
    // Each worker opens its own connection, waits until all are ready, then consumes with the store's
    // own statement.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { DatabaseSync } = require('node:sqlite');
      import(workerData.module).then(({ CaStore }) => {
        const db = new DatabaseSync(workerData.path);
        db.exec('PRAGMA busy_timeout = 10000');
        const store = new CaStore(db);
        Atomics.add(workerData.barrier, 0, 1);
        while (Atomics.load(workerData.barrier, 0) < workerData.threads) Atomics.wait(workerData.barrier, 0, Atomics.load(workerData.barrier, 0), 5);
        const won = store.consumeJoinToken('sel', 1);
        store.close();
        parentPort.postMessage(won);
      });
    `;
    const module = new URL('./database.ts', import.meta.url).href;
    const results = await Promise.all(
      Array.from(
        { length: THREADS },
        () =>
          new Promise<string | null>((resolve, reject) => {
            const worker = new Worker(code, { eval: true, workerData: { path, barrier, threads: THREADS, module } });
            worker.once('message', resolve);
            worker.once('error', reject);
          }),
      ),
    );
    assert.deepEqual(
      results.filter((r) => r !== null),
      ['orders'],
    );
    const check = new CaStore(openCaDatabase(path));
    try {
      assert.equal(check.consumeJoinToken('sel', 2), null);
    } finally {
      check.close();
    }
  });
});

describe('serials', () => {
  test('16 octets, positive, never a leading zero octet', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const serial = newSerial(() => bytes);
        assert.match(serial, /^[4-7][0-9a-f]{31}$/);
        // Everything but the two fixed bits comes from the random source.
        assert.equal(serial.slice(2), Buffer.from(bytes).toString('hex').slice(2));
        assert.equal(Number.parseInt(serial.slice(0, 2), 16) & 0x3f, (bytes[0] ?? 0) & 0x3f);
      }),
    );
    const many = new Set(Array.from({ length: 10_000 }, () => newSerial()));
    assert.equal(many.size, 10_000);
  });
});
