//! limit: the exact per-key rate limiter (not yet wired to its Durable Object).

use worker::Env;

use crate::context::RequestCtx;
use crate::error::ApiError;

pub async fn limit(_env: &Env, _rc: &mut RequestCtx) -> Result<(), ApiError> {
    Ok(())
}
