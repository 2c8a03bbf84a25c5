//! Trace events → log records: one record per log line, per uncaught exception and one
//! summary per invocation (outcome, CPU and wall time, the event's request), every one
//! redacted and carrying the invocation's request id. The NDJSON schema is in the README.

use gateway::ids::{accept_request_id, TraceParent};
use gateway::logs::field;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::redact::{redact_text, redact_value, strip_query};

/// A record longer than this is cut to its correlation fields plus the start of its text.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
const TRUNCATED_TEXT: usize = 1024;

/// One producer invocation as the runtime hands it to `tail()` (JSON-serialised `TraceItem`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TraceItem {
    pub script_name: Option<String>,
    pub entrypoint: Option<String>,
    pub event_timestamp: Option<f64>,
    pub outcome: Option<String>,
    pub cpu_time: Option<f64>,
    pub wall_time: Option<f64>,
    pub truncated: Option<bool>,
    pub dispatch_namespace: Option<String>,
    pub event: Option<Value>,
    pub logs: Vec<TraceLog>,
    pub exceptions: Vec<TraceException>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TraceLog {
    pub timestamp: Option<f64>,
    pub level: Option<String>,
    pub message: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TraceException {
    pub timestamp: Option<f64>,
    pub name: Option<String>,
    pub message: Option<String>,
}

/// Parses the JSON of `tail(events)`'s array.
pub fn parse_events(json: &str) -> Result<Vec<TraceItem>, serde_json::Error> {
    serde_json::from_str(json)
}

fn ms(value: Option<f64>) -> Option<u64> {
    value
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64)
}

/// A log line's text: a single string argument as is, anything else joined JSON-style.
fn message_text(message: &Value) -> String {
    match message {
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The platform's structured lines are one JSON object in one string argument.
fn structured(message: &Value) -> Option<Map<String, Value>> {
    let text = match message {
        Value::Array(parts) if parts.len() == 1 => parts[0].as_str()?,
        Value::String(s) => s.as_str(),
        _ => return None,
    };
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn header<'a>(event: Option<&'a Value>, name: &str) -> Option<&'a str> {
    let headers = event?.get("request")?.get("headers")?.as_object()?;
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// What the invocation was, without headers, bodies or query strings.
fn event_summary(event: Option<&Value>) -> Value {
    let Some(event) = event.and_then(Value::as_object) else {
        return json!({"type": "unknown"});
    };
    if let Some(request) = event.get("request") {
        let url = request.get("url").and_then(Value::as_str).unwrap_or("");
        let mut summary = json!({
            "type": "fetch",
            "method": request.get("method").and_then(Value::as_str).unwrap_or(""),
            "url": redact_text(strip_query(url)),
        });
        if let Some(status) = event
            .get("response")
            .and_then(|r| r.get("status"))
            .and_then(Value::as_u64)
        {
            summary["status"] = json!(status);
        }
        return summary;
    }
    if let Some(method) = event.get("rpcMethod").and_then(Value::as_str) {
        return json!({"type": "rpc", "method": method});
    }
    if let Some(cron) = event.get("cron").and_then(Value::as_str) {
        return json!({"type": "scheduled", "cron": cron});
    }
    if let Some(queue) = event.get("queue").and_then(Value::as_str) {
        return json!({"type": "queue", "queue": queue, "batchSize": event.get("batchSize")});
    }
    if event.contains_key("scheduledTime") {
        return json!({"type": "alarm"});
    }
    json!({"type": "other"})
}

/// The request id and trace id the invocation belongs to: the ones its own structured lines
/// name, else the ids on its request's headers (user workers and forwards get them from the api).
fn correlation(
    item: &TraceItem,
    lines: &[Option<Map<String, Value>>],
) -> (Option<String>, Option<String>) {
    let from_lines = |name: &str| {
        lines.iter().flatten().find_map(|l| {
            l.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
    };
    let event = item.event.as_ref();
    let request_id =
        from_lines(field::REQUEST_ID).or_else(|| accept_request_id(header(event, "x-request-id")));
    // The services log `traceparent` where the api logs `traceId`: either names the trace.
    let trace_id = from_lines(field::TRACE_ID).or_else(|| {
        from_lines("traceparent")
            .as_deref()
            .or(header(event, "traceparent"))
            .and_then(TraceParent::parse)
            .map(|t| t.trace_id_hex())
    });
    (request_id, trace_id)
}

/// An invocation of a named entrypoint or Durable Object class (the api's rate limiter, say)
/// that printed nothing and ended well says nothing its caller's lines do not: not stored.
pub fn is_silent(item: &TraceItem) -> bool {
    item.entrypoint.is_some()
        && item.logs.is_empty()
        && item.exceptions.is_empty()
        && item.outcome.as_deref() == Some("ok")
}

/// Every record of one invocation, redacted, in the order they happened (none when silent).
/// `producer` names the worker when the trace does not (local workerd leaves `scriptName` null).
pub fn records(item: &TraceItem, producer: Option<&str>) -> Vec<Map<String, Value>> {
    if is_silent(item) {
        return Vec::new();
    }
    let worker = item
        .script_name
        .as_deref()
        .filter(|s| !s.is_empty())
        .or(producer)
        .unwrap_or("unknown")
        .to_string();
    let started = ms(item.event_timestamp).unwrap_or(0);
    let lines: Vec<Option<Map<String, Value>>> =
        item.logs.iter().map(|l| structured(&l.message)).collect();
    let (request_id, trace_id) = correlation(item, &lines);

    let base = |ts: u64, kind: &str| {
        let mut r = Map::new();
        r.insert(field::TS.into(), json!(ts));
        r.insert(field::WORKER.into(), json!(worker));
        r.insert(field::KIND.into(), json!(kind));
        if let Some(id) = &request_id {
            r.insert(field::REQUEST_ID.into(), json!(id));
        }
        if let Some(id) = &trace_id {
            r.insert(field::TRACE_ID.into(), json!(id));
        }
        r
    };

    let mut out = Vec::with_capacity(1 + item.logs.len() + item.exceptions.len());
    let mut summary = base(started, "invocation");
    summary.insert(
        "outcome".into(),
        json!(item.outcome.as_deref().unwrap_or("unknown")),
    );
    summary.insert("cpuMs".into(), json!(item.cpu_time.unwrap_or(0.0)));
    summary.insert("wallMs".into(), json!(item.wall_time.unwrap_or(0.0)));
    summary.insert("event".into(), event_summary(item.event.as_ref()));
    for (key, value) in [
        ("entrypoint", &item.entrypoint),
        ("dispatchNamespace", &item.dispatch_namespace),
    ] {
        if let Some(v) = value {
            summary.insert(key.into(), json!(v));
        }
    }
    if item.truncated == Some(true) {
        summary.insert("truncated".into(), json!(true));
    }
    out.push(summary);

    for (log, parsed) in item.logs.iter().zip(lines) {
        let mut record = base(ms(log.timestamp).unwrap_or(started), "log");
        let console_level = log.level.as_deref().unwrap_or("log");
        match parsed {
            Some(fields) => {
                let mut value = Value::Object(fields);
                redact_value(&mut value);
                // The record's own fields win over a line's (ts, worker, kind are ours).
                if let Value::Object(fields) = value {
                    for (key, value) in fields {
                        if !matches!(key.as_str(), "ts" | "worker" | "kind") {
                            record.entry(key).or_insert(value);
                        }
                    }
                }
                record.entry("level").or_insert(json!(console_level));
            }
            None => {
                record.insert("level".into(), json!(console_level));
                record.insert(
                    "message".into(),
                    json!(redact_text(&message_text(&log.message))),
                );
            }
        }
        out.push(record);
    }

    for exception in &item.exceptions {
        let mut record = base(ms(exception.timestamp).unwrap_or(started), "exception");
        record.insert("level".into(), json!("error"));
        record.insert(
            "name".into(),
            json!(exception.name.as_deref().unwrap_or("Error")),
        );
        record.insert(
            "message".into(),
            json!(redact_text(exception.message.as_deref().unwrap_or(""))),
        );
        out.push(record);
    }
    out
}

/// One NDJSON line (no newline), cut down when over `MAX_RECORD_BYTES`.
pub fn to_line(record: &Map<String, Value>) -> String {
    let line = Value::Object(record.clone()).to_string();
    if line.len() <= MAX_RECORD_BYTES {
        return line;
    }
    let mut cut = Map::new();
    for key in [
        field::TS,
        field::WORKER,
        field::KIND,
        field::REQUEST_ID,
        field::TRACE_ID,
        "level",
        field::STATUS,
    ] {
        if let Some(v) = record.get(key) {
            cut.insert(key.into(), v.clone());
        }
    }
    let text = record
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or(line);
    let mut end = TRUNCATED_TEXT.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    cut.insert("message".into(), json!(&text[..end]));
    cut.insert("truncated".into(), json!(true));
    Value::Object(cut).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RID: &str = "01JDQ3V7Z8K9M0N1P2Q3R4S5T6";

    fn item(json: Value) -> TraceItem {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_fetch_invocation() {
        let line = json!({"level":"info","message":"request","requestId":RID,"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","method":"GET","host":"api.do","path":"/health","status":200,"durationMs":3}).to_string();
        let it = item(json!({
            "scriptName": "api",
            "eventTimestamp": 1000,
            "outcome": "ok",
            "cpuTime": 2, "wallTime": 5,
            "event": {"request": {"url": "http://api.do/health?token=abc", "method": "GET",
                       "headers": {"x-api-key": "dev-admin-key", "cookie": "session=x"}},
                      "response": {"status": 200}},
            "logs": [{"timestamp": 1004, "level": "log", "message": [line]}],
            "exceptions": [],
        }));
        let recs = records(&it, None);
        assert_eq!(recs.len(), 2);
        let summary = &recs[0];
        assert_eq!(summary["kind"], "invocation");
        assert_eq!(summary["ts"], 1000);
        assert_eq!(summary["requestId"], RID);
        assert_eq!(summary["outcome"], "ok");
        assert_eq!(
            summary["event"],
            json!({"type": "fetch", "method": "GET", "url": "http://api.do/health", "status": 200})
        );
        let log = &recs[1];
        assert_eq!(
            (log["kind"].as_str(), log["ts"].as_u64()),
            (Some("log"), Some(1004))
        );
        assert_eq!(log["status"], 200);
        assert_eq!(log["worker"], "api");
        assert_eq!(log["message"], "request");
        let all: String = recs.iter().map(to_line).collect();
        for secret in ["dev-admin-key", "session=x", "token=abc"] {
            assert!(!all.contains(secret), "{secret} in {all}");
        }
    }

    #[test]
    fn rpc_lines_give_the_invocation_its_request_id() {
        let line = json!({"level":"info","message":"call","requestId":RID,"method":"get",
            "traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
        .to_string();
        let it = item(json!({
            "scriptName": "db", "eventTimestamp": 2000, "outcome": "ok",
            "event": {"rpcMethod": "get"},
            "logs": [{"timestamp": 2001, "level": "log", "message": [line]}],
        }));
        let recs = records(&it, None);
        assert_eq!(recs[0]["event"], json!({"type": "rpc", "method": "get"}));
        assert!(recs.iter().all(|r| r["requestId"] == RID));
        assert!(recs
            .iter()
            .all(|r| r["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"));
    }

    #[test]
    fn exceptions_carry_the_request_id_from_the_headers() {
        let it = item(json!({
            "scriptName": "tenant", "eventTimestamp": 3000, "outcome": "exception",
            "event": {"request": {"url": "https://t.do/", "method": "POST",
                       "headers": {"X-Request-Id": RID, "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}},
            "logs": [{"timestamp": 3001, "level": "log", "message": ["about to fail, password=hunter22"]}],
            "exceptions": [{"timestamp": 3002, "name": "TypeError", "message": "boom with Bearer abcdefghijk"}],
        }));
        let recs = records(&it, None);
        let exc = recs.iter().find(|r| r["kind"] == "exception").unwrap();
        assert_eq!(exc["requestId"], RID);
        assert_eq!(exc["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(exc["name"], "TypeError");
        assert!(!exc["message"].as_str().unwrap().contains("abcdefghijk"));
        let text = &recs[1];
        assert_eq!(text["level"], "log");
        assert!(!text["message"].as_str().unwrap().contains("hunter22"));
        assert_eq!(recs[0]["outcome"], "exception");
    }

    #[test]
    fn a_bad_request_id_header_is_not_trusted() {
        let it = item(
            json!({"scriptName": "t", "event": {"request": {"headers": {"x-request-id": "<script>"}}}}),
        );
        assert!(records(&it, None)[0].get("requestId").is_none());
    }

    #[test]
    fn structured_lines_are_redacted_and_cannot_overwrite_our_fields() {
        let line =
            json!({"message":"login","password":"pw-secret-1","ts":1,"worker":"evil","kind":"x"})
                .to_string();
        let it = item(
            json!({"scriptName": "auth", "eventTimestamp": 10, "logs": [{"timestamp": 11, "message": [line]}]}),
        );
        let log = &records(&it, None)[1];
        assert_eq!(log["password"], crate::redact::REDACTED);
        assert_eq!(
            (
                log["ts"].as_u64(),
                log["worker"].as_str(),
                log["kind"].as_str()
            ),
            (Some(11), Some("auth"), Some("log"))
        );
    }

    #[test]
    fn other_events_and_missing_fields() {
        let cases = [
            (
                json!({"scheduledTime": 1, "cron": "0 * * * *"}),
                "scheduled",
            ),
            (json!({"scheduledTime": 1}), "alarm"),
            (json!({"queue": "q", "batchSize": 3}), "queue"),
            (json!({}), "other"),
        ];
        for (event, kind) in cases {
            let it = item(json!({"event": event}));
            assert_eq!(records(&it, None)[0]["event"]["type"], kind);
        }
        let it = item(json!({}));
        assert_eq!(records(&it, None)[0]["worker"], "unknown");
        assert_eq!(records(&it, Some("db"))[0]["worker"], "db");
        let named = item(json!({"scriptName": "auth"}));
        assert_eq!(records(&named, Some("db"))[0]["worker"], "auth");
        assert!(parse_events("[{\"scriptName\":\"a\",\"unknownField\":1}]").is_ok());
        assert!(parse_events("{}").is_err());
    }

    #[test]
    fn silent_object_invocations_are_skipped() {
        let silent = item(
            json!({"scriptName": "api", "entrypoint": "RateLimiter", "outcome": "ok", "event": {"request": {"url": "https://x/check"}}}),
        );
        assert!(records(&silent, None).is_empty());
        let failed =
            item(json!({"scriptName": "api", "entrypoint": "RateLimiter", "outcome": "exception"}));
        assert_eq!(records(&failed, None).len(), 1);
        let plain = item(json!({"scriptName": "api", "outcome": "ok"}));
        assert_eq!(records(&plain, None).len(), 1);
    }

    #[test]
    fn long_records_are_cut() {
        let big = "x".repeat(MAX_RECORD_BYTES * 2);
        let it = item(json!({"scriptName": "api", "logs": [{"message": [big]}]}));
        let line = to_line(&records(&it, None)[1]);
        assert!(line.len() < 2 * TRUNCATED_TEXT);
        assert!(line.contains("\"truncated\":true"));
    }
}
