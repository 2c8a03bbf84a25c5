//! identify: turns the request's credential into an `Identity`. Credentials are tried in the
//! contract's order (Bearer, X-API-Key, session cookie); a presented but invalid one is 401.
//!
//! Keeping the common path fast, and revocation prompt:
//! - **Tokens** are verified here (HS256, `TOKEN_KEYS` parsed once per isolate): no RPC.
//!   What a signature cannot say is whether the session was revoked or the role changed
//!   since the token was issued. The auth service records both in the `AUTH_CACHE` KV
//!   namespace (`revoked:session:{sid}`, `user:role:{userId}`, each kept longer than a
//!   token lives). This isolate reads them at most once per `FRESH_MS` per session and per
//!   user, and also remembers the revocations and role changes it performed itself, which
//!   take effect on this instance at once.
//! - **API keys and sessions** are validated by auth over RPC (D1 is the truth), with the
//!   answer cached here for `FRESH_MS`; the request that revokes a key, ends a session or
//!   changes a role drops the affected entries at once.
//! - `X-API-Key` equal to `ADMIN_API_KEY` is the platform admin (constant-time comparison).

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::rc::Rc;

use gateway::passthrough::{platform_credential, Identification};
use lru::LruCache;

use gateway::token::{
    constant_time_eq, credential, is_session_id, parse_api_key, role_permissions, session_handle,
    sha256_hex, verify, Credential, KeySet, TokenError, ACCESS_TOKEN_TTL_SECS, TOKEN_AUDIENCE,
    TOKEN_ISSUER,
};
use rpc::auth::{revoked_session_key, user_role_key, Validation};
use rpc::AuthClient;
use worker::{Env, Request};

use crate::config::{self, Config};
use crate::context::{CredentialKind, Identity, Role};
use crate::deadline;
use crate::error::ApiError;
use crate::log;

/// How long a looked-up answer is trusted. The contract allows 5 s for a revocation to reach
/// every instance; a second is left for the revoking write itself.
const FRESH_MS: f64 = 4_000.0;
/// Bounded memory: past this many entries a map drops its stale ones (or, if all are fresh,
/// everything; a cache miss only costs a lookup).
const MAX_ENTRIES: usize = 10_000;
/// The credential cache holds this many answers and evicts the least recently used.
const MAX_CREDENTIALS: usize = 10_000;
/// Local revocations are kept as long as a token they could affect may live.
const LOCAL_REVOCATION_MS: f64 = (ACCESS_TOKEN_TTL_SECS as f64 + 300.0) * 1000.0;

/// `how`: with `PlatformFormatOnly` (anonymous forwarding routes) a credential that is not in
/// our format is the upstream's (`gateway::passthrough::platform_credential`), not a 401.
pub async fn identify(
    req: &Request,
    env: &Env,
    how: Identification,
) -> Result<Option<Identity>, ApiError> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (authorization, api_key, cookie) = (
        header("authorization"),
        header("x-api-key"),
        header("cookie"),
    );
    let presented = if how == Identification::PlatformFormatOnly {
        let config = config::load(env);
        platform_credential(
            authorization.as_deref(),
            api_key.as_deref(),
            cookie.as_deref(),
            config.admin_api_key.as_deref(),
        )
    } else {
        credential(
            authorization.as_deref(),
            api_key.as_deref(),
            cookie.as_deref(),
        )
    }
    .map_err(|e| ApiError::Unauthorized(format!("malformed credential: {e}")))?;
    identify_credential(env, presented).await
}

/// The identity behind one credential (the console's cookie comes here as a session).
pub async fn identify_credential(
    env: &Env,
    presented: Option<Credential<'_>>,
) -> Result<Option<Identity>, ApiError> {
    match presented {
        None => Ok(None),
        Some(Credential::Bearer(token)) => token_identity(env, token).await.map(Some),
        Some(Credential::ApiKey(key)) => match admin_identity(env, key) {
            Some(identity) => Ok(Some(identity)),
            None => api_key_identity(env, key).await.map(Some),
        },
        Some(Credential::Session(id)) => session_identity(env, id).await.map(Some),
    }
}

/// `X-API-Key` equal to the `ADMIN_API_KEY` secret is the platform admin (constant-time
/// comparison; unset means no such key exists).
fn admin_identity(env: &Env, key: &str) -> Option<Identity> {
    let config = config::load(env);
    let admin_key = config.admin_api_key.as_deref()?;
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

// ---------------------------------------------------------------------------------------
// What this isolate remembers

struct Fresh<T> {
    value: T,
    /// When the lookup that produced `value` started (not ended), so that a revocation
    /// performed while it was in flight still wins.
    asked_ms: f64,
}

/// An API key's or session's identity, as auth last answered for it (`None`: invalid).
#[derive(Clone)]
struct Validated {
    identity: Identity,
    key_id: Option<String>,
}

#[derive(Default)]
struct Memory {
    // (`credentials` is created on first use: `LruCache` has no `Default`.)
    /// The configuration `TOKEN_KEYS` was last read from, and what it parsed to.
    keys: Option<(Rc<Config>, Option<Rc<KeySet>>)>,
    /// API keys and sessions by the SHA-256 of the credential (never the credential), least
    /// recently used evicted first, so a flood of new credentials cannot flush the keys of
    /// callers in steady use.
    credentials: Option<LruCache<String, Fresh<Option<Validated>>>>,
    /// KV answers: is this session handle revoked?
    session_revoked: HashMap<String, Fresh<bool>>,
    /// KV answers: the user's current role, if it changed after tokens were issued.
    user_role: HashMap<String, Fresh<Option<Role>>>,
    /// Revocations this isolate performed: `session:{handle}` / `key:{id}` → until (ms).
    revoked_here: HashMap<String, f64>,
    /// Users whose role this isolate changed → when. Older answers about them are stale.
    role_changed_here: HashMap<String, f64>,
}

thread_local! {
    static MEMORY: RefCell<Memory> = RefCell::new(Memory::default());
}

impl Memory {
    fn credentials(&mut self) -> &mut LruCache<String, Fresh<Option<Validated>>> {
        self.credentials.get_or_insert_with(|| {
            LruCache::new(NonZeroUsize::new(MAX_CREDENTIALS).unwrap_or(NonZeroUsize::MIN))
        })
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn bounded<V>(map: &mut HashMap<String, V>, keep: impl Fn(&V) -> bool) {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, v| keep(v));
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
    }
}

fn fresh<T: Clone>(entry: Option<&Fresh<T>>, now: f64, changed_ms: Option<f64>) -> Option<T> {
    let entry = entry?;
    let current = now - entry.asked_ms < FRESH_MS && changed_ms.is_none_or(|c| entry.asked_ms > c);
    current.then(|| entry.value.clone())
}

fn remember<T>(map: &mut HashMap<String, Fresh<T>>, key: String, value: T, asked_ms: f64) {
    let now = now_ms();
    bounded(map, |e| now - e.asked_ms < FRESH_MS);
    map.insert(key, Fresh { value, asked_ms });
}

fn revoked_here(memory: &Memory, key: &str) -> bool {
    memory
        .revoked_here
        .get(key)
        .is_some_and(|until| *until > now_ms())
}

fn mark_revoked(memory: &mut Memory, key: String) {
    let now = now_ms();
    bounded(&mut memory.revoked_here, |until| *until > now);
    memory.revoked_here.insert(key, now + LOCAL_REVOCATION_MS);
}

/// This request ended a session: tokens and the cookie naming it stop working here now.
pub fn session_revoked_here(handle: &str) {
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        m.credentials().pop(handle);
        m.session_revoked.remove(handle);
        mark_revoked(&mut m, format!("session:{handle}"));
    });
}

/// This request revoked an API key: it stops working here now.
pub fn api_key_revoked_here(key_id: &str) {
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        let stale: Vec<String> = m
            .credentials()
            .iter()
            .filter(|(_, e)| e.value.as_ref().and_then(|v| v.key_id.as_deref()) == Some(key_id))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            m.credentials().pop(&key);
        }
        mark_revoked(&mut m, format!("key:{key_id}"));
    });
}

/// This request changed a user's role: every answer about them given before now is stale.
pub fn role_changed_here(user_id: &str) {
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        let now = now_ms();
        bounded(&mut m.role_changed_here, |at| {
            now - *at < LOCAL_REVOCATION_MS
        });
        m.role_changed_here.insert(user_id.to_string(), now);
    });
}

// ---------------------------------------------------------------------------------------
// Tokens: verified here; revocation and role changes read from AUTH_CACHE (cached)

fn token_keys(env: &Env) -> Option<Rc<KeySet>> {
    let config = config::load(env);
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if let Some((seen, keys)) = &m.keys {
            // The same configuration (one pointer comparison per request), or a new one whose
            // TOKEN_KEYS did not change: no re-parse.
            if Rc::ptr_eq(seen, &config) || seen.token_keys == config.token_keys {
                let keys = keys.clone();
                m.keys = Some((config, keys.clone()));
                return keys;
            }
        }
        let keys = match KeySet::from_config(config.token_keys.as_deref().unwrap_or_default()) {
            Ok(keys) => Some(Rc::new(keys)),
            Err(e) => {
                // Logged once per configuration: every bearer token is refused until fixed.
                log::event(
                    "error",
                    "TOKEN_KEYS is missing or invalid",
                    &[("error", &e.to_string())],
                );
                None
            }
        };
        m.keys = Some((config, keys.clone()));
        keys
    })
}

async fn token_identity(env: &Env, token: &str) -> Result<Identity, ApiError> {
    let keys =
        token_keys(env).ok_or_else(|| ApiError::Unauthorized("tokens are not accepted".into()))?;
    let now_secs = (now_ms() / 1000.0).floor() as u64;
    let claims = verify(token, &keys, TOKEN_ISSUER, TOKEN_AUDIENCE, now_secs)
        .map_err(|e: TokenError| ApiError::Unauthorized(e.to_string()))?;

    let (revoked, role) = revocation_state(env, &claims.sid, &claims.sub).await?;
    if revoked {
        return Err(ApiError::Unauthorized("the session has ended".into()));
    }
    let role = role.unwrap_or_else(|| Role::parse(&claims.role));
    Ok(Identity {
        user_id: claims.sub,
        email: Some(claims.email),
        permissions: permissions(role),
        role,
        via: CredentialKind::Token,
        session_id: Some(claims.sid),
    })
}

fn permissions(role: Role) -> Vec<String> {
    role_permissions(role.as_str())
        .iter()
        .map(|p| (*p).to_string())
        .collect()
}

/// (is the session revoked?, the user's role if it changed since tokens were issued).
async fn revocation_state(
    env: &Env,
    sid: &str,
    user_id: &str,
) -> Result<(bool, Option<Role>), ApiError> {
    let now = now_ms();
    let (known_revoked, known_role) = MEMORY.with(|m| {
        let m = m.borrow();
        if revoked_here(&m, &format!("session:{sid}")) {
            return (Some(true), None);
        }
        let changed = m.role_changed_here.get(user_id).copied();
        (
            fresh(m.session_revoked.get(sid), now, None),
            fresh(m.user_role.get(user_id), now, changed),
        )
    });
    if known_revoked == Some(true) {
        return Ok((true, None));
    }
    if let (Some(revoked), Some(role)) = (known_revoked, known_role) {
        return Ok((revoked, role));
    }

    // A revocation list we cannot read means we cannot honour logout: fail closed.
    let kv = env
        .kv("AUTH_CACHE")
        .map_err(|_| ApiError::ServiceUnavailable("the revocation list is not available".into()))?;
    let unavailable =
        |_| ApiError::ServiceUnavailable("the revocation list is not available".into());
    let revoked_key = revoked_session_key(sid);
    let role_key = user_role_key(user_id);
    let kv_ms = config::load(env).kv_timeout_ms;
    let read = futures_util::future::join(
        async {
            match known_revoked {
                Some(r) => Ok(r),
                None => kv.get(&revoked_key).text().await.map(|v| v.is_some()),
            }
        },
        async {
            match known_role {
                Some(r) => Ok(r.map(|r| r.as_str().to_string())),
                None => kv.get(&role_key).text().await,
            }
        },
    );
    let (revoked, role) = deadline::upstream("kv AUTH_CACHE", kv_ms, read).await?;
    let revoked = revoked.map_err(unavailable)?;
    let role = role.map_err(unavailable)?.map(|r| Role::parse(&r));
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        remember(&mut m.session_revoked, sid.to_string(), revoked, now);
        remember(&mut m.user_role, user_id.to_string(), role, now);
    });
    Ok((revoked, role))
}

// ---------------------------------------------------------------------------------------
// API keys and sessions: validated by auth over RPC (cached)

async fn api_key_identity(env: &Env, key: &str) -> Result<Identity, ApiError> {
    // Not our format: no lookup needed to refuse it.
    if parse_api_key(key).is_none() {
        return Err(ApiError::Unauthorized("invalid API key".into()));
    }
    let cache_key = sha256_hex(key.as_bytes());
    validated(
        env,
        cache_key,
        CredentialKind::ApiKey,
        |client| async move { client.validate_api_key(key).await },
    )
    .await
    .ok_or_else(|| ApiError::Unauthorized("invalid API key".into()))?
}

async fn session_identity(env: &Env, id: &str) -> Result<Identity, ApiError> {
    if !is_session_id(id) {
        return Err(ApiError::Unauthorized("invalid session".into()));
    }
    // The handle is the session's stored name, so logout can find this entry by it.
    let handle = session_handle(id);
    validated(env, handle, CredentialKind::Session, |client| async move {
        client.validate_session(id).await
    })
    .await
    .ok_or_else(|| ApiError::Unauthorized("invalid or ended session".into()))?
}

/// The cached or freshly validated identity; `Some(Err)` when auth could not be asked,
/// `None` when the credential is not valid.
async fn validated<F, Fut>(
    env: &Env,
    cache_key: String,
    via: CredentialKind,
    ask: F,
) -> Option<Result<Identity, ApiError>>
where
    F: FnOnce(AuthClient) -> Fut,
    Fut: std::future::Future<Output = Result<Validation, rpc::RpcError>>,
{
    let now = now_ms();
    let cached = MEMORY.with(|m| cached_answer(&mut m.borrow_mut(), &cache_key, now));
    let answer = match cached {
        Some(answer) => answer,
        None => {
            let client = match AuthClient::from_env(env) {
                Ok(client) => client,
                Err(e) => return Some(Err(e.into())),
            };
            let auth_ms = config::load(env).service_timeout_ms;
            let validation = match deadline::upstream("auth", auth_ms, ask(client)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Some(Err(e.into())),
                Err(timeout) => return Some(Err(timeout)),
            };
            let answer = to_validated(validation, via);
            MEMORY.with(|m| {
                m.borrow_mut().credentials().put(
                    cache_key,
                    Fresh {
                        value: answer.clone(),
                        asked_ms: now,
                    },
                );
            });
            answer
        }
    };
    let answer = answer?;
    // A revocation performed here while the answer was cached or in flight wins.
    let revoked = MEMORY.with(|m| {
        let m = m.borrow();
        answer
            .key_id
            .as_ref()
            .is_some_and(|id| revoked_here(&m, &format!("key:{id}")))
            || answer
                .identity
                .session_id
                .as_ref()
                .is_some_and(|h| revoked_here(&m, &format!("session:{h}")))
    });
    (!revoked).then_some(Ok(answer.identity))
}

/// The fresh cached answer for a credential hash (marking it recently used), if any.
fn cached_answer(memory: &mut Memory, cache_key: &str, now: f64) -> Option<Option<Validated>> {
    let changed_for = |m: &Memory, e: &Fresh<Option<Validated>>| {
        e.value
            .as_ref()
            .and_then(|v| m.role_changed_here.get(&v.identity.user_id).copied())
    };
    let entry = memory.credentials.as_mut()?.get(cache_key)?;
    let (value, asked_ms) = (entry.value.clone(), entry.asked_ms);
    let entry = Fresh { value, asked_ms };
    let changed = changed_for(memory, &entry);
    fresh(Some(&entry), now, changed)
}

/// Whether identifying this request would ask auth: an API key or session id in our format
/// that this isolate holds no fresh answer for (not the admin key, not a token, not a
/// malformed credential, which are all decided here without a lookup).
pub fn needs_lookup(req: &Request, env: &Env) -> bool {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (authorization, api_key, cookie) = (
        header("authorization"),
        header("x-api-key"),
        header("cookie"),
    );
    let cache_key = match credential(
        authorization.as_deref(),
        api_key.as_deref(),
        cookie.as_deref(),
    ) {
        Ok(Some(Credential::ApiKey(key))) => {
            if admin_identity(env, key).is_some() || parse_api_key(key).is_none() {
                return false;
            }
            sha256_hex(key.as_bytes())
        }
        Ok(Some(Credential::Session(id))) if is_session_id(id) => session_handle(id),
        _ => return false,
    };
    let now = now_ms();
    MEMORY.with(|m| cached_answer(&mut m.borrow_mut(), &cache_key, now).is_none())
}

/// [`needs_lookup`] for a session id presented some other way (the console's cookie).
pub fn session_needs_lookup(id: &str) -> bool {
    let now = now_ms();
    is_session_id(id)
        && MEMORY.with(|m| cached_answer(&mut m.borrow_mut(), &session_handle(id), now).is_none())
}

fn to_validated(validation: Validation, via: CredentialKind) -> Option<Validated> {
    let user = validation.user.filter(|_| validation.valid)?;
    let role = Role::parse(&user.role);
    Some(Validated {
        identity: Identity {
            user_id: user.id,
            email: Some(user.email),
            role,
            permissions: user.permissions,
            via,
            session_id: validation.session_id,
        },
        key_id: validation.key_id,
    })
}
