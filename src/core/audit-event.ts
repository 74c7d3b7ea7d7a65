import { randomBytes } from 'node:crypto';
import { RampartError } from './errors.ts';
import { parseSpiffeId } from './spiffe.ts';

/**
 * The audit event: one security decision (issue 6 "Audit log" §1), the same shape for every component
 * (gateway decisions, SDK denials, identity events, CA issuance, secrets access, admin actions).
 *
 * An event is validated once, where it is made ({@link createAuditEvent}) and again where it is
 * received ({@link validateAuditEvent}, {@link encodeAuditEvent}), except that an event this module
 * itself validated in this process (a frozen object, its actor and detail frozen too, so it cannot
 * have changed since) is not checked a second time: its canonical bytes were kept. Anything else (a
 * copy, an object built by hand, anything read from the network) is checked in full: unknown fields
 * are refused, every string is bounded and free of control characters, and values that look like
 * credentials (JWTs, `Bearer …`, PEM private keys, well-known API-key shapes, long high-entropy runs)
 * are refused — the log must never hold a token, a password or a secret value (DESIGN.md "Audit";
 * secrets are referenced by an HMAC, in hex).
 *
 * The log stores the event's canonical serialization ({@link canonicalizeAuditEvent}): JSON with keys
 * sorted and no whitespace, which for this restricted value domain (strings, safe integers, booleans,
 * null, objects) is exactly RFC 8785 (JCS). The Merkle leaf is SHA-256(0x00 ‖ those bytes) (RFC 9162
 * §2.1.1), so the same event always hashes to the same leaf.
 */

/** The stable code of every validation failure; `detail` names the field and the reason. */
export const AUDIT_EVENT_ERROR = 'AUDIT_ERR_EVENT';

/** Why an event was refused (`detail.reason`). */
export const AUDIT_EVENT_REASONS = {
  notObject: 'not_an_object',
  unknownField: 'unknown_field',
  missing: 'missing',
  type: 'wrong_type',
  empty: 'empty',
  tooLong: 'too_long',
  control: 'control_character',
  format: 'format',
  tooLarge: 'event_too_large',
  tooManyDetails: 'too_many_details',
  secretName: 'secret_field_name',
  jwt: 'looks_like_jwt',
  authScheme: 'looks_like_credentials',
  privateKey: 'looks_like_private_key',
  apiKey: 'looks_like_api_key',
  highEntropy: 'looks_like_secret',
} as const;

/** The outcome of the decision. `error`: the decision could not be made (and the request was refused). */
export const AUDIT_DECISIONS = ['allow', 'deny', 'error'] as const;
export type AuditDecision = (typeof AUDIT_DECISIONS)[number];

/** Who acted. Each part is optional; a present actor names at least one. */
export interface AuditActor {
  /** The calling workload's SPIFFE ID (mTLS peer). */
  readonly spiffeId?: string;
  /** The end user (`sub` of the access token). */
  readonly subject?: string;
  /** The OAuth client (`client_id`). */
  readonly clientId?: string;
}

/** A scalar in `detail`: integers only, so every serializer writes the same digits. */
export type AuditDetailValue = string | number | boolean | null;

/** A validated, frozen audit event. */
export interface AuditEvent {
  /** Unique id (UUIDv7 from {@link newEventId}, or a v4 UUID): delivery deduplicates by it. */
  readonly id: string;
  /** When the decision was made: RFC 3339 UTC with milliseconds (`2026-01-31T12:00:00.000Z`). */
  readonly time: string;
  /** The emitting component: `gateway`, `ca`, `secrets`, `identity`, `admin`, or a service name. */
  readonly component: string;
  /** What was attempted, dotted lower case: `http.request`, `secret.read`, `svid.issue`. */
  readonly action: string;
  readonly decision: AuditDecision;
  /** A reason code (`GW_ERR_TOKEN_EXPIRED`, `scope_missing`): a code, not prose. */
  readonly reason?: string;
  /** What was acted on: a canonical path, `secret:<hmac hex>`, a SPIFFE ID. */
  readonly resource?: string;
  readonly actor?: AuditActor;
  /**
   * The SPIFFE ID of the workload that delivered the event to the log, set by the control plane from
   * the verified client certificate (never by the component), or the control plane's own for events
   * it records itself: a component cannot pass its events off as another's.
   */
  readonly reporter?: string;
  readonly requestId?: string;
  /** W3C trace-id: 32 lower-case hex digits, not all zero. */
  readonly traceId?: string;
  /** A few more facts (method, status, route): bounded, scalar, checked like every other value. */
  readonly detail?: Readonly<Record<string, AuditDetailValue>>;
}

/** What a component passes to {@link createAuditEvent}: `id` and `time` are filled in when absent. */
export interface AuditEventInput {
  id?: string;
  time?: string | Date;
  component: string;
  action: string;
  decision: AuditDecision;
  reason?: string;
  resource?: string;
  actor?: { spiffeId?: string; subject?: string; clientId?: string };
  reporter?: string;
  requestId?: string;
  traceId?: string;
  detail?: Record<string, AuditDetailValue>;
}

/** Bounds on events, each with its reason. */
export const AUDIT_EVENT_LIMITS = Object.freeze({
  /** A canonical event is at most 8 KiB: an event describes a decision, it does not carry payloads. */
  maxEventBytes: 8_192,
  /** Resources are paths or names; the gateway's own target limit is 8 KiB, a decision needs far less. */
  maxResourceLength: 1_024,
  /** Subjects and client ids are identifiers (OIDC `sub` is at most 255 ASCII characters, OIDC Core §2). */
  maxActorLength: 255,
  /** Component, action and reason codes are short identifiers. */
  maxCodeLength: 128,
  /** Detail is a handful of facts, not a document. */
  maxDetailEntries: 16,
  maxDetailStringLength: 512,
  /**
   * A run of base64 characters at least this long with high entropy looks like a key or token. 32
   * characters is 24 bytes of randomness: shorter runs are common in ids, longer ones rarely legitimate.
   */
  secretRunLength: 32,
  /**
   * Shannon entropy (bits per character) from which such a run is taken for random. Measured over
   * 200,000 samples each: base64url of 32 random bytes averages 4.85 bits (sd 0.12; 0.004% below 4.3),
   * of 40 or more bytes 5.05+ (none below 4.5); hex is at most 4.0, and slugs, codes and identifiers
   * mostly stay below 4.3 (a long mixed-case identifier can exceed it: use `redact` for such input).
   */
  secretEntropyBits: 4.3,
});

const FIELDS = new Set([
  'id',
  'time',
  'component',
  'action',
  'decision',
  'reason',
  'resource',
  'actor',
  'reporter',
  'requestId',
  'traceId',
  'detail',
]);
const ACTOR_FIELDS = new Set(['spiffeId', 'subject', 'clientId']);

const EVENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[47][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const COMPONENT = /^[a-z][a-z0-9-]{0,62}$/;
const ACTION = /^[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)*$/;
const REASON = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
/** The gateway's request-id alphabet (src/gateway/stages/client.ts), 1–128 characters. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;
const DETAIL_KEY = /^[a-z][A-Za-z0-9]{0,31}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Field names that announce a credential (detail keys): never logged, whatever the value. */
const SECRET_NAME =
  /pass(?:word|wd|phrase)?|pwd|secret|token|authori[sz]ation|cookie|api_?key|private_?key|credential|session|otp|pin$/i;
/** A JWS/JWE compact serialization: a base64url JSON header (`{"` is `eyJ`) and at least one more part. */
const JWT = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]+(?:\.|$)/;
/** The whole of such a serialization, for redaction. */
const JWT_WHOLE = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_.-]+/g;
/** `Authorization` values: `Bearer x`, `Basic x`, `DPoP x`, `Digest x`. */
const AUTH_SCHEME = /\b(?:bearer|basic|dpop|digest)\s+\S/i;
const PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|-----BEGIN OPENSSH/;
/** Shapes of well-known API keys (AWS access key ids, GitHub, GitLab, Slack, Stripe tokens). */
const API_KEY =
  /\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_-]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,})/;
/**
 * Runs of the base64 and base64url alphabets, without `/` (so paths split into segments; a standard
 * base64 value is then caught only when a run between its slashes is long enough).
 */
const BASE64_RUN = /[A-Za-z0-9+_-]{32,}/g;

/**
 * The events {@link checkEvent} built and validated in this process, with their canonical JSON. Only
 * the frozen objects it made itself are keys (a caller cannot add one: the map is private to this
 * module), so an event found here is exactly what was validated.
 */
const VALIDATED = new WeakMap<AuditEvent, string>();

function refuse(field: string, reason: string): RampartError {
  // The value itself is never copied into the error: it may be the very secret being refused.
  return new RampartError(AUDIT_EVENT_ERROR, 'invalid audit event', { status: 400, detail: { field, reason } });
}

/** Shannon entropy in bits per character of an ASCII run. */
function entropy(run: string): number {
  const counts = new Uint16Array(128);
  for (let i = 0; i < run.length; i++) counts[run.charCodeAt(i) & 0x7f]!++;
  let bits = 0;
  for (const n of counts) {
    if (n === 0) continue;
    const p = n / run.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** Fewer distinct characters than this cannot reach the entropy threshold (log2(20) ≈ 4.32). */
const MIN_DISTINCT = Math.ceil(2 ** AUDIT_EVENT_LIMITS.secretEntropyBits);
const HEX_AND_DASHES = /^[0-9a-fA-F-]+$/;

function highEntropyRun(value: string): RegExpExecArray | null {
  if (value.length < AUDIT_EVENT_LIMITS.secretRunLength) return null;
  BASE64_RUN.lastIndex = 0;
  for (let m = BASE64_RUN.exec(value); m !== null; m = BASE64_RUN.exec(value)) {
    const run = m[0];
    // Hex (UUIDs, digests) has 17 symbols at most: never above the threshold, skip it cheaply.
    if (HEX_AND_DASHES.test(run)) continue;
    // Two character classes at least: a run of one case or of digits alone is a word or a number.
    const classes = Number(/[A-Z]/.test(run)) + Number(/[a-z]/.test(run)) + Number(/[0-9]/.test(run));
    if (classes < 2) continue;
    if (new Set(run).size < MIN_DISTINCT) continue;
    if (entropy(run) >= AUDIT_EVENT_LIMITS.secretEntropyBits) return m;
  }
  return null;
}

/**
 * Why `value` looks like a credential (one of {@link AUDIT_EVENT_REASONS}), or null. Best effort: it
 * catches JWTs, `Authorization`-style values, PEM private keys, well-known API key shapes and long
 * high-entropy base64 runs; it cannot recognize a short or low-entropy password.
 */
export function secretReason(value: string): string | null {
  // Each test runs only when the value could match it (most values are short paths and codes).
  if (value.includes('eyJ') && JWT.test(value)) return AUDIT_EVENT_REASONS.jwt;
  if (AUTH_SCHEME.test(value)) return AUDIT_EVENT_REASONS.authScheme;
  if (value.includes('-----') && PRIVATE_KEY.test(value)) return AUDIT_EVENT_REASONS.privateKey;
  if (value.length >= 20 && API_KEY.test(value)) return AUDIT_EVENT_REASONS.apiKey;
  if (highEntropyRun(value) !== null) return AUDIT_EVENT_REASONS.highEntropy;
  return null;
}

/**
 * Replaces what {@link secretReason} would refuse by `[redacted]`, for values a component copies
 * from a request (a path, a client id) into an event it must not lose.
 */
export function redactSecrets(value: string): string {
  const marker = '[redacted]';
  let out = value
    .replace(JWT_WHOLE, marker)
    .replace(/\b(?:bearer|basic|dpop|digest)\s+\S+/gi, marker)
    .replace(/-----BEGIN [\s\S]*/g, marker)
    .replace(new RegExp(API_KEY.source, 'g'), marker);
  for (let m = highEntropyRun(out); m !== null; m = highEntropyRun(out)) {
    out = out.slice(0, m.index) + marker + out.slice(m.index + m[0].length);
  }
  return out;
}

function checkText(field: string, value: unknown, max: number, pattern?: RegExp): string {
  if (value === undefined) throw refuse(field, AUDIT_EVENT_REASONS.missing);
  if (typeof value !== 'string') throw refuse(field, AUDIT_EVENT_REASONS.type);
  if (value.length === 0) throw refuse(field, AUDIT_EVENT_REASONS.empty);
  if (value.length > max) throw refuse(field, AUDIT_EVENT_REASONS.tooLong);
  // Printable ASCII (the common case) has neither control characters nor surrogates.
  if (!PRINTABLE_ASCII.test(value) && (CONTROL.test(value) || LONE_SURROGATE.test(value))) {
    throw refuse(field, AUDIT_EVENT_REASONS.control);
  }
  if (pattern !== undefined && !pattern.test(value)) throw refuse(field, AUDIT_EVENT_REASONS.format);
  const secret = secretReason(value);
  if (secret !== null) throw refuse(field, secret);
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function checkTime(value: unknown): string {
  const text = checkText('time', value, 24, TIME);
  // The pattern fixed the layout; the ranges are checked here (Date.parse would roll 02-30 over).
  const year = Number(text.slice(0, 4));
  const month = Number(text.slice(5, 7));
  const day = Number(text.slice(8, 10));
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
  const hour = Number(text.slice(11, 13));
  const minute = Number(text.slice(14, 16));
  const second = Number(text.slice(17, 19));
  if (day < 1 || day > days || hour > 23 || minute > 59 || second > 59) {
    throw refuse('time', AUDIT_EVENT_REASONS.format);
  }
  return text;
}

function checkSpiffeId(field: string, value: unknown): string {
  const id = checkText(field, value, 2_048);
  try {
    parseSpiffeId(id);
  } catch {
    throw refuse(field, AUDIT_EVENT_REASONS.format);
  }
  return id;
}

function checkActor(value: unknown): AuditActor {
  if (!isPlainObject(value)) throw refuse('actor', AUDIT_EVENT_REASONS.type);
  const keys = Object.keys(value);
  for (const key of keys)
    if (!ACTOR_FIELDS.has(key)) throw refuse(`actor.${key.slice(0, 64)}`, AUDIT_EVENT_REASONS.unknownField);
  if (keys.length === 0) throw refuse('actor', AUDIT_EVENT_REASONS.empty);
  const actor: { spiffeId?: string; subject?: string; clientId?: string } = {};
  if (value.spiffeId !== undefined) actor.spiffeId = checkSpiffeId('actor.spiffeId', value.spiffeId);
  if (value.subject !== undefined)
    actor.subject = checkText('actor.subject', value.subject, AUDIT_EVENT_LIMITS.maxActorLength);
  if (value.clientId !== undefined) {
    actor.clientId = checkText('actor.clientId', value.clientId, AUDIT_EVENT_LIMITS.maxActorLength);
  }
  return Object.freeze(actor);
}

function checkDetail(value: unknown): Readonly<Record<string, AuditDetailValue>> {
  if (!isPlainObject(value)) throw refuse('detail', AUDIT_EVENT_REASONS.type);
  const keys = Object.keys(value);
  if (keys.length > AUDIT_EVENT_LIMITS.maxDetailEntries) throw refuse('detail', AUDIT_EVENT_REASONS.tooManyDetails);
  const detail: Record<string, AuditDetailValue> = {};
  for (const key of keys) {
    if (!DETAIL_KEY.test(key)) throw refuse(`detail.${key.slice(0, 64)}`, AUDIT_EVENT_REASONS.format);
    const field = `detail.${key}`;
    if (SECRET_NAME.test(key)) throw refuse(field, AUDIT_EVENT_REASONS.secretName);
    const item = value[key];
    if (item === null || typeof item === 'boolean') detail[key] = item;
    else if (typeof item === 'number') {
      if (!Number.isSafeInteger(item)) throw refuse(field, AUDIT_EVENT_REASONS.type);
      detail[key] = Object.is(item, -0) ? 0 : item;
    } else if (typeof item === 'string') {
      if (item.length === 0) detail[key] = item;
      else detail[key] = checkText(field, item, AUDIT_EVENT_LIMITS.maxDetailStringLength);
    } else throw refuse(field, AUDIT_EVENT_REASONS.type);
  }
  return Object.freeze(detail);
}

/**
 * Validates an event received from elsewhere (the network, the database): every field is checked, an
 * unknown one is refused, `id` and `time` are required. Returns a frozen copy holding only what was
 * checked. Throws AUDIT_ERR_EVENT (400) with `detail: { field, reason }`, never echoing the value.
 */
export function validateAuditEvent(value: unknown): AuditEvent {
  return checkEvent(value).event;
}

/**
 * Validates like {@link validateAuditEvent} and returns the canonical bytes too, serialized once: what
 * the log does with every event it receives.
 */
export function encodeAuditEvent(value: unknown): { event: AuditEvent; bytes: Buffer } {
  const known = VALIDATED.get(value as AuditEvent);
  if (known !== undefined) return { event: value as AuditEvent, bytes: Buffer.from(known, 'utf8') };
  const { event, json } = checkEvent(value);
  return { event, bytes: Buffer.from(json, 'utf8') };
}

function checkEvent(value: unknown): { event: AuditEvent; json: string } {
  if (!isPlainObject(value)) throw refuse('', AUDIT_EVENT_REASONS.notObject);
  for (const key of Object.keys(value)) {
    if (!FIELDS.has(key)) throw refuse(key.slice(0, 64), AUDIT_EVENT_REASONS.unknownField);
  }
  const event: { -readonly [K in keyof AuditEvent]: AuditEvent[K] } = {
    id: checkText('id', value.id, 36, EVENT_ID),
    time: checkTime(value.time),
    component: checkText('component', value.component, 63, COMPONENT),
    action: checkText('action', value.action, AUDIT_EVENT_LIMITS.maxCodeLength, ACTION),
    decision: 'deny',
  };
  // Read once: a getter (or a proxy) could answer a checked value first and another one later.
  const decision = value.decision;
  if (typeof decision !== 'string' || !(AUDIT_DECISIONS as readonly string[]).includes(decision)) {
    throw refuse('decision', decision === undefined ? AUDIT_EVENT_REASONS.missing : AUDIT_EVENT_REASONS.format);
  }
  event.decision = decision as AuditDecision;
  if (value.reason !== undefined) {
    event.reason = checkText('reason', value.reason, AUDIT_EVENT_LIMITS.maxCodeLength, REASON);
  }
  if (value.resource !== undefined) {
    event.resource = checkText('resource', value.resource, AUDIT_EVENT_LIMITS.maxResourceLength);
  }
  if (value.actor !== undefined) event.actor = checkActor(value.actor);
  if (value.reporter !== undefined) event.reporter = checkSpiffeId('reporter', value.reporter);
  if (value.requestId !== undefined) event.requestId = checkText('requestId', value.requestId, 128, REQUEST_ID);
  if (value.traceId !== undefined) event.traceId = checkText('traceId', value.traceId, 32, TRACE_ID);
  if (value.detail !== undefined) event.detail = checkDetail(value.detail);
  const frozen = Object.freeze(event);
  const json = canonicalJson(frozen);
  if (Buffer.byteLength(json, 'utf8') > AUDIT_EVENT_LIMITS.maxEventBytes)
    throw refuse('', AUDIT_EVENT_REASONS.tooLarge);
  VALIDATED.set(frozen, json);
  return { event: frozen, json };
}

/** The last reporter {@link withReporter} found valid (a primitive string: it cannot change). */
let checkedReporter: string | null = null;

/**
 * The event with `reporter` set (replacing any): what a log's owner records for events it delivers
 * itself. An event this module validated keeps its checked fields and only the reporter is checked;
 * any other value is validated in full, like {@link validateAuditEvent}. AUDIT_ERR_EVENT when invalid.
 */
export function withReporter(event: AuditEvent, reporter: string): AuditEvent {
  if (!VALIDATED.has(event)) return validateAuditEvent({ ...event, reporter });
  // A log's owner stamps the same reporter on every event: a string checked once stays valid.
  if (typeof reporter !== 'string' || reporter !== checkedReporter) {
    checkedReporter = checkSpiffeId('reporter', reporter);
  }
  const frozen: AuditEvent = Object.freeze({ ...event, reporter });
  const json = canonicalJson(frozen);
  if (Buffer.byteLength(json, 'utf8') > AUDIT_EVENT_LIMITS.maxEventBytes)
    throw refuse('', AUDIT_EVENT_REASONS.tooLarge);
  VALIDATED.set(frozen, json);
  return frozen;
}

/**
 * A new event id: a UUIDv7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then 74 random bits. Ids
 * made later sort later, so the log's unique index on them grows at its right edge. `random` (16
 * bytes from a CSPRNG, overwritten) lets a busy emitter draw randomness in bulk; by default it is
 * drawn here.
 */
export function newEventId(now: number = Date.now(), random?: Uint8Array): string {
  if (random !== undefined && random.length !== 16) throw new RangeError('newEventId needs 16 random bytes');
  const bytes = random === undefined ? randomBytes(16) : Buffer.from(random.buffer, random.byteOffset, 16);
  const ms = Math.max(0, Math.floor(now));
  bytes.writeUIntBE(ms % 2 ** 48, 0, 6);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Options of {@link createAuditEvent}. */
export interface CreateAuditEventOptions {
  /** Clock for `time` and the id (tests). */
  now?: () => number;
  /**
   * Replace secret-looking parts of `resource` and `actor` values by `[redacted]` instead of refusing
   * the event: for components copying request data into an event they must not lose.
   */
  redact?: boolean;
}

/**
 * The validating constructor every component uses: fills `id` (UUIDv7) and `time` (now) when absent,
 * drops `undefined` optional fields and empty actors, then validates as {@link validateAuditEvent}.
 */
export function createAuditEvent(input: AuditEventInput, options: CreateAuditEventOptions = {}): AuditEvent {
  if (!isPlainObject(input)) throw refuse('', AUDIT_EVENT_REASONS.notObject);
  const now = options.now?.() ?? Date.now();
  const clean = (text: unknown) =>
    options.redact === true && typeof text === 'string' ? redactSecrets(text) : (text as string | undefined);
  const draft: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) if (value !== undefined) draft[key] = value;
  draft.id ??= newEventId(now);
  const time = draft.time ?? new Date(now);
  draft.time = time instanceof Date ? (Number.isFinite(time.getTime()) ? time.toISOString() : '') : time;
  if (draft.resource !== undefined) draft.resource = clean(draft.resource);
  if (isPlainObject(draft.actor)) {
    const actor: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(draft.actor)) {
      if (value !== undefined) actor[key] = key === 'spiffeId' ? value : clean(value);
    }
    if (Object.keys(actor).length === 0) delete draft.actor;
    else draft.actor = actor;
  }
  return validateAuditEvent(draft);
}

const q = JSON.stringify;

function scalar(value: AuditDetailValue): string {
  return typeof value === 'string' ? q(value) : String(value);
}

/**
 * The canonical JSON of a validated event, written member by member in RFC 8785 §3.2.3 order (names
 * sorted by UTF-16 code units: action < actor < component < decision < detail < id < reason <
 * reporter < requestId < resource < time < traceId; clientId < spiffeId < subject). Strings are escaped by
 * JSON.stringify, which is what RFC 8785 §3.2.2.2 specifies; numbers are safe integers.
 */
function canonicalJson(e: AuditEvent): string {
  let out = `{"action":${q(e.action)}`;
  if (e.actor !== undefined) {
    const parts: string[] = [];
    if (e.actor.clientId !== undefined) parts.push(`"clientId":${q(e.actor.clientId)}`);
    if (e.actor.spiffeId !== undefined) parts.push(`"spiffeId":${q(e.actor.spiffeId)}`);
    if (e.actor.subject !== undefined) parts.push(`"subject":${q(e.actor.subject)}`);
    out += `,"actor":{${parts.join(',')}}`;
  }
  out += `,"component":${q(e.component)},"decision":${q(e.decision)}`;
  if (e.detail !== undefined) {
    const detail = e.detail;
    const keys = Object.keys(detail).sort();
    out += `,"detail":{${keys.map((k) => `${q(k)}:${scalar(detail[k]!)}`).join(',')}}`;
  }
  out += `,"id":${q(e.id)}`;
  if (e.reason !== undefined) out += `,"reason":${q(e.reason)}`;
  if (e.reporter !== undefined) out += `,"reporter":${q(e.reporter)}`;
  if (e.requestId !== undefined) out += `,"requestId":${q(e.requestId)}`;
  if (e.resource !== undefined) out += `,"resource":${q(e.resource)}`;
  out += `,"time":${q(e.time)}`;
  if (e.traceId !== undefined) out += `,"traceId":${q(e.traceId)}`;
  return `${out}}`;
}

/**
 * The canonical bytes of a validated event: UTF-8 JSON, keys sorted, no whitespace (RFC 8785 for this
 * value domain). What the log stores and hashes.
 */
export function canonicalizeAuditEvent(event: AuditEvent): Buffer {
  return Buffer.from(VALIDATED.get(event) ?? canonicalJson(event), 'utf8');
}

/**
 * Reads a stored entry back: strict UTF-8, JSON, a valid event, and canonical (re-serializing gives
 * the same bytes). Throws AUDIT_ERR_EVENT otherwise.
 */
export function parseAuditEntry(bytes: Uint8Array): AuditEvent {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw refuse('', AUDIT_EVENT_REASONS.format);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw refuse('', AUDIT_EVENT_REASONS.format);
  }
  const event = validateAuditEvent(parsed);
  if (canonicalJson(event) !== text) throw refuse('', AUDIT_EVENT_REASONS.format);
  return event;
}
