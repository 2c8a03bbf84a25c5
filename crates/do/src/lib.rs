//! `do`: the RPC proxy, reached only over Workers RPC (no fetch handler). Each export is an
//! RPC method of the worker's entrypoint; the work is in `proxy` (one call) and `catalog`
//! (what `getServices` reports).

mod catalog;
mod proxy;

use futures_util::stream::{self, StreamExt};
use gateway::jsonrpc::{ResultBudget, BATCH_CONCURRENCY, MAX_BATCH, MAX_BATCH_RESULT_BYTES};
use js_sys::{Array, Object, Reflect};
use rpc::clients::to_js;
use rpc::{sys, AuthClient, DbClient, Health};
use wasm_bindgen::prelude::*;
use worker::Env;

use crate::catalog::SELF;
use crate::proxy::{Correlation, Failure, Request};

/// `call(service, method, args, options?)`: the method's result, or a thrown `Error` whose
/// message says why. `options` is `{requestId?, traceparent?}` for the log line when the
/// arguments carry no `ctx`.
#[wasm_bindgen(js_name = call)]
pub async fn call_service(
    service: JsValue,
    method: JsValue,
    args: JsValue,
    options: JsValue,
) -> Result<JsValue, JsValue> {
    let env = sys::importable_env();
    let request = Request {
        service: &service,
        method: &method,
        args: &args,
    };
    proxy::run(&env, request, &Correlation::from_options(&options))
        .await
        .map_err(thrown)
}

/// `batchCall([{service, method, args}], options?)`: every call runs at once and on its own;
/// the answer has one `{success: true, result}` or `{success: false, error: {code, message}}`
/// per call, in order. Only a batch that is not an array (or is over 100 calls) throws.
/// At most `BATCH_CONCURRENCY` calls run at once, and results are kept in request order only
/// while they fit in `MAX_BATCH_RESULT_BYTES` (their JSON, summed): a result past the budget
/// is dropped (the call did run) and answered with a -32004 error, and logged.
#[wasm_bindgen(js_name = batchCall)]
pub async fn batch_call(calls: JsValue, options: JsValue) -> Result<JsValue, JsValue> {
    let Some(calls) = calls.dyn_ref::<Array>() else {
        return Err(thrown(Failure::invalid(
            "calls must be an array of {service, method, args}",
        )));
    };
    if calls.length() as usize > MAX_BATCH {
        return Err(thrown(Failure::invalid("a batch holds at most 100 calls")));
    }
    let env = sys::importable_env();
    let correlation = Correlation::from_options(&options);
    let field = |item: &JsValue, key: &str| {
        if item.is_object() {
            Reflect::get(item, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
        } else {
            JsValue::UNDEFINED
        }
    };
    let items: Vec<[JsValue; 3]> = calls
        .iter()
        .map(|item| {
            [
                field(&item, "service"),
                field(&item, "method"),
                field(&item, "args"),
            ]
        })
        .collect();
    let mut outcomes = stream::iter(items.iter().map(|[service, method, args]| {
        let request = Request {
            service,
            method,
            args,
        };
        proxy::run(&env, request, &correlation)
    }))
    .buffered(BATCH_CONCURRENCY);
    let mut budget = ResultBudget::new(MAX_BATCH_RESULT_BYTES);
    let answer = Array::new();
    let mut index = 0usize;
    while let Some(outcome) = outcomes.next().await {
        let outcome = match outcome {
            Ok(result) => {
                let bytes = json_size(&result);
                if budget.admit(bytes) {
                    Ok(result)
                } else {
                    result_dropped(&correlation, index, bytes);
                    Err(Failure::too_large())
                }
            }
            Err(failure) => Err(failure),
        };
        answer.push(&outcome_object(outcome));
        index += 1;
    }
    Ok(answer.into())
}

/// The size of a result as JSON (UTF-16 code units, close to bytes for JSON text); a value
/// JSON cannot represent counts as nothing (the caller's encoder refuses it anyway).
fn json_size(value: &JsValue) -> usize {
    match js_sys::JSON::stringify(value) {
        Ok(text) if text.is_string() => text.length() as usize,
        _ => 0,
    }
}

fn result_dropped(correlation: &Correlation, index: usize, bytes: usize) {
    let line = serde_json::json!({
        "level": "warn",
        "message": "batch result dropped: over the response budget",
        "worker": SELF,
        "requestId": correlation.request_id,
        "index": index,
        "bytes": bytes,
        "budgetBytes": MAX_BATCH_RESULT_BYTES,
    });
    worker::console_warn!("{line}");
}

/// `getServices()`: every RPC-reachable registry service with its binding, description,
/// availability here and the methods the proxy forwards.
#[wasm_bindgen(js_name = getServices)]
pub async fn get_services() -> Result<JsValue, JsValue> {
    let env = sys::importable_env();
    encode(&catalog::services(&|b| sys::binding(&env, b).is_some()))
}

/// `getService(name)`: one service, or `null` for a name the registry does not know.
#[wasm_bindgen(js_name = getService)]
pub async fn get_service(name: JsValue) -> Result<JsValue, JsValue> {
    let env = sys::importable_env();
    let info = name
        .as_string()
        .and_then(|n| catalog::service(&n, &|b| sys::binding(&env, b).is_some()));
    encode(&info)
}

/// `isServiceAvailable(name)`: whether calls to it can reach it from here.
#[wasm_bindgen(js_name = isServiceAvailable)]
pub async fn is_service_available(name: JsValue) -> Result<JsValue, JsValue> {
    let env = sys::importable_env();
    let available = name
        .as_string()
        .and_then(|n| catalog::service(&n, &|b| sys::binding(&env, b).is_some()))
        .is_some_and(|s| s.available);
    Ok(JsValue::from_bool(available))
}

/// `health()`: are the proxy's own bindings configured?
#[wasm_bindgen]
pub async fn health() -> Result<JsValue, JsValue> {
    encode(&own_health(&sys::importable_env()))
}

pub(crate) fn own_health(env: &Env) -> Health {
    let missing: Vec<&str> = [DbClient::BINDING, AuthClient::BINDING]
        .into_iter()
        .filter(|b| sys::binding(env, b).is_none())
        .collect();
    if missing.is_empty() {
        Health::up(SELF)
    } else {
        Health::down(
            SELF,
            format!("bindings not configured: {}", missing.join(", ")),
        )
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<JsValue, JsValue> {
    to_js(value).map_err(|e| JsValue::from_str(&e.to_string()))
}

/// The `Error` a failed `call` throws. Workers RPC carries only an error's type and message
/// across the binding (not extra properties), so the message leads with the kind of failure
/// ("Method not found:", "Timeout:", ...); callers that need the code use `batchCall`.
fn thrown(failure: Failure) -> JsValue {
    js_sys::Error::new(&failure.message).into()
}

fn outcome_object(outcome: Result<JsValue, Failure>) -> JsValue {
    let object = Object::new();
    let set = |target: &Object, key: &str, value: &JsValue| {
        let _ = Reflect::set(target, &JsValue::from_str(key), value);
    };
    match outcome {
        Ok(result) => {
            set(&object, "success", &JsValue::TRUE);
            set(&object, "result", &result);
        }
        Err(failure) => {
            let error = Object::new();
            set(&error, "code", &JsValue::from_f64(failure.code as f64));
            set(&error, "message", &JsValue::from_str(&failure.message));
            set(&object, "success", &JsValue::FALSE);
            set(&object, "error", &error);
        }
    }
    object.into()
}
