//! The request lifecycle, in one place (after Pingora's phases), over one `RequestCtx`:
//! begin → identify → route → limit → authorize → call → decorate → log.
//! Every concern has one home: credentials in `identity`, quota in `limiter`, where a request
//! goes in `gateway::router`, how it gets there in `upstream` and `adapters`.

use gateway::access::AccessLevel;
use gateway::host::normalize_host;
use gateway::ids::{accept_request_id, TraceParent};
use gateway::passthrough::{identification, Identification, Traffic};
use gateway::registry::{self, ServiceKind};
use gateway::router::{route, Route, TrafficClass};
use worker::{Context, Env, Method, Request, RequestInit, Response, ResponseBody};

use crate::config::{self, Config};
use crate::context::RequestCtx;
use crate::error::{json_response, ApiError};
use crate::upstream::{self, Dispatched};
use crate::{
    adapters, console, cors, deadline, describe, health, identity, limiter, log, logs, metrics,
    metrics_api, routing, runtime_routes, waitlist,
};

pub async fn handle(req: Request, env: Env, ctx: Context) -> Response {
    let config = config::load(&env);
    let mut rc = begin(&req);
    log::set_current_request(&rc.request_id);
    let outcome = run(&req, &env, &ctx, &config, &mut rc).await;
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            if let Some(detail) = error.internal_detail() {
                rc.log_error = Some(detail);
            }
            error.to_response(&rc.request_id)
        }
    };
    if req.method() == Method::Head && platform_traffic(&rc) {
        response = without_body(response);
    }
    let duration_ms = decorate(&mut response, &req, &rc, &config);
    log::request(&rc, response.status_code(), duration_ms);
    metrics::record(&env, &rc, response.status_code(), duration_ms);
    response
}

/// Request id, trace context, client IP: known before anything can fail.
fn begin(req: &Request) -> RequestCtx {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let request_id = accept_request_id(header("x-request-id").as_deref()).unwrap_or_else(new_ulid);
    let trace = match header("traceparent")
        .as_deref()
        .and_then(TraceParent::parse)
    {
        Some(incoming) => incoming.child(random()),
        None => TraceParent::generate(random(), random()),
    };
    let url = req.url().ok();
    RequestCtx {
        request_id,
        trace,
        started_ms: js_sys::Date::now(),
        method: req.method().to_string(),
        host: header("host").unwrap_or_default(),
        path: url
            .as_ref()
            .map(|u| u.path().to_string())
            .unwrap_or_default(),
        // The client IP is CF-Connecting-IP only: X-Forwarded-For is client-controlled.
        ip: header("cf-connecting-ip"),
        identity: None,
        route: None,
        rate: None,
        limiter_failure: None,
        log_error: None,
        clear_session_cookie: false,
        console: false,
    }
}

/// A fresh ULID: now and 80 random bits.
pub fn new_ulid() -> String {
    ulid::Ulid::from_parts(
        js_sys::Date::now() as u64,
        u128::from_be_bytes(random::<16>()),
    )
    .to_string()
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // getrandom on workers is crypto.getRandomValues; it does not fail in a request.
    let _ = getrandom::fill(&mut bytes);
    bytes
}

async fn run(
    req: &Request,
    env: &Env,
    ctx: &Context,
    config: &Config,
    rc: &mut RequestCtx,
) -> Result<Response, ApiError> {
    let host = match normalize_host(&rc.host) {
        Ok(host) => host,
        Err(e) => {
            // Counted too (by client IP): every request costs quota, malformed ones included.
            limiter::limit(env, rc, 1).await?;
            return Err(ApiError::BadRequest(format!("invalid Host header: {e}")));
        }
    };
    rc.host = host.name.clone();

    // route: pure; the domain table is loaded only when the route needs it.
    let mut target = route(&host, &rc.path, &config.router, None);
    if matches!(target, Route::RoutesUnavailable) {
        if let Some(table) = routing::table(env, ctx, config.routes_ttl_ms).await {
            target = route(&host, &rc.path, &config.router, Some(&table));
        }
    }
    if let Some(inner) = console::api_route(&target, &host, &config.router) {
        target = inner;
        rc.console = true;
    }
    rc.route = Some(target.clone());

    // identify: as the route's class says (`gateway::passthrough::identification`). An
    // anonymous user worker or waitlist page is anonymous to us: its Authorization headers and
    // cookies belong to it, so they are passed on, never answered with our 401. On anonymous
    // forwarding routes (`/mcp/*`, webhooks) only a credential in our format is ours.
    let mut address_charged = false;
    let identified = match identification(&target) {
        Identification::Skip if !rc.console => Ok(None),
        how => {
            // A credential this isolate has not seen costs the address a unit first, so a
            // flood of made-up keys or session ids is refused here, never looked up.
            let lookup = if rc.console {
                console::needs_lookup(req)
            } else {
                identity::needs_lookup(req, env)
            };
            if lookup {
                limiter::charge_address(env, rc).await?;
                address_charged = true;
            }
            if rc.console {
                console::identify(req, env).await
            } else {
                identity::identify(req, env, how).await
            }
        }
    };
    match &identified {
        Ok(identity) => rc.identity = identity.clone(),
        Err(_) => rc.clear_session_cookie = rc.console || presents_only_session_cookie(req),
    }

    // A JSON-RPC batch is N units of work for the services, so it costs N units; its body
    // is read (capped) here to count them, and handed to the adapter.
    let rpc_plan = if matches!(target, Route::Rpc) && req.method() == Method::Post {
        Some(adapters::rpc::read_plan(req).await)
    } else {
        None
    };
    let cost = match &rpc_plan {
        Some(Ok(plan)) => adapters::rpc::cost(plan),
        _ => 1,
    };

    // limit: every request on every host, /health and failed credentials included (an
    // unknown credential that failed has paid already, with the address's unit).
    if !(address_charged && rc.identity.is_none()) {
        limiter::limit(env, rc, cost).await?;
    }
    identified?;
    if rc.console {
        console::guard(req, rc)?;
    }

    // Tenants and forwarded services answer their own preflights and HEADs.
    let platform = Traffic::of(&target) == Traffic::Platform;
    if platform && req.method() == Method::Options && cors::is_preflight(req) {
        return Ok(cors::preflight(req, config));
    }
    if platform && req.method() == Method::Head {
        // HEAD is GET without the body (RFC 9110 §9.3.2): the same handler, so the same status
        // and headers (ETag included); `handle` drops the body, from errors too.
        return call(&as_get(req)?, env, ctx, config, rc, target, None).await;
    }

    call(req, env, ctx, config, rc, target, rpc_plan).await
}

/// Whether the platform answered for itself: its CORS and HEAD apply (no route yet counts:
/// nothing was passed on).
fn platform_traffic(rc: &RequestCtx) -> bool {
    rc.route
        .as_ref()
        .is_none_or(|r| Traffic::of(r) == Traffic::Platform)
}

/// The answer to a HEAD: the GET's status and headers, no body, and the GET's
/// `Content-Length` stated (the runtime would otherwise drop it along with the body).
fn without_body(response: Response) -> Response {
    let length = match response.body() {
        ResponseBody::Body(bytes) => Some(bytes.len()),
        ResponseBody::Empty | ResponseBody::Stream(_) => None,
    };
    let (builder, _) = response.into_parts();
    let mut response = builder.empty();
    if let Some(length) = length {
        let _ = response
            .headers_mut()
            .set("Content-Length", &length.to_string());
    }
    response
}

/// The same request as a GET (a HEAD carries no body, so nothing is lost).
fn as_get(req: &Request) -> Result<Request, ApiError> {
    let mut init = RequestInit::new();
    init.with_method(Method::Get)
        .with_headers(req.headers().clone());
    Ok(Request::new_with_init(req.url()?.as_str(), &init)?)
}

/// True when the request's only credential is a session cookie (no Bearer, no API key).
fn presents_only_session_cookie(req: &Request) -> bool {
    let has = |name: &str| req.headers().has(name).unwrap_or(false);
    !has("authorization")
        && !has("x-api-key")
        && req
            .headers()
            .get("cookie")
            .ok()
            .flatten()
            .is_some_and(|c| c.contains("session="))
}

async fn call(
    req: &Request,
    env: &Env,
    ctx: &Context,
    config: &Config,
    rc: &mut RequestCtx,
    target: Route,
    rpc_plan: Option<Result<gateway::jsonrpc::Plan, ApiError>>,
) -> Result<Response, ApiError> {
    match target {
        Route::Health if config.test_panic && req.url()?.query() == Some("panic") => {
            // Test-only switch (var ENABLE_TEST_PANIC=1, never set in wrangler.jsonc): proves
            // a panic costs one request, is logged with its requestId, and the next request works.
            panic!("deliberate panic for the panic test")
        }
        // Liveness (`/health?live`): the api alone, no service call. Still counted by the limiter.
        Route::Health if req.url()?.query() == Some("live") => {
            Ok(json_response(200, &serde_json::json!({"status": "ok"})))
        }
        Route::Health => health::respond(env, rc).await,
        Route::OpenApi => {
            rc.require(AccessLevel::Admin)?;
            describe::openapi(env).await
        }
        Route::Rpc => {
            rc.require(AccessLevel::Authenticated)?;
            adapters::rpc::handle(req, env, rc, rpc_plan.transpose()?).await
        }
        Route::Service {
            service,
            binding,
            path,
            access,
            ..
        } => {
            rc.require(access)?;
            let kind = registry::service(&service)
                .map(|s| s.kind)
                .unwrap_or(ServiceKind::Forward);
            let service_ms = config.service_timeout_ms;
            match (kind, service.as_str()) {
                (ServiceKind::Adapter, "db") => {
                    let handled = adapters::db::handle(req, env, rc, &path);
                    deadline::upstream("db", service_ms, handled).await?
                }
                (ServiceKind::Adapter, "auth") => {
                    let handled = adapters::auth::handle(req, env, rc, &path);
                    deadline::upstream("auth", service_ms, handled).await?
                }
                (ServiceKind::Adapter, "do") => {
                    // do is the RPC proxy: its calls have their own deadline, RPC_TIMEOUT_MS.
                    let handled = adapters::do_::handle(req, env, rc, &path);
                    deadline::upstream("do", adapters::rpc::deadline_ms(env), handled).await?
                }
                (ServiceKind::Builtin, "logs") => logs::handle(req, env, rc, &path).await,
                (ServiceKind::Builtin, "metrics") => metrics_api::handle(req, env, rc, &path).await,
                (ServiceKind::Builtin, "console") => console::serve(req, env, rc, &path).await,
                (ServiceKind::Builtin, "routes") => {
                    runtime_routes::handle(req, env, config, rc, &path).await
                }
                (ServiceKind::Builtin, _) => waitlist::handle_service(req, env, rc, &path).await,
                _ => match binding {
                    Some(binding) => {
                        upstream::forward(req, env, rc, config, &service, &binding, &path).await
                    }
                    None => Err(ApiError::ServiceUnavailable(format!(
                        "service {service} is not available here"
                    ))),
                },
            }
        }
        Route::UserWorker {
            namespace,
            worker,
            access,
            ..
        } => {
            rc.require(access)?;
            match upstream::dispatch(req, env, rc, config, namespace, &worker).await? {
                Dispatched::Response(response) => Ok(response),
                Dispatched::NotFound => {
                    // No such worker: this is the waitlist's traffic now, and a sign-up is
                    // counted as one (under the waitlist's own key), so made-up worker names
                    // cannot mint fresh sign-up quota.
                    if req.method() == Method::Post {
                        limiter::limit_waitlist(env, rc).await?;
                    }
                    waitlist::handle_domain(req, env, ctx, rc).await
                }
            }
        }
        Route::Waitlist { .. } => waitlist::handle_domain(req, env, ctx, rc).await,
        Route::NotFound => Err(ApiError::NotFound("no route for this path".into())),
        Route::RoutesUnavailable => Err(ApiError::ServiceUnavailable(
            "the routing table is not available yet".into(),
        )),
    }
}

/// Adds the headers every response carries; returns the duration for the log line.
fn decorate(response: &mut Response, req: &Request, rc: &RequestCtx, config: &Config) -> u64 {
    let duration_ms = (js_sys::Date::now() - rc.started_ms).max(0.0).round() as u64;
    let headers = response.headers_mut();
    let _ = headers.set("X-Request-Id", &rc.request_id);
    let _ = headers.set("traceparent", &rc.trace.to_header());
    let _ = headers.set("X-Response-Time", &format!("{duration_ms}ms"));
    if let Some((policy, decision)) = &rc.rate {
        // Tenant responses are the tenant's: the platform's quota shows only on its own 429.
        let tenant = rc
            .route
            .as_ref()
            .is_some_and(|r| r.traffic_class() == TrafficClass::Tenant);
        if !tenant || !decision.allowed {
            for (name, value) in decision.headers(policy) {
                let _ = headers.set(name, &value);
            }
        }
    }
    if rc.clear_session_cookie {
        let clear = if rc.console {
            console::set_cookie(req, "", 0)
        } else {
            gateway::token::session_clear_cookie()
        };
        let _ = headers.append("Set-Cookie", &clear);
    }
    // Platform CORS on platform routes only: elsewhere every Access-Control-* is the upstream's.
    if platform_traffic(rc) {
        cors::decorate(headers, req, config);
    }
    duration_ms
}
