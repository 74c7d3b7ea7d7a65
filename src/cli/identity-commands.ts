import type { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import {
  adminAuthorization,
  adminCall,
  CliError,
  currentToken,
  deviceLogin,
  saveToken,
  type Target,
  targetOf,
} from './identity-client.ts';

/**
 * `rampart users|clients|login|token|identity`: administration of the built-in identity provider
 * through its admin API, and signing in from the terminal (issue 5 §4–5). Passwords are read from
 * standard input (without echo on a terminal), never from arguments, where `ps` and shell history
 * would see them. A client secret is printed once, to stdout only.
 */
export interface IdentityIo {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Test seam for the device-flow polling. */
  sleep?: (ms: number) => Promise<void>;
}

function defaults(io: Partial<IdentityIo>): IdentityIo {
  return {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    stdin: io.stdin ?? process.stdin,
    cwd: io.cwd ?? process.cwd(),
    env: io.env ?? process.env,
    ...(io.sleep ? { sleep: io.sleep } : {}),
  };
}

const COMMON = `  -f, --manifest <file>  the manifest (default ./rampart.yaml)
      --json             machine-readable output
  -h, --help             show this help`;

const USAGE = {
  users: `Usage: rampart users <add|list|disable|enable|reset-mfa|unlock> [username] [options]

  add <username>         create an account; the password is read from standard input
    --role <role>        a role for the \`roles\` claim (repeatable); \`admin\` may use the admin API
    --require-mfa        TOTP enrollment at the first login (default for admins)
  list                   list accounts
  disable|enable <name>  stop or allow an account (its refresh tokens stop working while disabled)
  reset-mfa <name>       remove TOTP and recovery codes (the user enrolls again)
  unlock <name>          clear the failed-login counter
${COMMON}

The first administrator can be created before anyone is signed in, with the one-time bootstrap token
the provider writes to .rampart/identity/ (rampart users add <name> --role admin).
`,
  clients: `Usage: rampart clients <add|list|rotate-secret|disable|enable> [options]

  add <web|native|machine>  register a client; a confidential client's secret is printed once
    --id <client-id>        default: random
    --name <name>
    --redirect-uri <uri>    (repeatable) exact; https for web, loopback http or a claimed scheme for native
    --scope <scope>         (repeatable) scopes the client may request
  list
  rotate-secret <id>        a new secret replaces the old one at once; printed once
  disable|enable <id>
${COMMON}
`,
  login: `Usage: rampart login [--admin] [--scope <scope>]...

Signs in with the device flow: open the address shown, confirm the code, sign in. The token is stored
in $XDG_CONFIG_HOME/rampart/credentials.json (mode 0600); \`rampart token\` prints it for curl.
  --admin                a token for the identity admin API instead of the system's API
  --scope <scope>        (repeatable) default: every scope the manifest's routes use
${COMMON}
`,
  token: `Usage: rampart token [--admin]

Prints the stored access token (refreshed when it is about to expire), for example:
  curl -H "Authorization: Bearer $(rampart token)" http://127.0.0.1:8080/orders
${COMMON}
`,
  identity: `Usage: rampart identity <rotate-keys|keys> [--force]

  keys                   list the signing keys and their states (next, current, previous)
  rotate-keys            the published next key starts signing; a new next key is published
    --force              rotate even if the next key was published less than 10 minutes ago
                         (verifiers may not have it yet: their tokens fail until they refetch)
${COMMON}
`,
} as const;

type Parsed = { positionals: string[]; values: Record<string, string | boolean | string[] | undefined> };

function parse(args: string[], extra: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>): Parsed {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      manifest: { type: 'string', short: 'f' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...extra,
    },
  }) as Parsed;
}

/** Runs a command body with uniform usage, error and exit-code handling (0 ok, 1 failure, 2 usage). */
async function command(
  name: keyof typeof USAGE,
  args: string[],
  partial: Partial<IdentityIo>,
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>,
  body: (p: Parsed, target: () => Target, io: IdentityIo) => Promise<void>,
): Promise<number> {
  const io = defaults(partial);
  let parsed: Parsed;
  try {
    parsed = parse(args, options);
  } catch (err) {
    io.stderr.write(`rampart ${name}: ${(err as Error).message}\n\n${USAGE[name]}`);
    return 2;
  }
  if (parsed.values['help']) {
    io.stdout.write(USAGE[name]);
    return 0;
  }
  try {
    await body(parsed, () => targetOf(String(parsed.values['manifest'] ?? 'rampart.yaml'), io.cwd), io);
    return 0;
  } catch (err) {
    if (err instanceof CliError) {
      io.stderr.write(`rampart ${name}: ${err.message}\n${err.exitCode === 2 ? `\n${USAGE[name]}` : ''}`);
      return err.exitCode;
    }
    io.stderr.write(`rampart ${name}: unexpected error: ${(err as Error).message}\n`);
    return 1;
  }
}

function usage(message: string): never {
  throw new CliError(message, 2);
}

function print(io: IdentityIo, json: boolean, value: unknown, text: () => string): void {
  io.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')}\n`;
}

/**
 * Reads a secret: on a terminal, without echo (raw mode, one line); otherwise the first line of
 * standard input (for scripts: `printf '%s\n' "$PW" | rampart users add alice`).
 */
export async function readSecret(io: IdentityIo, prompt: string): Promise<string> {
  const stdin = io.stdin;
  if (stdin.isTTY && stdin.setRawMode) {
    io.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    try {
      return await new Promise<string>((resolve, reject) => {
        let value = '';
        const onData = (chunk: Buffer | string) => {
          for (const ch of chunk.toString('utf8')) {
            if (ch === '\r' || ch === '\n') {
              stdin.off('data', onData);
              io.stderr.write('\n');
              resolve(value);
              return;
            }
            if (ch === '\u0003') {
              stdin.off('data', onData);
              reject(new CliError('cancelled'));
              return;
            }
            if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
            else value += ch;
          }
        };
        stdin.on('data', onData);
      });
    } finally {
      stdin.setRawMode(false);
      stdin.pause();
    }
  }
  let text = '';
  for await (const chunk of stdin) {
    text += chunk.toString();
    if (text.includes('\n') || text.length > 4096) break;
  }
  const line = text.split(/\r?\n/, 1)[0] ?? '';
  if (line === '') throw new CliError('no password on standard input');
  return line;
}

function list(value: string | boolean | string[] | undefined): string[] {
  return Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
}

interface UserView {
  username: string;
  roles: string[];
  disabled: boolean;
  mfaRequired: boolean;
  mfaEnrolled: boolean;
}

export function runUsers(args: string[], io: Partial<IdentityIo> = {}): Promise<number> {
  return command(
    'users',
    args,
    io,
    {
      role: { type: 'string', multiple: true },
      'require-mfa': { type: 'boolean' },
      'no-require-mfa': { type: 'boolean' },
    },
    async ({ positionals, values }, target, io) => {
      const [action, username, ...rest] = positionals;
      const json = values['json'] === true;
      if (rest.length > 0) usage('too many arguments');
      const t = target();
      switch (action) {
        case 'add': {
          if (!username) usage('add needs a username');
          const roles = list(values['role']);
          const auth = await adminAuthorization(t, io.env, roles.includes('admin'));
          const password = await readSecret(io, `Password for ${username}: `);
          if (io.stdin.isTTY && (await readSecret(io, 'Again: ')) !== password)
            throw new CliError('the passwords differ');
          const mfa = values['require-mfa']
            ? { mfaRequired: true }
            : values['no-require-mfa']
              ? { mfaRequired: false }
              : {};
          const { user } = (await adminCall(t, auth, 'POST', 'users', { username, password, roles, ...mfa })) as {
            user: UserView;
          };
          print(io, json, user, () => `created ${user.username}${roles.length ? ` (${roles.join(', ')})` : ''}\n`);
          return;
        }
        case 'list': {
          const { users } = (await adminCall(t, await adminAuthorization(t, io.env, false), 'GET', 'users')) as {
            users: UserView[];
          };
          print(io, json, users, () =>
            table([
              ['USERNAME', 'ROLES', 'STATUS', 'MFA'],
              ...users.map((u) => [
                u.username,
                u.roles.join(',') || '-',
                u.disabled ? 'disabled' : 'active',
                u.mfaEnrolled ? 'enrolled' : u.mfaRequired ? 'required' : 'off',
              ]),
            ]),
          );
          return;
        }
        case 'disable':
        case 'enable':
        case 'reset-mfa':
        case 'unlock': {
          if (!username) usage(`${action} needs a username`);
          const { user } = (await adminCall(
            t,
            await adminAuthorization(t, io.env, false),
            'POST',
            `users/${encodeURIComponent(username)}/${action}`,
          )) as { user: UserView };
          print(io, json, user, () => `${action}: ${user.username}\n`);
          return;
        }
        default:
          usage(action ? `unknown action "${action}"` : 'an action is required');
      }
    },
  );
}

interface ClientView {
  clientId: string;
  kind: string;
  name: string | null;
  redirectUris: string[];
  scopes: string[];
  disabled: boolean;
}

export function runClients(args: string[], io: Partial<IdentityIo> = {}): Promise<number> {
  return command(
    'clients',
    args,
    io,
    {
      id: { type: 'string' },
      name: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      scope: { type: 'string', multiple: true },
    },
    async ({ positionals, values }, target, io) => {
      const [action, arg, ...rest] = positionals;
      const json = values['json'] === true;
      if (rest.length > 0) usage('too many arguments');
      const t = target();
      const auth = () => adminAuthorization(t, io.env, false);
      switch (action) {
        case 'add': {
          if (!arg) usage('add needs a kind: web, native or machine');
          const body = {
            kind: arg,
            scopes: list(values['scope']),
            redirectUris: list(values['redirect-uri']),
            ...(typeof values['id'] === 'string' ? { clientId: values['id'] } : {}),
            ...(typeof values['name'] === 'string' ? { name: values['name'] } : {}),
          };
          const { client, secret } = (await adminCall(t, await auth(), 'POST', 'clients', body)) as {
            client: ClientView;
            secret: string | null;
          };
          print(io, json, { client, secret }, () =>
            secret
              ? `registered ${client.clientId}\nclient secret (shown once, store it now): ${secret}\n`
              : `registered ${client.clientId} (public client: no secret)\n`,
          );
          return;
        }
        case 'list': {
          const { clients } = (await adminCall(t, await auth(), 'GET', 'clients')) as { clients: ClientView[] };
          print(io, json, clients, () =>
            table([
              ['CLIENT', 'KIND', 'STATUS', 'SCOPES', 'REDIRECT URIS'],
              ...clients.map((c) => [
                c.clientId,
                c.kind,
                c.disabled ? 'disabled' : 'active',
                c.scopes.join(' ') || '-',
                c.redirectUris.join(' ') || '-',
              ]),
            ]),
          );
          return;
        }
        case 'rotate-secret': {
          if (!arg) usage('rotate-secret needs a client id');
          const { secret } = (await adminCall(
            t,
            await auth(),
            'POST',
            `clients/${encodeURIComponent(arg)}/rotate-secret`,
          )) as {
            secret: string;
          };
          print(
            io,
            json,
            { clientId: arg, secret },
            () => `new client secret (shown once; the old one no longer works): ${secret}\n`,
          );
          return;
        }
        case 'disable':
        case 'enable': {
          if (!arg) usage(`${action} needs a client id`);
          await adminCall(t, await auth(), 'POST', `clients/${encodeURIComponent(arg)}/${action}`);
          print(io, json, { clientId: arg, action }, () => `${action}: ${arg}\n`);
          return;
        }
        default:
          usage(action ? `unknown action "${action}"` : 'an action is required');
      }
    },
  );
}

export function runLogin(args: string[], io: Partial<IdentityIo> = {}): Promise<number> {
  return command(
    'login',
    args,
    io,
    { admin: { type: 'boolean' }, scope: { type: 'string', multiple: true } },
    async ({ positionals, values }, target, io) => {
      if (positionals.length > 0) usage('login takes no arguments');
      const t = target();
      const admin = values['admin'] === true;
      const resource = admin ? t.adminAudience : t.audience;
      const scopes = list(values['scope']);
      const scope = [
        'openid',
        'offline_access',
        ...(scopes.length ? scopes : admin ? ['identity:admin'] : t.apiScopes),
      ].join(' ');
      const token = await deviceLogin({
        issuer: t.issuer,
        resource,
        scope,
        ...(io.sleep ? { sleep: io.sleep } : {}),
        prompt: ({ uriComplete, userCode, expiresIn }) => {
          io.stderr.write(
            `To sign in, open\n\n  ${uriComplete}\n\nand check that it shows the code ${userCode} (valid ${Math.round(expiresIn / 60)} min).\nWaiting…\n`,
          );
        },
      });
      saveToken(io.env, t.issuer, resource, token);
      print(
        io,
        values['json'] === true,
        { audience: resource, scope: token.scope ?? '', expiresAt: token.expires_at },
        () =>
          `signed in (${admin ? 'identity admin API' : resource}); \`rampart token${admin ? ' --admin' : ''}\` prints the access token\n`,
      );
    },
  );
}

export function runToken(args: string[], io: Partial<IdentityIo> = {}): Promise<number> {
  return command('token', args, io, { admin: { type: 'boolean' } }, async ({ positionals, values }, target, io) => {
    if (positionals.length > 0) usage('token takes no arguments');
    const t = target();
    const audience = values['admin'] === true ? t.adminAudience : t.audience;
    const token = await currentToken(io.env, t.issuer, audience);
    if (!token) throw new CliError(`not signed in: run \`rampart login${values['admin'] ? ' --admin' : ''}\``);
    io.stdout.write(`${token}\n`);
  });
}

export function runIdentity(args: string[], io: Partial<IdentityIo> = {}): Promise<number> {
  return command('identity', args, io, { force: { type: 'boolean' } }, async ({ positionals, values }, target, io) => {
    const [action, ...rest] = positionals;
    if (rest.length > 0) usage('too many arguments');
    const t = target();
    const json = values['json'] === true;
    const auth = await adminAuthorization(t, io.env, false);
    if (action === 'keys') {
      const { keys } = (await adminCall(t, auth, 'GET', 'keys')) as {
        keys: { kid: string; alg: string; state: string; since: number }[];
      };
      print(io, json, keys, () =>
        table([
          ['KID', 'ALG', 'STATE', 'SINCE'],
          ...keys.map((k) => [k.kid, k.alg, k.state, new Date(k.since).toISOString()]),
        ]),
      );
      return;
    }
    if (action === 'rotate-keys') {
      const result = (await adminCall(t, auth, 'POST', 'keys/rotate', { force: values['force'] === true })) as {
        current: string;
        next: string;
        previous: string | null;
      };
      print(
        io,
        json,
        result,
        () =>
          `now signing with ${result.current}; published next ${result.next}; kept ${result.previous ?? '-'} for verification\n`,
      );
      return;
    }
    usage(action ? `unknown action "${action}"` : 'an action is required');
  });
}
