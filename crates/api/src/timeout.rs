//! The one deadline race: a future against a timer. Every upstream wait in the api (the
//! limiter, the adapters' RPCs) goes through `within`, so a deadline means the same everywhere.

use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::Delay;

/// `Some(output)`, or `None` when `ms` passed first (the future is then dropped, which
/// cancels whatever it was waiting for).
pub async fn within<F: Future>(ms: u64, future: F) -> Option<F::Output> {
    let raced = select(Box::pin(future), Delay::from(Duration::from_millis(ms))).await;
    match raced {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}
