import { Ajv, type ErrorObject } from 'ajv';
import { type ConfigPath, code, pointerToPath, show } from './config-path.ts';
import { ISSUE, type IssueCode } from './issue-codes.ts';
import { HTTP_METHODS } from './model.ts';
import { RATE_LIMIT_HINT } from './rate-limit.ts';
import { RESERVED_SERVICE_NAMES } from './reserved.ts';
import { manifestSchema, type SchemaKind, schemaKind } from './schema.ts';
import { closest, didYouMean } from './suggest.ts';

/** An issue before it has a file position: `where` says whether to point at the key or the value. */
export interface DraftIssue {
  code: IssueCode;
  path: ConfigPath;
  where: 'key' | 'value';
  message: string;
  hint?: string;
}

type Json = { [key: string]: unknown };

const TLS_AUTO_MESSAGE = 'certificates from the local CA are written `tls: auto` or `tls: { auto: [names] }`';
const TLS_AUTO_HINT =
  '`auto` covers the listen host (and localhost on loopback); `{ auto: [shop.example.test] }` adds names';

/** A map that means the local CA but in another shape (`{ mode: auto, names }`, `{ names }`). */
function isAutoTls(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const map = value as Json;
  return !('auto' in map) && ('names' in map || map['mode'] === 'auto');
}

/**
 * Validates the data against the manifest schema and turns Ajv's errors into one clear issue per mistake:
 * oneOf fan-out is reduced to the alternative the user evidently meant, a misspelt required key is one
 * unknown-key issue (with "did you mean"), not two.
 */
export function schemaIssues(data: unknown): DraftIssue[] {
  // Compiled per call: loading a manifest happens once per process, and a shared validator would keep
  // the last `errors` in module state.
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, strictRequired: false });
  const validate = ajv.compile(manifestSchema);
  if (validate(data)) return [];
  const errors = validate.errors ?? [];
  const { kept, synthetic } = collapse(errors, data);
  const issues = [...synthetic, ...kept.map((error) => translate(error, data))];
  // Fail closed: an invalid document always yields issues, even if collapsing were ever wrong.
  return issues.length > 0 ? issues : errors.map((error) => translate(error, data));
}

function collapse(errors: ErrorObject[], data: unknown): { kept: ErrorObject[]; synthetic: DraftIssue[] } {
  const removed = new Set<ErrorObject>();
  const synthetic: DraftIssue[] = [];
  const composites = errors
    .filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf')
    .sort((a, b) => a.schemaPath.length - b.schemaPath.length);

  for (const composite of composites) {
    if (removed.has(composite)) continue;
    removed.add(composite);
    const prefix = `${composite.schemaPath}/`;
    // One schema location validates many values (every route's `auth`): an error belongs to this
    // composite only if both its schema path and its instance path are inside it.
    const inner = errors.filter(
      (e) =>
        !removed.has(e) &&
        e.schemaPath.startsWith(prefix) &&
        (e.instancePath === composite.instancePath || e.instancePath.startsWith(`${composite.instancePath}/`)),
    );
    const drop = (keep: (e: ErrorObject) => boolean = () => false) => {
      for (const e of inner) if (!keep(e)) removed.add(e);
    };
    const branches = (composite.schema as Json[]) ?? [];
    const path = pointerToPath(composite.instancePath, data);
    const value = composite.data;
    const branchOf = (e: ErrorObject) => Number(e.schemaPath.slice(prefix.length).split('/')[0]);
    const requiredOnly = branches.every((b) => Object.keys(b).length === 1 && Array.isArray(b['required']));
    const alternatives = requiredOnly ? branches.map((b) => String((b['required'] as string[])[0])) : [];

    // `required` says nothing about a value that is not a map: its type error is the whole story.
    if (requiredOnly && jsonType(value) !== 'object') {
      drop();
      continue;
    }

    const passing = (composite.params as { passingSchemas?: number[] | null }).passingSchemas;
    if (Array.isArray(passing)) {
      drop();
      const names = passing.map((i) => alternatives[i]).filter((n) => n !== undefined);
      synthetic.push(
        names.length >= 2
          ? {
              code: ISSUE.EXCLUSIVE,
              path: [...path, names[1]!],
              where: 'key',
              message: `${names.map(code).join(' and ')} exclude each other`,
              hint: `keep exactly one of ${alternatives.map(code).join(' or ')}`,
            }
          : {
              code: ISSUE.SCHEMA,
              path,
              where: 'value',
              message: 'the value matches more than one alternative',
            },
      );
      continue;
    }

    if (requiredOnly) {
      drop();
      // `bulitin: {}` is one mistake: the unknown-key issue (with its suggestion) says it all.
      const misspelt = errors.some(
        (e) =>
          e.keyword === 'additionalProperties' &&
          e.instancePath === composite.instancePath &&
          closest(String((e.params as { additionalProperty: string }).additionalProperty), alternatives) !== undefined,
      );
      if (misspelt) continue;
      synthetic.push({
        code: ISSUE.REQUIRED,
        path,
        where: 'key',
        message: `one of ${alternatives.map(code).join(' or ')} is required`,
        hint: describeOf(composite.parentSchema),
      });
      continue;
    }

    // `{ mode: auto, names }` (the model's shape) or `{ names }`: one issue showing the manifest's form,
    // not the missing `cert` and `key` of the files form.
    if (schemaKind(composite.parentSchema) === 'tls' && isAutoTls(value)) {
      drop();
      synthetic.push({ code: ISSUE.TLS, path, where: 'value', message: TLS_AUTO_MESSAGE, hint: TLS_AUTO_HINT });
      continue;
    }

    const fitting = branches.map((_, i) => i).filter((i) => typeFits(branches[i]!, value));
    if (fitting.length === 0) {
      drop();
      const k = schemaKind(composite.parentSchema);
      synthetic.push({
        code: ISSUE.TYPE,
        path,
        where: 'value',
        message: `expected ${branches.map(describeBranch).join(' or ')}, found ${describeValue(value)}`,
        hint: kindHint(k, value) ?? describeOf(composite.parentSchema),
      });
      continue;
    }

    // A branch whose discriminating key (`store: memory` vs `store: redis`) has the wrong value is not
    // the alternative the user meant.
    const errorsOf = (i: number) => inner.filter((e) => branchOf(e) === i);
    const discriminated = (i: number) =>
      errorsOf(i).some(
        (e) => (e.keyword === 'enum' || e.keyword === 'const') && isChildOf(e.instancePath, composite.instancePath),
      );
    const meant = fitting.filter((i) => !discriminated(i));
    if (meant.length === 0 && fitting.length > 1) {
      const enumErrors = fitting.flatMap(errorsOf).filter((e) => e.keyword === 'enum' || e.keyword === 'const');
      const first = enumErrors[0]!;
      const allowed = [
        ...new Set(enumErrors.filter((e) => e.instancePath === first.instancePath).flatMap(allowedValues)),
      ].map(String);
      drop();
      const found = String(first.data);
      const guess = didYouMean(found, allowed);
      synthetic.push({
        code: ISSUE.VALUE,
        path: pointerToPath(first.instancePath, data),
        where: 'value',
        message: `expected one of ${allowed.map(code).join(', ')}, found ${show(first.data)}`,
        ...(guess ? { hint: guess } : {}),
      });
      continue;
    }
    const pool = meant.length > 0 ? meant : fitting;
    const chosen = pool.reduce((best, i) => (errorsOf(i).length < errorsOf(best).length ? i : best), pool[0]!);
    drop((e) => branchOf(e) === chosen);
  }

  // A value of the wrong type fails its enum too; the type error alone says what is wrong.
  const mistyped = new Set(errors.filter((e) => !removed.has(e) && e.keyword === 'type').map((e) => e.instancePath));
  for (const e of errors) {
    if (e.keyword !== 'type' && e.propertyName === undefined && mistyped.has(e.instancePath)) removed.add(e);
  }

  // `rnu: x` instead of `run: x` is one mistake: report the unknown key (its hint names `run`), not also
  // the missing `run`.
  const unknownKeys = errors.filter((e) => !removed.has(e) && e.keyword === 'additionalProperties');
  for (const e of errors) {
    if (removed.has(e)) continue;
    if (e.keyword === 'propertyNames') removed.add(e); // its inner error carries the name
    if (e.keyword === 'required') {
      const missing = String((e.params as { missingProperty: string }).missingProperty);
      const typo = unknownKeys.some(
        (u) =>
          u.instancePath === e.instancePath &&
          closest(String((u.params as { additionalProperty: string }).additionalProperty), [missing]) !== undefined,
      );
      if (typo) removed.add(e);
    }
  }
  return { kept: errors.filter((e) => !removed.has(e)), synthetic };
}

function translate(error: ErrorObject, data: unknown): DraftIssue {
  const path = pointerToPath(error.instancePath, data);
  const parent = (error.parentSchema ?? {}) as Json;
  const k = schemaKind(parent);
  const value: unknown = error.propertyName !== undefined ? error.propertyName : error.data;
  const params = error.params as Record<string, unknown>;
  const valuePath = error.propertyName !== undefined ? [...path, error.propertyName] : path;
  const where = error.propertyName !== undefined ? 'key' : 'value';

  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params['additionalProperty']);
      const allowed = Object.keys((parent['properties'] as Json | undefined) ?? {});
      return {
        code: ISSUE.UNKNOWN_KEY,
        path: [...path, key],
        where: 'key',
        message: `unknown key ${code(key)}`,
        hint: didYouMean(key, allowed) ?? `allowed here: ${allowed.map(code).join(', ')}`,
      };
    }
    case 'required': {
      const key = String(params['missingProperty']);
      const property = ((parent['properties'] as Json | undefined)?.[key] ?? {}) as Json;
      return {
        code: ISSUE.REQUIRED,
        path: [...path, key],
        where: 'key',
        message: `missing required key ${code(key)}`,
        ...(typeof property['description'] === 'string' ? { hint: `${key}: ${property['description']}` } : {}),
      };
    }
    case 'type': {
      const expected = String(params['type']);
      return {
        code: ISSUE.TYPE,
        path,
        where: 'value',
        message: `expected ${typeName(expected)}, found ${describeValue(value)}`,
        hint: typeHint(expected, value) ?? describeOf(parent),
      };
    }
    case 'enum':
    case 'const':
      return enumIssue(k, path, value, allowedValues(error), parent);
    case 'pattern':
    case 'maxLength':
      return patternIssue(k, valuePath, where, value, parent);
    case 'not':
      // The schema uses `not` for reserved names only: service names and env names.
      return k === 'name'
        ? {
            code: ISSUE.NAME,
            path: valuePath,
            where,
            message: `${code(String(value))} is reserved for a Rampart component`,
            hint: `choose another service name (not ${RESERVED_SERVICE_NAMES.map(code).join(', ')})`,
          }
        : {
            code: ISSUE.ENV,
            path: valuePath,
            where,
            message: `${code(String(value))} is reserved: the launcher does not pass it to services`,
            hint: 'RAMPART_*, NODE_* (except NODE_ENV, NODE_EXTRA_CA_CERTS), LD_* and DYLD_* are reserved; choose another name',
          };
    case 'minimum':
    case 'maximum':
      return {
        code: ISSUE.VALUE,
        path,
        where: 'value',
        message: `${show(value)} is out of range ${parent['minimum']} to ${parent['maximum']}`,
        hint: describeOf(parent),
      };
    case 'minItems':
    case 'minProperties':
    case 'minLength':
      return {
        code: k === 'host' ? ISSUE.HOST : ISSUE.VALUE,
        path,
        where: 'value',
        message: error.keyword === 'minLength' ? 'must not be empty' : `must not be empty, found ${show(value)}`,
        hint: describeOf(parent),
      };
    case 'uniqueItems': {
      const later = Math.max(Number(params['i']), Number(params['j']));
      const list = Array.isArray(value) ? value : [];
      return {
        code: ISSUE.DUPLICATE_ITEM,
        path: [...path, later],
        where: 'value',
        message: `${show(list[later])} is listed twice`,
        hint: 'remove the repeated entry',
      };
    }
    default:
      return {
        code: ISSUE.SCHEMA,
        path: valuePath,
        where,
        message: error.message ?? `fails ${error.keyword}`,
        hint: describeOf(parent),
      };
  }
}

function enumIssue(k: SchemaKind | undefined, path: ConfigPath, value: unknown, allowed: unknown[], parent: Json) {
  const found = show(value);
  if (k === 'method') {
    const upper = typeof value === 'string' ? value.toUpperCase() : '';
    const known = (HTTP_METHODS as readonly string[]).includes(upper);
    return {
      code: ISSUE.METHOD,
      path,
      where: 'value' as const,
      message: known ? `methods are upper case, found ${found}` : `${found} is not an HTTP method Rampart routes`,
      hint: known ? `write ${upper}` : `use one of ${HTTP_METHODS.join(', ')}`,
    };
  }
  if (k === 'tls') {
    return {
      code: ISSUE.TLS,
      path,
      where: 'value' as const,
      message: `unsupported TLS setting ${found}`,
      hint: kindHint(k, value)!,
    };
  }
  const words = allowed.map(String);
  const guess = typeof value === 'string' ? didYouMean(value, words) : undefined;
  return {
    code: ISSUE.VALUE,
    path,
    where: 'value' as const,
    message:
      allowed.length === 1
        ? `expected ${code(words[0]!)}, found ${found}`
        : `expected one of ${words.map(code).join(', ')}, found ${found}`,
    hint: guess ?? kindHint(k, value) ?? describeOf(parent),
  };
}

function patternIssue(
  k: SchemaKind | undefined,
  path: ConfigPath,
  where: 'key' | 'value',
  value: unknown,
  parent: Json,
): DraftIssue {
  const text = String(value);
  const base = { path, where, hint: kindHint(k, value) ?? describeOf(parent) };
  const title = typeof parent['title'] === 'string' ? parent['title'].toLowerCase() : 'value';
  switch (k) {
    case 'rate':
      return { ...base, code: ISSUE.RATE, message: `invalid rate limit ${show(text)}` };
    case 'pattern':
      return { ...base, code: ISSUE.PATTERN, message: `invalid path pattern ${show(text)}` };
    case 'cidr':
      return { ...base, code: ISSUE.CIDR, message: `invalid CIDR ${show(text)}` };
    case 'url':
      return { ...base, code: ISSUE.URL, message: `invalid URL ${show(text)}` };
    case 'env':
      return { ...base, code: ISSUE.ENV, message: `invalid environment variable name ${show(text)}` };
    case 'name':
      return { ...base, code: ISSUE.NAME, message: `invalid ${title} ${show(text)}` };
    case 'origin':
      return { ...base, code: ISSUE.CORS_ORIGIN, message: `invalid origin ${show(text)}` };
    case 'header':
      return { ...base, code: ISSUE.CORS_HEADER, message: `invalid header name ${show(text)}` };
    default:
      return { ...base, code: ISSUE.VALUE, message: `invalid ${title} ${show(text)}` };
  }
}

/** Hints that depend on what the value is, beyond the schema's description. */
function kindHint(k: SchemaKind | undefined, value: unknown): string | undefined {
  const text = typeof value === 'string' ? value : undefined;
  switch (k) {
    case 'tls':
      return 'use `auto` (a certificate from the local CA), `{ cert: <file>, key: <file> }`, or `off` (plain HTTP, loopback hosts only)';
    case 'auth':
      return 'omit `auth` to require a valid token, write `none` for a public route, or `{ scopes: [...], roles: [...] }`';
    case 'rate':
      return RATE_LIMIT_HINT;
    case 'store':
      // A URL written where the map goes: say the shape (the value itself may hold a password).
      return text !== undefined && /^postgres(ql)?:\/\//i.test(text)
        ? 'a database is a map: write `store: { postgres: "<url>" }`'
        : undefined;
    case 'pattern':
      return 'a pattern is a canonical path starting with `/`; `*` matches one segment, a final `**` the rest';
    case 'env':
      return text !== undefined && /^[A-Z_][A-Z0-9_]*$/.test(text.toUpperCase()) && text !== text.toUpperCase()
        ? `write ${text.toUpperCase()} (upper case, digits and _)`
        : undefined;
    case 'name':
    case 'trustDomain':
      return text !== undefined && text !== text.toLowerCase()
        ? `names are lower case: ${text.toLowerCase()}`
        : undefined;
    default:
      return undefined;
  }
}

function allowedValues(error: ErrorObject): unknown[] {
  const params = error.params as { allowedValues?: unknown[]; allowedValue?: unknown };
  return params.allowedValues ?? (params.allowedValue !== undefined ? [params.allowedValue] : []);
}

function isChildOf(pointer: string, parent: string): boolean {
  return pointer.startsWith(`${parent}/`) && !pointer.slice(parent.length + 1).includes('/');
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value === 'number' ? 'number' : typeof value === 'object' ? 'object' : typeof value;
}

function typeFits(branch: Json, value: unknown): boolean {
  const type = branch['type'];
  if (type === undefined) return true;
  const actual = jsonType(value);
  if (type === 'integer') return Number.isInteger(value);
  return type === actual;
}

function typeName(type: string): string {
  const names: Record<string, string> = {
    string: 'a string',
    integer: 'a whole number',
    number: 'a number',
    boolean: 'true or false',
    array: 'a list',
    object: 'a map',
    null: 'nothing',
  };
  return names[type] ?? type;
}

function describeValue(value: unknown): string {
  switch (jsonType(value)) {
    case 'null':
      return 'nothing (an empty value)';
    case 'array':
      return 'a list';
    case 'object':
      return 'a map';
    case 'string':
      return `the string ${show(value)}`;
    case 'number':
      return `the number ${show(value)}`;
    default:
      return show(value);
  }
}

function describeBranch(branch: Json): string {
  if (Array.isArray(branch['enum'])) return branch['enum'].map((v) => code(String(v))).join(' or ');
  if (branch['type'] === 'object' && Array.isArray(branch['required']) && branch['required'].length > 0) {
    return `a map with ${(branch['required'] as string[]).map(code).join(' and ')}`;
  }
  return typeName(String(branch['type']));
}

function describeOf(schema: unknown): string | undefined {
  const description = (schema as Json | undefined)?.['description'];
  return typeof description === 'string' ? description : undefined;
}

function typeHint(expected: string, value: unknown): string | undefined {
  const scalar = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
  if (expected === 'array' && scalar) return `write a list: [${String(value)}]`;
  if (expected === 'string' && (typeof value === 'number' || typeof value === 'boolean')) {
    return `quote it: "${String(value)}"`;
  }
  if (expected === 'integer' && typeof value === 'string' && /^[0-9]+$/.test(value))
    return `remove the quotes: ${value}`;
  return undefined;
}
