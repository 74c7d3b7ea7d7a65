import type { OutgoingHttpHeaders } from 'node:http';

/**
 * A non-terminal stage that answers a request itself (a CORS preflight) throws one of these: the
 * gateway writes it through the response hooks of the stages entered so far (so security headers are
 * added as for any response) and runs no further stage. Not an error and not a denial: nothing is
 * counted or recorded as a refusal. Thrown rather than returned because a stage's `request` returns
 * nothing (stage.ts), and the loop must stop exactly where it would stop for a denial.
 */
export class StageAnswer {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;

  constructor(status: number, headers: OutgoingHttpHeaders) {
    this.status = status;
    this.headers = headers;
  }
}
