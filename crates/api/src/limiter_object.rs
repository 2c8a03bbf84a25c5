//! The `RateLimiter` Durable Object: one object per limit key (`gateway::ratelimit::limit_key`),
//! the single place where that key's requests are decided. It keeps the key's
//! `gateway::ratelimit::SlidingLog` in memory and appends each accepted request to its SQLite
//! storage, so a decision is one in-memory check plus (only when accepted) one local SQL insert.
//!
//! Why this is exact under concurrency: one object per key, and a check has no `await` between
//! reading the log and recording the entry, so concurrent requests are decided strictly one
//! after another whichever isolate sent them.
//!
//! Why every accepted entry is persisted before the answer leaves: an object loses its memory
//! on eviction, crash, relocation and every deploy; if it then forgot the entries of the current
//! window, it would admit up to a whole extra window's worth. The insert is a synchronous SQL
//! statement, and the runtime's output gate holds the response until it is durable, so no
//! caller ever sees an "allowed" that storage does not know about. Rejections write nothing.
//!
//! Storage: table `accepted(t)` (one row per accepted request, ms) and `meta` (the window, for
//! the alarm). An alarm at `SlidingLog::idle_at` prunes expired rows and, once the key is idle,
//! deletes everything, so idle keys cost no storage.
//!
//! Protocol (reached only through the `RATE_LIMITER` binding, never publicly):
//! `GET /check?name=…&limit=…&windowMs=…` → 200 with the decision in header
//! `x-ratelimit-decision` (`Decision::to_wire`) and no body; 400 on a bad policy.
//! `GET /inspect` → 200 `{tables, stored, alarmAt}` (for tests and operators: whether any
//! storage exists, rows kept, alarm time).

use std::cell::{Cell, RefCell};

use gateway::ratelimit::{Decision, Policy, SlidingLog, MAX_WINDOW_SECS};
use serde::Deserialize;
use serde_json::json;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, ScheduledTime, SqlStorage,
    SqlStorageValue, State,
};

/// A request counts one unit; the algorithm supports more, the api has no use for it yet.
const COST: u32 = 1;

#[durable_object]
pub struct RateLimiter {
    state: State,
    /// The key's log; `None` until loaded from storage (after construction or a clean-up).
    log: RefCell<Option<SlidingLog>>,
    /// When the clean-up alarm is known to be set for (ms); `None` = unknown or unset, so the
    /// next accepted request sets it. Keeps alarm writes to about one per idle period.
    alarm_at: Cell<Option<u64>>,
    /// The window last written to `meta` by this instance; `None` = not yet written.
    stored_window: Cell<Option<u64>>,
}

#[derive(Deserialize)]
struct Stamp {
    t: f64,
}

/// `MAX(t)` of an empty table is one row with a NULL.
#[derive(Deserialize)]
struct Newest {
    t: Option<f64>,
}

#[derive(Deserialize)]
struct Count {
    n: f64,
}

#[derive(Deserialize)]
struct Setting {
    v: f64,
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        RateLimiter {
            state,
            log: RefCell::new(None),
            alarm_at: Cell::new(None),
            stored_window: Cell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        match url.path() {
            "/check" => match Policy::from_query(url.query().unwrap_or("")) {
                Ok(policy) => self.check(&policy).await,
                Err(e) => Response::error(e.to_string(), 400),
            },
            "/inspect" => self.inspect().await,
            _ => Response::error("not found", 404),
        }
    }

    /// Clean-up: drop rows that left the window; when none is left, delete the key's storage
    /// entirely, otherwise come back when the newest row expires.
    async fn alarm(&self) -> Result<Response> {
        let sql = self.state.storage().sql();
        ensure_schema(&sql)?;
        let now = now_ms();
        // The window in force when the alarm was set; if it is missing (it never should be),
        // assume the longest allowed one so nothing still counting is deleted.
        let window = sql
            .exec("SELECT v FROM meta WHERE k = 'window_ms'", None)?
            .to_array::<Setting>()?
            .first()
            .map_or(MAX_WINDOW_SECS * 1000, |s| s.v as u64);
        sql.exec(
            "DELETE FROM accepted WHERE t <= ?",
            vec![sql_int(now.saturating_sub(window))],
        )?;
        let newest = sql
            .exec("SELECT MAX(t) AS t FROM accepted", None)?
            .to_array::<Newest>()?
            .first()
            .and_then(|row| row.t)
            .map(|t| t as u64);
        match newest {
            None => {
                // Idle: the memory copy holds only expired entries; drop it with the storage
                // so the next request starts from (recreated) empty tables.
                *self.log.borrow_mut() = None;
                self.alarm_at.set(None);
                self.stored_window.set(None);
                self.state.storage().delete_all().await?;
            }
            Some(t) => self.schedule_alarm(t.saturating_add(window)).await?,
        }
        Response::empty()
    }
}

impl RateLimiter {
    async fn check(&self, policy: &Policy) -> Result<Response> {
        let sql = self.state.storage().sql();
        let now = now_ms();
        // No await from here until the decision is recorded: this block is the critical
        // section, and the object runs one such block at a time.
        let (decision, idle_at) = {
            let mut slot = self.log.borrow_mut();
            if slot.is_none() {
                *slot = Some(load(&sql)?);
            }
            let Some(log) = slot.as_mut() else {
                return Response::error("rate-limit state unavailable", 500);
            };
            let decision = log.check(policy, now, COST);
            if decision.allowed {
                let recorded = log.newest().unwrap_or(now);
                if let Err(e) = sql.exec(
                    "INSERT INTO accepted (t) VALUES (?)",
                    vec![sql_int(recorded)],
                ) {
                    // Storage is the truth: forget the memory copy (it holds an entry storage
                    // lacks) and report the failure; the api applies its failure mode.
                    *slot = None;
                    return Err(e);
                }
                // The alarm prunes with the stored window, so it must follow a config change
                // (a longer window pruned with the old one would forget entries that count).
                if self.stored_window.get() != Some(policy.window_ms) {
                    sql.exec(
                        "INSERT OR REPLACE INTO meta (k, v) VALUES ('window_ms', ?)",
                        vec![sql_int(policy.window_ms)],
                    )?;
                    self.stored_window.set(Some(policy.window_ms));
                }
            }
            (decision, log.idle_at())
        };
        if decision.allowed && self.alarm_at.get().is_none() {
            if let Some(at) = idle_at {
                // The decision is already recorded; a failed alarm only delays clean-up, and
                // the next accepted request tries again.
                if let Err(e) = self.schedule_alarm(at).await {
                    crate::log::event(
                        "error",
                        "rate limiter alarm not set",
                        &[("error", &e.to_string())],
                    );
                }
            }
        }
        // Headers only: the api reads one header and no body.
        let mut response = Response::empty()?;
        response
            .headers_mut()
            .set(Decision::WIRE_HEADER, &decision.to_wire())?;
        Ok(response)
    }

    /// Read-only: inspecting an idle key must not recreate the storage the alarm deleted.
    async fn inspect(&self) -> Result<Response> {
        let sql = self.state.storage().sql();
        let count = |query: &str| -> Result<u64> {
            Ok(sql
                .exec(query, None)?
                .to_array::<Count>()?
                .first()
                .map_or(0, |c| c.n as u64))
        };
        let tables = count(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'accepted'",
        )? > 0;
        let stored = if tables {
            count("SELECT COUNT(*) AS n FROM accepted")?
        } else {
            0
        };
        let alarm_at = self.state.storage().get_alarm().await?;
        Response::from_json(&json!({ "tables": tables, "stored": stored, "alarmAt": alarm_at }))
    }

    async fn schedule_alarm(&self, at_ms: u64) -> Result<()> {
        let at = js_sys::Date::new(&wasm_bindgen::JsValue::from(at_ms as f64));
        self.state
            .storage()
            .set_alarm(ScheduledTime::new(at))
            .await?;
        self.alarm_at.set(Some(at_ms));
        Ok(())
    }
}

fn ensure_schema(sql: &SqlStorage) -> Result<()> {
    sql.exec(
        "CREATE TABLE IF NOT EXISTS accepted (t INTEGER NOT NULL)",
        None,
    )?;
    sql.exec(
        "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
        None,
    )?;
    Ok(())
}

/// The log as storage has it (after construction, eviction or a clean-up).
fn load(sql: &SqlStorage) -> Result<SlidingLog> {
    ensure_schema(sql)?;
    let stamps = sql
        .exec("SELECT t FROM accepted ORDER BY t", None)?
        .to_array::<Stamp>()?;
    Ok(SlidingLog::restore(
        stamps.into_iter().map(|s| s.t as u64).collect(),
    ))
}

/// The object's clock (ms since the epoch).
fn now_ms() -> u64 {
    js_sys::Date::now().max(0.0) as u64
}

/// Timestamps and windows are far below 2^53, so they travel to SQLite as exact integers.
fn sql_int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}
