import { IDP_ERRORS, idpError } from '../errors.ts';
import type { AccountRecord, ClientRecord, KeyState, SigningKeyRecord, ThrottleRecord } from './store.ts';

/** A database row as both drivers return it (column name → value). */
export type Row = Record<string, unknown>;

const KEY_STATES: ReadonlySet<string> = new Set<KeyState>(['next', 'current', 'previous']);

/** Integers arrive as number (node:sqlite), string (pg BIGINT) or bigint; all become number. */
function int(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw idpError(IDP_ERRORS.store, 'store holds an invalid number', { status: 500 });
  return n;
}

function intOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : int(value);
}

function bytesOrNull(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw idpError(IDP_ERRORS.store, 'store holds an invalid binary value', { status: 500 });
}

function flag(value: unknown): boolean {
  return value === true || value === 1 || value === 1n || value === '1';
}

function json<T>(value: unknown): T {
  try {
    return JSON.parse(String(value)) as T;
  } catch (cause) {
    throw idpError(IDP_ERRORS.store, 'store holds invalid JSON', { status: 500, cause });
  }
}

/** An artifact row → oidc-provider's payload, with `consumed` in epoch seconds when set. */
export function decodeArtifact(row: Row | undefined): Record<string, unknown> | undefined {
  if (!row) return undefined;
  const payload = json<Record<string, unknown>>(row['payload']);
  const consumedAt = intOrNull(row['consumed_at']);
  if (consumedAt !== null) payload['consumed'] = Math.floor(consumedAt / 1000);
  return payload;
}

export function decodeAccount(row: Row | undefined): AccountRecord | undefined {
  if (!row) return undefined;
  return {
    id: String(row['id']),
    username: String(row['username']),
    passwordHash: String(row['password_hash']),
    roles: json<string[]>(row['roles']),
    disabled: flag(row['disabled']),
    mfaRequired: flag(row['mfa_required']),
    totpSecret: bytesOrNull(row['totp_secret']),
    totpEnrolledAt: intOrNull(row['totp_enrolled_at']),
    totpLastStep: intOrNull(row['totp_last_step']),
    createdAt: int(row['created_at']),
    updatedAt: int(row['updated_at']),
  };
}

export function decodeClient(row: Row | undefined): ClientRecord | undefined {
  if (!row) return undefined;
  return {
    clientId: String(row['client_id']),
    metadata: json<Record<string, unknown>>(row['metadata']),
    secret: bytesOrNull(row['secret']),
    disabled: flag(row['disabled']),
    createdAt: int(row['created_at']),
    updatedAt: int(row['updated_at']),
  };
}

export function decodeKey(row: Row): SigningKeyRecord {
  const state = String(row['state']);
  if (!KEY_STATES.has(state)) throw idpError(IDP_ERRORS.store, 'store holds an unknown key state', { status: 500 });
  return {
    kid: String(row['kid']),
    alg: String(row['alg']),
    state: state as KeyState,
    publicJwk: json<Record<string, unknown>>(row['public_jwk']),
    privateJwk: bytesOrNull(row['private_jwk'])!,
    createdAt: int(row['created_at']),
    stateSince: int(row['state_since']),
  };
}

export function decodeThrottle(row: Row | undefined): ThrottleRecord | undefined {
  if (!row) return undefined;
  return {
    failures: int(row['failures']),
    lastFailureAt: int(row['last_failure_at']),
    notBefore: int(row['not_before']),
  };
}
