import type { HttpMethod, Manifest, Route } from '../config/model.ts';
import { type CompiledPattern, compareSpecificity, compilePattern, matchPattern } from '../core/path-pattern.ts';

export interface CompiledRoute {
  readonly route: Route;
  readonly pattern: CompiledPattern;
  readonly methods: ReadonlySet<string>;
}

export type RouteMatch =
  | { kind: 'match'; route: CompiledRoute }
  /** The path is routed but not for this method: 405 with `Allow`. */
  | { kind: 'method'; allow: readonly HttpMethod[] }
  | { kind: 'none' };

/**
 * Matches canonical paths to manifest routes, most specific pattern first. Built once per manifest;
 * `match` allocates nothing on the hit path.
 */
export class Router {
  readonly #routes: CompiledRoute[];

  constructor(manifest: Manifest) {
    this.#routes = manifest.routes
      .map((route) => ({ route, pattern: compilePattern(route.path.source), methods: new Set<string>(route.methods) }))
      .sort((a, b) => compareSpecificity(a.pattern, b.pattern));
  }

  match(method: string, path: string): RouteMatch {
    // HEAD is served wherever GET is (RFC 9110 §9.3.2).
    const effective = method === 'HEAD' ? 'GET' : method;
    let allow: Set<HttpMethod> | null = null;
    for (const compiled of this.#routes) {
      if (!matchPattern(compiled.pattern, path)) continue;
      if (compiled.methods.has(method) || compiled.methods.has(effective)) return { kind: 'match', route: compiled };
      allow ??= new Set();
      for (const m of compiled.route.methods) allow.add(m);
    }
    return allow ? { kind: 'method', allow: [...allow] } : { kind: 'none' };
  }
}
