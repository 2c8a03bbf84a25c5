//! The `RateLimiter` Durable Object: one limiter shard (`gateway::limitshard`), holding the
//! exact sliding logs of every limit key that hashes to it. A decision is made in memory and
//! answered at once; nothing is written on the way, so no answer waits for a storage commit.
//! Accepted entries reach storage in a flush at most `FLUSH_MS` later (one SQLite row per
//! dirty key, one commit per flush, off the response path).
//!
//! What a crash, eviction or deploy can forget: the entries accepted in the last `FLUSH_MS`
//! before it (plus the commit then in flight), never more than one limit's worth per key. A
//! shard that is left alone for `FLUSH_MS` has written everything: a clean restart forgets
//! nothing. Restored logs are compacted conservatively (never expire early), so a restart can
//! only under-admit, never over-admit.
//!
//! Storage: table `logs(k TEXT PRIMARY KEY, v TEXT)` (`gateway::limitshard::encode_log`),
//! created by the first flush. One alarm per shard deletes idle rows left by evicted memory.
//! Objects of the earlier one-object-per-key layout (tables `accepted`, `meta`) are wiped by
//! their own pending alarm.
//!
//! Protocol (only through the `RATE_LIMITER` binding, never publicly):
//! `GET /check?key=…&cost=…&name=…&limit=…&windowMs=…` (`CheckRequest::to_query`) → 200 with
//! the decision in header `x-ratelimit-decision`, no body; 400 on a bad request.
//! `GET /inspect[?key=…]` → 200 `{keys, pending, rows, stored, alarmAt}` for tests and operators.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use gateway::limitshard::{stored_idle_at, stored_is_idle, CheckRequest, ShardState, FLUSH_MS};
use serde::Deserialize;
use serde_json::json;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::DurableObjectStorage;
use worker::{
    durable_object, Delay, DurableObject, Env, Request, Response, Result, SqlStorage,
    SqlStorageValue, State,
};

/// A sweep (forgetting idle keys) runs with a flush at most this often.
const SWEEP_EVERY_MS: f64 = 10_000.0;
/// Rows the clean-up alarm examines per run; more wait for the next run.
const ALARM_BATCH: usize = 1_000;

#[durable_object]
pub struct RateLimiter {
    state: State,
    inner: Rc<Inner>,
}

/// What the background flush shares with request handlers.
struct Inner {
    shard: RefCell<ShardState>,
    sql: SqlStorage,
    storage: DurableObjectStorage,
    flush_scheduled: Cell<bool>,
    /// `Some(true)` once table `logs` is known to exist; `None` = not checked yet.
    table: Cell<Option<bool>>,
    /// An alarm is known to be pending (set by this instance).
    alarm_set: Cell<bool>,
    last_sweep_ms: Cell<f64>,
}

#[derive(Deserialize)]
struct Row {
    k: String,
    v: String,
}

#[derive(Deserialize)]
struct Value {
    v: String,
}

#[derive(Deserialize)]
struct Count {
    n: f64,
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        let storage = state.storage();
        let inner = Rc::new(Inner {
            shard: RefCell::new(ShardState::new()),
            sql: storage.sql(),
            // The raw storage (a handle on the same JS object), for the background flush's alarm.
            storage: JsValue::from(storage.as_raw()).unchecked_into(),
            flush_scheduled: Cell::new(false),
            table: Cell::new(None),
            alarm_set: Cell::new(false),
            last_sweep_ms: Cell::new(js_sys::Date::now()),
        });
        RateLimiter { state, inner }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        match url.path() {
            "/check" => match CheckRequest::from_query(url.query().unwrap_or("")) {
                Ok(request) => self.check(&request),
                Err(e) => Response::error(e.to_string(), 400),
            },
            "/inspect" => self.inspect(
                url.query_pairs()
                    .find(|(k, _)| k == "key")
                    .map(|(_, v)| v.into_owned()),
            ),
            _ => Response::error("not found", 404),
        }
    }

    /// Clean-up: write what is pending, forget idle keys, delete idle rows that no memory
    /// holds (left by an evicted instance), and come back while rows remain.
    async fn alarm(&self) -> Result<Response> {
        let inner = &self.inner;
        inner.alarm_set.set(false);
        if has_table(&inner.sql, "accepted")? {
            // An object of the one-object-per-key layout: its data no longer counts.
            self.state.storage().delete_all().await?;
            return Response::empty();
        }
        flush_now(inner, true).await;
        if !inner.table_exists()? {
            return Response::empty();
        }
        let now = now_ms();
        let rows = inner
            .sql
            .exec(
                "SELECT k, v FROM logs LIMIT ?",
                vec![SqlStorageValue::Integer(ALARM_BATCH as i64)],
            )?
            .to_array::<Row>()?;
        let mut next: Option<u64> = None;
        let full = rows.len() == ALARM_BATCH;
        for row in rows {
            if inner.shard.borrow().knows(&row.k) {
                continue; // memory is the truth for this key; the sweep handled it
            }
            if stored_is_idle(&row.v, now) {
                inner.sql.exec(
                    "DELETE FROM logs WHERE k = ?",
                    vec![SqlStorageValue::String(row.k)],
                )?;
            } else if let Some(at) = stored_idle_at(&row.v) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        let remaining = count(&inner.sql, "SELECT COUNT(*) AS n FROM logs")?;
        if remaining > 0 {
            let at = if full {
                now + 1_000
            } else {
                next.unwrap_or(now + 60_000).max(now + FLUSH_MS)
            };
            set_alarm(inner, at).await;
        }
        Response::empty()
    }
}

impl RateLimiter {
    fn check(&self, request: &CheckRequest) -> Result<Response> {
        let inner = &self.inner;
        // No await from here to the answer: the object decides one check at a time, so
        // concurrent requests for a key are decided strictly in order.
        let decision = {
            let mut shard = inner.shard.borrow_mut();
            if !shard.knows(&request.key) {
                let stored = inner.stored(&request.key)?;
                if let Err(e) = shard.load(&request.key, stored.as_deref()) {
                    crate::log::event("error", "rate limiter row unreadable", &[("error", &e)]);
                }
            }
            shard.check(request, now_ms())
        };
        if decision.allowed && !inner.flush_scheduled.replace(true) {
            let inner = inner.clone();
            self.state.wait_until(async move {
                Delay::from(Duration::from_millis(FLUSH_MS)).await;
                flush_now(&inner, false).await;
            });
        }
        let mut response = Response::empty()?;
        response.headers_mut().set(
            gateway::ratelimit::Decision::WIRE_HEADER,
            &decision.to_wire(),
        )?;
        Ok(response)
    }

    /// Read-only, so inspecting never creates storage.
    fn inspect(&self, key: Option<String>) -> Result<Response> {
        let inner = &self.inner;
        let table = inner.table_exists()?;
        let rows = if table {
            count(&inner.sql, "SELECT COUNT(*) AS n FROM logs")?
        } else {
            0
        };
        let stored = match &key {
            Some(k) => inner.stored(k)?.is_some(),
            None => false,
        };
        let shard = inner.shard.borrow();
        Response::from_json(&json!({
            "keys": shard.len(),
            "pending": shard.pending(),
            "known": key.as_deref().is_some_and(|k| shard.knows(k)),
            "rows": rows,
            "stored": stored,
            "alarm": inner.alarm_set.get(),
            "legacy": has_table(&inner.sql, "accepted")?,
        }))
    }
}

impl Inner {
    fn table_exists(&self) -> Result<bool> {
        if let Some(known) = self.table.get() {
            return Ok(known);
        }
        let exists = has_table(&self.sql, "logs")?;
        // Only a positive answer is final: the first flush creates the table.
        if exists {
            self.table.set(Some(true));
        }
        Ok(exists)
    }

    /// The stored row of `key` (a read: it never holds an answer).
    fn stored(&self, key: &str) -> Result<Option<String>> {
        if !self.table_exists()? {
            return Ok(None);
        }
        Ok(self
            .sql
            .exec(
                "SELECT v FROM logs WHERE k = ?",
                vec![SqlStorageValue::String(key.to_owned())],
            )?
            .to_array::<Value>()?
            .into_iter()
            .next()
            .map(|row| row.v))
    }
}

/// Writes what the shard says is pending (one synchronous burst, so one commit). On failure
/// the keys stay dirty in memory (the decisions stand) and a later flush retries.
async fn flush_now(inner: &Rc<Inner>, sweep: bool) {
    inner.flush_scheduled.set(false);
    let now = js_sys::Date::now();
    let sweep = sweep || now - inner.last_sweep_ms.get() >= SWEEP_EVERY_MS;
    if sweep {
        inner.last_sweep_ms.set(now);
    }
    let flush = inner.shard.borrow_mut().take_flush(now_ms(), sweep);
    if flush.is_empty() {
        return;
    }
    let written = (|| -> Result<Option<u64>> {
        if inner.table.get() != Some(true) {
            inner.sql.exec(
                "CREATE TABLE IF NOT EXISTS logs (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
                None,
            )?;
            inner.table.set(Some(true));
        }
        let mut first_idle: Option<u64> = None;
        for (k, v) in &flush.upserts {
            if let Some(at) = stored_idle_at(v) {
                first_idle = Some(first_idle.map_or(at, |f| f.min(at)));
            }
            inner.sql.exec(
                "INSERT INTO logs (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                vec![
                    SqlStorageValue::String(k.clone()),
                    SqlStorageValue::String(v.clone()),
                ],
            )?;
        }
        for k in &flush.deletes {
            inner.sql.exec(
                "DELETE FROM logs WHERE k = ?",
                vec![SqlStorageValue::String(k.clone())],
            )?;
        }
        Ok(first_idle)
    })();
    match written {
        Ok(first_idle) => {
            if let Some(at) = first_idle.filter(|_| !inner.alarm_set.get()) {
                set_alarm(inner, at.max(now_ms() + FLUSH_MS)).await;
            }
        }
        Err(e) => {
            inner
                .shard
                .borrow_mut()
                .mark_dirty(flush.upserts.into_iter().map(|(k, _)| k));
            crate::log::event(
                "error",
                "rate limiter flush failed; retrying",
                &[("error", &e.to_string())],
            );
            if !inner.flush_scheduled.replace(true) {
                Delay::from(Duration::from_millis(FLUSH_MS * 10)).await;
                Box::pin(flush_now(inner, false)).await;
            }
        }
    }
}

async fn set_alarm(inner: &Inner, at_ms: u64) {
    let at = js_sys::Date::new(&JsValue::from(at_ms as f64));
    let set = match inner.storage.set_alarm(at, js_sys::Object::new()) {
        Ok(promise) => JsFuture::from(promise).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match set {
        Ok(()) => inner.alarm_set.set(true),
        Err(e) => crate::log::event(
            "error",
            "rate limiter alarm not set",
            &[("error", &rpc::sys::error_message(&e))],
        ),
    }
}

fn has_table(sql: &SqlStorage, name: &str) -> Result<bool> {
    Ok(sql
        .exec(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
            vec![SqlStorageValue::String(name.to_owned())],
        )?
        .to_array::<Count>()?
        .first()
        .is_some_and(|c| c.n > 0.0))
}

fn count(sql: &SqlStorage, query: &str) -> Result<u64> {
    Ok(sql
        .exec(query, None)?
        .to_array::<Count>()?
        .first()
        .map_or(0, |c| c.n as u64))
}

/// The object's clock (ms since the epoch).
fn now_ms() -> u64 {
    js_sys::Date::now().max(0.0) as u64
}
