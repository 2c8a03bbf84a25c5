// The do service's RPC surface (the proxy in front of the internal services), and the public
// JSON-RPC 2.0 endpoint `POST /rpc` that runs on it, for JS/TS callers:
//
//   // wrangler: "services": [{ "binding": "DO_SERVICE", "service": "do" }]
//   import type { DoService } from "../types/do";
//   interface Env { DO_SERVICE: Service<DoService> }      // or: { DO_SERVICE: DoService }
//   const page = await env.DO_SERVICE.call("db", "list", [ctx, "notes", { limit: 10 }]);
//   const [a, b] = await env.DO_SERVICE.batchCall([
//     { service: "db", method: "health" },
//     { service: "auth", method: "health" },
//   ]);
//   if (!a.success) console.log(a.error.code, a.error.message);
//
// Only allowlisted methods are forwarded (see `ProxiedMethods`; `getServices()` lists them at
// run time). `fetch`, `connect`, `constructor`, `dup`, anything starting with "_" and anything
// unlisted are refused. Each call has a deadline (`CALL_TIMEOUT_MS` on do, 10 000 ms by
// default) after which it fails with -32001 instead of hanging. Every call writes one JSON log
// line in do: requestId and traceparent (from `options`, else from a ctx first argument),
// service, method, durationMs, outcome (ok | denied | invalid | unavailable | timeout | error).

import type { DbCtx, DbDocument, DbService } from "./db";
import type { AuthService } from "./auth";

/** JSON-RPC error codes used by do and by `POST /rpc`. */
export type RpcErrorCode =
  | -32700 // parse error (/rpc only)
  | -32600 // invalid request (/rpc only)
  | -32601 // method not found, or not on the allowlist
  | -32602 // invalid params (wrong shape or type; a caller-supplied ctx)
  | -32603 // internal error
  | -32000 // the service threw (do: its message; /rpc: a fixed text) or refused (/rpc: data {status, code})
  | -32001 // timeout: the service did not answer within the deadline
  | -32002 // service unavailable: do has no binding for it
  | -32003 // forbidden (/rpc only): the caller's role may not use the service (e.g. schedule needs admin)
  | -32004; // response too large (batchCall, /rpc batches): the call ran, but its result passed the batch's 8 MiB result budget

export interface CallError {
  code: RpcErrorCode;
  message: string;
}

/** One `batchCall` result. A failed call never fails the batch. */
export type CallOutcome<T = unknown> =
  | { success: true; result: T }
  | { success: false; error: CallError };

/** Correlation for do's log lines when the arguments carry no ctx. */
export interface CallOptions {
  requestId?: string;
  traceparent?: string;
}

/** A service as `getServices()` describes it. */
export interface ServiceInfo {
  /** The registry name, e.g. "db". */
  name: string;
  /** Its service binding's name, e.g. "DB_SERVICE". */
  binding: string;
  description: string;
  /** Whether do has the binding (do itself is always available). */
  available: boolean;
  /** The methods do forwards for it. */
  methods: string[];
}

export interface ServiceHealth {
  ok: boolean;
  service: string;
  /** Why it is not ok. */
  error?: string;
}

/** Services that still speak HTTP answer only `health()` through do. */
export interface HealthOnly {
  health(): Promise<ServiceHealth>;
}

/** Every method do forwards, per registry service: the proxy's allowlist. */
export interface ProxiedMethods {
  db: Pick<DbService, "get" | "put" | "patch" | "delete" | "list" | "health">;
  auth: Pick<
    AuthService,
    "health" | "signup" | "login" | "logout" | "createApiKey" | "listApiKeys" | "revokeApiKey" | "setRole"
  >;
  do: Pick<DoService, "getServices" | "getService" | "isServiceAvailable" | "health">;
  schedule: HealthOnly;
  webhooks: HealthOnly;
  email: HealthOnly;
  queue: HealthOnly;
  ai: HealthOnly;
  embeddings: HealthOnly;
  agents: HealthOnly;
  workflows: HealthOnly;
  business: HealthOnly;
  stripe: HealthOnly;
  github: HealthOnly;
  mcp: HealthOnly;
}

export type ServiceName = keyof ProxiedMethods;
export type MethodName<S extends ServiceName> = keyof ProxiedMethods[S] & string;
/** The full argument list of `service.method` (ctx included where it takes one). */
export type ArgsOf<S extends ServiceName, M extends MethodName<S>> = ProxiedMethods[S][M] extends (
  ...args: infer A
) => unknown
  ? A
  : never;
export type ResultOf<S extends ServiceName, M extends MethodName<S>> = ProxiedMethods[S][M] extends (
  ...args: never[]
) => infer R
  ? Awaited<R>
  : never;

/** One call for `batchCall`. */
export type ServiceCall = {
  [S in ServiceName]: { [M in MethodName<S>]: { service: S; method: M; args?: ArgsOf<S, M> } }[MethodName<S>];
}[ServiceName];

export interface DoService {
  /** `service.method(...args)`. Rejects with an Error whose message starts with the kind of
   *  failure: "Method not found: ...", "Timeout: ...", "Service unavailable: ...", or the
   *  service's own message when it threw. (Workers RPC carries only the message; use
   *  `batchCall` for the code.) */
  call<S extends ServiceName, M extends MethodName<S>>(
    service: S,
    method: M,
    args?: ArgsOf<S, M>,
    options?: CallOptions,
  ): Promise<ResultOf<S, M>>;
  /** Runs every call at once; one outcome per call, in order. Throws only when `calls` is not
   *  an array or holds more than 100 calls. */
  batchCall(calls: ServiceCall[], options?: CallOptions): Promise<CallOutcome[]>;
  /** Every RPC-reachable registry service (built-ins such as the waitlist are the api's own). */
  getServices(): Promise<ServiceInfo[]>;
  /** null for a name the registry does not know. */
  getService(name: string): Promise<ServiceInfo | null>;
  isServiceAvailable(name: string): Promise<boolean>;
  /** Whether do has its own bindings (DB_SERVICE, AUTH_SERVICE). Never throws. */
  health(): Promise<ServiceHealth & { service: "do" }>;
}

// ---------------------------------------------------------------------------------------------
// POST /rpc (API hosts; authenticated): JSON-RPC 2.0. `params` never include ctx: the api
// supplies it, and a `ctx` param (named, or as an extra positional argument) is -32602. db's
// reply envelopes are unwrapped: a success is the `value`, a refusal is error -32000 with the
// refusal's detail as message and `{status, code}` as data. All calls of a request run in one
// do.batchCall; a body over 1 MiB is 413, a batch over 100 requests is -32600.

type DropCtx<A> = A extends [DbCtx, ...infer Rest] ? Rest : A;
/** The success value of a db reply envelope. */
type Settled<R> = Extract<R, { ok: true }> extends { value: infer T } ? T : R;
type DbParams<M extends keyof DbService> = DropCtx<Parameters<DbService[M]>>;
type DbResult<M extends keyof DbService> = Settled<Awaited<ReturnType<DbService[M]>>>;

interface CoreJsonRpcMethods {
  "db.get": { params: DbParams<"get">; named: { collection: string; id: string }; result: DbDocument };
  "db.put": {
    params: [collection: string, id: string, data: Parameters<DbService["put"]>[3], opts?: Parameters<DbService["put"]>[4]];
    named: { collection: string; id: string; data: Parameters<DbService["put"]>[3]; opts?: Parameters<DbService["put"]>[4] };
    result: DbResult<"put">;
  };
  "db.patch": {
    params: DbParams<"patch">;
    named: { collection: string; id: string; patch: Parameters<DbService["patch"]>[3]; opts?: Parameters<DbService["patch"]>[4] };
    result: DbResult<"patch">;
  };
  "db.delete": {
    params: DbParams<"delete">;
    named: { collection: string; id: string; opts?: Parameters<DbService["delete"]>[3] };
    result: DbResult<"delete">;
  };
  "db.list": {
    params: DbParams<"list">;
    named: { collection: string; opts?: Parameters<DbService["list"]>[2] };
    result: DbResult<"list">;
  };
  "db.health": { params: []; named: Record<string, never>; result: ServiceHealth };
  "auth.health": { params: []; named: Record<string, never>; result: ServiceHealth };
  "do.getServices": { params: []; named: Record<string, never>; result: ServiceInfo[] };
  "do.getService": { params: [name: string]; named: { name: string }; result: ServiceInfo | null };
  "do.isServiceAvailable": { params: [name: string]; named: { name: string }; result: boolean };
  "do.health": { params: []; named: Record<string, never>; result: ServiceHealth };
}

type ForwardingService = Exclude<ServiceName, "db" | "auth" | "do">;

/** The published methods of `/rpc`: positional params, named params (the same names), result.
 *  `{service}.health` exists for every forwarding service; the service's registry access
 *  applies (schedule and queue need an admin: -32003 otherwise). */
export type JsonRpcMethods = CoreJsonRpcMethods & {
  [K in `${ForwardingService}.health`]: { params: []; named: Record<string, never>; result: ServiceHealth };
};

export type JsonRpcId = string | number | null;

export type JsonRpcRequest<M extends keyof JsonRpcMethods = keyof JsonRpcMethods> = {
  jsonrpc: "2.0";
  method: M;
  params?: JsonRpcMethods[M]["params"] | JsonRpcMethods[M]["named"];
  /** Omit for a notification: it runs but is never answered (a batch of only notifications is 204). */
  id?: JsonRpcId;
};

export interface JsonRpcError {
  code: RpcErrorCode;
  message: string;
  /** -32600/-32602: the reason; -32000 from a db refusal: `{status, code}`. */
  data?: unknown;
}

export type JsonRpcResponse<M extends keyof JsonRpcMethods = keyof JsonRpcMethods> =
  | { jsonrpc: "2.0"; result: JsonRpcMethods[M]["result"]; id: JsonRpcId }
  | { jsonrpc: "2.0"; error: JsonRpcError; id: JsonRpcId };
