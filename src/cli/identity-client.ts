import { closeSync, constants, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../config/config-error.ts';
import { loadManifest } from '../config/load.ts';
import { IDENTITY_NAMES } from '../identity/defaults.ts';

/**
 * What the identity CLI commands share: finding the built-in provider of a manifest, the stored
 * tokens of `rampart login` (a file in the user's config directory, mode 0600, never in the project),
 * the device authorization grant (RFC 8628), refreshing, and calling the admin API.
 */

/** The CLI's public client, registered by the provider itself. */
export const CLI_CLIENT_ID = IDENTITY_NAMES.cliClientId;
export const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** Tokens are refreshed this long before they expire, so a printed token is good for a while. */
const REFRESH_MARGIN_S = 60;

export interface Target {
  issuer: string;
  /** API audience (manifest `identity.audience`). */
  audience: string;
  /** `<issuer>/admin`. */
  adminAudience: string;
  /** Scopes the manifest's routes use (what `rampart login` asks for). */
  apiScopes: string[];
  /** `<manifest dir>/.rampart/identity`: where the provider writes its bootstrap token. */
  dataDir: string;
}

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Loads the manifest and describes its built-in identity provider. */
export function targetOf(manifestFile: string, cwd: string): Target {
  const file = resolve(cwd, manifestFile);
  let manifest: ReturnType<typeof loadManifest>;
  try {
    manifest = loadManifest(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`${file} is not a valid manifest (run \`rampart check\`)`, 2);
    throw err;
  }
  const identity = manifest.identity;
  if (identity.mode !== 'builtin') {
    throw new CliError('the manifest uses an external identity provider; manage accounts there', 2);
  }
  return {
    issuer: identity.issuer,
    audience: identity.audience,
    adminAudience: `${identity.issuer}/admin`,
    apiScopes: [...new Set(manifest.routes.flatMap((r) => (r.auth.kind === 'token' ? r.auth.scopes : [])))],
    dataDir: join(manifest.dir, '.rampart', 'identity'),
  };
}

export interface StoredToken {
  access_token: string;
  refresh_token?: string;
  /** Epoch seconds. */
  expires_at: number;
  scope?: string;
}

/** `$XDG_CONFIG_HOME/rampart/credentials.json` (default `~/.config/…`), keyed by issuer and audience. */
export function credentialsFile(env: NodeJS.ProcessEnv): string {
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || '.', '.config');
  return join(base, 'rampart', 'credentials.json');
}

const keyOf = (issuer: string, audience: string) => `${issuer} ${audience}`;

function readCredentials(file: string): Record<string, StoredToken> {
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, StoredToken>) : {};
  } catch {
    return {};
  }
}

/** Writes the credentials file atomically (temp file + rename), mode 0600 in a 0700 directory. */
function writeCredentials(file: string, value: Record<string, StoredToken>): void {
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  rmSync(temp, { force: true });
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, `${JSON.stringify(value, null, 2)}\n`);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
}

export function saveToken(env: NodeJS.ProcessEnv, issuer: string, audience: string, token: StoredToken): void {
  const file = credentialsFile(env);
  writeCredentials(file, { ...readCredentials(file), [keyOf(issuer, audience)]: token });
}

export function loadToken(env: NodeJS.ProcessEnv, issuer: string, audience: string): StoredToken | undefined {
  return readCredentials(credentialsFile(env))[keyOf(issuer, audience)];
}

export function forgetToken(env: NodeJS.ProcessEnv, issuer: string, audience: string): void {
  const file = credentialsFile(env);
  const all = readCredentials(file);
  delete all[keyOf(issuer, audience)];
  writeCredentials(file, all);
}

interface TokenResponse {
  access_token?: string;
  refresh_token?: string;
  expires_in?: number;
  scope?: string;
  error?: string;
  error_description?: string;
  interval?: number;
}

async function postForm(
  url: string,
  body: Record<string, string>,
): Promise<{ status: number; json: TokenResponse & Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(body),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (cause) {
    throw new CliError(
      `cannot reach the identity provider at ${new URL(url).origin} (is \`rampart start\` running?): ${(cause as Error).message}`,
    );
  }
  let json: TokenResponse & Record<string, unknown>;
  try {
    json = (await res.json()) as TokenResponse & Record<string, unknown>;
  } catch {
    throw new CliError(`unexpected answer from ${url} (${res.status})`);
  }
  return { status: res.status, json };
}

function stored(json: TokenResponse, now: number): StoredToken {
  if (!json.access_token) throw new CliError('the identity provider returned no access token');
  return {
    access_token: json.access_token,
    ...(json.refresh_token ? { refresh_token: json.refresh_token } : {}),
    expires_at: Math.floor(now / 1000) + (json.expires_in ?? 0),
    ...(json.scope ? { scope: json.scope } : {}),
  };
}

export interface DeviceLogin {
  issuer: string;
  resource: string;
  scope: string;
  /** Shown to the user: where to go and what code to confirm. */
  prompt(verification: { uri: string; uriComplete: string; userCode: string; expiresIn: number }): void;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** The device authorization grant (RFC 8628 §3): ask, show the code, poll until the user decides. */
export async function deviceLogin(options: DeviceLogin): Promise<StoredToken> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const start = await postForm(`${options.issuer}/device/auth`, {
    client_id: CLI_CLIENT_ID,
    scope: options.scope,
    resource: options.resource,
  });
  if (start.status !== 200 || typeof start.json['device_code'] !== 'string') {
    throw new CliError(`device authorization refused: ${start.json.error ?? start.status}`);
  }
  const deviceCode = start.json['device_code'] as string;
  const expiresIn = Number(start.json['expires_in'] ?? 600);
  options.prompt({
    uri: String(start.json['verification_uri']),
    uriComplete: String(start.json['verification_uri_complete'] ?? start.json['verification_uri']),
    userCode: String(start.json['user_code']),
    expiresIn,
  });
  let interval = Math.max(1, Number(start.json.interval ?? 5));
  const deadline = now() + expiresIn * 1000;
  while (now() < deadline) {
    await sleep(interval * 1000);
    const res = await postForm(`${options.issuer}/token`, {
      grant_type: DEVICE_GRANT,
      device_code: deviceCode,
      client_id: CLI_CLIENT_ID,
    });
    if (res.status === 200) return stored(res.json, now());
    switch (res.json.error) {
      case 'authorization_pending':
        continue;
      case 'slow_down':
        interval += 5; // RFC 8628 §3.5
        continue;
      case 'access_denied':
        throw new CliError('the sign-in was denied');
      case 'expired_token':
        throw new CliError('the code expired before the sign-in finished; run the command again');
      default:
        throw new CliError(`sign-in failed: ${res.json.error ?? res.status}`);
    }
  }
  throw new CliError('the code expired before the sign-in finished; run the command again');
}

/** A usable access token for `audience`: the stored one, refreshed (and re-stored) when close to expiry. */
export async function currentToken(
  env: NodeJS.ProcessEnv,
  issuer: string,
  audience: string,
  now = Date.now(),
): Promise<string | null> {
  const token = loadToken(env, issuer, audience);
  if (!token) return null;
  if (token.expires_at - REFRESH_MARGIN_S > now / 1000) return token.access_token;
  if (!token.refresh_token) return null;
  const res = await postForm(`${issuer}/token`, {
    grant_type: 'refresh_token',
    refresh_token: token.refresh_token,
    client_id: CLI_CLIENT_ID,
    resource: audience,
  });
  if (res.status !== 200) {
    // Rotated elsewhere, revoked, or expired: the stored token is useless now.
    forgetToken(env, issuer, audience);
    return null;
  }
  const fresh = stored(res.json, now);
  saveToken(env, issuer, audience, fresh);
  return fresh.access_token;
}

/** One admin API call. Throws CliError with the API's error code for refusals. */
export async function adminCall(
  target: Target,
  authorization: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(`${target.issuer}/admin/${path}`, {
      method,
      headers: {
        authorization,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (cause) {
    throw new CliError(
      `cannot reach the identity provider at ${target.issuer} (is \`rampart start\` running?): ${(cause as Error).message}`,
    );
  }
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.ok) return json;
  const reason = [json['code'], json['reason'], json['field']].filter(Boolean).join(' ');
  if (res.status === 401) throw new CliError('not signed in as an administrator: run `rampart login --admin`');
  if (res.status === 403) throw new CliError('the signed-in account is not an administrator');
  throw new CliError(`refused (${res.status} ${json['error'] ?? ''}${reason ? `: ${reason}` : ''})`);
}

/**
 * The Authorization header for admin calls: a stored admin token (refreshed as needed), else — only
 * when `allowBootstrap` — the provider's one-time bootstrap token from its data directory.
 */
export async function adminAuthorization(
  target: Target,
  env: NodeJS.ProcessEnv,
  allowBootstrap: boolean,
): Promise<string> {
  const token = await currentToken(env, target.issuer, target.adminAudience);
  if (token) return `Bearer ${token}`;
  if (allowBootstrap) {
    try {
      const bootstrap = readFileSync(join(target.dataDir, IDENTITY_NAMES.bootstrapFile), 'utf8').trim();
      if (bootstrap) return `Bootstrap ${bootstrap}`;
    } catch {
      // no bootstrap file: an administrator exists already, or the provider is not running here
    }
  }
  throw new CliError('not signed in as an administrator: run `rampart login --admin`');
}
