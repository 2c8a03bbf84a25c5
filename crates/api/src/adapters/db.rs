//! The db HTTP adapter (not built yet).

use worker::{Env, Request, Response};

use crate::context::RequestCtx;
use crate::error::ApiError;

pub async fn handle(
    _req: &Request,
    _env: &Env,
    _rc: &RequestCtx,
    _path: &str,
) -> Result<Response, ApiError> {
    Err(ApiError::ServiceUnavailable(
        "this adapter is not built yet".into(),
    ))
}
