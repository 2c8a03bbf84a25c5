//! Deadlines: the one timeout race every upstream call goes through. A call that misses its
//! deadline is dropped (which cancels it) and answers 504, naming the upstream in the log
//! line. The deadlines are the `*_TIMEOUT_MS` vars (`config`); what they bound is the wait for
//! an answer (for HTTP, its status and headers), so a stream or WebSocket that has started is
//! never cut by one.

use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::Delay;

use crate::error::ApiError;

/// `Some(output)`, or `None` when `ms` passed first (the future is then dropped).
pub async fn within<F: Future>(ms: u64, future: F) -> Option<F::Output> {
    let raced = select(Box::pin(future), Delay::from(Duration::from_millis(ms))).await;
    match raced {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

/// The output of a call to `upstream`, or a 504 naming it when `ms` passed first.
pub async fn upstream<F: Future>(
    upstream: &str,
    ms: u64,
    future: F,
) -> Result<F::Output, ApiError> {
    within(ms, future)
        .await
        .ok_or_else(|| ApiError::UpstreamTimeout {
            upstream: upstream.to_string(),
            ms,
        })
}
