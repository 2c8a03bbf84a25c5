//! `do`: the RPC proxy, reached only over Workers RPC (no fetch handler).

use rpc::clients::to_js;
use rpc::{sys, AuthClient, DbClient, Health};
use wasm_bindgen::prelude::*;

const SERVICE: &str = "do";

/// `health()`: are the proxy's own bindings configured?
#[wasm_bindgen]
pub async fn health() -> Result<JsValue, JsValue> {
    let env = sys::importable_env();
    let missing: Vec<&str> = [DbClient::BINDING, AuthClient::BINDING]
        .into_iter()
        .filter(|b| sys::binding(&env, b).is_none())
        .collect();
    let health = if missing.is_empty() {
        Health::up(SERVICE)
    } else {
        Health::down(
            SERVICE,
            format!("bindings not configured: {}", missing.join(", ")),
        )
    };
    to_js(&health).map_err(|e| JsValue::from_str(&e.to_string()))
}
