import { createHash } from 'node:crypto';
import type { Manifest } from '../../config/model.ts';
import type { CallerRule, InboundPolicy } from '../../core/runtime.ts';
import { serviceSpiffeId } from '../../core/spiffe.ts';
import { type CallerRules, canonicalCallers } from './digest.ts';

/**
 * The version of the policy the launcher puts in a service's runtime: a snapshot of the manifest it
 * started with. It belongs to no epoch of the control plane's policy history (policy-store.ts), so
 * the first answer a service gets supersedes it, whatever its version (the manifest may have changed
 * since the launcher read it). Every version the control plane serves is at least 1.
 */
export const LAUNCH_POLICY_VERSION = 0;

export type { CallerRules } from './digest.ts';

/** The inbound policy of every service in the manifest, by service name, in canonical form. */
export interface SystemPolicy {
  readonly services: Readonly<Record<string, CallerRules>>;
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Who may call `service` (deny by default): the gateway for the service's routes (methods and
 * patterns as routed), and every service whose `calls` entry names it, keyed by SPIFFE ID. The one
 * definition of the manifest's inbound policy: the launcher's snapshot and the control plane's live
 * updates both come from here.
 */
export function inboundCallers(manifest: Manifest, service: string): CallerRules {
  const callers = new Map<string, CallerRule[]>();
  const add = (caller: string, rule: CallerRule) => {
    const id = serviceSpiffeId(manifest.trustDomain, caller).id;
    const rules = callers.get(id) ?? [];
    rules.push(rule);
    callers.set(id, rules);
  };
  const own = Object.hasOwn(manifest.services, service) ? manifest.services[service] : undefined;
  for (const route of own?.routes ?? []) {
    add('gateway', { methods: [...route.methods], paths: [route.path.source] });
  }
  for (const caller of Object.values(manifest.services)) {
    for (const call of caller.calls) {
      if (call.service === service) {
        add(caller.name, { methods: [...call.methods], paths: call.paths.map((p) => p.source) });
      }
    }
  }
  return canonicalCallers(callers);
}

/** `service`'s inbound policy at `version` (default: the launcher's snapshot, {@link LAUNCH_POLICY_VERSION}). */
export function inboundPolicy(manifest: Manifest, service: string, version = LAUNCH_POLICY_VERSION): InboundPolicy {
  return { version, callers: inboundCallers(manifest, service) };
}

/** Every service's inbound policy, from a validated manifest. */
export function compileSystemPolicy(manifest: Manifest): SystemPolicy {
  const services: Record<string, CallerRules> = {};
  for (const name of Object.keys(manifest.services).sort(byText)) services[name] = inboundCallers(manifest, name);
  return { services };
}

/**
 * SHA-256 (hex) of the policy's canonical JSON: equal for equal policies, whatever else in the
 * manifest changed (rate limits, env, comments). The version moves only when this does.
 */
export function policyDigest(policy: SystemPolicy): string {
  return createHash('sha256').update(JSON.stringify(policy.services)).digest('hex');
}
