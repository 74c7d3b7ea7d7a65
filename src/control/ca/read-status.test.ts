import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isRampartError } from '../../core/errors.ts';
import { CA_ERRORS } from './errors.ts';
import { readCaStatus } from './read-status.ts';
import { CA_WARNINGS } from './status.ts';
import { makeCsr, openTestCa } from './testing.ts';

const HOUR = 3_600_000;

describe('readCaStatus (no control plane running)', () => {
  test('is the status the open CA reports, read without the KEK and without writing', async (t) => {
    const test1 = await openTestCa();
    t.after(() => test1.cleanup());
    await test1.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
    await test1.ca.rotateNow();
    const now = test1.clock.now + 1_000;
    const expected = test1.ca.status(now);
    test1.ca.close();

    const digest = () => createHash('sha256').update(readFileSync(test1.databasePath)).digest('hex');
    const before = digest();
    const status = readCaStatus({ databasePath: test1.databasePath, now });
    assert.deepEqual(status, expected);
    assert.equal(status.authorities.length, 2);
    assert.equal(status.authorities[0]?.liveSvids, 1);
    assert.equal(digest(), before, 'the database file is unchanged');
  });

  test('warns like the CA does: an active CA near its end', async (t) => {
    const test1 = await openTestCa();
    t.after(() => test1.cleanup());
    const active = test1.ca.status().authorities[0]!;
    test1.ca.close();
    const late = active.notAfter - HOUR;
    const status = readCaStatus({ databasePath: test1.databasePath, now: late });
    const codes = status.warnings.map((w) => w.code);
    assert.ok(codes.includes(CA_WARNINGS.anchorExpiring), codes.join());
    assert.ok(codes.includes(CA_WARNINGS.rotationOverdue), codes.join());
    const expired = readCaStatus({ databasePath: test1.databasePath, now: active.notAfter + 1 });
    assert.ok(expired.warnings.some((w) => w.code === CA_WARNINGS.expired));
  });

  test('anything but a CA database is CA_ERR_SCHEMA, and is not created', async (t) => {
    const test1 = await openTestCa();
    t.after(() => test1.cleanup());
    test1.ca.close();
    const notDb = join(test1.dir, 'not-a-db');
    writeFileSync(notDb, 'hello, this is not SQLite at all, just text long enough to have a header');
    const rows: [string, string][] = [
      ['missing file', join(test1.dir, 'absent.db')],
      ['text file', notDb],
      ['a directory', test1.dir],
    ];
    for (const [name, path] of rows) {
      assert.throws(
        () => readCaStatus({ databasePath: path }),
        (err) => isRampartError(err, CA_ERRORS.schema),
        name,
      );
    }
    // Another SQLite database (the schema without the CA's version).
    const { DatabaseSync } = await import('node:sqlite');
    const other = join(test1.dir, 'other.db');
    const db = new DatabaseSync(other);
    db.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema_version', '99')");
    db.close();
    assert.throws(
      () => readCaStatus({ databasePath: other }),
      (err) => isRampartError(err, CA_ERRORS.schema),
    );
  });
});
