import { HTTP_METHODS } from '../config/model.ts';
import { POLICY_DEFAULTS } from '../control/policy/defaults.ts';
import { RampartError } from '../core/errors.ts';
import { type CompiledPattern, compilePattern, matchPattern } from '../core/path-pattern.ts';
import type { InboundPolicy } from '../core/runtime.ts';
import { parseSpiffeId } from '../core/spiffe.ts';

/** A decision of the inbound policy. */
export interface PolicyDecision {
  readonly allowed: boolean;
  /** `allowed`, `unknown_caller` (no rule names this SPIFFE ID) or `no_rule` (none matches method + path). */
  readonly reason: 'allowed' | 'unknown_caller' | 'no_rule';
}

/** A compiled inbound policy: decides one request from the caller's SPIFFE ID, the method and the canonical path. */
export type CallerDecision = (caller: string, method: string, path: string) => PolicyDecision;

/** Code of a malformed inbound policy (runtime or control plane answer); `detail.reason` says what. */
export const SDK_POLICY_INVALID = 'SDK_ERR_POLICY_INVALID';

interface CompiledRule {
  methods: ReadonlySet<string>;
  paths: readonly CompiledPattern[];
}

const METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);

const ALLOWED: PolicyDecision = Object.freeze({ allowed: true, reason: 'allowed' });
const UNKNOWN_CALLER: PolicyDecision = Object.freeze({ allowed: false, reason: 'unknown_caller' });
const NO_RULE: PolicyDecision = Object.freeze({ allowed: false, reason: 'no_rule' });

const invalid = (reason: string, cause?: unknown): never => {
  throw new RampartError(SDK_POLICY_INVALID, 'inbound policy is malformed', { status: 500, detail: { reason }, cause });
};

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Compiles an inbound policy once (every field checked, every pattern parsed; SDK_ERR_POLICY_INVALID
 * on anything malformed, so a bad policy is refused whole and never half-installed): caller SPIFFE ID
 * → methods + canonical path patterns, deny by default. The input is treated as untrusted JSON (it
 * arrives from the launcher or the control plane): keys must be SPIFFE IDs of `trustDomain` when given,
 * methods the manifest's, sizes bounded (POLICY_DEFAULTS.maxRules, maxPatternsPerRule). `decide` takes
 * the CANONICAL path (core/canonical-path.ts, the function the gateway uses), so what is matched is
 * what the route handler sees (Istio CVE-2021-31920 class).
 */
export function compileCallerPolicy(policy: InboundPolicy, trustDomain?: string): CallerDecision {
  const value: unknown = policy;
  if (!isRecord(value)) return invalid('not an object');
  const { version, callers: raw } = value;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) invalid('version');
  if (!isRecord(raw)) return invalid('callers');
  const callers = new Map<string, CompiledRule[]>();
  let count = 0;
  for (const [caller, rules] of Object.entries(raw)) {
    try {
      const id = parseSpiffeId(caller);
      if (trustDomain !== undefined && id.trustDomain !== trustDomain) invalid('trust domain');
    } catch (cause) {
      if (cause instanceof RampartError && cause.code === SDK_POLICY_INVALID) throw cause;
      invalid('caller', cause);
    }
    if (!Array.isArray(rules)) return invalid('rules');
    const compiled: CompiledRule[] = [];
    for (const rule of rules as unknown[]) {
      count += 1;
      if (count > POLICY_DEFAULTS.maxRules) invalid('too many rules');
      if (!isRecord(rule) || !Array.isArray(rule.methods) || !Array.isArray(rule.paths)) return invalid('rule');
      if (rule.paths.length > POLICY_DEFAULTS.maxPatternsPerRule) invalid('too many patterns');
      for (const method of rule.methods as unknown[]) {
        if (typeof method !== 'string' || !METHODS.has(method)) invalid('method');
      }
      const paths = (rule.paths as unknown[]).map((path) => {
        if (typeof path !== 'string') return invalid('path');
        try {
          return compilePattern(path);
        } catch (cause) {
          return invalid('path', cause);
        }
      });
      compiled.push({ methods: new Set(rule.methods as string[]), paths });
    }
    callers.set(caller, compiled);
  }
  // Runs on every request of an mTLS service: no allocation (the three answers are shared, frozen).
  return (caller, method, path) => {
    const rules = callers.get(caller);
    if (!rules) return UNKNOWN_CALLER;
    for (const rule of rules) {
      if (!rule.methods.has(method)) continue;
      for (const pattern of rule.paths) if (matchPattern(pattern, path)) return ALLOWED;
    }
    return NO_RULE;
  };
}
