//! Wire types: what crosses a service binding, as plain serde structs (camelCase on the wire).

use serde::{Deserialize, Serialize};

/// The trusted caller context the api passes to every service call. Public callers never
/// supply it: the api builds it from the authenticated identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ctx {
    pub request_id: String,
    #[serde(default)]
    pub traceparent: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    /// Set by the api only for an admin who named an owner (`?owner=`): db then addresses
    /// that owner's copy of a document id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A service's answer to `health()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub ok: bool,
    pub service: String,
    /// Why the service is not ok; absent when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Health {
    pub fn up(service: &str) -> Self {
        Health {
            ok: true,
            service: service.to_string(),
            error: None,
        }
    }
    pub fn down(service: &str, error: impl Into<String>) -> Self {
        Health {
            ok: false,
            service: service.to_string(),
            error: Some(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctx_is_camel_case_on_the_wire() {
        let ctx = Ctx {
            request_id: "01J".into(),
            traceparent: "00-x".into(),
            user_id: Some("u1".into()),
            role: Some("admin".into()),
            owner: None,
        };
        let v = serde_json::to_value(&ctx).unwrap();
        assert_eq!(v["requestId"], "01J");
        assert_eq!(v["userId"], "u1");
        let back: Ctx = serde_json::from_value(v).unwrap();
        assert_eq!(back, ctx);
    }

    #[test]
    fn health_omits_error_when_up() {
        let v = serde_json::to_value(Health::up("db")).unwrap();
        assert_eq!(v, serde_json::json!({"ok": true, "service": "db"}));
    }
}
