import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Service } from '../../config/model.ts';
import { isRampartError } from '../../core/errors.ts';
import { SPIFFE_ERRORS } from '../../core/spiffe.ts';
import { type AclManifest, compileSecretsAcl } from './acl.ts';

const service = (name: string, secrets: string[]): Service => ({
  name,
  run: `/x/${name}.ts`,
  routes: [],
  calls: [],
  secrets,
  env: {},
});

const manifest: AclManifest = {
  trustDomain: 'shop.local',
  secrets: {
    'payment-provider-key': { name: 'payment-provider-key', description: '' },
    'db-password': { name: 'db-password', description: '' },
    'catalog-token': { name: 'catalog-token', description: '' },
  },
  services: {
    payments: service('payments', ['payment-provider-key', 'db-password']),
    orders: service('orders', ['db-password']),
    catalog: service('catalog', []),
    // Granted a name the manifest does not declare: the loader refuses this; the ACL ignores it too.
    rogue: service('rogue', ['undeclared-secret']),
  },
};

describe('secrets ACL: deny by default', () => {
  const acl = compileSecretsAcl(manifest);
  const P = 'spiffe://shop.local/svc/payments';
  const table: ReadonlyArray<readonly [string, unknown, unknown, boolean]> = [
    ['granted', P, 'payment-provider-key', true],
    ['granted, second grant', P, 'db-password', true],
    ['granted to another service', 'spiffe://shop.local/svc/orders', 'db-password', true],
    ['declared, not granted to this service', 'spiffe://shop.local/svc/orders', 'payment-provider-key', false],
    ['declared, granted to nobody', P, 'catalog-token', false],
    ['a service with no grants', 'spiffe://shop.local/svc/catalog', 'catalog-token', false],
    ['undeclared name granted in the manifest', 'spiffe://shop.local/svc/rogue', 'undeclared-secret', false],
    ['unknown secret', P, 'nope', false],
    ['unknown service', 'spiffe://shop.local/svc/unknown', 'db-password', false],
    ['another trust domain', 'spiffe://evil.local/svc/payments', 'payment-provider-key', false],
    ['upper-case service', 'spiffe://shop.local/svc/Payments', 'payment-provider-key', false],
    ['upper-case trust domain', 'spiffe://SHOP.local/svc/payments', 'payment-provider-key', false],
    ['trailing slash', `${P}/`, 'payment-provider-key', false],
    ['deeper path', `${P}/x`, 'payment-provider-key', false],
    ['not a service path', 'spiffe://shop.local/payments', 'payment-provider-key', false],
    ['the trust domain itself', 'spiffe://shop.local', 'payment-provider-key', false],
    ['percent-encoded', 'spiffe://shop.local/svc/pay%6dents', 'payment-provider-key', false],
    ['port', 'spiffe://shop.local:443/svc/payments', 'payment-provider-key', false],
    ['scheme case', 'SPIFFE://shop.local/svc/payments', 'payment-provider-key', false],
    ['leading space', ` ${P}`, 'payment-provider-key', false],
    ['NUL suffix', `${P}\0`, 'payment-provider-key', false],
    ['secret name with NUL', P, 'db-password\0', false],
    ['secret name upper case', P, 'DB-PASSWORD', false],
    ['prototype key as caller', '__proto__', 'db-password', false],
    ['prototype key as secret', P, '__proto__', false],
    ['constructor as secret', P, 'constructor', false],
    ['empty caller', '', 'db-password', false],
    ['non-string caller', { toString: () => P }, 'payment-provider-key', false],
    ['non-string secret', P, ['payment-provider-key'], false],
    ['undefined caller', undefined, 'db-password', false],
    ['null secret', P, null, false],
  ];
  for (const [name, caller, secret, allowed] of table) {
    test(name, () => assert.equal(acl.allows(caller, secret), allowed));
  }

  test('grants are listed by SPIFFE ID, sorted, frozen', () => {
    assert.deepEqual(
      [...acl.grants],
      [
        ['spiffe://shop.local/svc/payments', ['db-password', 'payment-provider-key']],
        ['spiffe://shop.local/svc/orders', ['db-password']],
      ],
    );
    assert.ok(Object.isFrozen(acl.grants.get(P)));
  });

  test('an empty manifest grants nothing', () => {
    const empty = compileSecretsAcl({ trustDomain: 'shop.local', services: {}, secrets: {} });
    assert.equal(empty.allows(P, 'db-password'), false);
    assert.equal(empty.grants.size, 0);
  });

  test('a trust domain that cannot form a SPIFFE ID is refused at compile time', () => {
    assert.throws(
      () => compileSecretsAcl({ ...manifest, trustDomain: 'Shop.Local' }),
      (err) => isRampartError(err, SPIFFE_ERRORS.invalidId),
    );
  });
});
