//! `POST /rpc`: JSON-RPC 2.0 over HTTP. The body becomes a `gateway::jsonrpc::Plan`; every call
//! in it runs through one `do.batchCall` round trip, with the trusted `ctx` prepended by this
//! worker for the methods that take it; the answers go back in request order (204 when all
//! were notifications). Also the pieces `/api/do/...` shares: bounded body reading, the
//! per-service access check, the round trip's deadline, and what a failure may show.

use gateway::access::{AccessDenied, AccessLevel};
use gateway::jsonrpc::{self, settle_reply, BoundCall, Plan, RpcFailure};
use gateway::registry;
use rpc::do_::{CallError, CallOptions, ServiceCall};
use rpc::DoClient;
use serde_json::Value;
use worker::{Env, Method, Request, Response};

use crate::config;
use crate::context::RequestCtx;
use crate::error::ApiError;

/// Request bodies larger than this are refused with 413 before being read whole.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// How long the api waits for `do` when `RPC_TIMEOUT_MS` is unset: above do's own per-call
/// deadline (`CALL_TIMEOUT_MS`, 10 s by default), so do's clean per-call timeouts normally
/// win and this only guards against do itself hanging.
const DEFAULT_DEADLINE_MS: u64 = 30_000;

/// The request's plan, read from its (capped) body. The pipeline reads it before the limit
/// phase, since a batch costs one unit per call.
pub async fn read_plan(req: &Request) -> Result<Plan, ApiError> {
    let body = read_body(req, MAX_BODY_BYTES).await?;
    Ok(Plan::from_body(&body))
}

/// What a plan costs against the caller's quota: one unit per call it would run (a parse
/// error or an empty batch still costs one).
pub fn cost(plan: &Plan) -> u32 {
    u32::try_from(plan.calls().count())
        .unwrap_or(u32::MAX)
        .max(1)
}

/// `plan` is the body as `read_plan` read it; `None` unless the method is POST.
pub async fn handle(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    plan: Option<Plan>,
) -> Result<Response, ApiError> {
    let plan = match plan {
        Some(plan) if req.method() == Method::Post => plan,
        _ => return method_not_allowed(rc, "POST"),
    };
    let calls: Vec<&BoundCall> = plan.calls().collect();
    let results = execute(env, rc, &calls).await?;
    match plan.finish(results) {
        Some(text) => {
            let mut response = Response::builder()
                .with_status(200)
                .fixed(text.into_bytes());
            let headers = response.headers_mut();
            headers.set("Content-Type", "application/json")?;
            headers.set("Cache-Control", "no-store")?;
            Ok(response)
        }
        None => Ok(Response::empty()?.with_status(204)),
    }
}

/// Runs the plan's calls (notifications included) in one `do.batchCall`; one result per call,
/// in order. Calls the caller's role may not make are answered without running.
async fn execute(
    env: &Env,
    rc: &RequestCtx,
    calls: &[&BoundCall],
) -> Result<Vec<Result<Value, RpcFailure>>, ApiError> {
    let mut results: Vec<Option<Result<Value, RpcFailure>>> = calls
        .iter()
        .map(|c| {
            may_use(rc, &c.service)
                .err()
                .map(|_| Err(RpcFailure::Forbidden))
        })
        .collect();
    let ctx = trusted_ctx(rc)?;
    let runnable: Vec<(usize, ServiceCall)> = calls
        .iter()
        .enumerate()
        .filter(|(i, _)| results[*i].is_none())
        .map(|(i, c)| {
            let call = ServiceCall::new(&c.service, &c.method, c.args_with_ctx(&ctx));
            (i, call)
        })
        .collect();
    if !runnable.is_empty() {
        let proxy = DoClient::from_env(env)?;
        let batch: Vec<ServiceCall> = runnable.iter().map(|(_, c)| c.clone()).collect();
        let options = call_options(rc);
        let answered = within(deadline_ms(env), proxy.batch_call(&batch, Some(&options))).await;
        match answered {
            Some(Ok(outcomes)) => {
                for ((i, call), outcome) in runnable.iter().zip(outcomes) {
                    results[*i] = Some(match outcome.into_result() {
                        Ok(value) => settle_reply(&call.service, &call.method, value),
                        Err(error) => Err(public_failure(rc, call, &error)),
                    });
                }
            }
            Some(Err(error)) => {
                proxy_failed(rc, &error.to_string());
                fill(&mut results, &runnable, || RpcFailure::Internal);
            }
            None => {
                proxy_failed(rc, "do.batchCall did not answer in time");
                fill(&mut results, &runnable, || RpcFailure::Timeout);
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Err(RpcFailure::Internal)))
        .collect())
}

fn fill(
    results: &mut [Option<Result<Value, RpcFailure>>],
    runnable: &[(usize, ServiceCall)],
    failure: impl Fn() -> RpcFailure,
) {
    for (i, _) in runnable {
        results[*i] = Some(Err(failure()));
    }
}

fn proxy_failed(rc: &RequestCtx, error: &str) {
    crate::log::event(
        "error",
        "do.batchCall failed",
        &[("requestId", &rc.request_id), ("error", error)],
    );
}

/// A failed call as the public caller may see it. A service's own thrown message is an
/// internal failure (db and auth answer expected refusals as values), so it is logged and
/// replaced by a fixed text naming the service.
pub(crate) fn public_failure(rc: &RequestCtx, call: &ServiceCall, error: &CallError) -> RpcFailure {
    if error.code != jsonrpc::TIMEOUT {
        crate::log::event(
            "warn",
            "proxied call failed",
            &[
                ("requestId", &rc.request_id),
                ("service", &call.service),
                ("method", &call.method),
                ("code", &error.code.to_string()),
                ("error", &error.message),
            ],
        );
    }
    match RpcFailure::from_code(error.code, &error.message) {
        RpcFailure::Service { .. } => RpcFailure::Service {
            message: format!("The {} service failed to handle the call", call.service),
            data: None,
        },
        other => other,
    }
}

/// The registry's access level for the service, applied to this caller (so `schedule.health`
/// needs an admin over `/rpc` exactly as `/api/schedule/*` does).
pub(crate) fn may_use(rc: &RequestCtx, service: &str) -> Result<(), AccessDenied> {
    rc.access(registry::service(service).map_or(AccessLevel::Admin, |s| s.access))
}

/// The `ctx` the api supplies (never the caller), as JSON.
pub(crate) fn trusted_ctx(rc: &RequestCtx) -> Result<Value, ApiError> {
    serde_json::to_value(rc.rpc_ctx()).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Correlation for do's log lines, also for calls that take no `ctx`.
pub(crate) fn call_options(rc: &RequestCtx) -> CallOptions {
    CallOptions {
        request_id: Some(rc.request_id.clone()),
        traceparent: Some(rc.trace.to_header()),
    }
}

/// `RPC_TIMEOUT_MS`: the longest the api waits for one round trip to do (1..=300000).
pub(crate) fn deadline_ms(env: &Env) -> u64 {
    config::var(env, "RPC_TIMEOUT_MS")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map_or(DEFAULT_DEADLINE_MS, |ms| ms.min(300_000))
}

pub(crate) use crate::deadline::within;

pub(crate) use crate::body::read_limited as read_body;

pub(crate) fn method_not_allowed(rc: &RequestCtx, allow: &str) -> Result<Response, ApiError> {
    let mut response = ApiError::MethodNotAllowed.to_response(&rc.request_id);
    response.headers_mut().set("Allow", allow)?;
    Ok(response)
}
