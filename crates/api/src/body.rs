//! Reading request bodies with a size cap: refused by `Content-Length` before anything is read,
//! then counted while streaming (a chunked body declares no length), so an oversized body is
//! never buffered whole. One reader for every adapter.

use futures_util::StreamExt;
use worker::Request;

use crate::error::ApiError;

/// The body, or `None` once it is known to exceed `cap` bytes. No body reads as empty.
pub async fn read_capped(req: &Request, cap: usize) -> Result<Option<Vec<u8>>, ApiError> {
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > cap as u64) {
        return Ok(None);
    }
    // A handle on the same JS request (not a copy), so the body is streamed once, here.
    // (`Clone::clone`: the inherent `clone` is JS `Request.clone()`, which tees the body.)
    let mut request = Request::from(Clone::clone(req.inner()));
    let Ok(mut stream) = request.stream() else {
        return Ok(Some(Vec::new()));
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::BadRequest("the request body could not be read".into()))?;
        if body.len() + chunk.len() > cap {
            // Dropping the stream cancels it: the rest is never read.
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The body, or 413 once it is known to exceed `cap` bytes.
pub async fn read_limited(req: &Request, cap: usize) -> Result<Vec<u8>, ApiError> {
    read_capped(req, cap)
        .await?
        .ok_or(ApiError::PayloadTooLarge)
}
