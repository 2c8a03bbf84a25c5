//! The operators' console (`/console` on API hosts): its three static files from Workers
//! Assets (`assets/console/`), read through the ASSETS binding like the routes file, with a
//! strict CSP. The console holds no data of its own: it calls the admin APIs curl uses.

use gateway::problem::Problem;
use worker::{Env, Method, Request, Response};

use crate::context::RequestCtx;
use crate::error::{problem_response, ApiError};

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
