//! `auth`: identity (users, passwords, sessions, API keys, tokens), reached only over Workers RPC (no fetch handler).

use rpc::clients::to_js;
use rpc::{sys, Health};
use wasm_bindgen::prelude::*;

const SERVICE: &str = "auth";

/// `health()`: can the service reach its D1 database?
#[wasm_bindgen]
pub async fn health() -> Result<JsValue, JsValue> {
    let health = match sys::importable_env().d1("DB") {
        Ok(db) => match db
            .prepare("SELECT 1 AS ok")
            .first::<serde_json::Value>(None)
            .await
        {
            Ok(_) => Health::up(SERVICE),
            Err(e) => Health::down(SERVICE, format!("D1 query failed: {e}")),
        },
        Err(_) => Health::down(SERVICE, "D1 binding DB is not configured"),
    };
    to_js(&health).map_err(|e| JsValue::from_str(&e.to_string()))
}
