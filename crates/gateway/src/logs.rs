//! The log pipeline's shared rules: the bucket layout the tail worker writes (Hive-style hour
//! partitions, one NDJSON object per batch), the partitions a time range covers, and the
//! `/api/logs` query the api answers from it (parsing, bounds, matching, paging cursor).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use serde_json::{Map, Value};

/// Every object lives under this prefix (lifecycle rules and retention match on it).
pub const PREFIX: &str = "logs/";
pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 24 * HOUR_MS;
/// The widest range one query may cover: at most 25 hour partitions are listed.
pub const MAX_RANGE_MS: u64 = DAY_MS;
/// A time-range query without `from` looks this far back from `to`.
pub const DEFAULT_RANGE_MS: u64 = HOUR_MS;
/// A ULID request id dates its request: its lines are looked for from this long before...
pub const REQUEST_BEFORE_MS: u64 = 60_000;
/// ... to this long after the id's timestamp (a request's calls end well within it).
pub const REQUEST_AFTER_MS: u64 = 15 * 60_000;
pub const DEFAULT_LIMIT: usize = 200;
pub const MAX_LIMIT: usize = 1000;
/// Custom metadata on every object: the first and last record timestamp in it (ms), so a
/// query skips objects outside its range without reading them.
pub const META_MIN_TS: &str = "minTs";
pub const META_MAX_TS: &str = "maxTs";

/// Record fields (one NDJSON line per record) that the layout and queries rely on.
pub mod field {
    pub const TS: &str = "ts";
    pub const WORKER: &str = "worker";
    pub const KIND: &str = "kind";
    pub const REQUEST_ID: &str = "requestId";
    pub const TRACE_ID: &str = "traceId";
    pub const STATUS: &str = "status";
    pub const HOST: &str = "host";
    pub const USER_ID: &str = "userId";
    pub const PATH: &str = "path";
    pub const MESSAGE: &str = "message";
}

/// `logs/dt=YYYY-MM-DD/hr=HH/` of the hour holding `ts_ms` (UTC).
pub fn partition_prefix(ts_ms: u64) -> String {
    let at = DateTime::from_timestamp_millis(i64::try_from(ts_ms).unwrap_or(i64::MAX))
        .unwrap_or_default();
    format!(
        "{PREFIX}dt={:04}-{:02}-{:02}/hr={:02}/",
        at.year(),
        at.month(),
        at.day(),
        at.hour()
    )
}

/// The start (ms) of the hour a partition prefix names; `None` when it is not one of ours.
pub fn partition_start(prefix: &str) -> Option<u64> {
    let rest = prefix.strip_prefix(PREFIX)?.strip_prefix("dt=")?;
    let (date, rest) = rest.split_once("/hr=")?;
    let hour_text = rest.strip_suffix('/').unwrap_or(rest);
    let hour: u32 = hour_text.parse().ok()?;
    if hour > 23 || hour_text.len() != 2 {
        return None;
    }
    let day = parse_date(date)?;
    let ms = day.and_hms_opt(hour, 0, 0)?.and_utc().timestamp_millis();
    u64::try_from(ms).ok()
}

/// The day prefix `logs/dt=YYYY-MM-DD/` (retention deletes whole days).
pub fn day_prefix(ts_ms: u64) -> String {
    let hour = partition_prefix(ts_ms);
    hour[..PREFIX.len() + "dt=YYYY-MM-DD/".len()].to_string()
}

/// The start (ms) of the day a `logs/dt=YYYY-MM-DD/` prefix names.
pub fn day_start(prefix: &str) -> Option<u64> {
    let date = prefix
        .strip_prefix(PREFIX)?
        .strip_prefix("dt=")?
        .strip_suffix('/')?;
    let day = parse_date(date)?;
    u64::try_from(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis()).ok()
}

/// `YYYY-MM-DD` exactly (a hand-rolled split keeps chrono's format parser out of the wasm).
fn parse_date(date: &str) -> Option<NaiveDate> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &date[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)
}

/// Day prefixes (from a delimited listing of `logs/`) that are wholly older than the
/// retention: every record in them is at least `retention_days` old at `now_ms`.
pub fn expired_days(prefixes: &[String], now_ms: u64, retention_days: u32) -> Vec<&str> {
    let cutoff = now_ms.saturating_sub(u64::from(retention_days) * DAY_MS);
    prefixes
        .iter()
        .filter(|p| day_start(p).is_some_and(|start| start + DAY_MS <= cutoff))
        .map(String::as_str)
        .collect()
}

/// A worker name as a key component: lower-case `[a-z0-9_-]`, anything else `_`.
pub fn worker_label(name: &str) -> String {
    let label: String = name
        .chars()
        .take(64)
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '_') => c,
            _ => '_',
        })
        .collect();
    if label.is_empty() {
        "unknown".to_string()
    } else {
        label
    }
}

/// `logs/dt=…/hr=…/{worker}-{batch}.ndjson` for a batch whose records are in `ts_ms`'s hour.
pub fn object_key(ts_ms: u64, worker: &str, batch: &str) -> String {
    format!(
        "{}{}-{batch}.ndjson",
        partition_prefix(ts_ms),
        worker_label(worker)
    )
}

/// The hour partitions covering `[from_ms, to_ms]`, oldest first.
pub fn partitions(from_ms: u64, to_ms: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut hour = from_ms - from_ms % HOUR_MS;
    while hour <= to_ms {
        out.push(partition_prefix(hour));
        hour += HOUR_MS;
    }
    out
}

/// Whether an object whose records span `[min, max]` can hold records in `[from, to]`.
/// Unknown bounds (metadata missing) mean the object must be read.
pub fn may_overlap(min: Option<u64>, max: Option<u64>, from: u64, to: u64) -> bool {
    min.is_none_or(|min| min <= to) && max.is_none_or(|max| max >= from)
}

/// A status filter: `500` or a class, `5xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(u16),
    Class(u16),
}

impl StatusFilter {
    fn parse(s: &str) -> Option<StatusFilter> {
        let s = s.trim().to_ascii_lowercase();
        if let Some(class) = s.strip_suffix("xx") {
            return match class.parse::<u16>() {
                Ok(c @ 1..=5) if class.len() == 1 => Some(StatusFilter::Class(c)),
                _ => None,
            };
        }
        match s.parse::<u16>() {
            Ok(code @ 100..=599) if s.len() == 3 => Some(StatusFilter::Exact(code)),
            _ => None,
        }
    }

    fn matches(self, status: u64) -> bool {
        match self {
            StatusFilter::Exact(code) => status == u64::from(code),
            StatusFilter::Class(class) => status / 100 == u64::from(class),
        }
    }
}

/// Where a page stopped: the object it was reading and how many of that object's matching
/// records were already returned (0: the object is done, resume after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: String,
    pub skip: usize,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.skip, self.key))
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (skip, key) = text.split_once(':')?;
        if !key.starts_with(PREFIX) || key.len() > 512 {
            return None;
        }
        Some(Cursor {
            key: key.to_string(),
            skip: skip.parse().ok()?,
        })
    }

    /// The partition prefix of the cursor's object.
    pub fn partition(&self) -> &str {
        match self.key.rfind('/') {
            Some(i) => &self.key[..=i],
            None => &self.key,
        }
    }
}

/// One `/api/logs` request, validated and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub worker: Option<String>,
    pub status: Option<StatusFilter>,
    pub host: Option<String>,
    pub user_id: Option<String>,
    /// A prefix of the record's `path` (the api's request lines carry one).
    pub path: Option<String>,
    /// The record's `message`, exactly (`request` for the api's request lines).
    pub message: Option<String>,
    pub from_ms: u64,
    pub to_ms: u64,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// A parameter the endpoint does not know (a typo would silently widen the search).
    Unknown(String),
    Invalid(&'static str, String),
    /// The range is empty or wider than `MAX_RANGE_MS`.
    Range(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Unknown(name) => write!(f, "unknown parameter {name:?}"),
            QueryError::Invalid(name, why) => write!(f, "invalid {name}: {why}"),
            QueryError::Range(why) => write!(f, "invalid time range: {why}"),
        }
    }
}

/// A time: epoch milliseconds or RFC 3339.
fn parse_time(name: &'static str, value: &str) -> Result<u64, QueryError> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<u64>() {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(value)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .ok_or_else(|| QueryError::Invalid(name, "epoch milliseconds or RFC 3339".into()))
}

fn short_token(name: &'static str, value: &str, max: usize) -> Result<String, QueryError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(QueryError::Invalid(
            name,
            format!("1..{max} characters of [A-Za-z0-9._:-]"),
        ))
    }
}

/// The ms timestamp of a ULID (`None` for anything else, e.g. a UUID request id).
pub fn ulid_time(id: &str) -> Option<u64> {
    ulid::Ulid::from_string(id).ok().map(|u| u.timestamp_ms())
}

/// Parses the query's decoded `(name, value)` pairs.
///
/// The range: `from`/`to` when given; else a ULID `requestId` dates itself (a minute before
/// to 15 minutes after); else the hour before `to` (default: now). Never wider than a day.
pub fn parse_query(pairs: &[(String, String)], now_ms: u64) -> Result<LogQuery, QueryError> {
    let mut q = LogQuery {
        request_id: None,
        trace_id: None,
        worker: None,
        status: None,
        host: None,
        user_id: None,
        path: None,
        message: None,
        from_ms: 0,
        to_ms: 0,
        limit: DEFAULT_LIMIT,
        cursor: None,
    };
    let (mut from, mut to) = (None, None);
    for (name, value) in pairs {
        match name.as_str() {
            "requestId" => q.request_id = Some(short_token("requestId", value, 64)?),
            "traceId" => {
                let v = value.trim().to_ascii_lowercase();
                if v.len() != 32 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(QueryError::Invalid("traceId", "32 hex digits".into()));
                }
                q.trace_id = Some(v);
            }
            "worker" => q.worker = Some(short_token("worker", value, 64)?),
            "status" => {
                q.status = Some(StatusFilter::parse(value).ok_or_else(|| {
                    QueryError::Invalid("status", "a status code or a class like 5xx".into())
                })?)
            }
            "host" => q.host = Some(short_token("host", &value.to_ascii_lowercase(), 253)?),
            "userId" => q.user_id = Some(short_token("userId", value, 128)?),
            "path" => {
                if !value.starts_with('/')
                    || value.len() > 2048
                    || value.bytes().any(|b| b.is_ascii_control())
                {
                    return Err(QueryError::Invalid(
                        "path",
                        "a path prefix starting with / (at most 2048 bytes)".into(),
                    ));
                }
                q.path = Some(value.clone());
            }
            "message" => q.message = Some(short_token("message", value, 64)?),
            "from" => from = Some(parse_time("from", value)?),
            "to" => to = Some(parse_time("to", value)?),
            "limit" => {
                q.limit = match value.trim().parse::<usize>() {
                    Ok(n @ 1..=MAX_LIMIT) => n,
                    _ => return Err(QueryError::Invalid("limit", format!("1..{MAX_LIMIT}"))),
                }
            }
            "cursor" => {
                q.cursor = Some(
                    Cursor::decode(value)
                        .ok_or_else(|| QueryError::Invalid("cursor", "not one we issued".into()))?,
                )
            }
            other => return Err(QueryError::Unknown(other.to_string())),
        }
    }
    let dated = q.request_id.as_deref().and_then(ulid_time);
    let (from_ms, to_ms) = match (from, to, dated) {
        (None, None, Some(t)) => (
            t.saturating_sub(REQUEST_BEFORE_MS),
            t.saturating_add(REQUEST_AFTER_MS),
        ),
        (from, to, _) => {
            let to = to.unwrap_or(now_ms);
            (from.unwrap_or(to.saturating_sub(DEFAULT_RANGE_MS)), to)
        }
    };
    if from_ms > to_ms {
        return Err(QueryError::Range("from is after to".into()));
    }
    if to_ms - from_ms > MAX_RANGE_MS {
        return Err(QueryError::Range(format!(
            "at most {} hours per query",
            MAX_RANGE_MS / HOUR_MS
        )));
    }
    q.from_ms = from_ms;
    q.to_ms = to_ms;
    if let Some(cursor) = &q.cursor {
        let inside = partition_start(cursor.partition())
            .is_some_and(|start| start + HOUR_MS > from_ms && start <= to_ms);
        if !inside {
            return Err(QueryError::Invalid(
                "cursor",
                "outside this query's range".into(),
            ));
        }
    }
    Ok(q)
}

fn str_field<'a>(record: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    record.get(name).and_then(Value::as_str)
}

impl LogQuery {
    /// Whether one record belongs in the answer.
    pub fn matches(&self, record: &Map<String, Value>) -> bool {
        let Some(ts) = record.get(field::TS).and_then(Value::as_u64) else {
            return false;
        };
        let eq = |want: &Option<String>, name: &str| {
            want.as_deref()
                .is_none_or(|w| str_field(record, name) == Some(w))
        };
        (self.from_ms..=self.to_ms).contains(&ts)
            && eq(&self.request_id, field::REQUEST_ID)
            && eq(&self.trace_id, field::TRACE_ID)
            && eq(&self.worker, field::WORKER)
            && eq(&self.host, field::HOST)
            && eq(&self.user_id, field::USER_ID)
            && eq(&self.message, field::MESSAGE)
            && self.path.as_deref().is_none_or(|want| {
                str_field(record, field::PATH).is_some_and(|path| path.starts_with(want))
            })
            && self.status.is_none_or(|s| {
                record
                    .get(field::STATUS)
                    .and_then(Value::as_u64)
                    .is_some_and(|status| s.matches(status))
            })
    }

    /// The key prefix to list in one partition (narrowed to one worker when asked).
    pub fn list_prefix(&self, partition: &str) -> String {
        match &self.worker {
            Some(worker) => format!("{partition}{}-", worker_label(worker)),
            None => partition.to_string(),
        }
    }
}

/// What one page read, for the answer's `scanned` (the bounds are visible to the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    pub partitions: usize,
    pub objects: usize,
    pub bytes: usize,
    pub unreadable_lines: usize,
}

/// Collects one page: reads objects in key order until the limit or a read budget is hit.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Map<String, Value>>,
    pub next: Option<Cursor>,
    pub scanned: Scanned,
    limit: usize,
    max_objects: usize,
    max_bytes: usize,
}

impl Page {
    pub fn new(limit: usize, max_objects: usize, max_bytes: usize) -> Page {
        Page {
            items: Vec::new(),
            next: None,
            scanned: Scanned::default(),
            limit,
            max_objects: max_objects.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Whether another object may be read.
    pub fn open(&self) -> bool {
        self.next.is_none()
            && self.items.len() < self.limit
            && self.scanned.objects < self.max_objects
            && self.scanned.bytes < self.max_bytes
    }

    /// Takes the matching records of one object (skipping the first `skip` of them), and
    /// sets the cursor when the page fills or its budget is spent.
    pub fn take(&mut self, key: &str, body: &str, skip: usize, query: &LogQuery) {
        self.scanned.objects += 1;
        self.scanned.bytes += body.len();
        let mut matched = 0;
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
                self.scanned.unreadable_lines += 1;
                continue;
            };
            if !query.matches(&record) {
                continue;
            }
            matched += 1;
            if matched <= skip {
                continue;
            }
            if self.items.len() == self.limit {
                self.next = Some(Cursor {
                    key: key.to_string(),
                    skip: matched - 1,
                });
                return;
            }
            self.items.push(record);
        }
        if !self.open() {
            // Full or out of budget exactly at this object's end: resume after it.
            self.next = Some(Cursor {
                key: key.to_string(),
                skip: 0,
            });
        }
    }

    /// Ends the page after `key` without reading further (a listing budget ran out; every
    /// object up to `key` was read or skipped as outside the range).
    pub fn stop_after(&mut self, key: &str) {
        if self.next.is_none() {
            self.next = Some(Cursor {
                key: key.to_string(),
                skip: 0,
            });
        }
    }

    /// The records in time order (ties: invocation summaries before the lines they hold).
    pub fn sorted(mut self) -> Page {
        let rank = |r: &Map<String, Value>| {
            (
                r.get(field::TS).and_then(Value::as_u64).unwrap_or(0),
                u8::from(str_field(r, field::KIND) != Some("invocation")),
            )
        };
        self.items.sort_by_key(|r| rank(r));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // 2026-12-01T22:30:00Z
    const T: u64 = 1_796_164_200_000;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn record(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn partition_layout() {
        assert_eq!(partition_prefix(T), "logs/dt=2026-12-01/hr=22/");
        assert_eq!(partition_prefix(0), "logs/dt=1970-01-01/hr=00/");
        assert_eq!(
            object_key(T, "API", "01JBATCH"),
            "logs/dt=2026-12-01/hr=22/api-01JBATCH.ndjson"
        );
        assert_eq!(worker_label("user worker/../x"), "user_worker____x");
        assert_eq!(worker_label(""), "unknown");
        assert_eq!(
            partition_start("logs/dt=2026-12-01/hr=22/"),
            Some(T - 30 * 60_000)
        );
        for bad in [
            "logs/dt=2026-12-01/hr=24/",
            "x/dt=2026-12-01/hr=01/",
            "logs/dt=2026-13-01/hr=01/",
            "logs/dt=2026-12-01/hr=1/",
        ] {
            assert_eq!(partition_start(bad), None, "{bad}");
        }
        assert_eq!(day_prefix(T), "logs/dt=2026-12-01/");
    }

    #[test]
    fn partitions_cover_the_range_by_hour() {
        let p = partitions(T - HOUR_MS, T);
        assert_eq!(
            p,
            ["logs/dt=2026-12-01/hr=21/", "logs/dt=2026-12-01/hr=22/"]
        );
        assert_eq!(partitions(T, T).len(), 1);
        // across midnight
        let p = partitions(T + HOUR_MS, T + 3 * HOUR_MS);
        assert_eq!(
            p,
            [
                "logs/dt=2026-12-01/hr=23/",
                "logs/dt=2026-12-02/hr=00/",
                "logs/dt=2026-12-02/hr=01/"
            ]
        );
        // the widest query lists 25 partitions at most
        assert!(partitions(T, T + MAX_RANGE_MS).len() <= 25);
    }

    #[test]
    fn retention_drops_whole_old_days_only() {
        let days: Vec<String> = [
            "logs/dt=2026-11-29/",
            "logs/dt=2026-11-30/",
            "logs/dt=2026-12-01/",
            "logs/other/",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // now = 2026-12-01 22:30; 1 day retention: the 29th and 30th ended over a day ago? the
        // 30th ended at 2026-12-01 00:00, 22.5 h ago: kept.
        assert_eq!(expired_days(&days, T, 1), ["logs/dt=2026-11-29/"]);
        assert_eq!(
            expired_days(&days, T, 0),
            ["logs/dt=2026-11-29/", "logs/dt=2026-11-30/"]
        );
        assert!(expired_days(&days, T, 30).is_empty());
    }

    #[test]
    fn a_ulid_request_id_dates_its_range() {
        let id = ulid::Ulid::from_parts(T, 7).to_string();
        let q = parse_query(&pairs(&[("requestId", &id)]), T + 5_000).unwrap();
        assert_eq!(
            (q.from_ms, q.to_ms),
            (T - REQUEST_BEFORE_MS, T + REQUEST_AFTER_MS)
        );
        assert_eq!(partitions(q.from_ms, q.to_ms).len(), 1);
        // a UUID request id carries no time: the last hour
        let q = parse_query(
            &pairs(&[("requestId", "3f2c1d0e-8a7b-4c6d-9e5f-0a1b2c3d4e5f")]),
            T,
        )
        .unwrap();
        assert_eq!((q.from_ms, q.to_ms), (T - HOUR_MS, T));
        // an explicit range wins
        let q = parse_query(
            &pairs(&[
                ("requestId", &id),
                ("from", "2026-12-01T20:00:00Z"),
                ("to", &T.to_string()),
            ]),
            T,
        )
        .unwrap();
        assert_eq!((q.from_ms, q.to_ms), (T - 150 * 60_000, T));
    }

    #[test]
    fn queries_are_bounded_and_strict() {
        let too_wide = format!("{}", MAX_RANGE_MS + 1);
        let bad = [
            vec![("from", "0"), ("to", too_wide.as_str())],
            vec![("from", "10"), ("to", "5")],
            vec![("limit", "0")],
            vec![("limit", "1001")],
            vec![("limit", "x")],
            vec![("status", "6xx")],
            vec![("status", "2000")],
            vec![("traceId", "xyz")],
            vec![("requestId", "a b")],
            vec![("requestid", "x")],
            vec![("from", "yesterday")],
            vec![("cursor", "!!")],
        ];
        for case in bad {
            let owned: Vec<(String, String)> = case
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert!(parse_query(&owned, T).is_err(), "{case:?}");
        }
        let q = parse_query(&pairs(&[("status", "5xx"), ("limit", "1000")]), T).unwrap();
        assert_eq!(q.status, Some(StatusFilter::Class(5)));
        assert_eq!(q.limit, 1000);
    }

    #[test]
    fn cursor_round_trip_and_range_check() {
        let c = Cursor {
            key: "logs/dt=2026-12-01/hr=22/api-01J.ndjson".into(),
            skip: 3,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c.clone()));
        assert_eq!(c.partition(), "logs/dt=2026-12-01/hr=22/");
        let inside = parse_query(
            &pairs(&[("to", &T.to_string()), ("cursor", &c.encode())]),
            T,
        );
        assert!(inside.is_ok());
        let outside = parse_query(
            &pairs(&[
                ("to", &(T - 3 * HOUR_MS).to_string()),
                ("cursor", &c.encode()),
            ]),
            T,
        );
        assert!(outside.is_err());
        // A partition's bare prefix is a cursor too: "resume at this partition's start".
        let start = Cursor::decode(
            &Cursor {
                key: "logs/dt=2026-12-01/hr=22/".into(),
                skip: 0,
            }
            .encode(),
        );
        assert_eq!(
            start.map(|c| c.partition().to_string()),
            Some("logs/dt=2026-12-01/hr=22/".into())
        );
        let foreign = URL_SAFE_NO_PAD.encode("0:secrets/x");
        assert_eq!(Cursor::decode(&foreign), None);
    }

    #[test]
    fn path_prefix_and_message() {
        let q = parse_query(
            &pairs(&[
                ("from", "0"),
                ("to", "100"),
                ("path", "/api/auth"),
                ("message", "request"),
            ]),
            T,
        )
        .unwrap();
        let line =
            |path: &str, message: &str| record(json!({"ts": 5, "path": path, "message": message}));
        assert!(q.matches(&line("/api/auth/me", "request")));
        assert!(q.matches(&line("/api/auth", "request")));
        assert!(!q.matches(&line("/api/db/notes", "request")));
        assert!(!q.matches(&line("/api/auth/me", "rpc")));
        assert!(!q.matches(&record(json!({"ts": 5, "message": "request"}))));
        for bad in ["api/auth", "", "/a\u{7}b"] {
            assert!(parse_query(&pairs(&[("path", bad)]), T).is_err(), "{bad:?}");
        }
        assert!(parse_query(&pairs(&[("message", "a b")]), T).is_err());
    }

    #[test]
    fn matching() {
        let q = parse_query(
            &pairs(&[
                ("from", "0"),
                ("to", "100"),
                ("status", "5xx"),
                ("host", "API.do"),
            ]),
            T,
        )
        .unwrap();
        let hit = record(json!({"ts": 50, "status": 503, "host": "api.do"}));
        assert!(q.matches(&hit));
        for miss in [
            json!({"ts": 50, "status": 404, "host": "api.do"}),
            json!({"ts": 50, "host": "api.do"}),
            json!({"ts": 500, "status": 503, "host": "api.do"}),
            json!({"status": 503, "host": "api.do"}),
            json!({"ts": 50, "status": 503, "host": "db.do"}),
        ] {
            assert!(!q.matches(&record(miss.clone())), "{miss}");
        }
        let q = parse_query(
            &pairs(&[
                ("from", "0"),
                ("to", "100"),
                ("requestId", "r1"),
                ("worker", "db"),
            ]),
            T,
        )
        .unwrap();
        assert!(q.matches(&record(json!({"ts": 1, "requestId": "r1", "worker": "db"}))));
        assert!(!q.matches(&record(json!({"ts": 1, "requestId": "r2", "worker": "db"}))));
        assert!(!q.matches(&record(json!({"ts": 1, "requestId": "r1", "worker": "do"}))));
        assert_eq!(q.list_prefix("logs/dt=x/hr=01/"), "logs/dt=x/hr=01/db-");
    }

    #[test]
    fn overlap_skips_objects_outside_the_range() {
        assert!(may_overlap(Some(10), Some(20), 15, 30));
        assert!(may_overlap(None, None, 15, 30));
        assert!(!may_overlap(Some(31), Some(40), 15, 30));
        assert!(!may_overlap(Some(1), Some(14), 15, 30));
    }

    fn body(n: usize, id: &str) -> String {
        body_at(n, id, 10)
    }

    fn body_at(n: usize, id: &str, ts: usize) -> String {
        (0..n)
            .map(|i| json!({"ts": ts + i, "requestId": id, "i": ts + i}).to_string() + "\n")
            .collect()
    }

    #[test]
    fn pages_end_at_the_limit_and_resume_exactly() {
        let q = parse_query(
            &pairs(&[
                ("from", "0"),
                ("to", "1000"),
                ("requestId", "r"),
                ("limit", "3"),
            ]),
            T,
        )
        .unwrap();
        let objects = [
            ("logs/a", body_at(2, "r", 10)),
            ("logs/b", body_at(4, "r", 20) + "not json\n"),
            ("logs/c", body_at(1, "x", 30)),
        ];
        let mut seen = Vec::new();
        let mut cursor: Option<Cursor> = None;
        for _ in 0..10 {
            let mut page = Page::new(q.limit, 100, 1 << 20);
            for (key, text) in &objects {
                let skip = match &cursor {
                    Some(c) if c.key.as_str() > *key => continue,
                    Some(c) if c.key == *key && c.skip == 0 => continue,
                    Some(c) if c.key == *key => c.skip,
                    _ => 0,
                };
                if !page.open() {
                    break;
                }
                page.take(key, text, skip, &q);
            }
            let page = page.sorted();
            assert!(page.items.len() <= 3);
            seen.extend(page.items.iter().map(|r| r["i"].as_u64().unwrap()));
            cursor = page.next.clone();
            if cursor.is_none() {
                break;
            }
        }
        // every matching record exactly once: 2 from a, 4 from b
        assert_eq!(seen, [10, 11, 20, 21, 22, 23]);
    }

    #[test]
    fn pages_stop_at_the_read_budget() {
        let q = parse_query(&pairs(&[("from", "0"), ("to", "1000")]), T).unwrap();
        let mut page = Page::new(1000, 2, 1 << 20);
        page.take("logs/a", &body(1, "r"), 0, &q);
        assert!(page.open());
        page.take("logs/b", &body(1, "r"), 0, &q);
        assert!(!page.open());
        assert_eq!(
            page.next,
            Some(Cursor {
                key: "logs/b".into(),
                skip: 0
            })
        );
        assert_eq!(page.scanned.objects, 2);
    }

    #[test]
    fn sorted_by_time_with_invocations_first() {
        let q = parse_query(&pairs(&[("from", "0"), ("to", "1000")]), T).unwrap();
        let mut page = Page::new(10, 10, 1 << 20);
        let text = [
            json!({"ts": 5, "kind": "log", "worker": "api"}),
            json!({"ts": 3, "kind": "log", "worker": "db"}),
            json!({"ts": 3, "kind": "invocation", "worker": "db"}),
            json!({"ts": 1, "kind": "invocation", "worker": "api"}),
        ]
        .iter()
        .map(|v| v.to_string() + "\n")
        .collect::<String>();
        page.take("logs/a", &text, 0, &q);
        let order: Vec<(u64, String)> = page
            .sorted()
            .items
            .iter()
            .map(|r| {
                (
                    r["ts"].as_u64().unwrap(),
                    r["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            order,
            [
                (1, "invocation".into()),
                (3, "invocation".into()),
                (3, "log".into()),
                (5, "log".into())
            ]
        );
    }
}
