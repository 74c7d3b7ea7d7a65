import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { TokenIdentity } from '../core/access-token.ts';
import type { Logger } from '../core/logger.ts';
import type { CompiledRoute } from './router.ts';

/**
 * Everything the stages learn about one request. Stages fill it in pipeline order; a field is only
 * meaningful once the stage that sets it has run (noted on each field).
 */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** `performance.now()` at arrival. */
  readonly startedAt: number;
  /**
   * Whether the request arrived over TLS, and the peer address: read once at arrival, because
   * `req.socket` is detached (null) once the connection closes, possibly while the upstream still works.
   */
  readonly secure: boolean;
  readonly peer: string;
  readonly logger: Logger;
  /** Set by `client`: the request id (propagated from a trusted peer or minted here). */
  requestId: string;
  /** Set by `client`: W3C traceparent sent upstream. */
  traceparent: string;
  /** Set by `client`: the client address as far as trusted proxies let us see. */
  clientIp: string;
  /** Set by `hygiene`: the canonical path (see core/canonical-path.ts): matched, authorized and forwarded. */
  path: string;
  /** Set by `hygiene`: the raw query string without `?`. */
  query: string;
  /** Set by `route`. */
  route: CompiledRoute | null;
  /** Set by `authenticate` on routes that need a token. */
  identity: TokenIdentity | null;
  /** How many stages have run their request side; their response sides run in reverse on the way out. */
  entered: number;
}

/** A response-side hook: adjusts the headers of the response (proxied or generated) on the way out. */
export type ResponseHook = (ctx: RequestContext, headers: OutgoingHttpHeaders) => void;
