import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { COMPONENTS } from '../launcher/plan.ts';
import { isReservedEnvName, RESERVED_ENV_REGEX_SOURCE, RESERVED_SERVICE_NAMES } from './reserved.ts';

describe('reserved names', () => {
  const pattern = new RegExp(RESERVED_ENV_REGEX_SOURCE, 'u');

  test('the published env pattern and the launcher rule agree on a table', () => {
    const table: [string, boolean][] = [
      ['RAMPART_RUNTIME', true],
      ['RAMPART_', true],
      ['NODE_OPTIONS', true],
      ['NODE_PATH', true],
      ['NODE_ENV', false],
      ['NODE_ENVX', true],
      ['NODE_EXTRA_CA_CERTS', false],
      ['NODE_EXTRA_CA_CERTS_X', true],
      ['NODE_', true],
      ['NODE', false],
      ['LD_PRELOAD', true],
      ['LD_LIBRARY_PATH', true],
      ['DYLD_INSERT_LIBRARIES', true],
      ['OLD_PRELOAD', false],
      ['MY_NODE_OPTIONS', false],
      ['CATALOG_PAGE_SIZE', false],
      ['RAMPART', false],
    ];
    for (const [name, reserved] of table) {
      assert.equal(isReservedEnvName(name), reserved, `launcher: ${name}`);
      assert.equal(pattern.test(name), reserved, `schema: ${name}`);
    }
  });

  test('they agree on every valid variable name', () => {
    const name = fc
      .tuple(
        fc.constantFrom('', 'NODE_', 'RAMPART_', 'LD_', 'DYLD_', 'NODE', 'N', '_'),
        fc.stringMatching(/^[A-Z0-9_]{0,20}$/),
      )
      .map(([prefix, rest]) => prefix + rest)
      .filter((n) => /^[A-Z_][A-Z0-9_]*$/.test(n));
    fc.assert(
      fc.property(name, (n) => {
        assert.equal(pattern.test(n), isReservedEnvName(n), n);
      }),
      { numRuns: 3000 },
    );
  });

  test('service names: every launcher component, and rampart', () => {
    assert.deepEqual([...RESERVED_SERVICE_NAMES].sort(), [...COMPONENTS, 'rampart'].sort());
  });
});
