import type { StageDefinition } from './stage.ts';
import { createAuthenticate } from './stages/authenticate.ts';
import { createAuthorize } from './stages/authorize.ts';
import { createClientIdentity } from './stages/client.ts';
import { createCors } from './stages/cors.ts';
import { createHardening } from './stages/hardening.ts';
import { createHygiene } from './stages/hygiene.ts';
import { createRateLimit } from './stages/rate-limit.ts';
import { createRouting } from './stages/route.ts';

/**
 * The gateway's request pipeline, in order. Requests go down this table; responses come back up it
 * (each stage's response side runs in reverse). The last stage, the proxy, is terminal and is appended
 * by the gateway (it needs the response writer). Reordering this table changes security: each line
 * says why it is where it is.
 */
export const PIPELINE: readonly StageDefinition[] = [
  {
    name: 'hardening',
    purpose: 'first in, last out: its response side adds security headers to every response, denials included',
    create: createHardening,
  },
  {
    name: 'hygiene',
    purpose: 'refuse ambiguous framing, duplicate Host, absolute targets, oversize input; canonicalize the path',
    create: createHygiene,
  },
  {
    name: 'client',
    purpose: 'client address (trusted proxies only), request id, trace context: needed by limits and logs',
    create: createClientIdentity,
  },
  {
    name: 'cors',
    purpose:
      'answer CORS preflights itself, before route (the router 405s an OPTIONS its route does not list, and a ' +
      'preflight carries no token) and before the limits (a preflight costs a table lookup); on the way out, ' +
      'CORS fields only on routes that enable them, denials included',
    create: createCors,
  },
  {
    name: 'route',
    purpose: 'match the canonical path to a manifest route; unrouted paths end here (deny by default)',
    create: createRouting,
  },
  {
    name: 'ratelimit-pre-auth',
    purpose: 'limits by address or header before any signature check, so floods stay cheap',
    create: createRateLimit('pre-auth'),
  },
  {
    name: 'authenticate',
    purpose: 'verify the bearer access token (RFC 9068) on routes that require one',
    create: createAuthenticate,
  },
  { name: 'authorize', purpose: 'route scopes and roles against the verified token', create: createAuthorize },
  {
    name: 'ratelimit-post-auth',
    purpose: 'limits by subject or client: after authorization, so refused requests spend no quota',
    create: createRateLimit('post-auth'),
  },
];

/** Refuses a pipeline whose terminal stage is missing, misplaced or duplicated, or whose names repeat. */
export function assertPipeline(stages: readonly StageDefinition[]): void {
  const names = new Set<string>();
  stages.forEach((stage, i) => {
    if (names.has(stage.name)) throw new Error(`gateway pipeline: stage "${stage.name}" appears twice`);
    names.add(stage.name);
    const last = i === stages.length - 1;
    if (stage.terminal && !last) throw new Error(`gateway pipeline: terminal stage "${stage.name}" is not last`);
    if (last && !stage.terminal) throw new Error(`gateway pipeline: last stage "${stage.name}" is not terminal`);
  });
}
