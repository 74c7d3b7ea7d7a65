/**
 * A minimal browser for tests that do not need a real one: a cookie jar (path-scoped, deleting
 * expired cookies), manual redirects, and helpers to read the provider's forms. Real-browser coverage
 * is test/identity/browser.test.ts.
 */
export interface AgentResponse {
  status: number;
  url: string;
  location: string | null;
  headers: Headers;
  body: string;
}

interface Cookie {
  name: string;
  value: string;
  path: string;
}

export class Agent {
  readonly cookies: Cookie[] = [];

  cookieHeader(url: URL): string {
    return this.cookies
      .filter(
        (c) =>
          url.pathname === c.path ||
          url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) ||
          c.path === '/',
      )
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  cookie(name: string): string | undefined {
    return this.cookies.find((c) => c.name === name)?.value;
  }

  private store(url: URL, headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      let path = url.pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const attr of attrs) {
        const [k, v] = attr.split('=');
        if (k!.toLowerCase() === 'path' && v) path = v;
        if (k!.toLowerCase() === 'expires' && v && Date.parse(v) <= Date.now()) expired = true;
        if (k!.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const index = this.cookies.findIndex((c) => c.name === name && c.path === path);
      if (index >= 0) this.cookies.splice(index, 1);
      if (!expired) this.cookies.push({ name, value, path });
    }
  }

  async request(
    url: string,
    init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
  ): Promise<AgentResponse> {
    const target = new URL(url);
    const cookie = this.cookieHeader(target);
    const res = await fetch(target, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      redirect: 'manual',
      headers: {
        ...(cookie ? { cookie } : {}),
        ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded', origin: target.origin } : {}),
        ...init.headers,
      },
      body: init.form ? new URLSearchParams(init.form) : null,
    });
    this.store(target, res.headers);
    const location = res.headers.get('location');
    return {
      status: res.status,
      url: target.href,
      location: location ? new URL(location, target).href : null,
      headers: res.headers,
      body: await res.text(),
    };
  }

  /** Follows redirects (GET) until a non-redirect answer or a URL outside `origin`. */
  async follow(first: AgentResponse, origin: string): Promise<AgentResponse> {
    let res = first;
    for (let i = 0; i < 10 && res.location && new URL(res.location).origin === origin; i++) {
      res = await this.request(res.location);
    }
    return res;
  }
}

/** The value of the hidden anti-CSRF field of a page. */
export function csrfOf(html: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(html);
  if (!m) throw new Error(`no csrf field in page:\n${html}`);
  return m[1]!;
}

/** The `data-error` code on a page, or null. */
export function errorOf(html: string): string | null {
  return /data-error="([^"]+)"/.exec(html)?.[1] ?? null;
}

/** The action of the form whose action ends with `/step`. */
export function actionOf(html: string, step: string, base: string): string {
  const m = new RegExp(`action="([^"]*/${step})"`).exec(html);
  if (!m) throw new Error(`no ${step} form in page:\n${html}`);
  return new URL(m[1]!.replace(/&amp;/g, '&'), base).href;
}
