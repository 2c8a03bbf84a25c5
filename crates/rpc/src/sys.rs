//! Raw JS bindings, kept in this one module so business code never touches `JsValue`
//! plumbing: the importable env of `cloudflare:workers`, generic RPC invocation on a
//! service stub, and the dispatch-namespace `get`.

use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "cloudflare:workers")]
extern "C" {
    // RPC methods exported with `#[wasm_bindgen]` receive no `env`; the importable env
    // (compatibility_date 2025-03-17 or later) is how they reach their bindings.
    #[wasm_bindgen(thread_local_v2, js_name = env)]
    static ENV: JsValue;
}

/// The env of the current worker, for code that is not handed one (RPC methods).
pub fn importable_env() -> worker::Env {
    ENV.with(|env| env.clone().unchecked_into())
}

/// A binding by name, `None` when the worker has no such binding.
pub fn binding(env: &worker::Env, name: &str) -> Option<JsValue> {
    let value = Reflect::get(env.as_ref(), &JsValue::from_str(name)).ok()?;
    if value.is_undefined() || value.is_null() {
        None
    } else {
        Some(value)
    }
}

/// Calls `target[method](...args)` and awaits the result when it is a promise.
/// Works for Workers RPC stubs (service bindings) and plain JS objects alike.
pub async fn invoke(target: &JsValue, method: &str, args: &Array) -> Result<JsValue, JsValue> {
    let func = Reflect::get(target, &JsValue::from_str(method))?;
    let func: Function = func
        .dyn_into()
        .map_err(|_| JsValue::from_str(&format!("{method} is not a method")))?;
    // Reflect.apply, not `func.apply(...)`: on an RPC stub, `.apply` would itself be looked up
    // as a remote method and the stub sent as an argument.
    let value = Reflect::apply(&func, target, args)?;
    settle(value).await
}

/// Awaits `value` if it is a thenable, else returns it as is.
pub async fn settle(value: JsValue) -> Result<JsValue, JsValue> {
    // Workers RPC returns an `RpcPromise`, which is callable (for pipelining), so typeof is
    // "function": test for `then`, not for an object.
    let is_thenable = (value.is_object() || value.is_function())
        && Reflect::get(&value, &JsValue::from_str("then"))
            .map(|then| then.is_function())
            .unwrap_or(false);
    if is_thenable {
        JsFuture::from(Promise::resolve(&value)).await
    } else {
        Ok(value)
    }
}

/// The message of a thrown JS value (an `Error`'s message, or its string form).
pub fn error_message(err: &JsValue) -> String {
    if let Some(e) = err.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    err.as_string()
        .unwrap_or_else(|| "unknown error".to_string())
}
