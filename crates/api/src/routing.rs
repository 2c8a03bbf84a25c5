//! The domain-routes table: read from `assets/domain-routes.json` through the ASSETS binding,
//! shared across isolates through KV, and cached in the isolate for `ROUTES_TTL_MS` (10 s)
//! with stale-while-revalidate (`gateway::routes_cache` decides; this module does the I/O).
//! A malformed or missing file never replaces the last good table: a warm isolate keeps its
//! own, a cold one takes KV's last good copy whatever its age (logged as stale).

use std::cell::RefCell;
use std::rc::Rc;

use gateway::routes::DomainRoutes;
use gateway::routes_cache::{CacheClock, Claim, Step, REFRESH_DEADLINE_MS};
use serde::{Deserialize, Serialize};
use worker::{Context, Env};

use crate::adapters::rpc::within;
use crate::{config, log, runtime_routes};

const KV_BINDING: &str = "ROUTES_CACHE";
/// The file's table as a snapshot (`DomainRoutes::snapshot`) after a header line
/// (`SharedHeader`); v1 held the file's own text.
const KV_KEY: &str = "domain-routes:v2";
const ASSET_URL: &str = "https://assets.local/domain-routes.json";
const DEADLINE_VAR: &str = "ROUTES_REFRESH_DEADLINE_MS";

#[derive(Default)]
struct Cache {
    table: Option<Rc<DomainRoutes>>,
    clock: CacheClock,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The first line of what KV holds; the table's snapshot (validated before it was written)
/// follows. It never expires: it is the last good table for a cold isolate that meets a
/// broken file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SharedHeader {
    /// When the file was read from ASSETS.
    fetched_at_ms: f64,
    /// `routes::source_stamp` of that file: a refresh that reads the same file again loads
    /// the snapshot instead of parsing and validating the file.
    source: String,
}

/// KV's copy, split into its header and the snapshot.
fn split_shared(text: &str) -> Option<(SharedHeader, &str)> {
    let (header, snapshot) = text.split_once('\n')?;
    Some((serde_json::from_str(header).ok()?, snapshot))
}

/// Releases a refresh's claim however the refresh ends: answered, failed, timed out, or its
/// future dropped (the runtime cancels `wait_until` work when the isolate goes away).
struct ClaimGuard(Option<Claim>);

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some(claim) = self.0.take() {
            let _ = CACHE.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    c.clock.release(claim);
                }
            });
        }
    }
}

fn deadline_ms(env: &Env) -> f64 {
    config::var(env, DEADLINE_VAR)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| *ms > 0.0)
        .map_or(REFRESH_DEADLINE_MS, |ms| ms.min(60_000.0))
}

/// The current table, or `None` when no good table exists in this isolate nor in KV.
pub async fn table(env: &Env, ctx: &Context, ttl_ms: f64) -> Option<Rc<DomainRoutes>> {
    let now = js_sys::Date::now();
    let (table, fresh) = CACHE.with(|c| {
        let c = c.borrow();
        (c.table.clone(), c.clock.fresh(now, ttl_ms))
    });
    let Some(table) = table else {
        // Cold isolate: nothing to serve yet, so load inline (concurrent cold requests may
        // each load; only one table wins and they are identical).
        refresh(env, ttl_ms, deadline_ms(env), None).await;
        return CACHE.with(|c| c.borrow().table.clone());
    };
    if fresh {
        return Some(table);
    }
    let deadline = deadline_ms(env);
    let step = CACHE.with(|c| c.borrow_mut().clock.step(true, now, ttl_ms, deadline));
    if let Step::Stale {
        refresh: Some(claim),
    } = step
    {
        let env = env.clone();
        ctx.wait_until(async move {
            refresh(&env, ttl_ms, deadline, Some(claim)).await;
        });
    }
    Some(table)
}

async fn refresh(env: &Env, ttl_ms: f64, deadline: f64, claim: Option<Claim>) {
    let mut guard = ClaimGuard(claim);
    let loaded = within(deadline as u64, load(env, ttl_ms, claim.is_none()))
        .await
        .unwrap_or_else(|| Err(format!("no answer within {deadline} ms")));
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.clock.finish(guard.0.take(), js_sys::Date::now());
        match loaded {
            Ok(table) => c.table = Some(Rc::new(table)),
            // Keep the last good table; retry after another TTL rather than on every request.
            Err(e) => log::event(
                "error",
                "domain-routes refresh failed; keeping the last good table",
                &[("error", &e)],
            ),
        }
    });
}

/// The table routing uses: the file's, with the runtime entries merged over it.
async fn load(env: &Env, ttl_ms: f64, cold: bool) -> Result<DomainRoutes, String> {
    let file = load_file(env, ttl_ms, cold).await?;
    runtime_routes::merge_into(env, file).await
}

/// Makes this isolate's next request start a refresh (after a runtime route changed here).
pub fn invalidate() {
    CACHE.with(|c| c.borrow_mut().clock.expire());
}

/// The file's table alone: KV's snapshot while fresh, else ASSETS (loaded from KV's snapshot
/// when the file is the one it was made from, parsed and validated only when it changed); on a
/// cold isolate with a broken file, KV's last good snapshot whatever its age.
pub async fn load_file(env: &Env, ttl_ms: f64, cold: bool) -> Result<DomainRoutes, String> {
    let kv = env.kv(KV_BINDING).ok();
    let mut shared: Option<String> = None;
    if let Some(kv) = &kv {
        // A KV read that misses its deadline counts as a failed read: ASSETS is read instead.
        let kv_ms = crate::config::load(env).kv_timeout_ms;
        match crate::deadline::within(kv_ms, kv.get(KV_KEY).text()).await {
            Some(Ok(copy)) => shared = copy,
            Some(Err(e)) => log::event(
                "warn",
                "domain-routes KV read failed",
                &[("error", &e.to_string())],
            ),
            None => log::event(
                "warn",
                "domain-routes KV read failed",
                &[("error", &format!("no answer within {kv_ms} ms"))],
            ),
        }
    }
    let copy = shared.as_deref().and_then(split_shared);
    let from_copy = || {
        copy.as_ref()
            .and_then(|(_, snapshot)| DomainRoutes::from_snapshot(snapshot).ok())
    };
    if copy
        .as_ref()
        .is_some_and(|(header, _)| js_sys::Date::now() - header.fetched_at_ms < ttl_ms)
    {
        if let Some(table) = from_copy() {
            return Ok(table);
        }
    }
    let read = fetch_asset(env).await.and_then(|json| {
        let source = gateway::routes::source_stamp(json.as_bytes());
        if copy
            .as_ref()
            .is_some_and(|(header, _)| header.source == source)
        {
            if let Some(table) = from_copy() {
                return Ok((table, None));
            }
        }
        DomainRoutes::parse(json.as_bytes())
            .map(|table| (table, Some(source)))
            .map_err(|e| format!("invalid domain-routes.json: {e}"))
    });
    let (table, source) = match read {
        Ok(read) => read,
        Err(e) => {
            // A cold isolate has no table of its own: KV's last good copy beats 503.
            if cold {
                if let (Some((header, _)), Some(table)) = (copy.as_ref(), from_copy()) {
                    let age_s = ((js_sys::Date::now() - header.fetched_at_ms) / 1000.0).round();
                    log::event(
                        "error",
                        "domain-routes file unusable; serving the last good table from KV (stale)",
                        &[("error", &e), ("ageSeconds", &age_s.to_string())],
                    );
                    return Ok(table);
                }
            }
            return Err(e);
        }
    };
    // A file that differs from KV's copy (`source` is only set then).
    let now = js_sys::Date::now();
    let write = CACHE.with(|c| {
        c.borrow_mut()
            .clock
            .may_write_kv(source.is_some(), now, ttl_ms)
    });
    if let (Some(kv), Some(source), true) = (kv, source, write) {
        let header = SharedHeader {
            fetched_at_ms: now,
            source,
        };
        let text = format!(
            "{}\n{}",
            serde_json::to_string(&header).unwrap_or_default(),
            table.snapshot()
        );
        // Other isolates pick this up instead of reading ASSETS; a failed write only costs them a read.
        let written = match kv.put(KV_KEY, text) {
            Ok(put) => put.execute().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = written {
            log::event("warn", "domain-routes KV write failed", &[("error", &e)]);
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
