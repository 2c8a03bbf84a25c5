//! Calling what a route points at over HTTP: service bindings that still speak HTTP
//! (forwarding) and user workers in dispatch namespaces (Workers for Platforms). The gateway
//! is transparent both ways:
//! - out: the request as sent (method, URL, `Host`, streamed body, WebSocket upgrades), shaped
//!   by the one table of what an upstream receives and never receives,
//!   [`gateway::passthrough::REQUEST_HEADERS`] (tested there, as a table);
//! - back: the response as sent (a 3xx is never followed: `redirect: manual`; every header,
//!   each `Set-Cookie` included; a streamed body; a 101 with its WebSocket).
//!
//! Each call has a deadline (`UPSTREAM_TIMEOUT_MS`) until the response headers arrive; a body
//! or WebSocket that has started is never cut by it.

use gateway::passthrough::{upstream_headers, CredentialHeader, Outbound};
use gateway::routes::Namespace;
use js_sys::{Array, Object, Reflect};
use rpc::sys;
use wasm_bindgen::{JsCast, JsValue};
use worker::{Env, Headers, Request, RequestInit, RequestRedirect, Response};

use crate::config::Config;
use crate::context::{CredentialKind, RequestCtx};
use crate::deadline;
use crate::error::ApiError;

/// Which header carried the platform credential that proved the caller's identity.
fn proved_by(via: CredentialKind) -> CredentialHeader {
    match via {
        CredentialKind::Token => CredentialHeader::Authorization,
        CredentialKind::ApiKey | CredentialKind::AdminKey => CredentialHeader::ApiKey,
        CredentialKind::Session => CredentialHeader::SessionCookie,
    }
}

/// The outbound request: same method, headers as the table says, streamed body, `url`.
fn outbound(
    req: &Request,
    url: &str,
    rc: &RequestCtx,
    config: &Config,
) -> Result<Request, ApiError> {
    let incoming: Vec<(String, String)> = req.headers().entries().collect();
    let incoming: Vec<(&str, &str)> = incoming
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut set = vec![
        ("X-Request-Id", rc.request_id.clone()),
        ("traceparent", rc.trace.to_header()),
    ];
    if let Some(ip) = &rc.ip {
        set.push(("CF-Connecting-IP", ip.clone()));
    }
    if let Some(identity) = &rc.identity {
        set.push(("X-Platform-User-Id", identity.user_id.clone()));
        set.push(("X-Platform-Role", identity.role.as_str().to_string()));
    }
    let plan = Outbound {
        proved_by: rc.identity.as_ref().map(|i| proved_by(i.via)),
        admin_key: config.admin_api_key.as_deref(),
        set,
    };
    let headers = Headers::new();
    for (name, value) in upstream_headers(&incoming, &plan) {
        headers.append(&name, &value)?;
    }
    let mut init = RequestInit::new();
    init.with_method(req.method())
        .with_headers(headers)
        // The upstream's redirect is the client's to follow (with its Set-Cookie), never ours.
        .with_redirect(RequestRedirect::Manual);
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
/// when the service fails, 504 when it has not answered (headers) within its deadline.
pub async fn forward(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    config: &Config,
    service: &str,
    binding: &str,
    path: &str,
) -> Result<Response, ApiError> {
    let Ok(fetcher) = env.service(binding) else {
        return Err(ApiError::ServiceUnavailable(format!(
            "service {service} is not available here"
        )));
    };
    let outbound = outbound(req, &rewritten_url(req, path)?, rc, config)?;
    let fetched = deadline::upstream(
        &format!("service {service}"),
        config.upstream_timeout_ms,
        fetcher.fetch_request(outbound),
    )
    .await?;
    let response = fetched.map_err(|e| {
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

/// A fetched response has immutable headers, and the pipeline adds its own: the same status,
/// body (still streaming) and WebSocket, with a copy of the headers made by `new Headers(...)`,
/// which keeps every `Set-Cookie` as its own line.
fn mutable(response: Response) -> Response {
    let copied = worker::web_sys::Headers::new_with_headers(&response.headers().0)
        .map(Headers)
        .unwrap_or_else(|_| {
            let fresh = Headers::new();
            for (name, value) in response.headers().entries() {
                let _ = fresh.append(&name, &value);
            }
            fresh
        });
    let (builder, body) = response.into_parts();
    builder.with_headers(copied).body(body)
}

pub enum Dispatched {
    Response(Response),
    /// The namespace has no such worker: routing falls through to the waitlist.
    NotFound,
}

/// Dispatches to a user worker: `NAMESPACE.get(name, {}, {limits})`, then `fetch`. The same
/// code drives the platform's DispatchNamespace and the local emulation (`sys::invoke` awaits
/// a promise or takes a value as it comes).
pub async fn dispatch(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    config: &Config,
    namespace: Namespace,
    worker: &str,
) -> Result<Dispatched, ApiError> {
    let Some(ns) = sys::binding(env, namespace.binding()) else {
        return Err(ApiError::ServiceUnavailable(format!(
            "dispatch namespace {} is not configured",
            namespace.binding()
        )));
    };
    let options = limits(config.dispatch_cpu_ms, config.dispatch_subrequests)
        .map_err(|_| ApiError::Internal("limits object".into()))?;
    let args: Array = [JsValue::from_str(worker), Object::new().into(), options]
        .iter()
        .collect();
    let outbound = outbound(req, req.url()?.as_ref(), rc, config)?;
    // A handle on the same JS request (`Clone` of the JsValue, not JS `Request.clone()`).
    let web_request: JsValue = AsRef::<JsValue>::as_ref(outbound.inner()).clone();
    let call = async {
        let fetcher = sys::invoke(&ns, "get", &args).await?;
        sys::invoke(&fetcher, "fetch", &[web_request].iter().collect()).await
    };
    let fetched = deadline::upstream(
        &format!("user worker {worker}"),
        config.upstream_timeout_ms,
        call,
    )
    .await?;
    match fetched {
        Ok(value) => match value.dyn_into::<worker::web_sys::Response>() {
            Ok(response) => Ok(Dispatched::Response(mutable(Response::from(response)))),
            Err(_) => Err(ApiError::BadGateway(worker.to_string())),
        },
        Err(e) => {
            let message = sys::error_message(&e);
            if message.starts_with("Worker not found") {
                return Ok(Dispatched::NotFound);
            }
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
    }
}

fn limits(cpu_ms: u32, subrequests: u32) -> Result<JsValue, JsValue> {
    let limits = Object::new();
    Reflect::set(&limits, &"cpuMs".into(), &cpu_ms.into())?;
    Reflect::set(&limits, &"subRequests".into(), &subrequests.into())?;
    let options = Object::new();
    Reflect::set(&options, &"limits".into(), &limits)?;
    Ok(options.into())
}
