//! The waitlist for unmatched domains (page only, for now).

use gateway::waitlist::{render_page, PAGE_CSP};
use worker::{Context, Env, Request, Response};

use crate::context::RequestCtx;
use crate::error::ApiError;

pub async fn handle_domain(
    _req: &Request,
    _env: &Env,
    _ctx: &Context,
    rc: &RequestCtx,
) -> Result<Response, ApiError> {
    let mut response = Response::from_html(render_page(&rc.host, "apis.do"))?;
    let _ = response
        .headers_mut()
        .set("Content-Security-Policy", PAGE_CSP);
    Ok(response)
}

pub async fn handle_service(
    _req: &Request,
    _env: &Env,
    _rc: &RequestCtx,
    _path: &str,
) -> Result<Response, ApiError> {
    Err(ApiError::NotFound("no such waitlist endpoint".into()))
}
