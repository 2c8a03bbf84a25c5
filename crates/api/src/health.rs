//! `GET /health`: every RPC service's `health()` called in parallel.

use futures_util::future::join_all;
use gateway::registry::{self, ServiceKind};
use rpc::clients::ServiceClient;
use serde_json::{json, Map, Value};
use worker::{Env, Response};

use crate::deadline;
use crate::error::{json_response, ApiError};

/// The services `/health` fans out to: the registry's RPC services (those the api reaches
/// through an adapter), so adding one is still one registry row.
fn rpc_services() -> impl Iterator<Item = (&'static str, &'static str)> {
    registry::SERVICES
        .iter()
        .filter(|s| s.kind == ServiceKind::Adapter)
        .filter_map(|s| s.binding.map(|b| (s.name, b)))
}

async fn probe(env: &Env, service: &str, binding: &str, timeout_ms: u64) -> (String, Value) {
    let started = js_sys::Date::now();
    let outcome = match ServiceClient::from_env(env, binding, service) {
        Ok(client) => match deadline::within(timeout_ms, client.health()).await {
            Some(answer) => answer.map_err(|e| e.to_string()),
            None => Err(format!("no answer within {timeout_ms} ms")),
        },
        Err(e) => Err(e.to_string()),
    };
    let latency_ms = (js_sys::Date::now() - started).max(0.0).round() as u64;
    let body = match outcome {
        Ok(h) if h.ok => json!({"ok": true, "latencyMs": latency_ms}),
        Ok(h) => json!({"ok": false, "latencyMs": latency_ms, "error": h.error}),
        Err(e) => json!({"ok": false, "latencyMs": latency_ms, "error": e}),
    };
    (service.to_string(), body)
}

/// Each probe has `timeout_ms` (`SERVICE_TIMEOUT_MS`); one that misses it reports that service down.
pub async fn respond(env: &Env, timeout_ms: u64) -> Result<Response, ApiError> {
    let results = join_all(rpc_services().map(|(s, b)| probe(env, s, b, timeout_ms))).await;
    let down: Vec<String> = results
        .iter()
        .filter(|(_, v)| v["ok"] != Value::Bool(true))
        .map(|(s, _)| s.clone())
        .collect();
    let services: Map<String, Value> = results.into_iter().collect();
    let status = if down.is_empty() { 200 } else { 503 };
    let mut body =
        json!({"status": if down.is_empty() { "ok" } else { "degraded" }, "services": services});
    if !down.is_empty() {
        body["down"] = json!(down);
    }
    Ok(json_response(status, &body))
}
