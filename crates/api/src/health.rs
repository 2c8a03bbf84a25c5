//! `GET /health`: every RPC service's `health()` called in parallel, each within a deadline.
//! The report (`gateway::health`) shows admins why a service is down; anyone else sees status
//! and latency only, and the reasons go to the log.

use futures_util::future::join_all;
use gateway::health::{report, Probe};
use gateway::registry::{self, ServiceKind};
use rpc::clients::ServiceClient;
use worker::{Env, Response};

use crate::context::RequestCtx;
use crate::deadline::within;
use crate::error::{json_response, ApiError};
use crate::{config, log};

/// How long one service's `health()` may take (`HEALTH_TIMEOUT_MS` overrides): a hanging
/// service is reported down instead of holding the whole report.
const DEFAULT_TIMEOUT_MS: u64 = 3_000;

/// The services `/health` fans out to: the registry's RPC services (those the api reaches
/// through an adapter), so adding one is still one registry row.
fn rpc_services() -> impl Iterator<Item = (&'static str, &'static str)> {
    registry::SERVICES
        .iter()
        .filter(|s| s.kind == ServiceKind::Adapter)
        .filter_map(|s| s.binding.map(|b| (s.name, b)))
}

async fn probe(env: &Env, service: &str, binding: &str, timeout_ms: u64) -> Probe {
    let started = js_sys::Date::now();
    let outcome = match ServiceClient::from_env(env, binding, service) {
        Ok(client) => match within(timeout_ms, client.health()).await {
            Some(answer) => answer.map_err(|e| e.to_string()),
            None => Err(format!("health() did not answer within {timeout_ms} ms")),
        },
        Err(e) => Err(e.to_string()),
    };
    let latency_ms = (js_sys::Date::now() - started).max(0.0).round() as u64;
    let (ok, error) = match outcome {
        Ok(h) if h.ok => (true, None),
        Ok(h) => (false, Some(h.error.unwrap_or_else(|| "down".into()))),
        Err(e) => (false, Some(e)),
    };
    Probe {
        service: service.to_string(),
        ok,
        latency_ms,
        error,
    }
}

pub async fn respond(env: &Env, rc: &RequestCtx) -> Result<Response, ApiError> {
    let timeout_ms = config::var(env, "HEALTH_TIMEOUT_MS")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(DEFAULT_TIMEOUT_MS, |ms| ms.min(30_000));
    let probes = join_all(rpc_services().map(|(s, b)| probe(env, s, b, timeout_ms))).await;
    for p in probes.iter().filter(|p| !p.ok) {
        log::event(
            "error",
            "health: service down",
            &[
                ("requestId", &rc.request_id),
                ("service", &p.service),
                ("error", p.error.as_deref().unwrap_or("down")),
            ],
        );
    }
    let admin = rc.identity.as_ref().is_some_and(|i| i.is_admin());
    let (status, body) = report(&probes, admin);
    Ok(json_response(status, &body))
}
