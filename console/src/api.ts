// The console's one door to the server: the admin API (with the session cookie, and the CSRF
// token on every change) and the console's session endpoint. Nothing here is private: every
// call is one an operator can make with curl and the admin token.

let csrf: string | null = null;

/** An answer of the admin API other than 2xx, with its `error` code and description. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    description: string,
  ) {
    super(description);
  }
}

/** Called when the server no longer knows this browser's session. */
let onSignedOut: () => void = () => {};
export function whenSignedOut(f: () => void) {
  onSignedOut = f;
}

async function failure(response: Response): Promise<ApiError> {
  let code = 'http_' + response.status;
  let description = response.statusText || 'request failed';
  try {
    const body = await response.json();
    if (typeof body.error === 'string') code = body.error;
    if (typeof body.error_description === 'string') description = body.error_description;
  } catch {
    // Not JSON: the status says enough.
  }
  return new ApiError(response.status, code, description);
}

/** Whether this browser has a session; remembers its CSRF token. */
export async function restoreSession(): Promise<boolean> {
  const response = await fetch('/console/session', { credentials: 'same-origin' });
  if (!response.ok) throw await failure(response);
  const body = await response.json();
  csrf = body.signed_in ? body.csrf : null;
  return Boolean(body.signed_in);
}

export async function signIn(token: string): Promise<void> {
  const response = await fetch('/console/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  if (!response.ok) throw await failure(response);
  csrf = (await response.json()).csrf;
}

export async function signOut(): Promise<void> {
  await fetch('/console/session', {
    method: 'DELETE',
    credentials: 'same-origin',
    headers: csrf ? { 'x-csrf-token': csrf } : {},
  });
  csrf = null;
}

/** Calls the admin API; `body` is sent as JSON. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  // The admin API under the console's path, where the browser sends the session cookie.
  const response = await fetch(`/console${path}`, {
    method,
    credentials: 'same-origin',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    csrf = null;
    onSignedOut();
  }
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** The node's metrics: the OpenMetrics text of `GET /admin/metrics`. */
export async function metricsText(): Promise<string> {
  const response = await fetch('/console/admin/metrics', { credentials: 'same-origin' });
  if (response.status === 401) {
    csrf = null;
    onSignedOut();
  }
  if (!response.ok) throw await failure(response);
  return response.text();
}

export interface Client {
  client_id: string;
  name: string;
  auth_method: string;
  scopes: string[];
  audiences: string[];
  disabled: boolean;
  created_at: number;
  redirect_uris: string[];
  first_party: boolean;
}

export interface Credentials {
  client_id: string;
  client_secret?: string;
}

export interface Key {
  kid: string;
  use: string;
  alg: string;
  state: string;
  created_at: number;
  activate_at: number;
  retired_at?: number | null;
  remove_after?: number | null;
  public_jwk: Record<string, unknown> | null;
}

export interface IssuedToken {
  jti: string;
  client_id: string;
  subject: string;
  audience: string;
  scope: string;
  issued_at: number;
  expires_at: number;
  revoked_at: number | null;
  state: 'active' | 'expired' | 'revoked';
}

export interface AuditEvent {
  id: number;
  seq?: number | null;
  time: number;
  event: string;
  client_id?: string | null;
  subject?: string | null;
  jti?: string | null;
  audience?: string | null;
  outcome: string;
  reason?: string | null;
  request_id?: string | null;
}

export interface AuditVerification {
  ok: boolean;
  summary: string;
  fault: { seq: number; kind: string; detail: string } | null;
}

export interface Checkpoint {
  origin: string;
  size: number;
  root: string;
  note: string;
  created_at: number;
}

/** A Unix time as the browser's local date and time. */
export function when(unix: number | null | undefined): string {
  if (unix === null || unix === undefined) return '–';
  return new Date(unix * 1000).toLocaleString();
}
