import { edgeCertificateNames } from '../../config/edge-certificate-names.ts';
import type { GatewayConfig } from '../../config/model.ts';
import type { Logger } from '../../core/logger.ts';
import { CA_DEFAULTS, type CertificateAuthority, type IssuedEdgeCertificate } from '../ca/index.ts';
import { COMPONENT_SERVICE_NAMES } from './defaults.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import { type ApiRoutes, apiCaller, onlyFields, parseJson, stringField } from './request.ts';

/** The route the gateway obtains its edge certificate with (`tls: auto`). */
export const EDGE_CERTIFICATE_ROUTE = 'POST /v1/edge-certificates';

/** The answer: the certificate, its names and dates, and the bundle users verify it with. */
export interface EdgeCertificateResponse {
  /** The leaf, PEM. */
  certificate: string;
  names: string[];
  notBefore: number;
  notAfter: number;
  bundle: { sequence: number; pem: string };
}

export interface EdgeRoutesOptions {
  ca: CertificateAuthority;
  /** The trust domain every caller's SPIFFE ID must belong to. */
  trustDomain: string;
  /**
   * The gateway section of the manifest the control plane holds, read when a certificate is asked
   * for (the names never come from the request). Throws when the manifest cannot be loaded.
   */
  gateway: () => Pick<GatewayConfig, 'tls' | 'listen'>;
  logger: Logger;
}

const FIELDS = ['csr'];

/**
 * The edge-certificate route of the control plane's API (`tls: auto`), served on its listener
 * (`createControlApi({ routes: [createEdgeRoutes(…)] })`):
 *
 * | route | authenticated by | does |
 * | --- | --- | --- |
 * | `POST /v1/edge-certificates` `{csr}` | the gateway's SVID (`svc/gateway`) | an edge-server certificate for the manifest's names |
 *
 * The caller is the SPIFFE ID of the verified client certificate only: none, or one that breaks the
 * SVID rules, is 401; any identity but the gateway's is 403 CA_ERR_API_FORBIDDEN (a service must not
 * obtain a certificate browsers accept for the gateway's names). The names come from the manifest the
 * control plane reads, never from the request or the CSR; a manifest that is not in `tls: auto` mode
 * is 403 as well. The last names read are kept if the manifest becomes unreadable mid-edit.
 */
export function createEdgeRoutes(options: EdgeRoutesOptions): ApiRoutes {
  const { ca, trustDomain, logger } = options;
  let lastNames: string[] | null = null;

  const currentNames = (): string[] => {
    try {
      lastNames = edgeCertificateNames(options.gateway());
    } catch (err) {
      if (lastNames === null) throw err;
      logger.warn({ err }, 'manifest unreadable; edge certificate names from the last good one');
    }
    return lastNames;
  };

  return {
    [EDGE_CERTIFICATE_ROUTE]: {
      handle: async (req, body): Promise<EdgeCertificateResponse> => {
        // Identity first: nobody else learns anything, not even whether the body was well formed.
        const caller = apiCaller(req, trustDomain);
        if (caller.service !== COMPONENT_SERVICE_NAMES.gateway) {
          throw apiError(CONTROL_API_ERRORS.forbidden, { caller: caller.spiffeId.id, route: EDGE_CERTIFICATE_ROUTE });
        }
        const json = parseJson(body);
        onlyFields(json, FIELDS);
        const csr = stringField(json, 'csr', CA_DEFAULTS.maxCsrBytes);
        const names = currentNames();
        if (names.length === 0) throw apiError(CONTROL_API_ERRORS.forbidden, { reason: 'gateway tls is not auto' });
        const issued: IssuedEdgeCertificate = await ca.issueEdgeCertificate({ csr, names });
        logger.info(
          { event: 'ca.edge.issued', serial: issued.serial, names, notAfter: issued.notAfter },
          'edge certificate issued',
        );
        return {
          certificate: issued.certificatePem,
          names: issued.names.map((n) => n.value),
          notBefore: issued.notBefore,
          notAfter: issued.notAfter,
          bundle: { sequence: issued.bundle.sequence, pem: issued.bundle.pem },
        };
      },
    },
  };
}
