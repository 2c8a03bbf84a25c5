//! The `LogBatcher` Durable Object: one buffer per producer worker and shard. Appends are
//! stored in its SQLite storage (so a restart loses nothing) and written to R2 as one NDJSON
//! object per hour partition once the buffer is due by size or age (`batch`); a failed write
//! keeps the buffer, is counted and retried with back-off.
//!
//! Protocol (reached only from this worker's `tail`): `POST /append?worker=…&shard=…` with
//! NDJSON records → 204; `GET /stats` → the counters as JSON.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use gateway::logs::{META_MAX_TS, META_MIN_TS};
use serde::Deserialize;
use serde_json::json;
use worker::{
    durable_object, DurableObject, Env, HttpMetadata, Method, Request, Response, Result,
    ScheduledTime, SqlStorage, SqlStorageValue, State,
};

use crate::batch::{self, BatchConfig, Due, Totals};
use crate::{config, log_event, now_ms, BUCKET};

const COUNTERS: &[&str] = &[
    "objectsWritten",
    "linesWritten",
    "bytesWritten",
    "writeFailures",
    "consecutiveFailures",
    "linesDropped",
    "flushesBySize",
    "flushesByAge",
];

#[durable_object]
pub struct LogBatcher {
    state: State,
    env: Env,
    cfg: BatchConfig,
    totals: Cell<Option<Totals>>,
    /// The alarm time this instance set (ms); `None` = unknown, so the next append sets it.
    alarm_at: Cell<Option<u64>>,
    /// `(worker, shard)` this buffer belongs to, once known.
    owner: RefCell<Option<(String, u32)>>,
}

#[derive(Deserialize)]
struct Sums {
    bytes: Option<f64>,
    lines: Option<f64>,
    oldest: Option<f64>,
}

#[derive(Deserialize)]
struct Row {
    body: String,
}

#[derive(Deserialize)]
struct Upto {
    seq: Option<f64>,
}

#[derive(Deserialize)]
struct Meta {
    k: String,
    v: Option<String>,
}

#[derive(Deserialize)]
struct Stamp {
    ts: u64,
}

impl DurableObject for LogBatcher {
    fn new(state: State, env: Env) -> Self {
        let cfg = config(&env);
        LogBatcher {
            state,
            env,
            cfg,
            totals: Cell::new(None),
            alarm_at: Cell::new(None),
            owner: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        match (req.method(), url.path()) {
            (Method::Post, "/append") => {
                let param = |name: &str| {
                    url.query_pairs()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.into_owned())
                };
                let worker = param("worker").unwrap_or_else(|| "unknown".into());
                let shard = param("shard").and_then(|s| s.parse().ok()).unwrap_or(0);
                let body = req.text().await?;
                self.append(&worker, shard, body).await
            }
            (Method::Get, "/stats") => self.stats().await,
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_at.set(None);
        self.flush().await?;
        Response::empty()
    }
}

impl LogBatcher {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn totals(&self) -> Result<Totals> {
        if let Some(t) = self.totals.get() {
            return Ok(t);
        }
        let sql = self.sql();
        ensure_schema(&sql)?;
        let sums = sql
            .exec(
                "SELECT SUM(bytes) AS bytes, SUM(lines) AS lines, MIN(received) AS oldest FROM buffer",
                None,
            )?
            .to_array::<Sums>()?;
        let sums = sums.first();
        let totals = Totals {
            bytes: sums.and_then(|s| s.bytes).unwrap_or(0.0) as usize,
            lines: sums.and_then(|s| s.lines).unwrap_or(0.0) as usize,
            oldest_received_ms: sums.and_then(|s| s.oldest).map(|v| v as u64),
        };
        self.totals.set(Some(totals));
        Ok(totals)
    }

    fn owner(&self) -> Result<(String, u32)> {
        if let Some(owner) = self.owner.borrow().clone() {
            return Ok(owner);
        }
        let worker = self.meta("worker")?.unwrap_or_else(|| "unknown".into());
        let shard = self
            .meta("shard")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        *self.owner.borrow_mut() = Some((worker.clone(), shard));
        Ok((worker, shard))
    }

    async fn append(&self, worker: &str, shard: u32, body: String) -> Result<Response> {
        let lines = body.lines().filter(|l| !l.is_empty()).count();
        if lines == 0 {
            return Response::empty().map(|r| r.with_status(204));
        }
        let sql = self.sql();
        ensure_schema(&sql)?;
        if self.owner.borrow().is_none() {
            self.set_meta("worker", worker)?;
            self.set_meta("shard", &shard.to_string())?;
            *self.owner.borrow_mut() = Some((worker.to_string(), shard));
        }
        let now = now_ms();
        let mut totals = self.totals()?;
        sql.exec(
            "INSERT INTO buffer (received, bytes, lines, body) VALUES (?, ?, ?, ?)",
            vec![
                int(now),
                int(body.len() as u64),
                int(lines as u64),
                SqlStorageValue::String(body.clone()),
            ],
        )?;
        totals.bytes += body.len();
        totals.lines += lines;
        totals.oldest_received_ms.get_or_insert(now);
        self.totals.set(Some(totals));
        self.shed_overflow()?;

        // While writes fail, the retry alarm (with its back-off) stays as it is: moving it
        // earlier on every append would turn an R2 outage into a retry storm.
        if self.counter("consecutiveFailures")? > 0 {
            return Response::empty().map(|r| r.with_status(204));
        }
        let totals = self.totals()?;
        let at = match batch::due(&totals, now, &self.cfg) {
            Some(_) => Some(now),
            None => batch::age_deadline(&totals, &self.cfg),
        };
        if let Some(at) = at {
            if self.alarm_at.get().is_none_or(|set| at < set) {
                self.schedule(at).await?;
            }
        }
        Response::empty().map(|r| r.with_status(204))
    }

    /// While writes fail the buffer grows; past its bound the oldest appends are dropped
    /// (and counted) so the object's storage stays bounded.
    fn shed_overflow(&self) -> Result<()> {
        let mut totals = self.totals()?;
        if totals.bytes <= self.cfg.buffer_max_bytes {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Oldest {
            seq: f64,
            bytes: f64,
            lines: f64,
        }
        let sql = self.sql();
        let rows = sql
            .exec("SELECT seq, bytes, lines FROM buffer ORDER BY seq", None)?
            .to_array::<Oldest>()?;
        let mut dropped = 0u64;
        for row in rows {
            if totals.bytes <= self.cfg.buffer_max_bytes {
                break;
            }
            sql.exec(
                "DELETE FROM buffer WHERE seq = ?",
                vec![int(row.seq as u64)],
            )?;
            totals.bytes = totals.bytes.saturating_sub(row.bytes as usize);
            totals.lines = totals.lines.saturating_sub(row.lines as usize);
            dropped += row.lines as u64;
        }
        self.add("linesDropped", dropped)?;
        self.totals.set(None);
        log_event(
            "error",
            "log buffer full: oldest lines dropped",
            &[("lines", &dropped.to_string())],
        );
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        let sql = self.sql();
        ensure_schema(&sql)?;
        let totals = self.totals()?;
        let now = now_ms();
        let retrying = self.counter("consecutiveFailures")? > 0;
        let reason = batch::due(&totals, now, &self.cfg);
        if reason.is_none() && !retrying {
            // Early (a clock skew, or the buffer was written meanwhile): come back when due.
            if let Some(at) = batch::age_deadline(&totals, &self.cfg) {
                self.schedule(at).await?;
            }
            return Ok(());
        }
        // The snapshot: a retry writes exactly the rows the failed attempt tried, under the
        // same keys, so a partly written attempt is replaced rather than duplicated.
        let upto = match self
            .meta("inflightUpto")?
            .and_then(|v| v.parse::<u64>().ok())
        {
            Some(upto) => upto,
            None => {
                let max = sql
                    .exec("SELECT MAX(seq) AS seq FROM buffer", None)?
                    .to_array::<Upto>()?;
                match max.first().and_then(|m| m.seq) {
                    Some(seq) => seq as u64,
                    None => return Ok(()),
                }
            }
        };
        let rows = sql
            .exec(
                "SELECT body FROM buffer WHERE seq <= ? ORDER BY seq",
                vec![int(upto)],
            )?
            .to_array::<Row>()?;
        let mut lines = Vec::new();
        for row in &rows {
            for line in row.body.lines().filter(|l| !l.is_empty()) {
                let ts = serde_json::from_str::<Stamp>(line).map_or(now, |s| s.ts);
                lines.push((ts, line.to_string()));
            }
        }
        let (worker, shard) = self.owner()?;
        let planned = batch::plan(lines, &worker, &self.cfg, |ts, n| {
            crate::batch_id(ts, &format!("{worker}:{shard}:{upto}:{n}"))
        });

        let bucket = match self.env.bucket(BUCKET) {
            Ok(bucket) => Some(bucket),
            Err(e) => {
                self.failed(upto, &format!("binding {BUCKET}: {e}")).await?;
                None
            }
        };
        let Some(bucket) = bucket else {
            return Ok(());
        };
        let (mut written_lines, mut written_bytes) = (0u64, 0u64);
        for p in &planned {
            let metadata = HashMap::from([
                (META_MIN_TS.to_string(), p.min_ts.to_string()),
                (META_MAX_TS.to_string(), p.max_ts.to_string()),
                ("lines".to_string(), p.lines.to_string()),
            ]);
            let put = bucket
                .put(&p.key, p.body.clone())
                .http_metadata(HttpMetadata {
                    content_type: Some("application/x-ndjson".into()),
                    ..HttpMetadata::default()
                })
                .custom_metadata(metadata)
                .execute()
                .await;
            if let Err(e) = put {
                self.failed(upto, &e.to_string()).await?;
                return Ok(());
            }
            written_lines += p.lines as u64;
            written_bytes += p.body.len() as u64;
        }
        sql.exec("DELETE FROM buffer WHERE seq <= ?", vec![int(upto)])?;
        sql.exec("DELETE FROM meta WHERE k = 'inflightUpto'", None)?;
        self.add("objectsWritten", planned.len() as u64)?;
        self.add("linesWritten", written_lines)?;
        self.add("bytesWritten", written_bytes)?;
        match reason {
            Some(Due::Size) => self.add("flushesBySize", 1)?,
            Some(Due::Age) => self.add("flushesByAge", 1)?,
            None => {}
        }
        if retrying {
            self.set_meta("consecutiveFailures", "0")?;
            log_event("info", "log writes recovered", &[("worker", &worker)]);
        }
        self.totals.set(None);
        let totals = self.totals()?;
        let next = match batch::due(&totals, now_ms(), &self.cfg) {
            Some(_) => Some(now_ms()),
            None => batch::age_deadline(&totals, &self.cfg),
        };
        if let Some(at) = next {
            self.schedule(at).await?;
        }
        Ok(())
    }

    /// A failed write: counted, logged, and retried after the back-off.
    async fn failed(&self, upto: u64, error: &str) -> Result<()> {
        self.set_meta("inflightUpto", &upto.to_string())?;
        self.add("writeFailures", 1)?;
        self.add("consecutiveFailures", 1)?;
        let error: String = error.chars().take(300).collect();
        self.set_meta("lastError", &error)?;
        let consecutive = self.counter("consecutiveFailures")?;
        let delay = batch::retry_delay_ms(u32::try_from(consecutive).unwrap_or(u32::MAX));
        let (worker, _) = self.owner()?;
        log_event(
            "error",
            "log write failed",
            &[
                ("worker", &worker),
                ("error", &error),
                ("retryInMs", &delay.to_string()),
            ],
        );
        self.schedule(now_ms() + delay).await
    }

    async fn stats(&self) -> Result<Response> {
        let sql = self.sql();
        ensure_schema(&sql)?;
        let totals = self.totals()?;
        let meta: HashMap<String, Option<String>> = sql
            .exec("SELECT k, v FROM meta", None)?
            .to_array::<Meta>()?
            .into_iter()
            .map(|m| (m.k, m.v))
            .collect();
        let get = |k: &str| meta.get(k).cloned().flatten();
        let mut body = json!({
            "worker": get("worker"),
            "shard": get("shard").and_then(|s| s.parse::<u32>().ok()),
            "pending": {"bytes": totals.bytes, "lines": totals.lines, "oldestReceivedMs": totals.oldest_received_ms},
            "lastError": get("lastError"),
            "alarmAt": self.state.storage().get_alarm().await?,
            "config": {"maxBytes": self.cfg.max_bytes, "maxLines": self.cfg.max_lines,
                       "maxAgeMs": self.cfg.max_age_ms, "bufferMaxBytes": self.cfg.buffer_max_bytes},
        });
        for name in COUNTERS {
            body[*name] = json!(get(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0));
        }
        Response::from_json(&body)
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        let rows = self
            .sql()
            .exec(
                "SELECT k, v FROM meta WHERE k = ?",
                vec![SqlStorageValue::String(key.into())],
            )?
            .to_array::<Meta>()?;
        Ok(rows.into_iter().next().and_then(|m| m.v))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.sql().exec(
            "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
            vec![
                SqlStorageValue::String(key.into()),
                SqlStorageValue::String(value.into()),
            ],
        )?;
        Ok(())
    }

    fn counter(&self, key: &str) -> Result<u64> {
        Ok(self.meta(key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    fn add(&self, key: &str, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let value = self.counter(key)?.saturating_add(n);
        self.set_meta(key, &value.to_string())
    }

    async fn schedule(&self, at_ms: u64) -> Result<()> {
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
        "CREATE TABLE IF NOT EXISTS buffer (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
         received INTEGER NOT NULL, bytes INTEGER NOT NULL, lines INTEGER NOT NULL, body TEXT NOT NULL)",
        None,
    )?;
    sql.exec(
        "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)",
        None,
    )?;
    Ok(())
}

fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}
