//! Deadlines: every upstream call goes through the workspace's one timeout race
//! (`rpc::deadline::within`). A call that misses its deadline is dropped (which cancels it) and
//! answers 504, naming the upstream in the log line. The deadlines are the `*_TIMEOUT_MS` vars
//! (`config`); they bound the wait for an answer (for HTTP, its status and headers), so a
//! stream or WebSocket that has started is never cut by one.

use std::future::Future;

use crate::error::ApiError;

pub use rpc::deadline::within;

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
