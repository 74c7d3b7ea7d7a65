import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InboundPolicy } from '../core/runtime.ts';
import { compileCallerPolicy, SDK_POLICY_INVALID } from './caller-policy.ts';

const ORDERS = 'spiffe://shop.local/svc/orders';
const GATEWAY = 'spiffe://shop.local/svc/gateway';

test('decides: deny by default, methods and canonical patterns per caller', () => {
  const decide = compileCallerPolicy(
    {
      version: 2,
      callers: {
        [ORDERS]: [{ methods: ['POST'], paths: ['/charges'] }],
        [GATEWAY]: [{ methods: ['GET', 'HEAD'], paths: ['/charges/*', '/reports/**'] }],
      },
    },
    'shop.local',
  );
  assert.deepEqual(decide(ORDERS, 'POST', '/charges'), { allowed: true, reason: 'allowed' });
  assert.deepEqual(decide(ORDERS, 'GET', '/charges'), { allowed: false, reason: 'no_rule' });
  assert.deepEqual(decide(ORDERS, 'POST', '/charges/1'), { allowed: false, reason: 'no_rule' });
  assert.deepEqual(decide(GATEWAY, 'GET', '/charges/1'), { allowed: true, reason: 'allowed' });
  assert.deepEqual(decide(GATEWAY, 'HEAD', '/reports/a/b'), { allowed: true, reason: 'allowed' });
  assert.deepEqual(decide('spiffe://shop.local/svc/catalog', 'POST', '/charges'), {
    allowed: false,
    reason: 'unknown_caller',
  });
  assert.deepEqual(decide('__proto__', 'POST', '/charges'), { allowed: false, reason: 'unknown_caller' });
  assert.deepEqual(compileCallerPolicy({ version: 0, callers: {} })(ORDERS, 'GET', '/'), {
    allowed: false,
    reason: 'unknown_caller',
  });
});

test('a malformed policy is refused whole (SDK_ERR_POLICY_INVALID), whatever part is wrong', () => {
  const rule = { methods: ['POST'], paths: ['/charges'] };
  const cases: [string, unknown][] = [
    ['null', null],
    ['an array', []],
    ['a string', 'allow all'],
    ['no version', { callers: {} }],
    ['a negative version', { version: -1, callers: {} }],
    ['a fractional version', { version: 1.5, callers: {} }],
    ['a string version', { version: '2', callers: {} }],
    ['no callers', { version: 1 }],
    ['callers as an array', { version: 1, callers: [[ORDERS, [rule]]] }],
    ['rules not an array', { version: 1, callers: { [ORDERS]: rule } }],
    ['a caller that is not a SPIFFE ID', { version: 1, callers: { orders: [rule] } }],
    ['a caller of another trust domain', { version: 1, callers: { 'spiffe://evil.local/svc/orders': [rule] } }],
    ['a caller with a query', { version: 1, callers: { [`${ORDERS}?x`]: [rule] } }],
    ['a rule that is null', { version: 1, callers: { [ORDERS]: [null] } }],
    ['methods missing', { version: 1, callers: { [ORDERS]: [{ paths: ['/charges'] }] } }],
    ['a lower-case method', { version: 1, callers: { [ORDERS]: [{ methods: ['post'], paths: ['/charges'] }] } }],
    ['an unknown method', { version: 1, callers: { [ORDERS]: [{ methods: ['CONNECT'], paths: ['/'] }] } }],
    ['a method that is a number', { version: 1, callers: { [ORDERS]: [{ methods: [1], paths: ['/'] }] } }],
    ['paths as a string', { version: 1, callers: { [ORDERS]: [{ methods: ['GET'], paths: '/charges' }] } }],
    ['a relative path', { version: 1, callers: { [ORDERS]: [{ methods: ['GET'], paths: ['charges'] }] } }],
    ['a dot segment', { version: 1, callers: { [ORDERS]: [{ methods: ['GET'], paths: ['/a/../charges'] }] } }],
    ['an encoded slash', { version: 1, callers: { [ORDERS]: [{ methods: ['GET'], paths: ['/a%2Fb'] }] } }],
    ['** in the middle', { version: 1, callers: { [ORDERS]: [{ methods: ['GET'], paths: ['/**/x'] }] } }],
    ['a path that is a number', { version: 1, callers: { [ORDERS]: [{ methods: ['GET'], paths: [7] }] } }],
    [
      'too many rules',
      { version: 1, callers: { [ORDERS]: Array.from({ length: 10_001 }, () => ({ methods: ['GET'], paths: ['/'] })) } },
    ],
    [
      'too many patterns in a rule',
      {
        version: 1,
        callers: { [ORDERS]: [{ methods: ['GET'], paths: Array.from({ length: 1_001 }, (_, i) => `/p${i}`) }] },
      },
    ],
  ];
  for (const [what, policy] of cases) {
    assert.throws(() => compileCallerPolicy(policy as InboundPolicy, 'shop.local'), { code: SDK_POLICY_INVALID }, what);
  }
});
