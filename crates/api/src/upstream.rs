//! Calling what a route points at over HTTP: service bindings that still speak HTTP
//! (forwarding) and user workers in dispatch namespaces (Workers for Platforms).

use gateway::routes::Namespace;
use js_sys::{Array, Object, Reflect};
use rpc::sys;
use wasm_bindgen::{JsCast, JsValue};
use worker::{Env, Headers, Request, RequestInit, Response};

use crate::context::RequestCtx;
use crate::error::ApiError;

/// Never forwarded: connection-level headers (RFC 9110 §7.6.1) and the platform's own
/// identity headers, which only the api may set.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
const PLATFORM_PREFIX: &str = "x-platform-";

/// The outbound request: same method, headers (less hop-by-hop), streamed body, new URL,
/// plus `X-Request-Id` and `traceparent`.
fn outbound(
    req: &Request,
    url: &str,
    rc: &RequestCtx,
    with_identity: bool,
) -> Result<Request, ApiError> {
    let incoming = req.headers();
    let named_by_connection: Vec<String> = incoming
        .get("connection")
        .ok()
        .flatten()
        .map(|v| {
            v.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let headers = Headers::new();
    for (name, value) in incoming.entries() {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str())
            || named_by_connection.contains(&lower)
            || lower.starts_with(PLATFORM_PREFIX)
            || lower == "x-request-id"
            || lower == "traceparent"
        {
            continue;
        }
        headers.append(&name, &value)?;
    }
    headers.set("X-Request-Id", &rc.request_id)?;
    headers.set("traceparent", &rc.trace.to_header())?;
    if with_identity {
        if let Some(identity) = &rc.identity {
            headers.set("X-Platform-User-Id", &identity.user_id)?;
            headers.set("X-Platform-Role", identity.role.as_str())?;
        }
    }
    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(headers);
    if !matches!(req.method(), worker::Method::Get | worker::Method::Head) {
        init.with_body(req.inner().body().map(JsValue::from));
    }
    Ok(Request::new_with_init(url, &init)?)
}

/// `url` with its path replaced by `path` (the query is kept).
fn rewritten_url(req: &Request, path: &str) -> Result<String, ApiError> {
    let mut url = req.url()?;
    url.set_path(path);
    Ok(url.to_string())
}

/// Forwards to a service binding over fetch. 503 when the binding is not configured, 502
/// when the service fails.
pub async fn forward(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    service: &str,
    binding: &str,
    path: &str,
) -> Result<Response, ApiError> {
    let Ok(fetcher) = env.service(binding) else {
        return Err(ApiError::ServiceUnavailable(format!(
            "service {service} is not available here"
        )));
    };
    let outbound = outbound(req, &rewritten_url(req, path)?, rc, true)?;
    let response = fetcher.fetch_request(outbound).await.map_err(|e| {
        crate::log::event(
            "error",
            "forward failed",
            &[
                ("service", service),
                ("error", &e.to_string()),
                ("requestId", &rc.request_id),
            ],
        );
        ApiError::BadGateway(service.to_string())
    })?;
    Ok(mutable(response))
}

/// A fetched response has immutable headers; the pipeline adds its own, so copy them into a
/// fresh response around the same (streamed) body.
fn mutable(response: Response) -> Response {
    let fresh = Headers::new();
    for (name, value) in response.headers().entries() {
        let _ = fresh.append(&name, &value);
    }
    let (builder, body) = response.into_parts();
    builder.with_headers(fresh).body(body)
}

pub enum Dispatched {
    Response(Response),
    /// The namespace has no such worker: routing falls through to the waitlist.
    NotFound,
}

/// Dispatches to a user worker: `NAMESPACE.get(name, {}, {limits})`, then `fetch`. The same
/// code drives the platform's DispatchNamespace and the local emulation (whose `get` is an
/// RPC call returning a promise; `sys::invoke` awaits either).
pub async fn dispatch(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    namespace: Namespace,
    worker: &str,
    cpu_ms: u32,
    subrequests: u32,
) -> Result<Dispatched, ApiError> {
    let Some(ns) = sys::binding(env, namespace.binding()) else {
        return Err(ApiError::ServiceUnavailable(format!(
            "dispatch namespace {} is not configured",
            namespace.binding()
        )));
    };
    let options =
        limits(cpu_ms, subrequests).map_err(|_| ApiError::Internal("limits object".into()))?;
    let args: Array = [JsValue::from_str(worker), Object::new().into(), options]
        .iter()
        .collect();
    let failed = |e: JsValue| {
        let message = sys::error_message(&e);
        if message.starts_with("Worker not found") {
            Ok(Dispatched::NotFound)
        } else {
            crate::log::event(
                "error",
                "user worker failed",
                &[
                    ("worker", worker),
                    ("error", &message),
                    ("requestId", &rc.request_id),
                ],
            );
            Err(ApiError::BadGateway(worker.to_string()))
        }
    };
    let fetcher = match sys::invoke(&ns, "get", &args).await {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let outbound = outbound(req, req.url()?.as_ref(), rc, false)?;
    let web_request: &JsValue = outbound.inner().as_ref();
    let fetched = sys::invoke(&fetcher, "fetch", &[web_request.clone()].iter().collect()).await;
    match fetched {
        Ok(value) => match value.dyn_into::<web_sys_request::Response>() {
            Ok(response) => Ok(Dispatched::Response(mutable(Response::from(response)))),
            Err(_) => Err(ApiError::BadGateway(worker.to_string())),
        },
        Err(e) => failed(e),
    }
}

mod web_sys_request {
    pub use worker::web_sys::Response;
}

fn limits(cpu_ms: u32, subrequests: u32) -> Result<JsValue, JsValue> {
    let limits = Object::new();
    Reflect::set(&limits, &"cpuMs".into(), &cpu_ms.into())?;
    Reflect::set(&limits, &"subRequests".into(), &subrequests.into())?;
    let options = Object::new();
    Reflect::set(&options, &"limits".into(), &limits)?;
    Ok(options.into())
}
