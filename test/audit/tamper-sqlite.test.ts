import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { openAuditLog } from '../../src/control/audit/log.ts';
import { kekFrom, kekText, ORIGIN, scratchDir } from './helpers.ts';
import { type Pristine, type TamperBackend, tamperSuite } from './tamper-suite.ts';

// The tamper suite on SQLite: the pristine log is one file; each case edits a copy of it.
let pristine: Promise<{ path: string; pristine: Pristine }> | null = null;

const sqlite: TamperBackend = {
  async copy(t, build) {
    pristine ??= (async () => {
      const dir = scratchDir({ after: (fn) => process.on('exit', () => fn()) });
      const path = join(dir, 'audit.db');
      const log = openAuditLog({ path, origin: ORIGIN, kek: kekFrom(kekText()), checkpointIntervalMs: 0 });
      const built = await build(log);
      await log.close();
      assert.equal(existsSync(`${path}-wal`), false, 'closed: everything is in the main file');
      return { path, pristine: built };
    })();
    const ready = await pristine;
    const dir = join(scratchDir(t), 'control');
    mkdirSync(dir);
    const path = join(dir, 'audit.db');
    copyFileSync(ready.path, path);
    return {
      pristine: ready.pristine,
      copy: {
        dir,
        args: ['--data', dir],
        // A connection per statement, closed at once: the verifier then reads a file nobody holds.
        async exec(sql, params = []) {
          const db = new DatabaseSync(path);
          try {
            return db.prepare(sql).all(...(params as SQLInputValue[])) as Record<string, unknown>[];
          } finally {
            db.close();
          }
        },
      },
    };
  },
};

tamperSuite('sqlite', sqlite);
