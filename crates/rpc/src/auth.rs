//! The auth service's RPC surface: wire types, the typed `AuthClient` methods, and the
//! revocation records auth writes to the shared `AUTH_CACHE` KV namespace for the api.
//!
//! Answers that can be refused (signup, login, keys, roles) travel as
//! `{ok: true, ...fields}` or `{ok: false, error: {status, detail}}`: a refusal is data the
//! caller maps to an HTTP status, and only an internal fault throws.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clients::{AuthClient, RpcError};
use crate::wire::Ctx;

/// A user as every auth answer shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthUser {
    pub id: String,
    pub email: String,
    pub role: String,
    pub permissions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// `validateToken` / `validateApiKey` / `validateSession`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<AuthUser>,
    /// The session's handle (SHA-256 of its id; never the id itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The API key's id, for keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl Validation {
    pub fn invalid() -> Self {
        Validation {
            valid: false,
            user: None,
            session_id: None,
            key_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignupInput {
    pub email: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAnswer {
    pub user: AuthUser,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginAnswer {
    pub token: String,
    /// ISO 8601; the token's `exp`.
    pub expires_at: String,
    pub user: AuthUser,
    /// The session's handle (the token's `sid`).
    pub session_id: String,
    /// The session id for the cookie: shown this once, stored only as its hash.
    pub session: String,
    pub session_expires_at: String,
}

/// Either field (or both): `sessionId` is a handle the caller's identity owns (from a token
/// or a validated cookie); `session` is a raw session id, whose possession is the proof.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogoutInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutAnswer {
    /// The handles of the sessions this call revoked.
    pub revoked: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateKeyInput {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub id: String,
    pub name: String,
    pub prefix: String,
    /// Shown this once; only its SHA-256 is stored.
    pub key: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<ApiKeyInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeKeyInput {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedKey {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetRoleInput {
    pub user_id: String,
    pub role: String,
}

/// Why auth refused a request: `status` is the HTTP status the api answers with
/// (400, 401, 403, 404 or 409) and `detail` is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub status: u16,
    pub detail: String,
}

impl Refusal {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        Refusal {
            status,
            detail: detail.into(),
        }
    }
}

pub type AuthResult<T> = Result<T, Refusal>;

/// `{ok: true, ...value}` or `{ok: false, error}`. `value` must serialise to an object.
pub fn encode_result<T: Serialize>(result: &AuthResult<T>) -> Result<Value, RpcError> {
    match result {
        Ok(value) => match serde_json::to_value(value) {
            Ok(Value::Object(mut fields)) => {
                fields.insert("ok".into(), Value::Bool(true));
                Ok(Value::Object(fields))
            }
            Ok(_) => Err(RpcError::Codec("an auth answer must be an object".into())),
            Err(e) => Err(RpcError::Codec(e.to_string())),
        },
        Err(refusal) => Ok(json!({ "ok": false, "error": refusal })),
    }
}

pub fn decode_result<T: DeserializeOwned>(value: Value) -> Result<AuthResult<T>, RpcError> {
    let codec = |e: serde_json::Error| RpcError::Codec(e.to_string());
    match value.get("ok").and_then(Value::as_bool) {
        Some(true) => serde_json::from_value(value).map(Ok).map_err(codec),
        Some(false) => {
            let refusal = value.get("error").cloned().unwrap_or(Value::Null);
            serde_json::from_value(refusal).map(Err).map_err(codec)
        }
        None => Err(RpcError::Codec("an auth answer has no `ok`".into())),
    }
}

// ---------------------------------------------------------------------------------------
// Revocation records in AUTH_CACHE (written by auth, read by the api). Each lives at least
// as long as an access token, so every token it affects expires before the record does.

/// Present while the session named by `handle` is revoked.
pub fn revoked_session_key(handle: &str) -> String {
    format!("revoked:session:{handle}")
}

/// The user's current role, written when it changes: it overrides the role inside tokens
/// issued earlier.
pub fn user_role_key(user_id: &str) -> String {
    format!("user:role:{user_id}")
}

// ---------------------------------------------------------------------------------------
// The typed client.

impl AuthClient {
    pub async fn validate_token(&self, token: &str) -> Result<Validation, RpcError> {
        self.0.call("validateToken", &[json!(token)]).await
    }

    pub async fn validate_api_key(&self, key: &str) -> Result<Validation, RpcError> {
        self.0.call("validateApiKey", &[json!(key)]).await
    }

    pub async fn validate_session(&self, session_id: &str) -> Result<Validation, RpcError> {
        self.0.call("validateSession", &[json!(session_id)]).await
    }

    pub async fn signup(
        &self,
        ctx: &Ctx,
        input: &SignupInput,
    ) -> Result<AuthResult<UserAnswer>, RpcError> {
        self.refusable("signup", ctx, Some(input)).await
    }

    pub async fn login(
        &self,
        ctx: &Ctx,
        input: &LoginInput,
    ) -> Result<AuthResult<LoginAnswer>, RpcError> {
        self.refusable("login", ctx, Some(input)).await
    }

    pub async fn logout(
        &self,
        ctx: &Ctx,
        input: &LogoutInput,
    ) -> Result<AuthResult<LogoutAnswer>, RpcError> {
        self.refusable("logout", ctx, Some(input)).await
    }

    pub async fn create_api_key(
        &self,
        ctx: &Ctx,
        input: &CreateKeyInput,
    ) -> Result<AuthResult<CreatedKey>, RpcError> {
        self.refusable("createApiKey", ctx, Some(input)).await
    }

    pub async fn list_api_keys(&self, ctx: &Ctx) -> Result<AuthResult<KeyList>, RpcError> {
        self.refusable::<KeyList, ()>("listApiKeys", ctx, None)
            .await
    }

    pub async fn revoke_api_key(
        &self,
        ctx: &Ctx,
        input: &RevokeKeyInput,
    ) -> Result<AuthResult<RevokedKey>, RpcError> {
        self.refusable("revokeApiKey", ctx, Some(input)).await
    }

    pub async fn set_role(
        &self,
        ctx: &Ctx,
        input: &SetRoleInput,
    ) -> Result<AuthResult<UserAnswer>, RpcError> {
        self.refusable("setRole", ctx, Some(input)).await
    }

    async fn refusable<T: DeserializeOwned, I: Serialize>(
        &self,
        method: &str,
        ctx: &Ctx,
        input: Option<&I>,
    ) -> Result<AuthResult<T>, RpcError> {
        let codec = |e: serde_json::Error| RpcError::Codec(e.to_string());
        let mut args = vec![serde_json::to_value(ctx).map_err(codec)?];
        if let Some(input) = input {
            args.push(serde_json::to_value(input).map_err(codec)?);
        }
        let answer: Value = self.0.call(method, &args).await?;
        decode_result(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_flat_objects_with_ok() {
        let ok: AuthResult<RevokedKey> = Ok(RevokedKey { id: "k1".into() });
        let v = encode_result(&ok).expect("encodes");
        assert_eq!(v, json!({"ok": true, "id": "k1"}));
        assert_eq!(decode_result::<RevokedKey>(v).expect("decodes"), ok);

        let refused: AuthResult<RevokedKey> = Err(Refusal::new(404, "no such key"));
        let v = encode_result(&refused).expect("encodes");
        assert_eq!(
            v,
            json!({"ok": false, "error": {"status": 404, "detail": "no such key"}})
        );
        assert_eq!(decode_result::<RevokedKey>(v).expect("decodes"), refused);
    }

    #[test]
    fn malformed_answers_are_codec_errors() {
        for v in [
            json!(null),
            json!({}),
            json!({"ok": "yes"}),
            json!({"ok": true}),
            json!({"ok": false}),
            json!({"ok": false, "error": {"status": "x"}}),
        ] {
            assert!(
                matches!(
                    decode_result::<RevokedKey>(v.clone()),
                    Err(RpcError::Codec(_))
                ),
                "{v}"
            );
        }
        assert!(encode_result::<String>(&Ok("not an object".into())).is_err());
    }

    #[test]
    fn wire_names_are_camel_case() {
        let v = serde_json::to_value(Validation {
            valid: true,
            user: Some(AuthUser {
                id: "u".into(),
                email: "a@b.co".into(),
                role: "user".into(),
                permissions: vec![],
                name: None,
                created_at: None,
            }),
            session_id: Some("h".into()),
            key_id: None,
        })
        .expect("serialises");
        assert_eq!(
            v,
            json!({"valid": true, "user": {"id": "u", "email": "a@b.co", "role": "user", "permissions": []}, "sessionId": "h"})
        );
        let input: SetRoleInput =
            serde_json::from_value(json!({"userId": "u", "role": "admin"})).expect("decodes");
        assert_eq!(input.user_id, "u");
        assert_eq!(
            serde_json::to_value(Validation::invalid()).expect("serialises"),
            json!({"valid": false})
        );
    }

    #[test]
    fn revocation_keys_are_namespaced() {
        assert_eq!(revoked_session_key("ab"), "revoked:session:ab");
        assert_eq!(user_role_key("u1"), "user:role:u1");
    }
}
