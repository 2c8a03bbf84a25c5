//! identify: turns the request's credential into an `Identity`. Credentials are tried in the
//! contract's order (Bearer, X-API-Key, session cookie); a presented but invalid one is 401.

use gateway::token::{constant_time_eq, credential, Credential};
use worker::{Env, Request};

use crate::config::var;
use crate::context::{CredentialKind, Identity, Role};
use crate::error::ApiError;

pub async fn identify(req: &Request, env: &Env) -> Result<Option<Identity>, ApiError> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (authorization, api_key, cookie) = (
        header("authorization"),
        header("x-api-key"),
        header("cookie"),
    );
    let presented = credential(
        authorization.as_deref(),
        api_key.as_deref(),
        cookie.as_deref(),
    )
    .map_err(|e| ApiError::Unauthorized(format!("malformed credential: {e}")))?;
    match presented {
        None => Ok(None),
        Some(Credential::ApiKey(key)) => match admin_identity(env, key) {
            Some(identity) => Ok(Some(identity)),
            None => Err(ApiError::Unauthorized("invalid API key".into())),
        },
        Some(Credential::Bearer(_)) => Err(ApiError::Unauthorized("invalid token".into())),
        Some(Credential::Session(_)) => Err(ApiError::Unauthorized("invalid session".into())),
    }
}

/// `X-API-Key` equal to the `ADMIN_API_KEY` secret is the platform admin (constant-time
/// comparison; unset means no such key exists).
fn admin_identity(env: &Env, key: &str) -> Option<Identity> {
    let admin_key = env
        .secret("ADMIN_API_KEY")
        .ok()
        .map(|s| s.to_string())
        .or_else(|| var(env, "ADMIN_API_KEY"))?;
    if admin_key.is_empty() || !constant_time_eq(admin_key.as_bytes(), key.as_bytes()) {
        return None;
    }
    Some(Identity {
        user_id: "admin".into(),
        email: None,
        role: Role::Admin,
        permissions: vec!["*".into()],
        via: CredentialKind::AdminKey,
        session_id: None,
    })
}
