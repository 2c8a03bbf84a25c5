//! Machine-readable descriptions of what the api serves: `GET /openapi.json` (OpenAPI 3.1 of
//! every REST route, kept in `assets/openapi.json` and read through ASSETS like the routing
//! table, so it costs the wasm nothing). JSON-RPC's OpenRPC document is `rpc.discover`,
//! generated from the allowlist in `gateway::jsonrpc`.

use worker::{Env, Response};

use crate::error::ApiError;

const ASSET_URL: &str = "https://assets.local/openapi.json";

pub async fn openapi(env: &Env) -> Result<Response, ApiError> {
    let assets = env
        .assets("ASSETS")
        .map_err(|_| ApiError::ServiceUnavailable("the API description is not available".into()))?;
    let upstream = assets
        .fetch(ASSET_URL, None)
        .await
        .map_err(|e| ApiError::Internal(format!("openapi.json: {e}")))?;
    if upstream.status_code() != 200 {
        return Err(ApiError::Internal(format!(
            "openapi.json: ASSETS answered {}",
            upstream.status_code()
        )));
    }
    let (_, body) = upstream.into_parts();
    let mut response = Response::builder().with_status(200).body(body);
    let headers = response.headers_mut();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(response)
}
