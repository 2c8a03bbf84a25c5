//! One proxied call, start to finish: read the arguments, check the allowlist, find the
//! binding, invoke with a deadline, classify the failure, and write the call's log line.
//! Arguments and results stay JS values: the proxy forwards what it was given untouched.

use gateway::jsonrpc::{
    proxy_allowed, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RESPONSE_TOO_LARGE,
    SERVICE_FAILED, SERVICE_UNAVAILABLE, TIMEOUT,
};
use gateway::registry;
use js_sys::{Array, Reflect};
use rpc::clients::to_js;
use rpc::deadline::within;
use rpc::sys;
use serde_json::{json, Value};
use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

use crate::catalog::{self, SELF};

/// `CALL_TIMEOUT_MS` when unset or unreadable.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// A configured timeout is clamped to this: a call is never allowed to hang for longer.
pub const MAX_TIMEOUT_MS: u32 = 120_000;
/// Longest service message passed back to the caller, in characters.
const MAX_MESSAGE: usize = 500;
/// Longest name echoed in a message or log line, in characters.
const MAX_NAME: usize = 64;

/// The call's deadline from the `CALL_TIMEOUT_MS` var: a whole number of milliseconds,
/// 1..=MAX_TIMEOUT_MS; anything else falls back to the default.
pub fn timeout_ms(raw: Option<&str>) -> u32 {
    raw.and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map_or(DEFAULT_TIMEOUT_MS, |ms| {
            ms.min(u64::from(MAX_TIMEOUT_MS)) as u32
        })
}

/// Why a call produced no result. `code` is JSON-RPC's (see `gateway::jsonrpc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i64,
    pub message: String,
}

impl Failure {
    fn new(code: i64, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: &str) -> Failure {
        Failure::new(INVALID_PARAMS, message)
    }

    /// The call ran, but its result did not fit in the batch's response budget.
    pub fn too_large() -> Failure {
        Failure::new(
            RESPONSE_TOO_LARGE,
            "Response too large: the batch's results passed its budget; call this one on its own",
        )
    }

    /// The word the log line records.
    fn outcome(&self) -> &'static str {
        match self.code {
            METHOD_NOT_FOUND => "denied",
            INVALID_PARAMS => "invalid",
            SERVICE_UNAVAILABLE => "unavailable",
            TIMEOUT => "timeout",
            SERVICE_FAILED => "error",
            _ => "internal",
        }
    }
}

/// Where the call's log line gets its correlation ids: the caller's options first, else the
/// `ctx` the api put first in the arguments.
#[derive(Debug, Clone, Default)]
pub struct Correlation {
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
}

impl Correlation {
    /// Reads `{requestId, traceparent}` from an options object (missing or odd → empty).
    pub fn from_options(options: &JsValue) -> Correlation {
        Correlation {
            request_id: string_field(options, "requestId"),
            traceparent: string_field(options, "traceparent"),
        }
    }

    fn or_from_ctx(&self, args: &Array) -> Correlation {
        let ctx = args.get(0);
        Correlation {
            request_id: self
                .request_id
                .clone()
                .or_else(|| string_field(&ctx, "requestId")),
            traceparent: self
                .traceparent
                .clone()
                .or_else(|| string_field(&ctx, "traceparent")),
        }
    }
}

fn string_field(target: &JsValue, key: &str) -> Option<String> {
    if !target.is_object() {
        return None;
    }
    Reflect::get(target, &JsValue::from_str(key))
        .ok()
        .and_then(|v| v.as_string())
        .map(|s| truncate(&s, 128))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A call as the caller sent it, before any check.
pub struct Request<'a> {
    pub service: &'a JsValue,
    pub method: &'a JsValue,
    pub args: &'a JsValue,
}

/// Runs one call and logs it. Never panics and never waits past the deadline.
pub async fn run(
    env: &Env,
    request: Request<'_>,
    correlation: &Correlation,
) -> Result<JsValue, Failure> {
    let started = js_sys::Date::now();
    let service = request.service.as_string();
    let method = request.method.as_string();
    let args = arguments(request.args);
    let correlation = match &args {
        Ok(args) => correlation.or_from_ctx(args),
        Err(_) => correlation.clone(),
    };
    let outcome = match (&service, &method, args) {
        (_, _, Err(failure)) => Err(failure),
        (Some(service), Some(method), Ok(args)) => dispatch(env, service, method, &args).await,
        _ => Err(Failure::invalid("service and method must be strings")),
    };
    log(
        service.as_deref().unwrap_or_default(),
        method.as_deref().unwrap_or_default(),
        &correlation,
        started,
        outcome.as_ref().map(|_| ()),
    );
    outcome
}

/// `args` must be an array; absent means no arguments.
fn arguments(args: &JsValue) -> Result<Array, Failure> {
    if args.is_undefined() || args.is_null() {
        return Ok(Array::new());
    }
    args.dyn_ref::<Array>()
        .cloned()
        .ok_or_else(|| Failure::invalid("args must be an array"))
}

async fn dispatch(
    env: &Env,
    service: &str,
    method: &str,
    args: &Array,
) -> Result<JsValue, Failure> {
    if !proxy_allowed(service, method) {
        return Err(Failure::new(
            METHOD_NOT_FOUND,
            format!(
                "Method not found: {}.{}",
                truncate(service, MAX_NAME),
                truncate(method, MAX_NAME)
            ),
        ));
    }
    if service == SELF {
        return own_method(env, method, args);
    }
    // The allowlist only names registry services, so the row and its binding exist.
    let Some(binding) = registry::service(service).and_then(|s| s.binding) else {
        return Err(Failure::new(METHOD_NOT_FOUND, "Method not found"));
    };
    let Some(stub) = sys::binding(env, binding) else {
        return Err(Failure::new(
            SERVICE_UNAVAILABLE,
            format!("Service unavailable: {service} is not bound here"),
        ));
    };
    let limit_ms = timeout_ms(var(env, "CALL_TIMEOUT_MS").as_deref());
    match within(u64::from(limit_ms), sys::invoke(&stub, method, args)).await {
        Some(Ok(value)) => Ok(value),
        Some(Err(thrown)) => Err(Failure::new(
            SERVICE_FAILED,
            truncate(&sys::error_message(&thrown), MAX_MESSAGE),
        )),
        // The call was dropped (abandoned); the caller gets its answer now.
        None => Err(Failure::new(
            TIMEOUT,
            format!("Timeout: {service}.{method} did not answer within {limit_ms} ms"),
        )),
    }
}

/// `do.getServices` and friends, reached through `call`/`batchCall` (as `/rpc` does).
fn own_method(env: &Env, method: &str, args: &Array) -> Result<JsValue, Failure> {
    let has = |binding: &str| sys::binding(env, binding).is_some();
    let name = || {
        args.get(0)
            .as_string()
            .ok_or_else(|| Failure::invalid("name must be a string"))
    };
    let encoded = match method {
        "getServices" => to_js(&catalog::services(&has)),
        "getService" => to_js(&catalog::service(&name()?, &has)),
        "isServiceAvailable" => {
            to_js(&catalog::service(&name()?, &has).is_some_and(|s| s.available))
        }
        "health" => to_js(&crate::own_health(env)),
        _ => return Err(Failure::new(METHOD_NOT_FOUND, "Method not found")),
    };
    encoded.map_err(|_| Failure::new(INTERNAL_ERROR, "Internal error"))
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

/// One JSON line per call: who, what, how long, how it ended.
fn log(
    service: &str,
    method: &str,
    correlation: &Correlation,
    started_ms: f64,
    outcome: Result<(), &Failure>,
) {
    let duration_ms = (js_sys::Date::now() - started_ms).max(0.0).round() as u64;
    let mut line = json!({
        "level": if outcome.is_ok() { "info" } else { "warn" },
        "message": "call",
        "worker": SELF,
        "requestId": correlation.request_id,
        "traceparent": correlation.traceparent,
        "service": truncate(service, MAX_NAME),
        "method": truncate(method, MAX_NAME),
        "durationMs": duration_ms,
        "outcome": outcome.err().map_or("ok", Failure::outcome),
    });
    if let Err(failure) = outcome {
        line["code"] = Value::from(failure.code);
        line["error"] = Value::from(failure.message.as_str());
    }
    let text = line.to_string();
    if outcome.is_ok() {
        worker::console_log!("{text}");
    } else {
        worker::console_warn!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_var() {
        let cases = [
            (None, DEFAULT_TIMEOUT_MS),
            (Some(""), DEFAULT_TIMEOUT_MS),
            (Some("300"), 300),
            (Some(" 250 "), 250),
            (Some("0"), DEFAULT_TIMEOUT_MS),
            (Some("-5"), DEFAULT_TIMEOUT_MS),
            (Some("1.5"), DEFAULT_TIMEOUT_MS),
            (Some("abc"), DEFAULT_TIMEOUT_MS),
            (Some("99999999999999999999999"), DEFAULT_TIMEOUT_MS),
            (Some("600000"), MAX_TIMEOUT_MS),
        ];
        for (raw, want) in cases {
            assert_eq!(timeout_ms(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn log_words() {
        let words: Vec<&str> = [
            METHOD_NOT_FOUND,
            INVALID_PARAMS,
            SERVICE_UNAVAILABLE,
            TIMEOUT,
            SERVICE_FAILED,
            INTERNAL_ERROR,
        ]
        .into_iter()
        .map(|code| Failure::new(code, "").outcome())
        .collect();
        assert_eq!(
            words,
            [
                "denied",
                "invalid",
                "unavailable",
                "timeout",
                "error",
                "internal"
            ]
        );
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("ééé", 2), "éé");
        assert_eq!(truncate("ab", 10), "ab");
    }
}
