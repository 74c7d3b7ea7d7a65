/**
 * Every default of the identity provider, in one place, with the reason for each value (STYLE.md:
 * defaults live in one place). Durations are in seconds unless the name says otherwise.
 */
export const IDENTITY_DEFAULTS = Object.freeze({
  /** RFC 9068 access tokens live ≈10 min (issue 5): resource servers cannot see revocation, so keep them short. */
  accessTokenTtl: 600,
  /** ID tokens are read once by the client at login; nothing needs them to live longer than an access token. */
  idTokenTtl: 600,
  /** One minute: RFC 6749 §4.1.2 asks for short-lived codes (10 min at most); a client redeems at once. */
  authorizationCodeTtl: 60,
  /** Idle lifetime of a refresh token; each use rotates it (RFC 9700 §4.14.2) and starts a new one. */
  refreshTokenTtl: 14 * 24 * 3600,
  /** Absolute lifetime of a refresh-token chain and of its grant: after 30 days the user signs in again. */
  grantTtl: 30 * 24 * 3600,
  /** Time to finish a login (password, MFA, consent) once the authorization request arrived. */
  interactionTtl: 600,
  /** Browser session at the provider (SSO): a working day, then a fresh login (OWASP session guidance). */
  sessionTtl: 8 * 3600,
  /** RFC 8628 device codes: 10 min to type the code on another device. */
  deviceCodeTtl: 600,
  /**
   * Signing algorithm of every JWT the provider issues (access and ID tokens). ES256 is on the gateway's
   * allow-list (src/core/access-token.ts) and is what every OIDC client library supports.
   */
  signingAlg: 'ES256',
  /**
   * A new signing key is published this long before it may sign (`rampart identity rotate-keys`
   * refuses earlier). Equal to the verifier's JWKS freshness (src/core/jwks.ts JWKS_DEFAULTS.maxAgeMs):
   * by then every gateway and service holds the new key, so no valid token meets an unknown `kid`.
   */
  keyPublishLeadTime: 600,
  /** Interval at which a running provider re-reads the key set (another replica or the CLI rotated it). */
  keyPollInterval: 30,
  /** Expired oidc-provider artifacts are deleted this often. */
  purgeInterval: 300,
});

/**
 * argon2id parameters (RFC 9106). OWASP's Password Storage Cheat Sheet lists m=19 MiB, t=2, p=1 as the
 * minimum configuration; this is it. Memory is in KiB (node:crypto's unit). Hashes record their own
 * parameters, so raising these later rehashes at the next successful login.
 */
export const ARGON2_DEFAULTS = Object.freeze({
  memory: 19 * 1024,
  passes: 2,
  parallelism: 1,
  /** 32-byte tag and 16-byte salt: RFC 9106 §3.1 recommends a 128-bit salt; 256-bit tags are the usual choice. */
  tagLength: 32,
  saltLength: 16,
  /**
   * Argon2 runs on libuv's thread pool with 19 MiB each; a flood of logins must not exhaust memory or
   * starve other work. Beyond this many concurrent hashes, attempts queue.
   */
  maxConcurrent: 4,
});

/**
 * Password rules after NIST SP 800-63B-4 §3.1.1.2 (2025): length only, no composition rules, a
 * blocklist, no truncation, every Unicode code point counts as one character (after NFKC).
 */
export const PASSWORD_DEFAULTS = Object.freeze({
  /**
   * 15: SP 800-63B-4 requires at least 15 characters for a password used as a single factor, and MFA
   * is optional for ordinary accounts here. (Rev. 3 said 8; the revision raised it precisely for
   * password-only logins.) Long passphrases are easier to remember than short complex passwords.
   */
  minLength: 15,
  /**
   * SP 800-63B-4 asks verifiers to accept at least 64 characters. 256 leaves room for pass phrases and
   * managers; it bounds request size and hashing input, and longer passwords are refused, never cut.
   */
  maxLength: 256,
});

/**
 * Brute-force throttling (SP 800-63B-4 §3.2.2 rate limiting; OWASP Authentication Cheat Sheet). Each
 * attempt is keyed by the submitted username (whether or not it exists: the behaviour must not reveal
 * which accounts exist) and by the client address. The delay after n consecutive failures is 0 for the
 * first `free`, then `baseDelay·2^(n-free)` up to `maxDelay`; at `lockAt` failures the key is locked
 * for `lockDuration`. A success clears the username's counter.
 */
export const THROTTLE_DEFAULTS = Object.freeze({
  account: Object.freeze({
    /** A few typos are free. */
    free: 3,
    baseDelay: 1,
    maxDelay: 60,
    /** 10 consecutive failures lock the username for 15 min (SP 800-63B-4 caps consecutive failures at 100). */
    lockAt: 10,
    lockDuration: 900,
    /** Failures older than this are forgotten. */
    forgetAfter: 24 * 3600,
  }),
  address: Object.freeze({
    /** One address may be a whole office behind NAT: more room before delays start. */
    free: 20,
    baseDelay: 1,
    maxDelay: 60,
    lockAt: 100,
    lockDuration: 900,
    forgetAfter: 3600,
  }),
  /**
   * Wrong device-flow user codes per client address (RFC 8628 §5.1: the user code is short enough to
   * guess, so code entry must be rate limited). A person mistypes a few times at most.
   */
  deviceCode: Object.freeze({
    free: 5,
    baseDelay: 1,
    maxDelay: 60,
    lockAt: 30,
    lockDuration: 900,
    forgetAfter: 3600,
  }),
});

/** TOTP (RFC 6238) as every authenticator app implements it. */
export const TOTP_DEFAULTS = Object.freeze({
  /** SHA-1, 6 digits, 30 s: the only parameters Google Authenticator and most apps honour. */
  algorithm: 'SHA1',
  digits: 6,
  period: 30,
  /** RFC 6238 §5.2: accept at most one step of clock drift either way. */
  window: 1,
  /** RFC 4226 §4: a 160-bit shared secret. */
  secretBytes: 20,
  /** Recovery codes issued at enrollment: 10 single-use codes of 60 random bits each. */
  recoveryCodes: 10,
});

/** Fixed names shared by the provider and the CLI (src/cli/identity-client.ts). */
export const IDENTITY_NAMES = Object.freeze({
  /** The provider's own public client for `rampart login` (device flow, loopback PKCE: RFC 8252). */
  cliClientId: 'rampart-cli',
  /** Loopback redirect of the CLI client; any port matches (RFC 8252 §7.3). */
  cliRedirectUri: 'http://127.0.0.1/callback',
  /** File (in the identity's data directory) holding the one-time bootstrap token. */
  bootstrapFile: 'bootstrap-admin.token',
});
