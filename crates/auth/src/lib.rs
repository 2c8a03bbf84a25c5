//! `auth`: identity (users, passwords, sessions, API keys, tokens), reached only over Workers
//! RPC (no fetch handler). This file is the RPC surface: it decodes arguments, runs the
//! method in `service`, encodes the answer and writes one log line per call.
//!
//! Methods that can refuse answer `{ok: true, ...}` / `{ok: false, error: {status, detail}}`;
//! `validate*` answer `{valid, user?, sessionId?, keyId?}`; only internal faults throw.

mod crypto;
mod error;
mod service;
mod store;

use std::future::Future;

use gateway::ids::TraceParent;
use rpc::auth::{encode_result, AuthResult, Refusal, Validation};
use rpc::clients::{from_js, to_js};
use rpc::Ctx;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

use error::{Failure, Fault, Outcome};

const SERVICE: &str = "auth";

/// `health()`: can the service reach its D1 database?
#[wasm_bindgen]
pub async fn health() -> Result<JsValue, JsValue> {
    rpc::health::d1_health_js(SERVICE).await
}

#[wasm_bindgen(js_name = validateToken)]
pub async fn validate_token(token: JsValue) -> Result<JsValue, JsValue> {
    validation("validateToken", token, |t| async move {
        service::validate_token(&t).await
    })
    .await
}

#[wasm_bindgen(js_name = validateApiKey)]
pub async fn validate_api_key(key: JsValue) -> Result<JsValue, JsValue> {
    validation("validateApiKey", key, |k| async move {
        service::validate_api_key(&k).await
    })
    .await
}

#[wasm_bindgen(js_name = validateSession)]
pub async fn validate_session(id: JsValue) -> Result<JsValue, JsValue> {
    validation("validateSession", id, |s| async move {
        service::validate_session(&s).await
    })
    .await
}

#[wasm_bindgen]
pub async fn signup(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(input, "signup takes {email, password, name?} (strings)");
    refusable("signup", ctx.as_ref().ok().cloned(), async move {
        ctx?;
        service::signup(input?).await
    })
    .await
}

#[wasm_bindgen]
pub async fn login(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(input, "login takes {email, password} (strings)");
    refusable("login", ctx.as_ref().ok().cloned(), async move {
        ctx?;
        service::login(input?).await
    })
    .await
}

#[wasm_bindgen]
pub async fn logout(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(input, "logout takes {sessionId?, session?} (strings)");
    refusable("logout", ctx.as_ref().ok().cloned(), async move {
        service::logout(&ctx?, input?).await
    })
    .await
}

#[wasm_bindgen(js_name = createApiKey)]
pub async fn create_api_key(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(input, "createApiKey takes {name} (a string)");
    refusable("createApiKey", ctx.as_ref().ok().cloned(), async move {
        service::create_api_key(&ctx?, input?).await
    })
    .await
}

#[wasm_bindgen(js_name = listApiKeys)]
pub async fn list_api_keys(ctx: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    refusable("listApiKeys", ctx.as_ref().ok().cloned(), async move {
        service::list_api_keys(&ctx?).await
    })
    .await
}

#[wasm_bindgen(js_name = revokeApiKey)]
pub async fn revoke_api_key(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(input, "revokeApiKey takes {id} (a string)");
    refusable("revokeApiKey", ctx.as_ref().ok().cloned(), async move {
        service::revoke_api_key(&ctx?, input?).await
    })
    .await
}

#[wasm_bindgen(js_name = setRole)]
pub async fn set_role(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(input, "setRole takes {userId, role} (strings)");
    refusable("setRole", ctx.as_ref().ok().cloned(), async move {
        service::set_role(&ctx?, input?).await
    })
    .await
}

// Admin only (ctx.role must be admin; 403 otherwise).

#[wasm_bindgen(js_name = findUsers)]
pub async fn find_users(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(
        input,
        "findUsers takes {q?, match?, limit?, cursor?} (strings; limit a number or string)",
    );
    refusable("findUsers", ctx.as_ref().ok().cloned(), async move {
        service::find_users(&ctx?, input?).await
    })
    .await
}

#[wasm_bindgen(js_name = endUserSessions)]
pub async fn end_user_sessions(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(input, "endUserSessions takes {userId} (a string)");
    refusable("endUserSessions", ctx.as_ref().ok().cloned(), async move {
        service::end_user_sessions(&ctx?, input?).await
    })
    .await
}

#[wasm_bindgen(js_name = listUserKeys)]
pub async fn list_user_keys(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(input, "listUserKeys takes {userId} (a string)");
    refusable("listUserKeys", ctx.as_ref().ok().cloned(), async move {
        service::list_user_keys(&ctx?, input?).await
    })
    .await
}

#[wasm_bindgen(js_name = revokeUserKey)]
pub async fn revoke_user_key(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(input, "revokeUserKey takes {userId, keyId} (strings)");
    refusable("revokeUserKey", ctx.as_ref().ok().cloned(), async move {
        service::revoke_user_key(&ctx?, input?).await
    })
    .await
}

#[wasm_bindgen(js_name = listAudit)]
pub async fn list_audit(ctx: JsValue, input: JsValue) -> Result<JsValue, JsValue> {
    let ctx = decode_ctx(ctx);
    let input = decode_input(
        input,
        "listAudit takes {userId?, actor?, limit?, cursor?} (strings; limit a number or string)",
    );
    refusable("listAudit", ctx.as_ref().ok().cloned(), async move {
        service::list_audit(&ctx?, input?).await
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Decoding: arguments come from other workers, so bad shapes are refusals (400), never
// panics. Messages name the expected shape and never echo a value (it may be a password).

fn decode_ctx(value: JsValue) -> Result<Ctx, Failure> {
    from_js::<Ctx>(value).map_err(|_| {
        Failure::Refused(Refusal::new(
            400,
            "ctx must be {requestId, traceparent?, userId?, role?}",
        ))
    })
}

fn decode_input<T: DeserializeOwned>(value: JsValue, shape: &str) -> Result<T, Failure> {
    from_js::<Value>(value)
        .ok()
        .filter(Value::is_object)
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| Failure::Refused(Refusal::new(400, shape)))
}

// ---------------------------------------------------------------------------------------
// Running a call: time it, encode it, log one line.

async fn refusable<T: Serialize>(
    method: &'static str,
    ctx: Option<Ctx>,
    work: impl Future<Output = Outcome<T>>,
) -> Result<JsValue, JsValue> {
    let started = js_sys::Date::now();
    let (answer, outcome): (Result<AuthResult<T>, Fault>, String) = match work.await {
        Ok(value) => (Ok(Ok(value)), "ok".into()),
        Err(Failure::Refused(r)) => {
            let outcome = format!("refused:{}", r.status);
            (Ok(Err(r)), outcome)
        }
        Err(Failure::Fault(f)) => (Err(f), "error".into()),
    };
    let answer = answer.and_then(|a| encode_result(&a).map_err(|e| Fault(e.to_string())));
    finish(method, ctx.as_ref(), started, answer, &outcome)
}

async fn validation<F, Fut>(
    method: &'static str,
    credential: JsValue,
    work: F,
) -> Result<JsValue, JsValue>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Validation, Fault>>,
{
    let started = js_sys::Date::now();
    // A non-string credential is simply not valid.
    let answer = match credential.as_string() {
        Some(c) => work(c).await,
        None => Ok(Validation::invalid()),
    };
    let outcome = match &answer {
        Ok(v) if v.valid => "valid",
        Ok(_) => "invalid",
        Err(_) => "error",
    };
    let answer = answer.and_then(|v| serde_json::to_value(v).map_err(|e| Fault(e.to_string())));
    finish(method, None, started, answer, outcome)
}

/// Logs the call (ids, method, outcome, duration: never arguments or answers) and hands the
/// answer back as a JS value, or throws a detail-free error for a fault.
fn finish(
    method: &str,
    ctx: Option<&Ctx>,
    started: f64,
    answer: Result<Value, Fault>,
    outcome: &str,
) -> Result<JsValue, JsValue> {
    let duration_ms = (js_sys::Date::now() - started).max(0.0).round() as u64;
    let trace_id = ctx
        .and_then(|c| TraceParent::parse(&c.traceparent))
        .map(|t| t.trace_id_hex());
    let mut line = json!({
        "level": if answer.is_err() { "error" } else { "info" },
        "message": "rpc",
        "service": SERVICE,
        "method": method,
        "requestId": ctx.map(|c| c.request_id.as_str()),
        "traceId": trace_id,
        "outcome": outcome,
        "durationMs": duration_ms,
    });
    match answer {
        Ok(value) => {
            worker::console_log!("{line}");
            to_js(&value)
                .map_err(|_| js_sys::Error::new("auth: could not encode the answer").into())
        }
        Err(Fault(detail)) => {
            line["error"] = json!(detail);
            worker::console_error!("{line}");
            Err(js_sys::Error::new("auth: internal error").into())
        }
    }
}
