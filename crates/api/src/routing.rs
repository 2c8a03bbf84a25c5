//! The domain-routes table: read from `assets/domain-routes.json` through the ASSETS binding,
//! shared across isolates through KV, and cached in the isolate for `ROUTES_TTL_MS` (10 s)
//! with stale-while-revalidate: a stale table is served while exactly one background refresh
//! runs. A malformed or missing file never replaces the last good table; it is logged.

use std::cell::RefCell;
use std::rc::Rc;

use gateway::routes::DomainRoutes;
use serde::{Deserialize, Serialize};
use worker::{Context, Env};

use crate::{log, runtime_routes};

const KV_BINDING: &str = "ROUTES_CACHE";
const KV_KEY: &str = "domain-routes:v1";
const ASSET_URL: &str = "https://assets.local/domain-routes.json";

#[derive(Default)]
struct Cache {
    table: Option<Rc<DomainRoutes>>,
    loaded_at_ms: f64,
    refreshing: bool,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// What KV holds: the raw file (already validated) and when it was read from ASSETS.
#[derive(Serialize, Deserialize)]
struct Shared {
    fetched_at_ms: f64,
    json: String,
}

/// The current table, or `None` when no good table has ever been loaded in this isolate.
pub async fn table(env: &Env, ctx: &Context, ttl_ms: f64) -> Option<Rc<DomainRoutes>> {
    let now = js_sys::Date::now();
    let (table, fresh, start_refresh) = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let fresh = c.table.is_some() && now - c.loaded_at_ms < ttl_ms;
        let start = !fresh && c.table.is_some() && !c.refreshing;
        if start {
            c.refreshing = true;
        }
        (c.table.clone(), fresh, start)
    });
    if fresh {
        return table;
    }
    if let Some(stale) = table {
        if start_refresh {
            let env = env.clone();
            ctx.wait_until(async move {
                refresh(&env, ttl_ms).await;
            });
        }
        return Some(stale);
    }
    // Cold isolate: nothing to serve yet, so load inline (concurrent cold requests may each
    // load; only one table wins and they are identical).
    refresh(&env.clone(), ttl_ms).await;
    CACHE.with(|c| c.borrow().table.clone())
}

async fn refresh(env: &Env, ttl_ms: f64) {
    let loaded = load(env, ttl_ms).await;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.refreshing = false;
        match loaded {
            Ok(table) => {
                c.table = Some(Rc::new(table));
                c.loaded_at_ms = js_sys::Date::now();
            }
            Err(e) => {
                // Keep the last good table; retry after another TTL rather than on every request.
                c.loaded_at_ms = js_sys::Date::now();
                log::event(
                    "error",
                    "domain-routes refresh failed; keeping the last good table",
                    &[("error", &e)],
                );
            }
        }
    });
}

/// The table routing uses: the file's, with the runtime entries merged over it.
async fn load(env: &Env, ttl_ms: f64) -> Result<DomainRoutes, String> {
    let file = load_file(env, ttl_ms).await?;
    runtime_routes::merge_into(env, file).await
}

/// Makes this isolate's next request start a refresh (after a runtime route changed here).
pub fn invalidate() {
    CACHE.with(|c| c.borrow_mut().loaded_at_ms = 0.0);
}

/// The file's table alone (KV's shared copy while fresh, else ASSETS).
pub async fn load_file(env: &Env, ttl_ms: f64) -> Result<DomainRoutes, String> {
    let kv = env.kv(KV_BINDING).ok();
    if let Some(kv) = &kv {
        if let Ok(Some(shared)) = kv.get(KV_KEY).json::<Shared>().await {
            if js_sys::Date::now() - shared.fetched_at_ms < ttl_ms {
                if let Ok(table) = DomainRoutes::parse(shared.json.as_bytes()) {
                    return Ok(table);
                }
            }
        }
    }
    let json = fetch_asset(env).await?;
    let table = DomainRoutes::parse(json.as_bytes())
        .map_err(|e| format!("invalid domain-routes.json: {e}"))?;
    if let Some(kv) = kv {
        let shared = Shared {
            fetched_at_ms: js_sys::Date::now(),
            json,
        };
        // Other isolates pick this up instead of reading ASSETS; a failed write only costs them a read.
        if let Ok(put) = kv.put(KV_KEY, &shared) {
            if let Err(e) = put.expiration_ttl(300).execute().await {
                log::event(
                    "warn",
                    "domain-routes KV write failed",
                    &[("error", &e.to_string())],
                );
            }
        }
    }
    Ok(table)
}

async fn fetch_asset(env: &Env) -> Result<String, String> {
    let assets = env
        .assets("ASSETS")
        .map_err(|_| "ASSETS binding is not configured".to_string())?;
    let mut response = assets
        .fetch(ASSET_URL, None)
        .await
        .map_err(|e| format!("ASSETS fetch failed: {e}"))?;
    if response.status_code() != 200 {
        return Err(format!(
            "domain-routes.json: ASSETS answered {}",
            response.status_code()
        ));
    }
    response
        .text()
        .await
        .map_err(|e| format!("domain-routes.json unreadable: {e}"))
}
