//! `GET /api/metrics` (admin): the console's Overview numbers from Analytics Engine. In a
//! deployment through its SQL API (var `ANALYTICS_ACCOUNT_ID`, secret `ANALYTICS_API_TOKEN`,
//! dataset `ANALYTICS_DATASET`, default `api_requests`); locally through the stand-in behind
//! the `ANALYTICS` binding (`scripts/platform.mjs`), which answers the same query.

use gateway::access::AccessLevel;
use gateway::metrics::{is_dataset_name, overview_sql, parse_answer, parse_window};
use serde_json::json;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::config;
use crate::context::RequestCtx;
use crate::error::{json_response, ApiError};
use crate::log;

const DEFAULT_DATASET: &str = "api_requests";

pub async fn handle(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    path: &str,
) -> Result<Response, ApiError> {
    // The pipeline already required the route's access (admin, or tighter); checked again
    // here through the one access check, since this handler must never serve anyone else.
    rc.require(AccessLevel::Admin)?;
    if path != "/" && !path.is_empty() {
        return Err(ApiError::NotFound("no such metrics resource".into()));
    }
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(ApiError::MethodNotAllowed);
    }
    let minutes = parse_window(req.url()?.query()).map_err(ApiError::BadRequest)?;
    let dataset = config::var(env, "ANALYTICS_DATASET").unwrap_or_else(|| DEFAULT_DATASET.into());
    if !is_dataset_name(&dataset) {
        return Err(ApiError::Internal(format!(
            "ANALYTICS_DATASET {dataset:?} is not a table name"
        )));
    }
    let sql = overview_sql(&dataset, minutes);
    let (source, answer) = match local_stand_in(env, &sql).await? {
        Some(answer) => ("local-stand-in", answer),
        None => ("analytics-engine", sql_api(env, &sql).await?),
    };
    let minutes_data = parse_answer(answer.as_bytes()).map_err(|e| {
        log::event("error", "metrics answer unreadable", &[("error", &e)]);
        ApiError::BadGateway("analytics-engine".into())
    })?;
    let mut response = json_response(
        200,
        &json!({ "windowMinutes": minutes, "source": source, "minutes": minutes_data }),
    );
    let _ = response.headers_mut().set("Cache-Control", "no-store");
    Ok(response)
}

/// The local stand-in: the `ANALYTICS` binding offers `localQuery(sql)` (a production
/// dataset has no such method, so this is `None` there).
async fn local_stand_in(env: &Env, sql: &str) -> Result<Option<String>, ApiError> {
    let binding =
        js_sys::Reflect::get(env, &JsValue::from_str("ANALYTICS")).unwrap_or(JsValue::UNDEFINED);
    if binding.is_undefined() {
        return Ok(None);
    }
    let method = js_sys::Reflect::get(&binding, &JsValue::from_str("localQuery"))
        .unwrap_or(JsValue::UNDEFINED);
    let Some(function) = method.dyn_ref::<js_sys::Function>() else {
        return Ok(None);
    };
    let mut result = function
        .call1(&binding, &JsValue::from_str(sql))
        .map_err(|e| ApiError::Internal(format!("local analytics query threw: {e:?}")))?;
    if let Some(promise) = result.dyn_ref::<js_sys::Promise>() {
        result = JsFuture::from(promise.clone())
            .await
            .map_err(|e| ApiError::Internal(format!("local analytics query failed: {e:?}")))?;
    }
    Ok(result.as_string())
}

/// Analytics Engine's SQL API: the query as the POST body, the account's API token as Bearer.
async fn sql_api(env: &Env, sql: &str) -> Result<String, ApiError> {
    let account = config::var(env, "ANALYTICS_ACCOUNT_ID");
    let token = env
        .secret("ANALYTICS_API_TOKEN")
        .ok()
        .map(|s| s.to_string());
    let (Some(account), Some(token)) = (account, token) else {
        return Err(ApiError::ServiceUnavailable(
            "metrics are not configured (ANALYTICS_ACCOUNT_ID and ANALYTICS_API_TOKEN)".into(),
        ));
    };
    let url =
        format!("https://api.cloudflare.com/client/v4/accounts/{account}/analytics_engine/sql");
    let headers = Headers::new();
    headers.set("Authorization", &format!("Bearer {token}"))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(sql)));
    let request = Request::new_with_init(&url, &init)?;
    let mut response = Fetch::Request(request)
        .send()
        .await
        .map_err(|e| ApiError::Internal(format!("analytics SQL API unreachable: {e}")))?;
    let body = response.text().await.unwrap_or_default();
    if response.status_code() != 200 {
        log::event(
            "error",
            "analytics SQL API refused the query",
            &[
                ("status", &response.status_code().to_string()),
                ("body", &body.chars().take(300).collect::<String>()),
            ],
        );
        return Err(ApiError::BadGateway("analytics-engine".into()));
    }
    Ok(body)
}
