//! `tail`: the platform's Tail Worker. It receives the trace events of api, do, db and auth
//! (their `tail_consumers`), turns them into redacted records (`records`, `redact`) and hands
//! them to a `LogBatcher` buffer per producer and shard, which writes NDJSON objects to R2
//! (`LOGS`) under `gateway::logs`' layout. A daily cron deletes days past the retention.

mod batch;
mod batcher;
mod records;
mod redact;

use futures_util::future::join_all;
use gateway::logs::{self, field, PREFIX};
use js_sys::Array;
use rpc::sys;
use serde_json::{json, Map, Value};
use wasm_bindgen::prelude::*;
use worker::{event, Env, Method, Request, RequestInit, ScheduleContext, ScheduledEvent};

pub use batcher::LogBatcher;

use crate::batch::BatchConfig;

/// The R2 binding the records go to.
pub(crate) const BUCKET: &str = "LOGS";
const BATCHER: &str = "LOG_BATCHER";
const RETENTION_VAR: &str = "LOG_RETENTION_DAYS";
/// The producer's name when traces carry none: local workerd leaves `scriptName` null, so the
/// launcher runs one tail instance per producer with this var set (production never sets it).
const PRODUCER_VAR: &str = "LOCAL_PRODUCER_NAME";
const DEFAULT_RETENTION_DAYS: u32 = 30;
/// One cron run deletes at most this many objects (the next run continues).
const MAX_DELETES_PER_RUN: usize = 10_000;

pub(crate) fn config(env: &Env) -> BatchConfig {
    BatchConfig::from_vars(|name| env.var(name).ok().map(|v| v.to_string()))
}

pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now().max(0.0) as u64
}

/// One JSON line of the tail worker's own (its logs go to Workers Logs, not to itself).
pub(crate) fn log_event(level: &str, message: &str, fields: &[(&str, &str)]) {
    let mut line = Map::new();
    line.insert("level".into(), json!(level));
    line.insert("message".into(), json!(message));
    for (k, v) in fields {
        line.insert((*k).into(), json!(v));
    }
    let text = Value::Object(line).to_string();
    match level {
        "error" => worker::console_error!("{text}"),
        _ => worker::console_log!("{text}"),
    }
}

/// A batch id: a ULID whose time is the batch's first record (keys sort by time within a
/// worker) and whose random part is derived from `seed`, so the same batch gets the same id.
pub(crate) fn batch_id(ts_ms: u64, seed: &str) -> String {
    let hash = |salt: u64| {
        seed.bytes().fold(0xcbf2_9ce4_8422_2325u64 ^ salt, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    let random = (u128::from(hash(1)) << 64 | u128::from(hash(2))) & ((1u128 << 80) - 1);
    ulid::Ulid::from_parts(ts_ms, random).to_string()
}

/// `tail(events)`: called by the runtime after each producer invocation (or a batch of them).
/// Never throws: a failure here is logged and must not disturb anything else.
#[wasm_bindgen]
pub async fn tail(events: JsValue) {
    let env = sys::importable_env();
    let cfg = config(&env);
    let text = match js_sys::JSON::stringify(&events) {
        Ok(s) => String::from(s),
        Err(_) => return log_event("error", "tail events not serialisable", &[]),
    };
    let items = match records::parse_events(&text) {
        Ok(items) => items,
        Err(e) => {
            return log_event(
                "error",
                "tail events unreadable",
                &[("error", &e.to_string())],
            )
        }
    };
    let producer = env.var(PRODUCER_VAR).ok().map(|v| v.to_string());
    // One append per (worker, shard): an invocation's records stay together.
    let mut appends: Vec<((String, u32), String)> = Vec::new();
    for item in &items {
        let recs = records::records(item, producer.as_deref());
        let Some(first) = recs.first() else { continue };
        let worker = logs::worker_label(
            first
                .get(field::WORKER)
                .and_then(Value::as_str)
                .unwrap_or("unknown"),
        );
        let seed = first
            .get(field::REQUEST_ID)
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "{worker}{}",
                    first
                        .get(field::TS)
                        .map(Value::to_string)
                        .unwrap_or_default()
                )
            });
        let key = (worker, batch::shard(&seed, cfg.shards));
        let body: String = recs.iter().map(|r| records::to_line(r) + "\n").collect();
        match appends.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => existing.push_str(&body),
            None => appends.push((key, body)),
        }
    }
    let sent = join_all(
        appends
            .iter()
            .map(|((worker, shard), body)| append(&env, worker, *shard, body)),
    )
    .await;
    for (((worker, _), body), result) in appends.iter().zip(sent) {
        if let Err(e) = result {
            log_event(
                "error",
                "log append failed: lines lost",
                &[
                    ("worker", worker),
                    ("lines", &body.lines().count().to_string()),
                    ("error", &e),
                ],
            );
        }
    }
}

/// Hands records to their buffer; one retry (an object can be briefly unreachable on deploys).
async fn append(env: &Env, worker: &str, shard: u32, body: &str) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..2 {
        match try_append(env, worker, shard, body).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

async fn try_append(env: &Env, worker: &str, shard: u32, body: &str) -> worker::Result<()> {
    let stub = env
        .durable_object(BATCHER)?
        .get_by_name(&format!("{worker}:{shard}"))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(JsValue::from_str(body)));
    let url = format!("https://log-batcher/append?worker={worker}&shard={shard}");
    let response = stub
        .fetch_with_request(Request::new_with_init(&url, &init)?)
        .await?;
    if response.status_code() >= 300 {
        return Err(format!("buffer answered {}", response.status_code()).into());
    }
    Ok(())
}

/// `stats(worker)`: every shard's counters for one producer worker (operators and tests:
/// objects and lines written, write failures, drops, what is pending).
#[wasm_bindgen]
pub async fn stats(worker: JsValue) -> Result<JsValue, JsValue> {
    let env = sys::importable_env();
    let cfg = config(&env);
    let worker = logs::worker_label(&worker.as_string().unwrap_or_default());
    let shards = Array::new();
    for shard in 0..cfg.shards {
        let text = async {
            let stub = env
                .durable_object(BATCHER)?
                .get_by_name(&format!("{worker}:{shard}"))?;
            stub.fetch_with_str("https://log-batcher/stats")
                .await?
                .text()
                .await
        }
        .await
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
        shards.push(&js_sys::JSON::parse(&text)?);
    }
    Ok(shards.into())
}

/// Daily retention: deletes the day partitions older than `LOG_RETENTION_DAYS`.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    if let Err(e) = retention(&env).await {
        log_event(
            "error",
            "log retention failed",
            &[("error", &e.to_string())],
        );
    }
}

async fn retention(env: &Env) -> worker::Result<()> {
    let days = env
        .var(RETENTION_VAR)
        .ok()
        .and_then(|v| v.to_string().trim().parse().ok())
        .unwrap_or(DEFAULT_RETENTION_DAYS);
    let bucket = env.bucket(BUCKET)?;
    let listing = bucket
        .list()
        .prefix(PREFIX)
        .delimiter("/")
        .execute()
        .await?;
    let prefixes = listing.delimited_prefixes();
    let mut deleted = 0usize;
    for day in logs::expired_days(&prefixes, now_ms(), days) {
        loop {
            let page = bucket.list().prefix(day).limit(1000).execute().await?;
            let keys: Vec<String> = page.objects().iter().map(|o| o.key()).collect();
            if keys.is_empty() {
                break;
            }
            deleted += keys.len();
            bucket.delete_multiple(keys).await?;
            if deleted >= MAX_DELETES_PER_RUN {
                break;
            }
        }
        if deleted >= MAX_DELETES_PER_RUN {
            break;
        }
    }
    log_event(
        "info",
        "log retention",
        &[
            ("retentionDays", &days.to_string()),
            ("deletedObjects", &deleted.to_string()),
        ],
    );
    Ok(())
}
