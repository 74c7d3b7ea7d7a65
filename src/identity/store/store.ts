/**
 * The identity provider's one store: oidc-provider's artifacts (sessions, interactions, codes, refresh
 * tokens, grants), accounts, MFA, clients, signing keys and throttling counters. Two implementations
 * pass the same test suite (test/identity/store.test.ts): SQLite (default, embedded) and PostgreSQL.
 *
 * Values that must stay secret at rest (TOTP secrets, client secrets, private signing keys, cookie
 * keys) reach the store already sealed with the key-encryption key; the store never sees them in clear.
 * Times are milliseconds since the epoch.
 */
export interface IdentityStore {
  readonly kind: 'sqlite' | 'postgres';

  // --- oidc-provider artifacts (adapter.ts maps oidc-provider's Adapter onto these) ---
  /** Inserts or replaces an artifact. `expiresAt` null: no expiry. */
  upsertArtifact(artifact: ArtifactWrite): Promise<void>;
  /** An unexpired artifact's payload, with `consumed` (epoch seconds) when it was consumed. */
  findArtifact(model: string, id: string, now: number): Promise<Record<string, unknown> | undefined>;
  findArtifactByUid(model: string, uid: string, now: number): Promise<Record<string, unknown> | undefined>;
  findArtifactByUserCode(model: string, userCode: string, now: number): Promise<Record<string, unknown> | undefined>;
  /**
   * Marks an artifact consumed, atomically: of any number of concurrent calls for one id, exactly one
   * gets `consumed: true`. `grantId` is returned either way so a loser can revoke the grant.
   */
  consumeArtifact(model: string, id: string, now: number): Promise<{ consumed: boolean; grantId: string | null }>;
  destroyArtifact(model: string, id: string): Promise<void>;
  /**
   * Deletes every artifact of a grant (codes, tokens), and with `includeGrant` the grant itself (the
   * consent: the next authorization asks again). Returns how many rows went.
   */
  revokeGrant(grantId: string, includeGrant: boolean): Promise<number>;
  /** Deletes expired artifacts. */
  purgeExpired(now: number): Promise<number>;

  // --- accounts ---
  /** Throws IDP_ERR_CONFLICT when the username is taken. */
  createAccount(account: AccountRecord): Promise<void>;
  findAccount(id: string): Promise<AccountRecord | undefined>;
  findAccountByUsername(username: string): Promise<AccountRecord | undefined>;
  listAccounts(): Promise<AccountRecord[]>;
  /** Applies the given fields; false when no such account. */
  updateAccount(id: string, patch: AccountPatch): Promise<boolean>;
  /**
   * Records a used TOTP time step, atomically and only forwards: true when `step` is later than every
   * step used before (RFC 6238 §5.2: a code is accepted once).
   */
  useTotpStep(accountId: string, step: number): Promise<boolean>;
  /** Replaces every recovery code of the account (hashes only). */
  replaceRecoveryCodes(accountId: string, hashes: readonly string[]): Promise<void>;
  /** Deletes the code atomically; true for exactly one of concurrent uses. */
  useRecoveryCode(accountId: string, hash: string): Promise<boolean>;
  countRecoveryCodes(accountId: string): Promise<number>;

  // --- clients ---
  /** Throws IDP_ERR_CONFLICT when the client id is taken. */
  createClient(client: ClientRecord): Promise<void>;
  findClient(clientId: string): Promise<ClientRecord | undefined>;
  listClients(): Promise<ClientRecord[]>;
  updateClient(clientId: string, patch: ClientPatch): Promise<boolean>;

  // --- signing keys ---
  listKeys(): Promise<SigningKeyRecord[]>;
  /**
   * Replaces the key set if its version is still `expectedVersion` (optimistic concurrency: two
   * rotations cannot interleave). Returns the new version, or null when someone else changed it first.
   */
  replaceKeys(keys: readonly SigningKeyRecord[], expectedVersion: number): Promise<number | null>;
  /** Increases with every change of the key set (0 before the first). */
  keysVersion(): Promise<number>;

  // --- throttling ---
  getThrottle(key: string): Promise<ThrottleRecord | undefined>;
  /**
   * Compare-and-set: writes `next` only if the stored failure count is still `expectedFailures`
   * (0 and no row: insert). False when a concurrent attempt changed it first.
   */
  casThrottle(key: string, expectedFailures: number, next: ThrottleRecord): Promise<boolean>;
  clearThrottle(key: string): Promise<void>;

  // --- settings (cookie keys and the like, sealed) ---
  /** Stores `value` under `name` unless one is there already; returns the value that is stored. */
  initSetting(name: string, value: Buffer): Promise<Buffer>;

  close(): Promise<void>;
}

export interface ArtifactWrite {
  model: string;
  id: string;
  payload: Record<string, unknown>;
  grantId: string | null;
  uid: string | null;
  userCode: string | null;
  expiresAt: number | null;
}

export interface AccountRecord {
  id: string;
  /** Normalized (NFKC, lower case); unique. */
  username: string;
  /** PHC string of the argon2id hash. */
  passwordHash: string;
  roles: string[];
  disabled: boolean;
  /** MFA must be enrolled at the next login (set for admins and by `users add --require-mfa`). */
  mfaRequired: boolean;
  /** Sealed TOTP secret once enrolled. */
  totpSecret: Buffer | null;
  totpEnrolledAt: number | null;
  /** Last TOTP step used (replay guard); null before first use. */
  totpLastStep: number | null;
  createdAt: number;
  updatedAt: number;
}

export type AccountPatch = Partial<
  Pick<
    AccountRecord,
    'passwordHash' | 'roles' | 'disabled' | 'mfaRequired' | 'totpSecret' | 'totpEnrolledAt' | 'totpLastStep'
  >
>;

export interface ClientRecord {
  clientId: string;
  /** oidc-provider client metadata (snake_case), without the secret. */
  metadata: Record<string, unknown>;
  /** Sealed client secret; null for public clients. */
  secret: Buffer | null;
  disabled: boolean;
  createdAt: number;
  updatedAt: number;
}

export type ClientPatch = Partial<Pick<ClientRecord, 'metadata' | 'secret' | 'disabled'>>;

/** Where a key is in its life: published first (`next`), then signing (`current`), then verify-only (`previous`). */
export type KeyState = 'next' | 'current' | 'previous';

export interface SigningKeyRecord {
  kid: string;
  alg: string;
  state: KeyState;
  /** Public JWK (JSON). */
  publicJwk: Record<string, unknown>;
  /** Sealed private JWK. */
  privateJwk: Buffer;
  createdAt: number;
  /** When it entered its current state. */
  stateSince: number;
}

export interface ThrottleRecord {
  failures: number;
  lastFailureAt: number;
  /** No attempt is judged before this time. */
  notBefore: number;
}
