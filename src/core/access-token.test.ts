import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';
import {
  ACCESS_TOKEN_ALGORITHMS,
  type AccessTokenVerifier,
  type AccessTokenVerifierOptions,
  CLOCK_SKEW_SECONDS,
  createAccessTokenVerifier,
  hasDuplicateMembers,
  MAX_TOKEN_LENGTH,
  TOKEN_REASON_CODES,
  TOKEN_REASONS,
} from './access-token.ts';
import { isRampartError } from './errors.ts';
import { JWKS_DEFAULTS } from './jwks.ts';

const AUDIENCE = 'https://api.test';
const b64 = (text: string | Uint8Array) => Buffer.from(text).toString('base64url');

interface Signer {
  alg: string;
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function makeSigner(alg: string, kid: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, use: 'sig' } };
}

/** WebCrypto parameters for signing raw bytes with each allowed algorithm. */
const SUBTLE: Record<string, Parameters<typeof crypto.subtle.sign>[0]> = {
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
  EdDSA: { name: 'Ed25519' },
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
  PS256: { name: 'RSA-PSS', saltLength: 32 },
};

/**
 * Signs exact header and payload texts (duplicates, odd spacing and all): what SignJWT cannot produce.
 * The signature is WebCrypto's, over the JWS signing input (RFC 7515 §5.1).
 */
async function signRaw(signer: Signer, headerText: string, payloadText: string): Promise<string> {
  const input = `${b64(headerText)}.${b64(payloadText)}`;
  const signature = await crypto.subtle.sign(SUBTLE[signer.alg]!, signer.privateKey, new TextEncoder().encode(input));
  return `${input}.${b64(new Uint8Array(signature))}`;
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('access-token verifier', () => {
  let server: Server;
  let base: string;
  let published: JWK[] = [];
  let fetches = 0;
  let down = false;
  let clock = 0;
  let es: Signer;
  let ed: Signer;
  let rs: Signer;
  let ps: Signer;
  const seconds = () => Math.floor(clock / 1000);

  before(async () => {
    [es, ed, rs, ps] = await Promise.all([
      makeSigner('ES256', 'es'),
      makeSigner('EdDSA', 'ed'),
      makeSigner('RS256', 'rs'),
      makeSigner('PS256', 'ps'),
    ]);
    server = createServer((req, res) => {
      if (req.url !== '/jwks') return void res.writeHead(404).end();
      fetches++;
      if (down) return void res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  let hits: boolean[] = [];
  const make = (options: Partial<AccessTokenVerifierOptions> = {}): AccessTokenVerifier => {
    clock = 1_700_000_000_000;
    fetches = 0;
    down = false;
    hits = [];
    published = [es.jwk, ed.jwk, rs.jwk, { ...ps.jwk, alg: 'PS256' }];
    return createAccessTokenVerifier({
      issuer: base,
      audience: AUDIENCE,
      jwksUri: `${base}/jwks`,
      now: () => clock,
      onCacheLookup: (hit) => hits.push(hit),
      ...options,
    });
  };

  const claims = (extra: Record<string, unknown> = {}) => ({
    iss: base,
    aud: AUDIENCE,
    sub: 'user-1',
    client_id: 'web',
    scope: 'orders profile',
    iat: seconds(),
    exp: seconds() + 300,
    ...extra,
  });
  const mint = (extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}, signer = es) =>
    new SignJWT(claims(extra))
      .setProtectedHeader({ alg: signer.alg, typ: 'at+jwt', kid: signer.kid, ...header })
      .sign(signer.privateKey);
  const without = (name: string) => {
    const c: Record<string, unknown> = claims();
    delete c[name];
    return c;
  };

  const reasonFor = async (verify: AccessTokenVerifier, token: string): Promise<string> => {
    try {
      await verify(token);
      return 'accepted';
    } catch (err) {
      assert.ok(isRampartError(err), String(err));
      const reason = String(err.detail?.['reason']);
      assert.ok((TOKEN_REASON_CODES as readonly string[]).includes(reason), `bounded reason: ${reason}`);
      assert.equal(err.code, reason === 'jwks_unavailable' ? 'AUTH_ERR_KEYS_UNAVAILABLE' : 'AUTH_ERR_INVALID_TOKEN');
      assert.equal(err.status, reason === 'jwks_unavailable' ? 503 : 401);
      assert.equal(err.message, reason === 'jwks_unavailable' ? 'token keys unavailable' : 'invalid token');
      return reason;
    }
  };

  test('accepts a valid token from every allowed algorithm and returns the identity', async () => {
    const verify = make();
    for (const signer of [es, ed, rs, ps]) {
      const identity = await verify(await mint({ sub: `user-${signer.alg}` }, {}, signer));
      assert.equal(identity.subject, `user-${signer.alg}`);
      assert.deepEqual([...identity.scopes], ['orders', 'profile']);
      assert.equal(identity.clientId, 'web');
      assert.equal(identity.machine, false);
      assert.equal(identity.expiresAt, seconds() + 300);
    }
    assert.deepEqual([...ACCESS_TOKEN_ALGORITHMS], ['ES256', 'EdDSA', 'RS256', 'PS256']);
    const machine = await verify(await mint({ sub: 'bot', client_id: 'bot', roles: ['admin', 7] }));
    assert.equal(machine.machine, true);
    assert.deepEqual([...machine.roles], ['admin']);
    const mediaType = await verify(await mint({}, { typ: 'application/at+jwt' }));
    assert.equal(mediaType.subject, 'user-1', 'RFC 9068 §4 allows the full media type');
    assert.equal(fetches, 1);
  });

  test('hostile tokens are refused with the expected reason code', async () => {
    const verify = make();
    const good = await mint();
    const [h, p, s] = good.split('.') as [string, string, string];
    const header = { alg: 'ES256', typ: 'at+jwt', kid: 'es' };
    const payloadText = JSON.stringify(claims());
    const pemSecret = new TextEncoder().encode(await exportSPKI((await generateKeyPair('ES256')).publicKey));
    const attacker = await makeSigner('ES256', 'es');
    const tooLongKid = 'k'.repeat(JWKS_DEFAULTS.maxKidLength + 1);
    const cases: [string, string | Promise<string>, string][] = [
      ['alg none', `${b64(JSON.stringify({ alg: 'none', typ: 'at+jwt' }))}.${p}.${s}`, 'algorithm_not_allowed'],
      ['alg None', `${b64(JSON.stringify({ alg: 'None', typ: 'at+jwt' }))}.${p}.${s}`, 'algorithm_not_allowed'],
      ['alg NONE', `${b64(JSON.stringify({ alg: 'NONE', typ: 'at+jwt' }))}.${p}.${s}`, 'algorithm_not_allowed'],
      ['alg missing', `${b64(JSON.stringify({ typ: 'at+jwt', kid: 'es' }))}.${p}.${s}`, 'algorithm_not_allowed'],
      ['alg ES384', `${b64(JSON.stringify({ ...header, alg: 'ES384' }))}.${p}.${s}`, 'algorithm_not_allowed'],
      [
        'HS256 with a public key PEM as the secret',
        new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'es' }).sign(pemSecret),
        'algorithm_not_allowed',
      ],
      ['jku', mint({}, { jku: 'https://evil.test/jwks' }, attacker), 'forbidden_header'],
      ['x5u', mint({}, { x5u: 'https://evil.test/cert.pem' }, attacker), 'forbidden_header'],
      ['embedded jwk', mint({}, { jwk: attacker.jwk }, attacker), 'forbidden_header'],
      ['x5c', mint({}, { x5c: ['MIIB'] }, attacker), 'forbidden_header'],
      ['jku with the real key', mint({}, { jku: `${base}/jwks` }), 'forbidden_header'],
      [
        'crit unknown',
        signRaw(es, JSON.stringify({ ...header, crit: ['x-ext'], 'x-ext': 1 }), payloadText),
        'unknown_crit',
      ],
      ['crit exp', signRaw(es, JSON.stringify({ ...header, crit: ['exp'], exp: 1 }), payloadText), 'unknown_crit'],
      ['crit b64', signRaw(es, JSON.stringify({ ...header, crit: ['b64'], b64: true }), payloadText), 'unknown_crit'],
      [
        'duplicate alg in the header',
        signRaw(es, '{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"es"}', payloadText),
        'duplicate_member',
      ],
      [
        'duplicate sub in the claims',
        signRaw(es, JSON.stringify(header), payloadText.replace('{', '{"sub":"admin",')),
        'duplicate_member',
      ],
      [
        'duplicate by escape in the claims',
        signRaw(es, JSON.stringify(header), payloadText.replace('{', '{"\\u0073ub":"admin",')),
        'duplicate_member',
      ],
      ['all-zero ECDSA signature (CVE-2022-21449)', `${h}.${p}.${b64(new Uint8Array(64))}`, 'bad_signature'],
      ['signature of the wrong length', `${h}.${p}.${b64(new Uint8Array(63))}`, 'bad_signature'],
      ['signed by another key with the same kid', mint({}, {}, attacker), 'bad_signature'],
      ['tampered claims', `${h}.${b64(JSON.stringify(claims({ scope: 'admin' })))}.${s}`, 'bad_signature'],
      ['empty signature', `${h}.${p}.`, 'malformed'],
      ['blank signature', `${h}.${p}. `, 'malformed'],
      ['expired', mint({ exp: seconds() - CLOCK_SKEW_SECONDS - 1 }), 'expired'],
      ['exp missing', signRaw(es, JSON.stringify(header), JSON.stringify(without('exp'))), 'claim_missing'],
      ['exp a string', mint({ exp: String(seconds() + 300) }), 'claim_invalid'],
      ['nbf in the future', mint({ nbf: seconds() + CLOCK_SKEW_SECONDS + 5 }), 'not_yet_valid'],
      ['iat in the future', mint({ iat: seconds() + CLOCK_SKEW_SECONDS + 5 }), 'not_yet_valid'],
      ['iat missing', signRaw(es, JSON.stringify(header), JSON.stringify(without('iat'))), 'claim_missing'],
      ['iat a string', mint({ iat: 'now' }), 'claim_invalid'],
      ['iss with a trailing slash', mint({ iss: `${base}/` }), 'wrong_issuer'],
      ['iss in another case', mint({ iss: base.toUpperCase() }), 'wrong_issuer'],
      ['iss missing', signRaw(es, JSON.stringify(header), JSON.stringify(without('iss'))), 'claim_missing'],
      ['aud wrong', mint({ aud: 'https://other.test' }), 'wrong_audience'],
      ['aud missing', signRaw(es, JSON.stringify(header), JSON.stringify(without('aud'))), 'claim_missing'],
      ['sub missing', signRaw(es, JSON.stringify(header), JSON.stringify(without('sub'))), 'claim_missing'],
      ['sub empty', mint({ sub: '' }), 'claim_invalid'],
      ['sub a number', mint({ sub: 42 }), 'claim_invalid'],
      ['ID token typ JWT', mint({}, { typ: 'JWT' }), 'wrong_type'],
      ['logout token typ', mint({}, { typ: 'logout+jwt' }), 'wrong_type'],
      ['typ missing', signRaw(es, JSON.stringify({ alg: 'ES256', kid: 'es' }), payloadText), 'wrong_type'],
      ['kid unknown', mint({}, { kid: 'nope' }), 'unknown_key'],
      ['kid path traversal', mint({}, { kid: '../../../../etc/passwd' }), 'unknown_key'],
      ['kid SQL', mint({}, { kid: "x' UNION SELECT key FROM keys --" }), 'unknown_key'],
      ['kid too long', mint({}, { kid: tooLongKid }), 'invalid_kid'],
      ['kid a number', signRaw(es, JSON.stringify({ ...header, kid: 1 }), payloadText), 'invalid_kid'],
      ['kid of a key of another type', mint({}, { kid: 'rs' }), 'unknown_key'],
      ['too long', `${h}.${'A'.repeat(MAX_TOKEN_LENGTH)}.${s}`, 'too_long'],
      ['five-part JWE', `${h}.${p}.${s}.AAAA.BBBB`, 'malformed'],
      ['two parts', `${h}.${p}`, 'malformed'],
      ['JSON serialization', JSON.stringify({ protected: h, payload: p, signature: s }), 'malformed'],
      ['padding', `${h}=.${p}.${s}`, 'malformed'],
      ['not base64url', `${h}.${p}+/.${s}`, 'malformed'],
      ['header an array', `${b64('["ES256"]')}.${p}.${s}`, 'malformed'],
      ['header not JSON', `${b64('{alg:ES256}')}.${p}.${s}`, 'malformed'],
      ['header with a BOM', `${b64(`\uFEFF${JSON.stringify(header)}`)}.${p}.${s}`, 'malformed'],
      ['header invalid UTF-8', `${b64(new Uint8Array([0x7b, 0xff, 0x7d]))}.${p}.${s}`, 'malformed'],
      ['claims null', signRaw(es, JSON.stringify(header), 'null'), 'malformed'],
      ['base64url of impossible length', `${h}.${p}A.${s}`.replace(/^/, ''), 'malformed'],
      ['empty', '', 'malformed'],
    ];
    for (const [name, token, expected] of cases) {
      assert.equal(await reasonFor(verify, await token), expected, name);
    }
  });

  test('structural refusals happen before any key is fetched', async () => {
    const verify = make();
    const good = await mint();
    const [, p, s] = good.split('.') as [string, string, string];
    for (const token of [
      `${b64('{"alg":"none"}')}.${p}.${s}`,
      await mint({}, { jku: `${base}/jwks` }),
      `${b64('{"alg":"ES256","alg":"ES256","kid":"es"}')}.${p}.${s}`,
      `${b64('{"alg":"ES256","kid":"es","crit":["x"],"x":1}')}.${p}.${s}`,
    ]) {
      await assert.rejects(verify(token));
    }
    assert.equal(fetches, 0);
  });

  test('the signature is checked before the claims', async () => {
    const verify = make();
    const expired = await mint({ exp: seconds() - 3600, iss: 'https://evil.test', aud: 'x' });
    const [h, p] = expired.split('.') as [string, string, string];
    assert.equal(await reasonFor(verify, `${h}.${p}.${b64(new Uint8Array(64))}`), 'bad_signature');
    assert.equal(await reasonFor(verify, expired), 'wrong_issuer');
  });

  test('skew: 60 s tolerated on exp, nbf and iat, not more', async () => {
    const verify = make({ tokenCacheEntries: 0 });
    assert.equal(await reasonFor(verify, await mint({ exp: seconds() - CLOCK_SKEW_SECONDS + 1 })), 'accepted');
    assert.equal(await reasonFor(verify, await mint({ exp: seconds() - CLOCK_SKEW_SECONDS })), 'expired');
    assert.equal(await reasonFor(verify, await mint({ nbf: seconds() + CLOCK_SKEW_SECONDS })), 'accepted');
    assert.equal(await reasonFor(verify, await mint({ nbf: seconds() + CLOCK_SKEW_SECONDS + 1 })), 'not_yet_valid');
    assert.equal(await reasonFor(verify, await mint({ iat: seconds() + CLOCK_SKEW_SECONDS })), 'accepted');
    assert.equal(await reasonFor(verify, await mint({ iat: seconds() + CLOCK_SKEW_SECONDS + 1 })), 'not_yet_valid');
  });

  describe('verified-token cache', () => {
    test('a repeat is a hit; the entry never outlives exp', async () => {
      const verify = make();
      const token = await mint({ exp: seconds() + 120 });
      const first = await verify(token);
      assert.equal(await verify(token), first);
      assert.deepEqual(hits, [false, true]);
      clock += 119_000;
      assert.equal(await verify(token), first);
      clock += 1_000;
      assert.equal(await reasonFor(verify, token), 'accepted', 'within the skew, verified again');
      assert.deepEqual(hits, [false, true, true, false]);
      clock += CLOCK_SKEW_SECONDS * 1000;
      assert.equal(await reasonFor(verify, token), 'expired');
    });

    test('a cached token stops when its key leaves the issuer set', async () => {
      // Counts key sets installed, not requests the server saw: the refresh lands after the body is parsed.
      let installed = 0;
      const verify = make({
        cacheMaxAgeMs: 60_000,
        tokenCacheMaxTtlMs: 3_600_000,
        onJwksFetch: (event) => {
          if (event.target === 'jwks' && event.outcome === 'ok') installed++;
        },
      });
      const token = await mint({ exp: seconds() + 3600 });
      await verify(token);
      published = [ed.jwk];
      clock += 60_001;
      // A hit on an old key set starts a background refresh and is still served meanwhile.
      await verify(token);
      assert.deepEqual(hits, [false, true]);
      await waitFor(() => installed === 2);
      assert.equal(await reasonFor(verify, token), 'unknown_key');
      assert.deepEqual(hits, [false, true, false], 'the entry was dropped, not served');
    });

    test('a cached token fails closed once the key set is stale beyond the bound', async () => {
      const verify = make();
      const token = await mint({ exp: seconds() + 7200 });
      await verify(token);
      down = true;
      clock += JWKS_DEFAULTS.maxStaleMs - 1;
      // maxTtl expired the entry long ago: verified again, with the stale (still allowed) keys.
      assert.equal(await reasonFor(verify, token), 'accepted');
      clock += 2;
      assert.equal(await reasonFor(verify, token), 'jwks_unavailable');
    });

    test('only verified tokens are cached', async () => {
      const verify = make();
      const bad = await mint({ aud: 'https://other.test' });
      assert.equal(await reasonFor(verify, bad), 'wrong_audience');
      assert.equal(await reasonFor(verify, bad), 'wrong_audience');
      assert.deepEqual(hits, [false, false]);
    });

    test('tokenCacheEntries 0 disables the cache', async () => {
      const verify = make({ tokenCacheEntries: 0 });
      const token = await mint();
      await verify(token);
      await verify(token);
      assert.deepEqual(hits, []);
    });
  });

  test('keys unavailable is 503 jwks_unavailable, not a token error', async () => {
    const verify = make();
    down = true;
    assert.equal(await reasonFor(verify, await mint()), 'jwks_unavailable');
  });

  test('reason codes are a bounded, documented set', () => {
    assert.deepEqual([...TOKEN_REASON_CODES].sort(), Object.values(TOKEN_REASONS).sort());
    assert.equal(new Set(TOKEN_REASON_CODES).size, TOKEN_REASON_CODES.length);
    for (const code of TOKEN_REASON_CODES) assert.match(code, /^[a-z_]+$/);
  });
});

describe('hasDuplicateMembers', () => {
  test('hostile and tricky inputs', () => {
    const table: [string, boolean][] = [
      ['{}', false],
      ['{"a":1}', false],
      ['{"a":1,"a":2}', true],
      ['{"a":1,"b":{"a":2}}', false],
      ['{"a":{"b":1,"b":2}}', true],
      ['[{"a":1},{"a":1}]', false],
      ['[{"a":1,"a":1}]', true],
      ['{"a":[{"x":1}],"a":0}', true],
      ['{"a":"\\"a\\":1,","b":1}', false],
      ['{"a\\"":1,"a":2}', false],
      ['{"a":1,"\\u0061":2}', true],
      ['{"\\/":1,"/":2}', true],
      ['{"\\\\":1,"\\\\\\\\":2}', false],
      ['{"__proto__":1,"__proto__":2}', true],
      ['{"constructor":1,"toString":2}', false],
      ['{"":1,"":2}', true],
      ['{"a":"{\\"a\\":1,\\"a\\":2}"}', false],
      ['{ "a" : 1 , "a" : 2 }', true],
      ['{"a":[],"b":[1,"a",{"a":1}],"c":{}}', false],
      ['{"a":1,"b":[{"c":1}],"a":2}', true],
      ['{"\\ud83d\\ude00":1,"😀":2}', true],
      ['"a"', false],
      ['[1,2,"a","a"]', false],
    ];
    for (const [text, expected] of table) {
      JSON.parse(text); // the detector's contract: input is valid JSON
      assert.equal(hasDuplicateMembers(text), expected, text);
    }
  });

  /** A JSON tree whose objects are member lists, so duplicates can be generated on purpose. */
  type Tree =
    | { kind: 'leaf'; value: unknown }
    | { kind: 'arr'; items: Tree[] }
    | { kind: 'obj'; members: [string, Tree][] };
  const keyArb = fc.oneof(
    fc.constantFrom('a', 'b', 'sub', '__proto__', '', '"', '\\', 'é', '😀'),
    fc.string({ maxLength: 3 }),
  );
  const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.record({
        kind: fc.constant('leaf' as const),
        value: fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.boolean(), fc.constant(null)),
      }),
      fc.record({ kind: fc.constant('arr' as const), items: fc.array(tie('tree'), { maxLength: 4 }) }),
      fc.record({
        kind: fc.constant('obj' as const),
        members: fc.array(fc.tuple(keyArb, tie('tree')), { maxLength: 4 }),
      }),
    ),
  }));

  /** Serializes member names either plainly or with every character \u-escaped, and random spacing. */
  const serialize = (t: Tree, escapeName: (i: number) => boolean, space: string, counter = { n: 0 }): string => {
    if (t.kind === 'leaf') return JSON.stringify(t.value);
    if (t.kind === 'arr') return `[${t.items.map((i) => serialize(i, escapeName, space, counter)).join(`,${space}`)}]`;
    const members = t.members.map(([k, v]) => {
      const name = escapeName(counter.n++)
        ? `"${Array.from({ length: k.length }, (_, j) => `\\u${k.charCodeAt(j).toString(16).padStart(4, '0')}`).join('')}"`
        : JSON.stringify(k);
      return `${space}${name}${space}:${space}${serialize(v, escapeName, space, counter)}`;
    });
    return `{${members.join(',')}}`;
  };
  const hasDuplicates = (t: Tree): boolean =>
    t.kind === 'leaf'
      ? false
      : t.kind === 'arr'
        ? t.items.some(hasDuplicates)
        : new Set(t.members.map(([k]) => k)).size !== t.members.length || t.members.some(([, v]) => hasDuplicates(v));

  test('property: agrees with the structure the text was built from, whatever the escaping and spacing', () => {
    fc.assert(
      fc.property(tree, fc.func(fc.boolean()), fc.constantFrom('', ' ', '\n\t'), (t, escapeAt, space) => {
        const text = serialize(t, (i) => escapeAt(i), space);
        JSON.parse(text);
        assert.equal(hasDuplicateMembers(text), hasDuplicates(t), text);
      }),
      { numRuns: 2000 },
    );
  });

  test('property: JSON.stringify output never has duplicates', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        assert.equal(hasDuplicateMembers(JSON.stringify(value)), false);
      }),
    );
  });
});
