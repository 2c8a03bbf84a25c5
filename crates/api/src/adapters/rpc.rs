//! `POST /rpc`: JSON-RPC 2.0 (not built yet).

use worker::{Env, Request, Response};

use crate::context::RequestCtx;
use crate::error::ApiError;

pub async fn handle(_req: &Request, _env: &Env, _rc: &RequestCtx) -> Result<Response, ApiError> {
    Err(ApiError::ServiceUnavailable(
        "JSON-RPC is not built yet".into(),
    ))
}
