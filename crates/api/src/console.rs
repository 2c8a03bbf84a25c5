//! The operators' console (`/console` on API hosts): its three static files from Workers
//! Assets (`assets/console/`), read through the ASSETS binding like the routes file, with a
//! strict CSP. The console holds no data of its own: it calls the admin APIs curl uses,
//! through its own prefix: `/console/api/*` is `/api/*` with the console's session cookie
//! (`console_session`: HttpOnly, SameSite=Strict, `Path=/console`, Secure on https) as the
//! only credential, every non-GET checked against the console's own Origin, and admins only
//! beyond sign-in, who-am-I and sign-out.

use gateway::access::AccessLevel;
use gateway::host::Host;
use gateway::problem::Problem;
use gateway::router::{route, Route, RouterConfig};
use gateway::token::{console_set_cookie, named_cookie, Credential, CONSOLE_COOKIE};
use worker::{url, Env, Method, Request, Response};

use crate::context::{Identity, RequestCtx};
use crate::error::{problem_response, ApiError};
use crate::identity;

/// `/console/api/*` on an API host: the route `/api/*` has there.
pub fn api_route(target: &Route, host: &Host, router: &RouterConfig) -> Option<Route> {
    match target {
        Route::Service { service, path, .. }
            if service == "console" && path.starts_with("/api/") =>
        {
            Some(route(host, path, router, None))
        }
        _ => None,
    }
}

/// The request's `Cookie` header.
fn cookies(req: &Request) -> Option<String> {
    req.headers().get("cookie").ok().flatten()
}

/// Whether identifying would ask auth (for the limiter's charge before lookups).
pub fn needs_lookup(req: &Request) -> bool {
    let header = cookies(req).unwrap_or_default();
    matches!(named_cookie(&header, CONSOLE_COOKIE), Ok(Some(id)) if identity::session_needs_lookup(id))
}

/// The console's one credential: its cookie (an `Authorization` or `X-API-Key` is ignored).
pub async fn identify(req: &Request, env: &Env) -> Result<Option<Identity>, ApiError> {
    let header = cookies(req).unwrap_or_default();
    let id = named_cookie(&header, CONSOLE_COOKIE)
        .map_err(|e| ApiError::Unauthorized(format!("malformed credential: {e}")))?;
    identity::identify_credential(env, id.map(Credential::Session)).await
}

/// CSRF and access for the console's API: a state change must come from the console's own
/// origin (browsers send `Origin` on every non-GET fetch); non-admins reach only sign-in,
/// who-am-I and sign-out.
pub fn guard(req: &Request, rc: &RequestCtx) -> Result<(), ApiError> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        // The request's URL is built from its Host header, so this is the API host's origin.
        let url = req.url()?;
        let own = &url[..url::Position::BeforePath];
        let origin = req.headers().get("origin").ok().flatten();
        if origin.as_deref() != Some(own) {
            return Err(ApiError::Forbidden(
                "the console's API takes changes from the console's own origin only".into(),
            ));
        }
    }
    let open = matches!(&rc.route, Some(Route::Service { service, path, .. })
        if service == "auth" && matches!(path.as_str(), "/login" | "/me" | "/logout"));
    if open {
        Ok(())
    } else {
        rc.require(AccessLevel::Admin)
    }
}

/// The console's `Set-Cookie` for this request (`Secure` over https).
pub fn set_cookie(req: &Request, value: &str, max_age_secs: u64) -> String {
    let secure = req.url().is_ok_and(|u| u.scheme() == "https");
    console_set_cookie(value, max_age_secs, secure)
}

/// Only same-origin script, style and fetch; no inline code, no framing, no other origins.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The files the console is made of, by the path after `/console`.
fn asset(path: &str) -> Option<&'static str> {
    match path {
        "" | "/" => Some("index.html"),
        "/console.js" => Some("console.js"),
        "/console.css" => Some("console.css"),
        _ => None,
    }
}

pub async fn serve(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    path: &str,
) -> Result<Response, ApiError> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        let mut response =
            problem_response(Problem::method_not_allowed().with_request_id(&rc.request_id));
        let _ = response.headers_mut().set("Allow", "GET, HEAD");
        return Ok(response);
    }
    let file = asset(path).ok_or_else(|| ApiError::NotFound("no such console page".into()))?;
    let assets = env
        .assets("ASSETS")
        .map_err(|_| ApiError::ServiceUnavailable("ASSETS binding is not configured".into()))?;
    let mut fetched = assets
        .fetch(format!("https://assets.local/console/{file}"), None)
        .await
        .map_err(|e| ApiError::Internal(format!("console asset fetch failed: {e}")))?;
    if fetched.status_code() != 200 {
        return Err(ApiError::ServiceUnavailable(
            "the console's files are not deployed".into(),
        ));
    }
    let content_type = match file {
        "index.html" => "text/html; charset=utf-8",
        "console.js" => "text/javascript; charset=utf-8",
        _ => "text/css; charset=utf-8",
    };
    let body = fetched
        .bytes()
        .await
        .map_err(|e| ApiError::Internal(format!("console asset unreadable: {e}")))?;
    let mut response = Response::from_bytes(body)?;
    let headers = response.headers_mut();
    let _ = headers.set("Content-Type", content_type);
    let _ = headers.set("Content-Security-Policy", CONSOLE_CSP);
    let _ = headers.set("X-Content-Type-Options", "nosniff");
    let _ = headers.set("Referrer-Policy", "same-origin");
    let _ = headers.set("X-Frame-Options", "DENY");
    let _ = headers.set("Cache-Control", "no-cache");
    Ok(response)
}
