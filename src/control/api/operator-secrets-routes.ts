import { userInfo } from 'node:os';
import sodium from 'sodium-native';
import type { SecretsActor } from '../secrets/audit.ts';
import { SECRETS_API_DEFAULTS } from '../secrets/defaults.ts';
import type { Label, Labels } from '../secrets/labels.ts';
import type { OperatorSecrets } from '../secrets/served.ts';
import {
  type SecretValue,
  type VersionInfo,
  type VersionSelector,
  type WriteResult,
  wipeSecret,
} from '../secrets/service.ts';
import type { SecretRecord } from '../secrets/store.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import { createOperatorAuthorization } from './operator-access.ts';
import { operatorBody as body } from './operator-routes.ts';
import { type ApiRoutes, stringField } from './request.ts';

/**
 * The operator's secrets routes: `rampart secrets set|rotate|promote|rollback|get|list|history` while
 * the control plane runs. The control plane then holds the audit log (one writer), so the CLI asks it
 * and it performs the command with its secrets service, which records the event in the log with the
 * operator as actor. Not exported from api/index.ts (the SDK's import): it pulls in libsodium.
 */
export const OPERATOR_SECRETS_ROUTES = {
  set: 'POST /v1/operator/secrets/set',
  promote: 'POST /v1/operator/secrets/promote',
  rollback: 'POST /v1/operator/secrets/rollback',
  reveal: 'POST /v1/operator/secrets/reveal',
  history: 'POST /v1/operator/secrets/history',
  list: 'POST /v1/operator/secrets/list',
} as const;

/** The path of an operator secrets route, as the CLI requests it. */
export function operatorSecretsPath(
  route: (typeof OPERATOR_SECRETS_ROUTES)[keyof typeof OPERATOR_SECRETS_ROUTES],
): string {
  return route.slice('POST '.length);
}

/** Body of the set route. `value` is the bytes in base64; it travels only inside the TLS connection. */
export interface OperatorSetRequest {
  name: string;
  value: string;
  /** Stage as `pending` (`rampart secrets rotate`) instead of `current`. */
  stage?: boolean;
  discardPending?: boolean;
  /** Rotation interval in ms; null clears it, absent keeps it. */
  rotationIntervalMs?: number | null;
}

/** Answer of the reveal route: the value in base64 and its metadata (`cache-control: no-store`). */
export interface OperatorRevealResponse {
  name: string;
  version: number;
  label: Label | null;
  createdAt: number;
  value: string;
}

/** Options of {@link createOperatorSecretsRoutes}. */
export interface OperatorSecretsRoutesOptions {
  /** The control plane's secrets service (secrets/served.ts). */
  secrets: OperatorSecrets;
  /** The operator credential the control plane wrote at start (operator-access.ts), as for the CA routes. */
  credential: string;
  /** Who the audit events name as actor; default {@link localOperator}. */
  actor?: SecretsActor;
}

/**
 * The local operator: the account the process runs as. Whoever can read the 0600 operator credential
 * is that account (or root), so that is who acted; the CLI names the same account when it works on the
 * files itself (no control plane running).
 */
export function localOperator(): SecretsActor {
  const uid = `uid:${process.getuid?.() ?? 'unknown'}`;
  try {
    return { subject: userInfo().username || uid };
  } catch {
    return { subject: uid };
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function optionalBoolean(json: Record<string, unknown>, field: string): boolean | undefined {
  const value = json[field];
  if (value !== undefined && typeof value !== 'boolean') {
    throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field });
  }
  return value;
}

function name(json: Record<string, unknown>): string {
  // Any name of the right size goes to the service, which refuses one outside the alphabet (SEC_ERR_NAME).
  return stringField(json, 'name', SECRETS_API_DEFAULTS.maxNameLength);
}

/** A strict base64 value: canonical padding, nothing else, decoded into a buffer the caller zeroes. */
function value(json: Record<string, unknown>): Buffer {
  const text = json['value'];
  if (typeof text !== 'string' || text.length === 0 || text.length > SECRETS_API_DEFAULTS.maxOperatorValueChars) {
    throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'value' });
  }
  if (!BASE64.test(text)) throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'value' });
  return Buffer.from(text, 'base64');
}

function rotationInterval(json: Record<string, unknown>): number | null | undefined {
  const interval = json['rotationIntervalMs'];
  if (interval === undefined || interval === null) return interval;
  // Range is the service's to check (SEC_ERR_CONFIG); the type is checked here.
  if (typeof interval !== 'number' || !Number.isSafeInteger(interval)) {
    throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'rotationIntervalMs' });
  }
  return interval;
}

function selector(json: Record<string, unknown>): VersionSelector {
  const { label, version } = json;
  if (label !== undefined && version !== undefined) {
    throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'selector' });
  }
  if (version !== undefined) {
    if (typeof version !== 'number')
      throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'version' });
    return { version };
  }
  if (label === undefined) return { label: 'current' };
  return { label: stringField(json, 'label', SECRETS_API_DEFAULTS.maxLabelLength) as Label };
}

/**
 * The operator's secrets routes of the control plane API, authenticated like the CA's
 * (operator-access.ts `createOperatorAuthorization`: the operator credential as a bearer, compared in
 * constant time, checked before the body is parsed):
 *
 * | route | body | answer |
 * | --- | --- | --- |
 * | `POST /v1/operator/secrets/set` | `{name, value, stage?, discardPending?, rotationIntervalMs?}` | {@link WriteResult} |
 * | `POST /v1/operator/secrets/promote` | `{name}` | the labels |
 * | `POST /v1/operator/secrets/rollback` | `{name}` | the labels |
 * | `POST /v1/operator/secrets/reveal` | `{name, label? \| version?}` | {@link OperatorRevealResponse} |
 * | `POST /v1/operator/secrets/history` | `{name}` | `{secret, versions}` (no values) |
 * | `POST /v1/operator/secrets/list` | `{}` | every secret's metadata (no values) |
 *
 * Bodies hold exactly these fields (unknown ones are 400); values are base64 in the body, never in a
 * path, header or log. The secrets service decides and records every outcome in the audit log (an
 * HMAC'd reference, never the value) with the operator as actor; a command whose event the log does
 * not take is refused (503 SEC_ERR_AUDIT_UNAVAILABLE), and a reveal then returns no value.
 */
export function createOperatorSecretsRoutes(options: OperatorSecretsRoutesOptions): ApiRoutes {
  const { secrets } = options;
  const actor = options.actor ?? localOperator();
  const authorize = createOperatorAuthorization(options.credential);
  const small = SECRETS_API_DEFAULTS.maxBodyBytes;
  return {
    [OPERATOR_SECRETS_ROUTES.set]: {
      maxBodyBytes: SECRETS_API_DEFAULTS.maxOperatorBodyBytes,
      handle: async (req, raw): Promise<WriteResult> => {
        authorize(req);
        const json = body(raw, ['name', 'value', 'stage', 'discardPending', 'rotationIntervalMs']);
        const secretName = name(json);
        const stage = optionalBoolean(json, 'stage');
        const discardPending = optionalBoolean(json, 'discardPending');
        const rotationIntervalMs = rotationInterval(json);
        const bytes = value(json);
        try {
          return await secrets.set(actor, secretName, bytes, {
            stage: stage === true,
            discardPending: discardPending === true,
            ...(rotationIntervalMs === undefined ? {} : { rotationIntervalMs }),
          });
        } finally {
          sodium.sodium_memzero(bytes);
        }
      },
    },
    [OPERATOR_SECRETS_ROUTES.promote]: {
      maxBodyBytes: small,
      handle: async (req, raw): Promise<Labels> => {
        authorize(req);
        return secrets.promote(actor, name(body(raw, ['name'])));
      },
    },
    [OPERATOR_SECRETS_ROUTES.rollback]: {
      maxBodyBytes: small,
      handle: async (req, raw): Promise<Labels> => {
        authorize(req);
        return secrets.rollback(actor, name(body(raw, ['name'])));
      },
    },
    [OPERATOR_SECRETS_ROUTES.reveal]: {
      maxBodyBytes: small,
      handle: async (req, raw): Promise<OperatorRevealResponse> => {
        authorize(req);
        const json = body(raw, ['name', 'label', 'version']);
        const secret: SecretValue = await secrets.reveal(actor, name(json), selector(json));
        try {
          return {
            name: secret.name,
            version: secret.version,
            label: secret.label,
            createdAt: secret.createdAt,
            value: secret.value.toString('base64'),
          };
        } finally {
          wipeSecret(secret);
        }
      },
    },
    [OPERATOR_SECRETS_ROUTES.history]: {
      maxBodyBytes: small,
      handle: async (req, raw): Promise<{ secret: SecretRecord; versions: VersionInfo[] }> => {
        authorize(req);
        return secrets.history(actor, name(body(raw, ['name'])));
      },
    },
    [OPERATOR_SECRETS_ROUTES.list]: {
      maxBodyBytes: small,
      handle: async (req, raw): Promise<SecretRecord[]> => {
        authorize(req);
        body(raw, []);
        return secrets.list(actor);
      },
    },
  };
}
