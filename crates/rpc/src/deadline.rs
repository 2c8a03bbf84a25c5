//! The one timeout race of the workspace: a call against a timer. The api (`deadline`) and do
//! (`proxy`) bound every upstream call with it.

use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::Delay;

/// `Some(output)`, or `None` when `ms` passed first. The future is then dropped, which
/// abandons the pending call (the runtime cancels it when the request ends).
pub async fn within<F: Future>(ms: u64, future: F) -> Option<F::Output> {
    let raced = select(Box::pin(future), Delay::from(Duration::from_millis(ms))).await;
    match raced {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}
