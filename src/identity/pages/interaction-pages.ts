import { alert, type Html, html, page, raw } from './html.ts';

/**
 * The login, MFA, enrollment, recovery-code and consent pages. Every form carries the anti-CSRF token;
 * every input has a label; each page has one `h1`; errors are `role="alert"` with a stable
 * `data-error` code. Nothing the user typed is echoed back (a failed login renders the same bytes
 * whatever the username was).
 */
export interface FormContext {
  /** Issuer path prefix ('' at the root). */
  base: string;
  uid: string;
  csrf: string;
  /** Who asks: the client's name or id. */
  clientName: string;
}

export interface PageError {
  code: string;
  text: string;
}

/** Error codes shown on the pages (stable: tests and scripts read them). */
export const PAGE_ERRORS = {
  invalidCredentials: { code: 'invalid_credentials', text: 'The username or password is incorrect.' },
  tooManyAttempts: { code: 'too_many_attempts', text: 'Too many attempts. Wait a moment and try again.' },
  invalidCode: {
    code: 'invalid_code',
    text: 'That code is not valid. Use the current code from your app, or a recovery code.',
  },
  invalidEnrollmentCode: {
    code: 'invalid_code',
    text: 'That code did not match. Check the time on your device and try again.',
  },
} as const satisfies Record<string, PageError>;

const action = (f: FormContext, step: string) => `${f.base}/interaction/${f.uid}/${step}`;

function csrfField(f: FormContext): Html {
  return html`<input type="hidden" name="csrf" value="${f.csrf}">`;
}

function cancelForm(f: FormContext): Html {
  return html`<form method="post" action="${action(f, 'abort')}">
${csrfField(f)}
<button type="submit" class="secondary">Cancel and return to ${f.clientName}</button>
</form>`;
}

export function loginPage(f: FormContext, error: PageError | null): string {
  return page({
    title: 'Sign in',
    base: f.base,
    body: html`<h1>Sign in</h1>
<p>to continue to <strong>${f.clientName}</strong></p>
${error ? alert(error.code, error.text) : ''}
<form method="post" action="${action(f, 'login')}">
${csrfField(f)}
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
${cancelForm(f)}`,
  });
}

export function mfaPage(f: FormContext, error: PageError | null): string {
  return page({
    title: 'Two-step verification',
    base: f.base,
    body: html`<h1>Two-step verification</h1>
${error ? alert(error.code, error.text) : ''}
<form method="post" action="${action(f, 'mfa')}">
${csrfField(f)}
<label for="code">Code from your authenticator app, or a recovery code</label>
<input id="code" name="code" type="text" inputmode="text" autocomplete="one-time-code" autocapitalize="characters" spellcheck="false" required>
<button type="submit">Verify</button>
</form>
${cancelForm(f)}`,
  });
}

export function enrollPage(f: FormContext, qrSvg: string, secretText: string, error: PageError | null): string {
  return page({
    title: 'Set up two-step verification',
    base: f.base,
    body: html`<h1>Set up two-step verification</h1>
<p>Scan this QR code with an authenticator app, then enter the 6-digit code it shows.</p>
${error ? alert(error.code, error.text) : ''}
<div class="qr">${raw(qrSvg)}</div>
<p>Cannot scan? Enter this key in the app: <code data-totp-secret="${secretText.replace(/ /g, '')}">${secretText}</code></p>
<form method="post" action="${action(f, 'enroll')}">
${csrfField(f)}
<label for="code">6-digit code</label>
<input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9]{6}" autocomplete="one-time-code" required>
<button type="submit">Turn on</button>
</form>
${cancelForm(f)}`,
  });
}

export function recoveryCodesPage(f: FormContext, codes: readonly string[]): string {
  return page({
    title: 'Save your recovery codes',
    base: f.base,
    body: html`<h1>Save your recovery codes</h1>
<p>Two-step verification is on. If you lose your authenticator, each of these codes signs you in once.
They are shown only now: store them somewhere safe.</p>
<ul class="codes" aria-label="Recovery codes">${codes.map((c) => html`<li><code data-recovery-code>${c}</code></li>`)}</ul>
<form method="post" action="${action(f, 'continue')}">
${csrfField(f)}
<button type="submit">I saved them, continue</button>
</form>`,
  });
}

export interface ConsentItem {
  scope: string;
  text: string;
}

export function consentPage(f: FormContext, items: readonly ConsentItem[]): string {
  return page({
    title: 'Allow access',
    base: f.base,
    body: html`<h1>Allow access</h1>
<p><strong>${f.clientName}</strong> asks to:</p>
<ul>${items.map((i) => html`<li data-scope="${i.scope}">${i.text}</li>`)}</ul>
<form method="post" action="${action(f, 'consent')}">
${csrfField(f)}
<button type="submit">Allow</button>
</form>
<form method="post" action="${action(f, 'abort')}">
${csrfField(f)}
<button type="submit" class="secondary">Deny</button>
</form>`,
  });
}

export function errorPage(base: string, error: PageError): string {
  return page({
    title: 'Sign-in problem',
    base,
    body: html`<h1>Sign-in problem</h1>
${alert(error.code, error.text)}
<p>Return to the application and start again.</p>`,
  });
}
