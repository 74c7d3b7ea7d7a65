import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  OPERATOR_FILES,
  processAlive,
  readControlEndpoint,
  readOperatorCredential,
  removeOperatorFiles,
  writeControlEndpoint,
  writeOperatorCredential,
} from './operator-access.ts';

function dataDir(t: import('node:test').TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-operator-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('operator access files', () => {
  test('the credential is random, 256 bits, written 0600, and replaced at every start', (t) => {
    const dir = dataDir(t);
    const first = writeOperatorCredential(dir);
    const file = join(dir, OPERATOR_FILES.credential);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(first, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(readOperatorCredential(dir), first);
    const second = writeOperatorCredential(dir);
    assert.notEqual(second, first);
    assert.equal(readOperatorCredential(dir), second);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test('the endpoint round-trips; both files are removed at shutdown', (t) => {
    const dir = dataDir(t);
    assert.equal(readControlEndpoint(dir), null);
    assert.equal(readOperatorCredential(dir), null);
    writeControlEndpoint(dir, { pid: 4242, port: 8443, trustDomain: 'shop.local' });
    writeOperatorCredential(dir);
    assert.deepEqual(readControlEndpoint(dir), { pid: 4242, port: 8443, trustDomain: 'shop.local' });
    removeOperatorFiles(dir);
    assert.ok(!existsSync(join(dir, OPERATOR_FILES.endpoint)));
    assert.ok(!existsSync(join(dir, OPERATOR_FILES.credential)));
    removeOperatorFiles(dir); // twice is fine
  });

  test('a planted temporary file or link is not written through', (t) => {
    const dir = dataDir(t);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'keep');
    symlinkSync(victim, join(dir, `${OPERATOR_FILES.credential}.${process.pid}.tmp`));
    writeOperatorCredential(dir);
    assert.equal(readFileSync(victim, 'utf8'), 'keep');
  });

  test('hostile endpoint files are refused, never read as "nothing runs"', (t) => {
    const rows: [string, string][] = [
      ['not json', '{pid: 1'],
      ['array', '[1, 2, 3]'],
      ['null', 'null'],
      ['no pid', '{"port":1,"trustDomain":"shop.local"}'],
      ['pid zero', '{"pid":0,"port":1,"trustDomain":"shop.local"}'],
      ['pid negative (a process group for kill)', '{"pid":-1,"port":1,"trustDomain":"shop.local"}'],
      ['pid string', '{"pid":"1","port":1,"trustDomain":"shop.local"}'],
      ['pid fraction', '{"pid":1.5,"port":1,"trustDomain":"shop.local"}'],
      ['port zero', '{"pid":1,"port":0,"trustDomain":"shop.local"}'],
      ['port too large', '{"pid":1,"port":65536,"trustDomain":"shop.local"}'],
      ['trust domain with a path', '{"pid":1,"port":1,"trustDomain":"shop.local/x"}'],
      ['trust domain upper case', '{"pid":1,"port":1,"trustDomain":"SHOP.local"}'],
      ['trust domain number', '{"pid":1,"port":1,"trustDomain":7}'],
      ['oversized', `{"pid":1,"port":1,"trustDomain":"shop.local","x":"${'a'.repeat(10_000)}"}`],
    ];
    for (const [name, content] of rows) {
      const dir = dataDir(t);
      writeFileSync(join(dir, OPERATOR_FILES.endpoint), content);
      assert.throws(() => readControlEndpoint(dir), RangeError, name);
    }
    const linked = dataDir(t);
    writeFileSync(join(linked, 'elsewhere.json'), '{"pid":1,"port":1,"trustDomain":"shop.local"}');
    symlinkSync(join(linked, 'elsewhere.json'), join(linked, OPERATOR_FILES.endpoint));
    assert.throws(() => readControlEndpoint(linked), { code: 'ELOOP' });
  });

  test('malformed credentials are refused', (t) => {
    for (const content of ['', 'short', `${'a'.repeat(42)}!`, 'a'.repeat(44), `${'a'.repeat(20)} ${'a'.repeat(22)}`]) {
      const dir = dataDir(t);
      writeFileSync(join(dir, OPERATOR_FILES.credential), content, { mode: 0o600 });
      assert.throws(() => readOperatorCredential(dir), RangeError, JSON.stringify(content));
    }
  });

  test('processAlive: this process is, an exited one is not', () => {
    assert.equal(processAlive(process.pid), true);
    const child = spawnSync(process.execPath, ['-e', '0']);
    assert.equal(child.status, 0);
    assert.equal(processAlive(child.pid!), false);
  });
});
