//! Typed clients over service bindings: the SDK the api, `do` and any Rust worker use.
//! Each call serialises its arguments with serde, invokes the RPC method, and decodes
//! the answer; failures become one error type.

use std::fmt;

use js_sys::Array;
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsValue;

use crate::sys;
use crate::wire::Health;

/// Why an RPC call did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcError {
    /// The binding is not configured on this worker.
    Unavailable(String),
    /// The service threw; `message` is its error message.
    Failed { service: String, message: String },
    /// The arguments or the answer did not fit the expected types.
    Codec(String),
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Unavailable(binding) => write!(f, "binding {binding} is not configured"),
            RpcError::Failed { service, message } => write!(f, "{service} failed: {message}"),
            RpcError::Codec(m) => write!(f, "rpc codec error: {m}"),
        }
    }
}

impl std::error::Error for RpcError {}

/// Serialises to plain JS values (objects, not `Map`s) so JS services see ordinary JSON.
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, RpcError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| RpcError::Codec(e.to_string()))
}

pub fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T, RpcError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| RpcError::Codec(e.to_string()))
}

/// An untyped client: any method on any service binding.
#[derive(Clone)]
pub struct ServiceClient {
    service: String,
    stub: JsValue,
}

impl ServiceClient {
    pub fn from_env(env: &worker::Env, binding: &str, service: &str) -> Result<Self, RpcError> {
        let stub =
            sys::binding(env, binding).ok_or_else(|| RpcError::Unavailable(binding.into()))?;
        Ok(ServiceClient {
            service: service.to_string(),
            stub,
        })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Calls `method` with already-converted JS arguments.
    pub async fn call_js(&self, method: &str, args: &[JsValue]) -> Result<JsValue, RpcError> {
        let array: Array = args.iter().collect();
        sys::invoke(&self.stub, method, &array)
            .await
            .map_err(|e| RpcError::Failed {
                service: self.service.clone(),
                message: sys::error_message(&e),
            })
    }

    /// Calls `method` with JSON arguments and decodes the answer.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        args: &[serde_json::Value],
    ) -> Result<T, RpcError> {
        let js_args = args.iter().map(to_js).collect::<Result<Vec<_>, _>>()?;
        let value = self.call_js(method, &js_args).await?;
        if value.is_undefined() {
            return from_js(JsValue::NULL);
        }
        from_js(value)
    }

    pub async fn health(&self) -> Result<Health, RpcError> {
        self.call("health", &[]).await
    }
}

macro_rules! typed_client {
    ($(#[$doc:meta])* $name:ident, $service:literal, $binding:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(pub ServiceClient);

        impl $name {
            pub const BINDING: &'static str = $binding;

            pub fn from_env(env: &worker::Env) -> Result<Self, RpcError> {
                ServiceClient::from_env(env, $binding, $service).map($name)
            }

            pub async fn health(&self) -> Result<Health, RpcError> {
                self.0.health().await
            }
        }
    };
}

typed_client!(
    /// The document store (`db`).
    DbClient, "db", "DB_SERVICE"
);
typed_client!(
    /// Identity (`auth`).
    AuthClient, "auth", "AUTH_SERVICE"
);
typed_client!(
    /// The RPC proxy (`do`).
    DoClient, "do", "DO_SERVICE"
);
