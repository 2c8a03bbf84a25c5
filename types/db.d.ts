// The db service's RPC surface, for JS/TS workers that call it over a service binding:
//
//   // wrangler: "services": [{ "binding": "DB", "service": "db" }]
//   import type { DbService } from "../types/db";
//   interface Env { DB: Service<DbService> }          // or: { DB: DbService }
//   const r = await env.DB.get(ctx, "notes", id);
//   if (r.ok) use(r.value); else if (r.error.status === 404) ...;
//
// Every method resolves to a DbReply: expected failures (bad input, not found, version
// mismatch, ...) are values with the HTTP status they map to, never exceptions. A method
// throws (its promise rejects) only on an internal failure (D1 unavailable, a bug); the api
// answers those with 502. Each call writes one JSON log line in db (requestId, traceId from
// ctx.traceparent, method, collection, durationMs, outcome), never the document.

/** The trusted caller context. db trusts it as given: only platform workers hold the binding. */
export interface DbCtx {
  /** The request's id (a ULID), echoed in db's log line. */
  requestId: string;
  /** W3C traceparent; its trace id is logged. */
  traceparent?: string;
  /** The owner of what is written and the only user whose documents are visible. Required:
   *  without it every method answers error 401 `unauthenticated`. */
  userId: string | null;
  /** "admin" sees and writes every user's documents; anything else is a plain user. */
  role?: "user" | "admin" | string | null;
}

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A stored document as returned: its data plus the id and system fields. */
export type DbDocument = {
  id: string;
  /** Starts at 1 and grows by one per write. The HTTP ETag is `"<_version>"`. */
  _version: number;
  /** RFC 3339 UTC. */
  _createdAt: string;
  _updatedAt: string;
} & { [key: string]: Json };

/** Document data as written: a JSON object of at most 1 MiB serialised, nested at most 64 deep,
 *  no top-level member starting with "_" (reserved for system fields); an `id` member must
 *  equal the id argument and is not stored. */
export type DbData = { [key: string]: Json };

export type DbErrorCode =
  | "bad_request" // 400: a bad name, body, cursor, limit or option (nothing was written)
  | "unauthenticated" // 401: ctx.userId missing
  | "not_found" // 404: absent, or another user's
  | "conflict" // 409: create on an existing id; an admin by-id call on an id several users hold;
  //                 an unconditional write that lost 5 races in a row
  | "precondition_failed" // 412: ifMatch does not match the current version (or the document is absent on put)
  | "too_large"; // 413: data over 1 MiB

export interface DbError {
  status: 400 | 401 | 404 | 409 | 412 | 413;
  code: DbErrorCode;
  /** Safe to show to the end user. */
  detail: string;
}

export type DbReply<T> = { ok: true; value: T } | { ok: false; error: DbError };

export interface PutOptions {
  /** An If-Match header value: `"3"`, `*`, or a comma-separated list of entity tags. The write
   *  happens only if the current version matches; of two writers with the same ifMatch exactly
   *  one succeeds and the other gets 412. */
  ifMatch?: string;
  /** "create": insert only (409 if the id exists); with a null id, db generates a ULID.
   *  Cannot be combined with ifMatch. */
  mode?: "create";
}

export interface WriteOptions {
  ifMatch?: string;
}

export interface ListOptions {
  /** 1..100, default 20. A page also ends at 4 MiB of stored documents (then it holds fewer
   *  than `limit` items and a nextCursor): walk until nextCursor is null, never until a short page. */
  limit?: number;
  /** The previous page's nextCursor (opaque). */
  cursor?: string | null;
}

export interface DbPage {
  /** In id order (ULIDs: creation order). An admin's pages span every user's documents. */
  items: DbDocument[];
  /** null on the last page. Keyset pagination: documents inserted during a walk never cause
   *  a skip or a repeat. */
  nextCursor: string | null;
}

export interface DbService {
  /** 404 when absent or owned by another user (admins see all; an admin's own copy wins). */
  get(ctx: DbCtx, collection: string, id: string): Promise<DbReply<DbDocument>>;
  /** Create (created: true) or replace (created: false). Without ifMatch: last writer wins. */
  put(
    ctx: DbCtx,
    collection: string,
    id: string | null,
    data: DbData,
    opts?: PutOptions | null,
  ): Promise<DbReply<{ created: boolean; document: DbDocument }>>;
  /** RFC 7396 merge patch (null deletes a member). 404 when absent. */
  patch(
    ctx: DbCtx,
    collection: string,
    id: string,
    patch: DbData,
    opts?: WriteOptions | null,
  ): Promise<DbReply<DbDocument>>;
  /** 404 when absent. */
  delete(ctx: DbCtx, collection: string, id: string, opts?: WriteOptions | null): Promise<DbReply<{ id: string }>>;
  list(ctx: DbCtx, collection: string, opts?: ListOptions | null): Promise<DbReply<DbPage>>;
  /** Whether db reaches its D1 database. Never throws. */
  health(): Promise<{ ok: boolean; service: "db"; error?: string }>;
}

// Names: collection `[A-Za-z0-9_-]{1,64}`; id `[A-Za-z0-9_.:-]{1,128}`, not "." or "..".
