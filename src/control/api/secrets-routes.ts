import type { IncomingMessage } from 'node:http';
import { SECRETS_API_DEFAULTS } from '../secrets/defaults.ts';
import type { Label } from '../secrets/labels.ts';
import { type SecretsService, wipeSecret } from '../secrets/service.ts';
import { type ApiRoutes, apiCaller, onlyFields, parseJson, stringField } from './request.ts';

/** The answer to a granted read. `value` is the secret's bytes in base64; the rest is metadata. */
export interface SecretReadResponse {
  name: string;
  version: number;
  /** The label the version was read by. */
  label: Label;
  createdAt: number;
  value: string;
}

export interface SecretsRoutesOptions {
  /** The secrets service with the manifest's grants (secrets/served.ts); only its reads are served. */
  secrets: Pick<SecretsService, 'read'>;
  /** The trust domain every caller's SPIFFE ID must belong to. */
  trustDomain: string;
}

/**
 * The route a workload reads a secret with. Not exported from api/index.ts: that index is the SDK's
 * import too, and this module pulls in libsodium, which services may not load (permission model).
 */
export const SECRETS_READ_ROUTE = 'POST /v1/secrets/read';

const READ_FIELDS = ['name', 'label'];

function requestId(req: IncomingMessage): string | undefined {
  const id = req.headers['x-request-id'];
  return typeof id === 'string' && id.length <= SECRETS_API_DEFAULTS.maxRequestIdLength ? id : undefined;
}

/**
 * The secrets routes of the control plane's API (issue 6 "Access"), served on its listener
 * (`createControlApi({ routes: [createSecretsRoutes(…)] })`):
 *
 * | route | authenticated by | does |
 * | --- | --- | --- |
 * | `POST /v1/secrets/read` `{name, label?}` | the client certificate (the caller's SVID) | the value, if granted |
 *
 * The caller is the SPIFFE ID of the verified client certificate and nothing else (no certificate, or
 * one that breaks the SVID rules: 401 CA_ERR_API_NO_CLIENT_CERTIFICATE). The body is checked for shape
 * (400 CA_ERR_API_BAD_REQUEST, unknown fields included); then the secrets service decides, ACL first,
 * and audits every outcome with an HMAC'd reference to the secret: a name the manifest does not grant
 * this caller is 403 SEC_ERR_FORBIDDEN whether or not it exists, and a read whose audit event is not
 * acknowledged is 503 SEC_ERR_AUDIT_UNAVAILABLE with no value (fail closed). Refusals carry the code
 * and an error id only; responses are `cache-control: no-store` (server.ts).
 */
export function createSecretsRoutes(options: SecretsRoutesOptions): ApiRoutes {
  const { secrets, trustDomain } = options;
  return {
    [SECRETS_READ_ROUTE]: {
      maxBodyBytes: SECRETS_API_DEFAULTS.maxBodyBytes,
      handle: async (req, body): Promise<SecretReadResponse> => {
        const caller = apiCaller(req, trustDomain);
        const json = parseJson(body);
        onlyFields(json, READ_FIELDS);
        const name = stringField(json, 'name', SECRETS_API_DEFAULTS.maxNameLength);
        // Any string goes to the service, which refuses what is not a label after the ACL (audited).
        const label =
          json['label'] === undefined ? 'current' : stringField(json, 'label', SECRETS_API_DEFAULTS.maxLabelLength);
        const id = requestId(req);
        const secret = await secrets.read(caller.spiffeId.id, name, {
          label: label as Label,
          ...(id === undefined ? {} : { requestId: id }),
        });
        try {
          return {
            name: secret.name,
            version: secret.version,
            label: secret.label ?? (label as Label),
            createdAt: secret.createdAt,
            value: secret.value.toString('base64'),
          };
        } finally {
          // The JSON string still holds the value until it is collected; the Buffer does not linger.
          wipeSecret(secret);
        }
      },
    },
  };
}
