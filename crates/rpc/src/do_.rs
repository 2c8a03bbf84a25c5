//! Typed `do` client methods and the proxy's wire types: one call, its outcome, the service
//! catalogue. Error codes in [`CallError`] are JSON-RPC's (`gateway::jsonrpc`): -32601 not
//! allowed, -32602 bad arguments, -32000 the service threw, -32001 timeout, -32002 binding not
//! configured, -32603 anything else.

use js_sys::Array;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};

use crate::clients::{from_js, to_js, DoClient, RpcError};

/// One call for the proxy: `service.method(...args)`. `args` is the full argument list,
/// `ctx` included where the method takes one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceCall {
    pub service: String,
    pub method: String,
    #[serde(default)]
    pub args: Vec<Value>,
}

impl ServiceCall {
    pub fn new(service: &str, method: &str, args: Vec<Value>) -> ServiceCall {
        ServiceCall {
            service: service.to_string(),
            method: method.to_string(),
            args,
        }
    }
}

/// Correlation for the proxy's log lines when the arguments carry no `ctx`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallError {
    pub code: i64,
    pub message: String,
}

/// Internal error code, for outcomes the client could not even decode.
const INTERNAL_ERROR: i64 = -32603;

/// One `batchCall` result: `{success: true, result}` or `{success: false, error}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallOutcome {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CallError>,
}

impl CallOutcome {
    pub fn into_result(self) -> Result<Value, CallError> {
        match (self.success, self.error) {
            (true, _) => Ok(self.result.unwrap_or(Value::Null)),
            (false, Some(e)) => Err(e),
            (false, None) => Err(CallError {
                code: INTERNAL_ERROR,
                message: "Internal error".into(),
            }),
        }
    }
}

/// A service as `getServices` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub binding: String,
    pub description: String,
    /// Whether `do` has the binding (so calls can reach the service).
    pub available: bool,
    /// The methods `do` forwards for this service.
    pub methods: Vec<String>,
}

impl DoClient {
    /// `do.call(service, method, args)`; a refused or failed call is `RpcError::Failed` with
    /// the proxy's message. Use [`DoClient::call_outcome`] to get the code as well.
    pub async fn call<T: DeserializeOwned>(
        &self,
        service: &str,
        method: &str,
        args: &[Value],
    ) -> Result<T, RpcError> {
        self.0
            .call("call", &[service.into(), method.into(), Value::from(args)])
            .await
    }

    /// One call through `batchCall`, so the outcome keeps its error code.
    pub async fn call_outcome(
        &self,
        call: ServiceCall,
        options: Option<&CallOptions>,
    ) -> Result<CallOutcome, RpcError> {
        let mut outcomes = self.batch_call(&[call], options).await?;
        Ok(outcomes.pop().unwrap_or(CallOutcome {
            success: false,
            result: None,
            error: None,
        }))
    }

    /// `do.batchCall(calls, options)`: one outcome per call, in order. An outcome this side
    /// cannot decode (a result that is not JSON) becomes an internal error for that call
    /// only, so one odd result never fails the batch.
    pub async fn batch_call(
        &self,
        calls: &[ServiceCall],
        options: Option<&CallOptions>,
    ) -> Result<Vec<CallOutcome>, RpcError> {
        let mut args = vec![to_js(calls)?];
        if let Some(options) = options {
            args.push(to_js(options)?);
        }
        let answer = self.0.call_js("batchCall", &args).await?;
        let Some(items) = answer.dyn_ref::<Array>() else {
            return Err(RpcError::Codec("batchCall did not answer an array".into()));
        };
        let undecodable = || CallOutcome {
            success: false,
            result: None,
            error: Some(CallError {
                code: INTERNAL_ERROR,
                message: "Internal error".into(),
            }),
        };
        let mut outcomes: Vec<CallOutcome> = items
            .iter()
            .map(|item| decode_outcome(item).unwrap_or_else(|_| undecodable()))
            .collect();
        // A proxy that answered fewer outcomes than calls must not shift the answers.
        outcomes.resize_with(calls.len(), undecodable);
        Ok(outcomes)
    }

    pub async fn get_services(&self) -> Result<Vec<ServiceInfo>, RpcError> {
        self.0.call("getServices", &[]).await
    }

    /// `None` for a name the registry does not know.
    pub async fn get_service(&self, name: &str) -> Result<Option<ServiceInfo>, RpcError> {
        self.0.call("getService", &[name.into()]).await
    }

    pub async fn is_service_available(&self, name: &str) -> Result<bool, RpcError> {
        self.0.call("isServiceAvailable", &[name.into()]).await
    }
}

/// `undefined` results (a method that returns nothing) decode as `null`.
fn decode_outcome(item: JsValue) -> Result<CallOutcome, RpcError> {
    let mut outcome: CallOutcome = from_js(item)?;
    if outcome.success && outcome.result.is_none() {
        outcome.result = Some(Value::Null);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_on_the_wire() {
        let ok: CallOutcome =
            serde_json::from_value(json!({"success": true, "result": {"a": 1}})).unwrap();
        assert_eq!(ok.into_result(), Ok(json!({"a": 1})));
        let empty: CallOutcome = serde_json::from_value(json!({"success": true})).unwrap();
        assert_eq!(empty.into_result(), Ok(Value::Null));
        let failed: CallOutcome = serde_json::from_value(
            json!({"success": false, "error": {"code": -32001, "message": "Timeout"}}),
        )
        .unwrap();
        assert_eq!(
            failed.into_result(),
            Err(CallError {
                code: -32001,
                message: "Timeout".into()
            })
        );
        let odd: CallOutcome = serde_json::from_value(json!({"success": false})).unwrap();
        assert_eq!(odd.into_result().map_err(|e| e.code), Err(-32603));
    }

    #[test]
    fn calls_and_options_are_camel_case() {
        let call = ServiceCall::new("db", "get", vec![json!({"requestId": "r"}), json!("c")]);
        assert_eq!(
            serde_json::to_value(&call).unwrap(),
            json!({"service": "db", "method": "get", "args": [{"requestId": "r"}, "c"]})
        );
        let no_args: ServiceCall =
            serde_json::from_value(json!({"service": "db", "method": "health"})).unwrap();
        assert!(no_args.args.is_empty());
        let options = CallOptions {
            request_id: Some("r".into()),
            traceparent: None,
        };
        assert_eq!(
            serde_json::to_value(&options).unwrap(),
            json!({"requestId": "r"})
        );
    }
}
