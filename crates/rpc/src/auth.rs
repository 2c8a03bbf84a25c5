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

// ---------------------------------------------------------------------------------------
// Admin methods (ctx.role must be admin): finding users, ending a user's sessions, another
// user's keys, and the audit trail of those changes. Page sizes (`limit`) are 1..=100,
// given as a number or a numeric string (REST query values arrive as strings).

/// `findUsers`: emails matching `q` (lower-cased; emails are stored lower-cased, so the
/// match is case-insensitive), by `match`: `substring` (default) or `prefix`. In email order;
/// `cursor` is a page's `nextCursor` (opaque).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindUsersInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    pub users: Vec<AuthUser>,
    pub next_cursor: Option<String>,
}

/// `endUserSessions` and `listUserKeys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdInput {
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndedSessions {
    pub user_id: String,
    /// How many live sessions this call ended.
    pub ended: u64,
    /// Their handles, so the caller can drop what it cached about them.
    pub revoked: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserKeys {
    pub user_id: String,
    /// The active keys (at most 100 per account, so one page).
    pub keys: Vec<ApiKeyInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeUserKeyInput {
    pub user_id: String,
    pub key_id: String,
}

/// `listAudit`: newest first, optionally one user's (`userId`) or one admin's (`actor`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One admin change: `action` is `setRole`, `endSessions` or `revokeKey`; `before`/`after`
/// are JSON objects where they apply (a role before and after, the sessions ended, the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub user_id: String,
    pub key_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// The largest page an admin listing returns, and the default.
pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 20;

/// A page size from `limit` (a number or a numeric string, 1..=`MAX_PAGE`).
pub fn page_limit(limit: Option<&Value>) -> Result<usize, &'static str> {
    const WHY: &str = "limit must be an integer from 1 to 100";
    let n = match limit {
        None | Some(Value::Null) => return Ok(DEFAULT_PAGE),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 3 => s.parse::<u64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n @ 1..=100) => Ok(n as usize),
        _ => Err(WHY),
    }
}

/// A user id as auth issues them: a ULID (26 Crockford base32 characters, upper case).
pub fn is_user_id(s: &str) -> bool {
    s.len() == 26
        && s.as_bytes()[0] <= b'7'
        && s.bytes().all(|b| {
            (b.is_ascii_digit() || b.is_ascii_uppercase())
                && !matches!(b, b'I' | b'L' | b'O' | b'U')
        })
}

/// An API key's lookup id: 12 ASCII alphanumerics.
pub fn is_key_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_alphanumeric())
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

    pub async fn find_users(
        &self,
        ctx: &Ctx,
        input: &FindUsersInput,
    ) -> Result<AuthResult<UserPage>, RpcError> {
        self.refusable("findUsers", ctx, Some(input)).await
    }

    pub async fn end_user_sessions(
        &self,
        ctx: &Ctx,
        input: &UserIdInput,
    ) -> Result<AuthResult<EndedSessions>, RpcError> {
        self.refusable("endUserSessions", ctx, Some(input)).await
    }

    pub async fn list_user_keys(
        &self,
        ctx: &Ctx,
        input: &UserIdInput,
    ) -> Result<AuthResult<UserKeys>, RpcError> {
        self.refusable("listUserKeys", ctx, Some(input)).await
    }

    pub async fn revoke_user_key(
        &self,
        ctx: &Ctx,
        input: &RevokeUserKeyInput,
    ) -> Result<AuthResult<RevokedKey>, RpcError> {
        self.refusable("revokeUserKey", ctx, Some(input)).await
    }

    pub async fn list_audit(
        &self,
        ctx: &Ctx,
        input: &AuditInput,
    ) -> Result<AuthResult<AuditPage>, RpcError> {
        self.refusable("listAudit", ctx, Some(input)).await
    }

    /// Any refusable method, its answer left as the JS value auth sent (`{ok, ...}`): for
    /// adapters that pass answers through unchanged, so no decoder is compiled in.
    pub async fn call_raw(
        &self,
        method: &str,
        ctx: &Ctx,
        input: wasm_bindgen::JsValue,
    ) -> Result<wasm_bindgen::JsValue, RpcError> {
        self.0
            .call_js(method, &[crate::clients::to_js(ctx)?, input])
            .await
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
    fn admin_inputs_take_rest_query_strings() {
        let input: FindUsersInput =
            serde_json::from_value(json!({"q": "Ada", "match": "prefix", "limit": "5"}))
                .expect("decodes");
        assert_eq!(input.mode.as_deref(), Some("prefix"));
        assert_eq!(input.limit, Some(json!("5")));
        let audit: AuditInput =
            serde_json::from_value(json!({"userId": "u1", "limit": 10})).expect("decodes");
        assert_eq!(audit.user_id.as_deref(), Some("u1"));
        let ended = serde_json::to_value(EndedSessions {
            user_id: "u1".into(),
            ended: 2,
            revoked: vec!["h".into()],
        })
        .expect("serialises");
        assert_eq!(ended, json!({"userId": "u1", "ended": 2, "revoked": ["h"]}));
        let revoke: RevokeUserKeyInput =
            serde_json::from_value(json!({"userId": "u", "keyId": "k"})).expect("decodes");
        assert_eq!(revoke.key_id, "k");
    }

    #[test]
    fn page_limits_and_ids() {
        assert_eq!(page_limit(None), Ok(DEFAULT_PAGE));
        assert_eq!(page_limit(Some(&json!(null))), Ok(DEFAULT_PAGE));
        assert_eq!(page_limit(Some(&json!(1))), Ok(1));
        assert_eq!(page_limit(Some(&json!("100"))), Ok(100));
        for bad in [
            json!(0),
            json!(101),
            json!(-1),
            json!(2.5),
            json!("x"),
            json!(""),
            json!("1e2"),
            json!("0100"),
            json!(true),
            json!([5]),
        ] {
            assert!(page_limit(Some(&bad)).is_err(), "{bad}");
        }
        assert!(is_user_id("01JABCDEFGHJKMNPQRSTVWXYZ0"));
        for bad in [
            "",
            "01jabcdefghjkmnpqrstvwxyz0",
            "81JABCDEFGHJKMNPQRSTVWXYZ0",
            "01JABCDEFGHJKMNPQRSTVWXYZ",
            "01JABCDEFGHJKMNPQRSTVWXYZI",
            "../etc/passwd",
        ] {
            assert!(!is_user_id(bad), "{bad}");
        }
        assert!(is_key_id("AbC123xyz789"));
        assert!(
            !is_key_id("AbC123xyz78") && !is_key_id("AbC123xyz78!") && !is_key_id("AbC123xyz7890")
        );
    }

    #[test]
    fn revocation_keys_are_namespaced() {
        assert_eq!(revoked_session_key("ab"), "revoked:session:ab");
        assert_eq!(user_role_key("u1"), "user:role:u1");
    }
}
