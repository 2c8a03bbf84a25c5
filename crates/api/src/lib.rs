//! The api worker: the platform's only fetch handler.

mod health;

use worker::*;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    match url.path() {
        "/health" => health::respond(&env).await,
        _ => Response::error("not found", 404),
    }
}
