// The auth service's RPC surface (Workers RPC over a service binding), for JS/TS callers:
//   const answer = await env.AUTH_SERVICE.login(ctx, { email, password });
//   if (!answer.ok) return new Response(answer.error.detail, { status: answer.error.status });
// Methods that can refuse answer `Refusable<T>`; only internal faults throw.
// `ctx` is supplied by the api (or by a trusted worker) and never taken from a public caller.

export interface Ctx {
  requestId: string;
  traceparent?: string;
  userId?: string | null;
  role?: "user" | "admin" | null;
}

export type Role = "user" | "admin";

export interface AuthUser {
  id: string;
  email: string;
  role: Role;
  /** Follow from the role: admin → ["*"], user → ["read", "write"]. */
  permissions: string[];
  name?: string;
  /** ISO 8601. */
  createdAt?: string;
}

export interface Validation {
  valid: boolean;
  user?: AuthUser;
  /** The session's handle: SHA-256 (hex) of the session id; the token's `sid`. */
  sessionId?: string;
  /** For API keys: the key's id. */
  keyId?: string;
}

/** `status` is the HTTP status to answer with: 400, 401, 403, 404 or 409. */
export interface Refusal {
  status: number;
  detail: string;
}

export type Refusable<T> = ({ ok: true } & T) | { ok: false; error: Refusal };

export interface LoginAnswer {
  /** JWT HS256, issuer `auth.apis.do`, audience `apis.do`, `sid` = session handle. */
  token: string;
  /** ISO 8601: the token's `exp`. */
  expiresAt: string;
  user: AuthUser;
  /** The session's handle. */
  sessionId: string;
  /** The session id for the `session` cookie: shown this once, stored only as its hash. */
  session: string;
  sessionExpiresAt: string;
}

export interface CreatedKey {
  id: string;
  name: string;
  /** `sk_{id}`: safe to display. */
  prefix: string;
  /** `sk_{id}_{secret}`: shown this once, stored only as its SHA-256. */
  key: string;
  createdAt: string;
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  /** Updated at most once a minute. */
  lastUsedAt: string | null;
}

/** Page sizes are 1..100 (default 20), as a number or a numeric string. */
export type PageLimit = number | string;

export interface AuditEntry {
  /** ULID: newest first is descending id. */
  id: string;
  at: string;
  /** The admin's user id (`admin` for the ADMIN_API_KEY). */
  actor: string;
  action: "setRole" | "endSessions" | "revokeKey";
  /** The user changed. */
  userId: string;
  keyId: string | null;
  /** setRole: {role}; endSessions: {liveSessions}; revokeKey: {keyId, name, prefix}. */
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  requestId: string;
}

export interface AuthService {
  validateToken(token: string): Promise<Validation>;
  validateApiKey(key: string): Promise<Validation>;
  /** `id` is the session cookie's value. */
  validateSession(id: string): Promise<Validation>;

  signup(ctx: Ctx, input: { email: string; password: string; name?: string }): Promise<Refusable<{ user: AuthUser }>>;
  login(ctx: Ctx, input: { email: string; password: string }): Promise<Refusable<LoginAnswer>>;
  /** `sessionId`: a handle owned by `ctx.userId` (any for an admin); `session`: a raw id (possession suffices). */
  logout(ctx: Ctx, input: { sessionId?: string; session?: string }): Promise<Refusable<{ revoked: string[] }>>;
  createApiKey(ctx: Ctx, input: { name: string }): Promise<Refusable<CreatedKey>>;
  listApiKeys(ctx: Ctx): Promise<Refusable<{ keys: ApiKeyInfo[] }>>;
  revokeApiKey(ctx: Ctx, input: { id: string }): Promise<Refusable<{ id: string }>>;
  /** Admin only (`ctx.role === "admin"`). */
  setRole(ctx: Ctx, input: { userId: string; role: Role }): Promise<Refusable<{ user: AuthUser }>>;
  // Admin only (`ctx.role === "admin"`; 403 otherwise). User ids are ULIDs, key ids 12
  // alphanumerics (anything else is 400). Role changes, ended sessions and revoked keys are
  // audited (listAudit) in the same transaction as the change.
  /** Emails containing (`match: "substring"`, default) or starting with `q`, case-insensitive, in email order. */
  findUsers(ctx: Ctx, input: { q?: string; match?: "substring" | "prefix"; limit?: PageLimit; cursor?: string }): Promise<Refusable<{ users: AuthUser[]; nextCursor: string | null }>>;
  /** Ends every live session of the user; `revoked` are their handles. */
  endUserSessions(ctx: Ctx, input: { userId: string }): Promise<Refusable<{ userId: string; ended: number; revoked: string[] }>>;
  listUserKeys(ctx: Ctx, input: { userId: string }): Promise<Refusable<{ userId: string; keys: ApiKeyInfo[] }>>;
  revokeUserKey(ctx: Ctx, input: { userId: string; keyId: string }): Promise<Refusable<{ id: string }>>;
  /** Newest first; optionally one user's (`userId`) or one admin's (`actor`) changes. */
  listAudit(ctx: Ctx, input: { userId?: string; actor?: string; limit?: PageLimit; cursor?: string }): Promise<Refusable<{ items: AuditEntry[]; nextCursor: string | null }>>;
  health(): Promise<{ ok: boolean; service: "auth"; error?: string }>;
}
