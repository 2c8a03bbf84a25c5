//! The api worker: the platform's only fetch handler. `pipeline` is the request lifecycle;
//! the other modules are its phases and their helpers.

mod adapters;
mod body;
mod config;
mod console;
mod context;
mod cors;
mod deadline;
mod describe;
mod error;
mod health;
mod identity;
mod limiter;
mod limiter_object;
mod log;
mod logs;
mod metrics;
mod metrics_api;
mod pipeline;
mod routing;
mod runtime_routes;
mod upstream;
mod waitlist;

use worker::{event, Context, Env, Request, Response, Result};

#[event(start)]
fn start() {
    log::install_panic_hook();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    Ok(pipeline::handle(req, env, ctx).await)
}
