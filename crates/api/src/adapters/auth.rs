//! The auth HTTP adapter (`/api/auth/...` on API hosts, host `auth.do`): maps the contract's
//! auth table to auth RPC calls. The pipeline lets every request in (the service is anon at
//! the door); this adapter enforces each route's level: signup and login are public, the rest
//! needs an identity, and role changes and the admin routes (users, their sessions and keys,
//! the audit trail) need an admin. The admin routes pass auth's answers through as JSON.
//! Through the console's prefix (`rc.console`) login and logout use the console's cookie.

use gateway::access::AccessLevel;
use gateway::problem::Problem;
use gateway::token::{
    credential, is_session_id, session_clear_cookie, session_handle, session_set_cookie, Credential,
};
use rpc::auth::{
    AuthResult, CreateKeyInput, LoginInput, LogoutInput, Refusal, RevokeKeyInput, SetRoleInput,
    SignupInput,
};
use rpc::AuthClient;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use worker::{Env, Method, Request, Response};

use crate::adapters::rpc::{deadline_ms, within};
use crate::console;
use crate::context::{CredentialKind, Identity, RequestCtx};
use crate::error::{json_response, ApiError};
use crate::identity;

/// Auth bodies are small; anything larger is refused before it is parsed.
const MAX_BODY_BYTES: usize = 64 * 1024;

enum AuthRoute<'a> {
    Signup,
    Login,
    Logout,
    Me,
    CreateKey,
    ListKeys,
    RevokeKey(&'a str),
    SetRole(&'a str),
    /// An admin RPC method, the user id and the key id from the path (none: the query).
    Admin(&'static str, Option<&'a str>, Option<&'a str>),
}

/// The whole exchange with auth runs within `RPC_TIMEOUT_MS`: a hanging auth service answers
/// 504 instead of holding the request (and the client) for ever. A write auth finishes after
/// the deadline still happens; every auth write is safe to retry.
pub async fn handle(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    path: &str,
) -> Result<Response, ApiError> {
    within(deadline_ms(env), exchange(req, env, rc, path))
        .await
        .unwrap_or(Err(ApiError::GatewayTimeout))
}

async fn exchange(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    path: &str,
) -> Result<Response, ApiError> {
    let route = match_route(&req.method(), path)?;
    let level = match route {
        AuthRoute::Signup | AuthRoute::Login => AccessLevel::Anon,
        AuthRoute::Me
        | AuthRoute::Logout
        | AuthRoute::CreateKey
        | AuthRoute::ListKeys
        | AuthRoute::RevokeKey(_) => AccessLevel::Authenticated,
        _ => AccessLevel::Admin,
    };
    rc.require(level)?;
    let client = AuthClient::from_env(env)?;
    let mut response = match route {
        AuthRoute::Signup => {
            let input: SignupInput = read_json(
                req,
                "the body must be {email, password, name?} with strings",
            )
            .await?;
            let answer = refused(client.signup(&rc.rpc_ctx(), &input).await?)?;
            json_response(201, &answer)
        }
        AuthRoute::Login => login(req, &client, rc).await?,
        AuthRoute::Logout => logout(req, &client, rc).await?,
        AuthRoute::Me => json_response(200, &json!({ "user": me(caller(rc)?) })),
        AuthRoute::CreateKey => {
            let input: CreateKeyInput =
                read_json(req, "the body must be {name} with a string").await?;
            let key = refused(client.create_api_key(&rc.rpc_ctx(), &input).await?)?;
            json_response(
                201,
                &json!({ "id": key.id, "name": key.name, "prefix": key.prefix, "key": key.key, "createdAt": key.created_at }),
            )
        }
        AuthRoute::ListKeys => {
            let list = refused(client.list_api_keys(&rc.rpc_ctx()).await?)?;
            json_response(200, &list)
        }
        AuthRoute::RevokeKey(id) => {
            let input = RevokeKeyInput { id: id.to_string() };
            let revoked = refused(client.revoke_api_key(&rc.rpc_ctx(), &input).await?)?;
            identity::api_key_revoked_here(&revoked.id);
            empty(204)
        }
        AuthRoute::SetRole(user_id) => {
            #[derive(serde::Deserialize)]
            struct RoleBody {
                role: String,
            }
            let body: RoleBody = read_json(req, "the body must be {role} with a string").await?;
            let input = SetRoleInput {
                user_id: user_id.to_string(),
                role: body.role,
            };
            let answer = refused(client.set_role(&rc.rpc_ctx(), &input).await?)?;
            identity::role_changed_here(&answer.user.id);
            json_response(200, &answer)
        }
        AuthRoute::Admin(method, user, key) => admin(req, &client, rc, method, user, key).await?,
    };
    // Answers here can hold tokens, keys and personal data: never cached anywhere.
    let _ = response.headers_mut().set("Cache-Control", "no-store");
    Ok(response)
}

fn match_route<'a>(method: &Method, path: &'a str) -> Result<AuthRoute<'a>, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (route, allowed): (Option<AuthRoute>, &[Method]) = match segments.as_slice() {
        ["signup"] => (
            (*method == Method::Post).then_some(AuthRoute::Signup),
            &[Method::Post],
        ),
        ["login"] => (
            (*method == Method::Post).then_some(AuthRoute::Login),
            &[Method::Post],
        ),
        ["logout"] => (
            (*method == Method::Post).then_some(AuthRoute::Logout),
            &[Method::Post],
        ),
        ["me"] => (
            (*method == Method::Get).then_some(AuthRoute::Me),
            &[Method::Get],
        ),
        ["keys"] => (
            match method {
                Method::Post => Some(AuthRoute::CreateKey),
                Method::Get => Some(AuthRoute::ListKeys),
                _ => None,
            },
            &[Method::Get, Method::Post],
        ),
        ["keys", id] if !id.is_empty() => (
            (*method == Method::Delete).then_some(AuthRoute::RevokeKey(id)),
            &[Method::Delete],
        ),
        ["users"] => (
            (*method == Method::Get).then_some(AuthRoute::Admin("findUsers", None, None)),
            &[Method::Get],
        ),
        ["audit"] => (
            (*method == Method::Get).then_some(AuthRoute::Admin("listAudit", None, None)),
            &[Method::Get],
        ),
        ["users", id, "sessions"] if !id.is_empty() => (
            (*method == Method::Delete).then_some(AuthRoute::Admin(
                "endUserSessions",
                Some(id),
                None,
            )),
            &[Method::Delete],
        ),
        ["users", id, "keys"] if !id.is_empty() => (
            (*method == Method::Get).then_some(AuthRoute::Admin("listUserKeys", Some(id), None)),
            &[Method::Get],
        ),
        ["users", id, "keys", key] if !id.is_empty() && !key.is_empty() => (
            (*method == Method::Delete).then_some(AuthRoute::Admin(
                "revokeUserKey",
                Some(id),
                Some(key),
            )),
            &[Method::Delete],
        ),
        ["users", id, "role"] if !id.is_empty() => (
            (*method == Method::Put).then_some(AuthRoute::SetRole(id)),
            &[Method::Put],
        ),
        _ => return Err(ApiError::NotFound("no such auth route".into())),
    };
    route.ok_or_else(|| {
        let allow: Vec<&str> = allowed.iter().map(Method::as_ref).collect();
        ApiError::Problem(Box::new(
            Problem::method_not_allowed().with_detail(format!("allowed: {}", allow.join(", "))),
        ))
    })
}

fn caller(rc: &RequestCtx) -> Result<&Identity, ApiError> {
    rc.identity
        .as_ref()
        .ok_or_else(|| ApiError::Unauthorized("this route needs a credential".into()))
}

fn me(identity: &Identity) -> Value {
    json!({
        "id": identity.user_id,
        "email": identity.email,
        "role": identity.role.as_str(),
        "permissions": identity.permissions,
    })
}

async fn login(req: &Request, client: &AuthClient, rc: &RequestCtx) -> Result<Response, ApiError> {
    let input: LoginInput =
        read_json(req, "the body must be {email, password} with strings").await?;
    let answer = refused(client.login(&rc.rpc_ctx(), &input).await?)?;
    let max_age = seconds_until(&answer.session_expires_at);
    // The console's sign-in hands out its cookie only: no token for script to hold.
    let (body, cookie) = if rc.console {
        (
            json!({ "expiresAt": answer.session_expires_at, "user": answer.user }),
            console::set_cookie(req, &answer.session, max_age),
        )
    } else {
        (
            json!({ "token": answer.token, "expiresAt": answer.expires_at, "user": answer.user }),
            session_set_cookie(&answer.session, max_age),
        )
    };
    let mut response = json_response(200, &body);
    response.headers_mut().set("Set-Cookie", &cookie)?;
    Ok(response)
}

fn seconds_until(iso: &str) -> u64 {
    let ms = js_sys::Date::parse(iso) - js_sys::Date::now();
    if ms.is_finite() && ms > 0.0 {
        (ms / 1000.0).floor() as u64
    } else {
        0
    }
}

/// Ends the session behind the caller's token or cookie, and the cookie's session if the
/// request carries one as well, then clears the cookie. An identity without a session (an
/// API key, the admin key) has nothing to end.
async fn logout(req: &Request, client: &AuthClient, rc: &RequestCtx) -> Result<Response, ApiError> {
    let identity = caller(rc)?;
    let own_session = match identity.via {
        CredentialKind::Token | CredentialKind::Session => identity.session_id.clone(),
        CredentialKind::ApiKey | CredentialKind::AdminKey => None,
    };
    // The cookie's session, if the request also carries one the identity did not come from.
    let cookie_header = req
        .headers()
        .get("cookie")
        .ok()
        .flatten()
        .filter(|_| !rc.console);
    let cookie_session = match cookie_header
        .as_deref()
        .map(|c| credential(None, None, Some(c)))
    {
        Some(Ok(Some(Credential::Session(id)))) if is_session_id(id) => Some(id.to_string()),
        _ => None,
    }
    .filter(|id| own_session.as_deref() != Some(session_handle(id).as_str()));
    if own_session.is_some() || cookie_session.is_some() {
        let input = LogoutInput {
            session_id: own_session.clone(),
            session: cookie_session,
        };
        let answer = refused(client.logout(&rc.rpc_ctx(), &input).await?)?;
        // Auth names what it revoked; the caller's own session is dead either way.
        for handle in answer.revoked.iter().chain(own_session.iter()) {
            identity::session_revoked_here(handle);
        }
    }
    let mut response = empty(204);
    let clear = if rc.console {
        console::set_cookie(req, "", 0)
    } else {
        session_clear_cookie()
    };
    response.headers_mut().set("Set-Cookie", &clear)?;
    Ok(response)
}

/// An admin route: the user (and key) from the path, or the query's parameters as strings
/// (auth validates them), go in; auth's answer comes back as JS and is passed through as
/// JSON text: no serde on either side, which keeps the api small.
async fn admin(
    req: &Request,
    client: &AuthClient,
    rc: &RequestCtx,
    method: &str,
    user: Option<&str>,
    key: Option<&str>,
) -> Result<Response, ApiError> {
    use js_sys::{Array, Reflect, JSON};
    use wasm_bindgen::{JsCast, JsValue};
    let input = js_sys::Object::new();
    let set = |k: &str, v: &str| {
        let _ = Reflect::set(&input, &JsValue::from_str(k), &JsValue::from_str(v));
    };
    match user {
        Some(user) => {
            set("userId", user);
            if let Some(key) = key {
                set("keyId", key);
            }
        }
        None => {
            for (k, v) in req.url()?.query_pairs() {
                set(&k, &v);
            }
        }
    }
    let answer = client.call_raw(method, &rc.rpc_ctx(), input.into()).await?;
    let field = |o: &JsValue, k: &str| Reflect::get(o, &JsValue::from_str(k)).ok();
    let take = |k: &str| {
        let value = field(&answer, k);
        let _ = Reflect::delete_property(
            answer.unchecked_ref::<js_sys::Object>(),
            &JsValue::from_str(k),
        );
        value
    };
    if take("ok").and_then(|ok| ok.as_bool()) != Some(true) {
        let error = field(&answer, "error").unwrap_or(JsValue::UNDEFINED);
        let status = field(&error, "status").and_then(|s| s.as_f64());
        return refused(Err(Refusal {
            status: status.map_or(0, |s| s as u16),
            detail: field(&error, "detail")
                .and_then(|d| d.as_string())
                .unwrap_or_default(),
        }));
    }
    // Ended sessions' handles are for this isolate's cache only.
    if let Some(handles) = take("revoked").filter(JsValue::is_array) {
        for handle in Array::from(&handles).iter().filter_map(|h| h.as_string()) {
            identity::session_revoked_here(&handle);
        }
    }
    if let Some(key) = key {
        identity::api_key_revoked_here(key);
        return Ok(empty(204));
    }
    let body = JSON::stringify(&answer)
        .ok()
        .and_then(|b| b.as_string())
        .ok_or_else(|| ApiError::BadGateway("auth".into()))?;
    let mut response = Response::builder()
        .with_status(200)
        .fixed(body.into_bytes());
    response
        .headers_mut()
        .set("Content-Type", "application/json")?;
    Ok(response)
}

fn empty(status: u16) -> Response {
    Response::builder().with_status(status).empty()
}

/// A refusal from auth becomes the matching problem.
fn refused<T>(result: AuthResult<T>) -> Result<T, ApiError> {
    result.map_err(|Refusal { status, detail }| match status {
        400 => ApiError::BadRequest(detail),
        401 => ApiError::Unauthorized(detail),
        403 => ApiError::Forbidden(detail),
        404 => ApiError::NotFound(detail),
        409 => ApiError::Conflict(detail),
        _ if (400..500).contains(&status) => {
            ApiError::Problem(Box::new(Problem::new(status, detail)))
        }
        _ => ApiError::BadGateway("auth".into()),
    })
}

/// The body as `T`: over 64 KiB is 413; not JSON, not an object, or the wrong shape is 400
/// (with `shape` as the detail: serde's own messages would echo values, such as passwords).
async fn read_json<T: DeserializeOwned>(req: &Request, shape: &str) -> Result<T, ApiError> {
    let bytes = crate::body::read_limited(req, MAX_BODY_BYTES).await?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::BadRequest("the body is not valid JSON".into()))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest(shape.to_string()));
    }
    serde_json::from_value(value).map_err(|_| ApiError::BadRequest(shape.to_string()))
}
