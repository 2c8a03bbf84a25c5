//! The `health()` RPC method of the D1-backed services (db, auth), in one place: one query
//! through the worker's `DB` binding, answered as a [`Health`]. Each service exports its own
//! `health` (wasm-bindgen exports are per crate) and delegates here with its name.

use wasm_bindgen::JsValue;

use crate::clients::to_js;
use crate::sys;
use crate::wire::Health;

/// Can `service` reach its D1 database (the `DB` binding)? Never fails for a down database:
/// that is an answer (`ok: false` with the reason), not an error.
pub async fn d1_health(service: &str) -> Health {
    match sys::importable_env().d1("DB") {
        Ok(db) => match db
            .prepare("SELECT 1 AS ok")
            .first::<serde_json::Value>(None)
            .await
        {
            Ok(_) => Health::up(service),
            Err(e) => Health::down(service, format!("D1 query failed: {e}")),
        },
        Err(_) => Health::down(service, "D1 binding DB is not configured"),
    }
}

/// [`d1_health`] encoded for the RPC caller, as the services' `health` export returns it.
pub async fn d1_health_js(service: &str) -> Result<JsValue, JsValue> {
    to_js(&d1_health(service).await).map_err(|e| JsValue::from_str(&e.to_string()))
}
