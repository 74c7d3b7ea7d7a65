import type { Manifest } from '../../config/model.ts';
import { serviceSpiffeId } from '../../core/spiffe.ts';

/**
 * Who may read which secret, compiled once from the manifest (DESIGN.md: deny by default at every
 * layer). A service's SPIFFE ID `spiffe://<trustDomain>/svc/<name>` maps to the secrets listed under
 * `services.<name>.secrets`; anything not listed, and any caller that is not exactly such an ID, is
 * refused. The lookup is an exact string match: SPIFFE IDs have one spelling (src/core/spiffe.ts), so a
 * variant (upper case, trailing `/`, another trust domain, `/svc/a/b`) matches nothing.
 */
export interface SecretsAcl {
  /** True only when `callerSpiffeId` was granted `name` in the manifest. */
  allows(callerSpiffeId: unknown, name: unknown): boolean;
  /** The grants, for `rampart check` style summaries and tests: SPIFFE ID → sorted secret names. */
  readonly grants: ReadonlyMap<string, readonly string[]>;
}

/** The manifest fields the ACL reads. */
export type AclManifest = Pick<Manifest, 'trustDomain' | 'services' | 'secrets'>;

/**
 * Compiles the manifest's grants. Only declared secrets are granted (the manifest loader already refuses
 * undeclared ones; this is the second lock). Throws CA_ERR_SPIFFE_ID_INVALID for a trust domain or
 * service name that cannot form a SPIFFE ID (a manifest the loader would refuse anyway).
 */
export function compileSecretsAcl(manifest: AclManifest): SecretsAcl {
  const grants = new Map<string, ReadonlySet<string>>();
  for (const service of Object.values(manifest.services)) {
    const names = service.secrets.filter((name) => Object.hasOwn(manifest.secrets, name));
    if (names.length === 0) continue;
    grants.set(serviceSpiffeId(manifest.trustDomain, service.name).id, new Set(names));
  }
  const view = new Map([...grants].map(([id, names]) => [id, Object.freeze([...names].sort())] as const));
  return Object.freeze({
    allows(callerSpiffeId: unknown, name: unknown): boolean {
      if (typeof callerSpiffeId !== 'string' || typeof name !== 'string') return false;
      return grants.get(callerSpiffeId)?.has(name) === true;
    },
    grants: view,
  });
}
