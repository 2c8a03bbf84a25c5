// The platform's RPC surface for JS/TS workers: every service's declarations in one import.
//
//   import type { PlatformServices } from "../types";
//   interface Env extends PlatformServices {}
//   export default { async fetch(req: Request, env: Env) { return Response.json(await env.DO_SERVICE.getServices()); } };
//
// A worker declares only the bindings it has; `PlatformServices` names them as the platform's
// wrangler configs do (crates/do/wrangler.jsonc, the root wrangler.jsonc).

export * from "./db";
export * from "./auth";
export * from "./do";

import type { DbService } from "./db";
import type { AuthService } from "./auth";
import type { DoService } from "./do";

/** The service bindings of the platform's RPC services, by their conventional names. */
export interface PlatformServices {
  DB_SERVICE: DbService;
  AUTH_SERVICE: AuthService;
  DO_SERVICE: DoService;
}
