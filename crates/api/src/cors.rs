//! CORS on platform routes (the pipeline skips tenant and forwarded routes, whose CORS is their
//! own): preflights answered by the api, and the allow headers on every response. Origins come
//! from `CORS_ORIGINS` (default `*`); credentials are never allowed cross-origin.

use worker::{Headers, Request, Response};

use crate::config::Config;

const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, X-API-Key, If-Match, If-None-Match, X-Request-Id, traceparent";
const EXPOSE_HEADERS: &str = "X-Request-Id, X-Response-Time, traceparent, ETag, Location, Retry-After, RateLimit, RateLimit-Policy, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset";

pub fn is_preflight(req: &Request) -> bool {
    req.headers()
        .has("access-control-request-method")
        .unwrap_or(false)
}

/// The origin to allow for this request, if any.
fn allowed_origin(req: &Request, config: &Config) -> Option<String> {
    if config.cors_origins.iter().any(|o| o == "*") {
        return Some("*".into());
    }
    let origin = req.headers().get("origin").ok().flatten()?;
    config
        .cors_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(&origin))
        .then_some(origin)
}

pub fn preflight(req: &Request, config: &Config) -> Response {
    let mut response = Response::builder().with_status(204).empty();
    let headers = response.headers_mut();
    if allowed_origin(req, config).is_some() {
        let _ = headers.set("Access-Control-Allow-Methods", ALLOW_METHODS);
        let _ = headers.set("Access-Control-Allow-Headers", ALLOW_HEADERS);
        let _ = headers.set("Access-Control-Max-Age", "600");
    }
    response
}

pub fn decorate(headers: &mut Headers, req: &Request, config: &Config) {
    if let Some(origin) = allowed_origin(req, config) {
        if origin != "*" {
            let _ = headers.append("Vary", "Origin");
        }
        let _ = headers.set("Access-Control-Allow-Origin", &origin);
        let _ = headers.set("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    }
}
