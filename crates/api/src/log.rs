//! Structured logs: one JSON line per request (the contract's fields) and one per notable
//! event. Lines carry ids and outcomes only; credentials, cookies, bodies and query strings
//! are never passed in, so they cannot leak.

use std::cell::RefCell;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::context::RequestCtx;

/// One line for an event outside the request line (refresh failures, limiter outages...).
pub fn event(level: &str, message: &str, fields: &[(&str, &str)]) {
    let mut line = Map::new();
    line.insert("level".into(), json!(level));
    line.insert("message".into(), json!(message));
    for (k, v) in fields {
        line.insert((*k).into(), json!(v));
    }
    emit(level, &Value::Object(line));
}

/// The request's line: the contract's fields, serialized straight from borrowed values.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestLine<'a> {
    level: &'a str,
    message: &'a str,
    request_id: &'a str,
    trace_id: String,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    status: u16,
    duration_ms: u64,
    strategy: Option<&'a str>,
    service: Option<String>,
    user_id: Option<&'a str>,
    /// Which kind of credential identified the caller (never the credential itself).
    credential: Option<&'a str>,
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RateLine<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limiter_failure: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct RateLine<'a> {
    policy: &'a str,
    allowed: bool,
    remaining: u32,
}

/// The request's line, written once at the end of the pipeline.
pub fn request(rc: &RequestCtx, status: u16, duration_ms: u64) {
    let level = if status >= 500 {
        "error"
    } else if status >= 400 {
        "warn"
    } else {
        "info"
    };
    let line = RequestLine {
        level,
        message: "request",
        request_id: &rc.request_id,
        trace_id: rc.trace.trace_id_hex(),
        method: &rc.method,
        host: &rc.host,
        path: &rc.path,
        status,
        duration_ms,
        strategy: rc.strategy().map(|s| s.as_str()),
        service: rc.service(),
        user_id: rc.identity.as_ref().map(|i| i.user_id.as_str()),
        credential: rc.identity.as_ref().map(|i| i.via.as_str()),
        ip: rc.ip.as_deref(),
        rate_limit: rc.rate.as_ref().map(|(policy, decision)| RateLine {
            policy: &policy.name,
            allowed: decision.allowed,
            remaining: decision.remaining,
        }),
        limiter_failure: rc.limiter_failure.as_deref(),
        error: rc.log_error.as_deref(),
    };
    match serde_json::to_string(&line) {
        Ok(text) => write(level, &text),
        Err(e) => event(
            "error",
            "request line not serializable",
            &[("error", &e.to_string())],
        ),
    }
}

fn emit(level: &str, line: &Value) {
    write(level, &line.to_string());
}

fn write(level: &str, text: &str) {
    match level {
        "error" => worker::console_error!("{text}"),
        "warn" => worker::console_warn!("{text}"),
        _ => worker::console_log!("{text}"),
    }
}

thread_local! {
    // The most recent request to start, for the panic hook. Exact when one request is in
    // flight; concurrent requests interleave at awaits, so then it names the latest one.
    static CURRENT_REQUEST: RefCell<String> = const { RefCell::new(String::new()) };
}

pub fn set_current_request(request_id: &str) {
    CURRENT_REQUEST.with(|c| {
        let mut c = c.borrow_mut();
        c.clear();
        c.push_str(request_id);
    });
}

/// Logs a panic as one JSON line with the request id, then lets the default hook print it.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let request_id = CURRENT_REQUEST.with(|c| c.borrow().clone());
        let line = json!({"level": "error", "message": "panic", "requestId": request_id, "panic": info.to_string()});
        worker::console_error!("{line}");
    }));
}
