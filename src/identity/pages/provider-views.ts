import type { KoaContextWithOIDC } from 'oidc-provider';
import { alert, html, page, raw } from './html.ts';

/**
 * The pages oidc-provider renders itself (device flow, logout, errors), in Rampart's layout. The
 * library hands each view a ready-made form; we keep only its action and anti-CSRF value and render an
 * accessible form of our own (labels, no inline script or handlers, which the CSP would block anyway).
 */
export interface ProviderViews {
  deviceInput(ctx: KoaContextWithOIDC, form: string, out?: unknown, err?: unknown): Promise<void>;
  deviceConfirm(
    ctx: KoaContextWithOIDC,
    form: string,
    client: unknown,
    deviceInfo: unknown,
    userCode: string,
  ): Promise<void>;
  deviceSuccess(ctx: KoaContextWithOIDC): Promise<void>;
  logout(ctx: KoaContextWithOIDC, form: string): Promise<void>;
  postLogout(ctx: KoaContextWithOIDC): Promise<void>;
  error(ctx: KoaContextWithOIDC, out: { error: string; error_description?: string }, error: unknown): Promise<void>;
}

/** The `action` and `xsrf` of a form oidc-provider built (it escapes both). */
function formParts(form: string): { action: string; xsrf: string } {
  const action = /\saction="([^"]*)"/.exec(form)?.[1] ?? '';
  const xsrf = /name="xsrf" value="([^"]*)"/.exec(form)?.[1] ?? '';
  return { action: unescapeAttribute(action), xsrf: unescapeAttribute(xsrf) };
}

function unescapeAttribute(value: string): string {
  return value.replace(/&(amp|lt|gt|quot|#39|#x27|#96);/g, (entity) => {
    const map: Record<string, string> = {
      '&amp;': '&',
      '&lt;': '<',
      '&gt;': '>',
      '&quot;': '"',
      '&#39;': "'",
      '&#x27;': "'",
      '&#96;': '`',
    };
    return map[entity] ?? entity;
  });
}

function send(ctx: KoaContextWithOIDC, title: string, body: ReturnType<typeof html>, base: string): void {
  ctx.type = 'html';
  ctx.set('cache-control', 'no-store');
  ctx.body = page({ title, body, base });
}

/** Stable codes for device-flow re-render reasons (oidc-provider's error classes). */
function deviceError(err: unknown): { code: string; text: string } | null {
  if (!err) return null;
  const e = err as { name?: string; userCode?: string };
  if (e.name === 'NoCodeError') return { code: 'code_missing', text: 'Enter the code shown on your device.' };
  if (e.name === 'NotFoundError' || e.userCode !== undefined) {
    if (e.name === 'ExpiredError')
      return { code: 'code_expired', text: 'That code has expired. Start again on your device.' };
    if (e.name === 'AlreadyUsedError') return { code: 'code_used', text: 'That code was already used.' };
    return { code: 'code_invalid', text: 'That code is not valid. Check it and try again.' };
  }
  if (e.name === 'AbortedError') return { code: 'aborted', text: 'The request was cancelled.' };
  return { code: 'device_error', text: 'Something went wrong. Start again on your device.' };
}

export interface ProviderViewHooks {
  /** A wrong, expired or used device code was entered (for rate limiting by address). */
  onWrongDeviceCode?: (ctx: KoaContextWithOIDC) => Promise<void>;
}

export function createProviderViews(base: string, hooks: ProviderViewHooks = {}): ProviderViews {
  return {
    async deviceInput(ctx, form, _out, err) {
      const { action, xsrf } = formParts(form);
      const problem = deviceError(err);
      if (problem?.code.startsWith('code_')) await hooks.onWrongDeviceCode?.(ctx);
      send(
        ctx,
        'Connect a device',
        html`<h1>Connect a device</h1>
${problem ? alert(problem.code, problem.text) : ''}
<form method="post" action="${action}">
<input type="hidden" name="xsrf" value="${xsrf}">
<label for="user_code">Code shown on your device</label>
<input id="user_code" name="user_code" type="text" autocomplete="off" autocapitalize="characters" spellcheck="false" required>
<button type="submit">Continue</button>
</form>`,
        base,
      );
    },
    async deviceConfirm(ctx, form, client, _deviceInfo, userCode) {
      const { action, xsrf } = formParts(form);
      const c = client as { clientName?: string; clientId: string };
      send(
        ctx,
        'Confirm the device',
        html`<h1>Confirm the device</h1>
<p>Sign in to <strong>${c.clientName ?? c.clientId}</strong> on the device showing this code:</p>
<p><code data-user-code="${userCode}">${userCode}</code></p>
<p>If you did not start this, or the code differs, deny.</p>
<form method="post" action="${action}">
<input type="hidden" name="xsrf" value="${xsrf}">
<input type="hidden" name="user_code" value="${userCode}">
<button type="submit" name="confirm" value="yes">Continue</button>
<button type="submit" name="abort" value="yes" class="secondary">Deny</button>
</form>`,
        base,
      );
    },
    async deviceSuccess(ctx) {
      send(ctx, 'Device connected', html`<h1>Device connected</h1><p>You can close this window.</p>`, base);
    },
    async logout(ctx, form) {
      const { action, xsrf } = formParts(form);
      send(
        ctx,
        'Sign out',
        html`<h1>Sign out</h1>
<form method="post" action="${action}">
<input type="hidden" name="xsrf" value="${xsrf}">
<button type="submit" name="logout" value="yes">Sign out</button>
<button type="submit" class="secondary">Stay signed in</button>
</form>`,
        base,
      );
    },
    async postLogout(ctx) {
      send(ctx, 'Signed out', html`<h1>Signed out</h1><p>You have signed out.</p>`, base);
    },
    async error(ctx, out) {
      const code = /^[a-z_]{1,64}$/.test(out.error) ? out.error : 'server_error';
      send(
        ctx,
        'Sign-in problem',
        html`<h1>Sign-in problem</h1>
${alert(code, out.error_description ?? 'The request could not be completed.')}
<p>${raw('Return to the application and start again.')}</p>`,
        base,
      );
    },
  };
}
