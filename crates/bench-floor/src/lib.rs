//! Benchmark reference only, never deployed: the smallest workers-rs fetch handler, answering
//! the bytes of the api's `/health?live`. `scripts/bench` serves it beside the JS no-op worker
//! so scenario 1 can be read against what any Rust worker costs before it does any work.

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let mut response = Response::ok(r#"{"status":"ok"}"#)?;
    response
        .headers_mut()
        .set("content-type", "application/json")?;
    Ok(response)
}
