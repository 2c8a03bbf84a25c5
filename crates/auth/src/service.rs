//! What each auth RPC method does: users, passwords, sessions, API keys, tokens, roles.
//! Refusals (`Failure::Refused`) are answers the caller maps to 400/401/403/404/409; a
//! `Failure::Fault` is an internal error (D1, KV or WebCrypto failing, a misconfiguration).

use std::cell::RefCell;
use std::rc::Rc;

use gateway::token::{
    self, check_new_password, format_api_key, format_session_id, is_session_handle, is_session_id,
    parse_api_key, parse_role, role_permissions, session_handle, sha256_hex, Claims, KeySet,
    PasswordRecord, TokenError, ACCESS_TOKEN_TTL_SECS, API_KEY_ID_LEN, PASSWORD_HASH_BYTES,
    PASSWORD_SALT_BYTES, PBKDF2_ITERATIONS, SESSION_ID_BYTES, TOKEN_AUDIENCE, TOKEN_ISSUER,
};
use gateway::waitlist::normalize_email;
use rpc::auth::{
    is_key_id, is_user_id, page_limit, revoked_session_key, user_role_key, ApiKeyInfo, AuditEntry,
    AuditInput, AuditPage, AuthUser, CreateKeyInput, CreatedKey, EndedSessions, FindUsersInput,
    KeyList, LoginAnswer, LoginInput, LogoutAnswer, LogoutInput, Refusal, RevokeKeyInput,
    RevokeUserKeyInput, RevokedKey, SetRoleInput, SignupInput, UserAnswer, UserIdInput, UserKeys,
    UserPage, Validation,
};
use rpc::Ctx;
use worker::D1Database;

use crate::crypto::{pbkdf2_sha256, random};
use crate::error::{Failure, Fault, Outcome};
use crate::store::{
    self, all, batch, changes, first, number, opt_text, rows, statement, text, write, AuditRow,
    Credentials, KeyInfoRow, KeyRow, SessionRow, UserRow, USER_COLUMNS,
};

/// Sessions (the cookie) last a week; access tokens an hour, never past their session.
const SESSION_TTL_SECS: u64 = 7 * 24 * 3600;
/// Revocation records must outlive every token they affect (KV's minimum TTL is 60 s).
const REVOCATION_TTL_SECS: u64 = ACCESS_TOKEN_TTL_SECS + 300;
/// `lastUsedAt` is written at most this often per key.
const LAST_USED_EVERY_MS: f64 = 60_000.0;
const MAX_NAME_CHARS: usize = 100;
const MAX_ACTIVE_KEYS: usize = 100;

fn refuse<T>(status: u16, detail: &str) -> Outcome<T> {
    Err(Failure::Refused(Refusal::new(status, detail)))
}

// ---------------------------------------------------------------------------------------
// Time and ids

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn now_secs() -> u64 {
    (now_ms() / 1000.0).floor() as u64
}

fn iso(ms: f64) -> String {
    String::from(js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms)).to_iso_string())
}

fn new_user_id() -> Result<String, Failure> {
    let entropy = u128::from_be_bytes(random::<16>()?);
    Ok(ulid::Ulid::from_parts(now_ms() as u64, entropy).to_string())
}

/// 12 alphanumerics: the API key's lookup id (public; the secret is separate).
fn new_key_id() -> Result<String, Failure> {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // Rejection sampling keeps the characters uniform: 248 = 4 * 62.
    let mut id = String::with_capacity(API_KEY_ID_LEN);
    while id.len() < API_KEY_ID_LEN {
        for b in random::<32>()? {
            if b < 248 && id.len() < API_KEY_ID_LEN {
                id.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(id)
}

fn user_of(row: UserRow) -> AuthUser {
    AuthUser {
        permissions: role_permissions(&row.role)
            .iter()
            .map(|p| (*p).to_string())
            .collect(),
        id: row.id,
        email: row.email,
        role: row.role,
        name: row.name,
        created_at: Some(row.created_at),
    }
}

// ---------------------------------------------------------------------------------------
// Configuration read from the env (parsed once per isolate, re-parsed if it changes)

/// The raw `TOKEN_KEYS` last seen and what it parsed to.
type ParsedKeys = Option<(String, Result<Rc<KeySet>, TokenError>)>;

thread_local! {
    static KEYS: RefCell<ParsedKeys> = const { RefCell::new(None) };
}

fn signing_keys() -> Result<Rc<KeySet>, Fault> {
    let env = rpc::sys::importable_env();
    let raw = env
        .secret("TOKEN_KEYS")
        .map(|s| s.to_string())
        .or_else(|_| env.var("TOKEN_KEYS").map(|v| v.to_string()))
        .map_err(|_| Fault("TOKEN_KEYS is not configured".into()))?;
    KEYS.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(seen, _)| *seen != raw) {
            let parsed = KeySet::from_config(&raw).map(Rc::new);
            *cell = Some((raw, parsed));
        }
        match cell.as_ref() {
            Some((_, Ok(keys))) => Ok(keys.clone()),
            Some((_, Err(e))) => Err(Fault(e.to_string())),
            None => Err(Fault("TOKEN_KEYS is not configured".into())),
        }
    })
}

fn revocations() -> Result<worker::kv::KvStore, Fault> {
    rpc::sys::importable_env()
        .kv("AUTH_CACHE")
        .map_err(|_| Fault("the KV binding AUTH_CACHE is not configured".into()))
}

async fn put_revocation_record(key: &str, value: &str) -> Result<(), Fault> {
    revocations()?
        .put(key, value)
        .map_err(|e| Fault(format!("KV: {e}")))?
        .expiration_ttl(REVOCATION_TTL_SECS)
        .execute()
        .await
        .map_err(|e| Fault(format!("KV: {e}")))
}

/// A failure the call survives (best-effort bookkeeping): logged, never answered.
fn warn(message: &str, error: &str) {
    let line = serde_json::json!({
        "level": "warn",
        "message": message,
        "service": "auth",
        "error": error,
    });
    worker::console_warn!("{line}");
}

// ---------------------------------------------------------------------------------------
// Passwords

async fn derive(password: &str, salt: &[u8], iterations: u32) -> Result<Vec<u8>, Failure> {
    Ok(pbkdf2_sha256(password.as_bytes(), salt, iterations, PASSWORD_HASH_BYTES).await?)
}

async fn hash_password(password: &str) -> Result<String, Failure> {
    let salt = random::<PASSWORD_SALT_BYTES>()?;
    let hash = derive(password, &salt, PBKDF2_ITERATIONS).await?;
    Ok(PasswordRecord {
        iterations: PBKDF2_ITERATIONS,
        salt: salt.to_vec(),
        hash,
    }
    .encode())
}

/// `stored` is `None` for an unknown email: a dummy record is derived anyway, so the answer
/// takes as long as for a wrong password and cannot tell the two apart.
async fn password_matches(password: &str, stored: Option<&str>) -> Result<bool, Failure> {
    let dummy = PasswordRecord {
        iterations: PBKDF2_ITERATIONS,
        salt: vec![0x5a; PASSWORD_SALT_BYTES],
        hash: vec![0; PASSWORD_HASH_BYTES],
    };
    let parsed = stored.and_then(PasswordRecord::parse);
    let corrupt = stored.is_some() && parsed.is_none();
    let record = parsed.unwrap_or(dummy);
    let derived = derive(password, &record.salt, record.iterations).await?;
    if corrupt {
        return Err(Fault("a stored password record is unreadable".into()).into());
    }
    Ok(stored.is_some() && record.matches(&derived))
}

// ---------------------------------------------------------------------------------------
// Methods

fn caller(ctx: &Ctx) -> Outcome<&str> {
    match ctx.user_id.as_deref() {
        Some(id) if !id.is_empty() => Ok(id),
        _ => refuse(401, "this call needs an authenticated caller"),
    }
}

fn caller_is_admin(ctx: &Ctx) -> bool {
    ctx.role.as_deref() == Some(token::ROLE_ADMIN)
}

async fn user_by_id(db: &D1Database, id: &str) -> Result<Option<UserRow>, Fault> {
    first(
        db,
        &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1"),
        &[text(id)],
    )
    .await
}

pub async fn signup(input: SignupInput) -> Outcome<UserAnswer> {
    let email = match normalize_email(&input.email) {
        Ok(email) => email,
        Err(e) => return refuse(400, &e.to_string()),
    };
    if let Err(why) = check_new_password(&input.password) {
        return refuse(400, why);
    }
    let name = match input.name.as_deref().map(str::trim) {
        Some(n) if n.chars().count() > MAX_NAME_CHARS => {
            return refuse(400, "the name must be at most 100 characters")
        }
        Some(n) if n.chars().any(char::is_control) => {
            return refuse(400, "the name must not hold control characters")
        }
        Some("") | None => None,
        Some(n) => Some(n.to_string()),
    };
    let db = store::database()?;
    let exists: Option<serde_json::Value> = first(
        &db,
        "SELECT 1 AS taken FROM users WHERE email = ?1",
        &[text(&email)],
    )
    .await?;
    if exists.is_some() {
        return refuse(409, "an account with this email already exists");
    }
    let password_hash = hash_password(&input.password).await?;
    let id = new_user_id()?;
    let created = iso(now_ms());
    let inserted = write(
        &db,
        "INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'user', ?5, ?5)",
        &[
            text(&id),
            text(&email),
            opt_text(name.as_deref()),
            text(&password_hash),
            text(&created),
        ],
    )
    .await;
    match inserted {
        Ok(_) => {}
        // Two sign-ups raced past the check: the index decides.
        Err(f) if store::is_unique_violation(&f) => {
            return refuse(409, "an account with this email already exists")
        }
        Err(f) => return Err(f.into()),
    }
    Ok(UserAnswer {
        user: user_of(UserRow {
            id,
            email,
            name,
            role: token::ROLE_USER.into(),
            created_at: created,
        }),
    })
}

pub async fn login(input: LoginInput) -> Outcome<LoginAnswer> {
    const BAD_CREDENTIALS: &str = "invalid email or password";
    // A malformed address or an oversized password can match no account: refuse before any
    // lookup (this reveals nothing the caller does not already know).
    let Ok(email) = normalize_email(&input.email) else {
        return refuse(401, BAD_CREDENTIALS);
    };
    if input.password.len() > token::MAX_PASSWORD_BYTES {
        return refuse(401, BAD_CREDENTIALS);
    }
    let keys = signing_keys()?;
    let db = store::database()?;
    let account: Option<Credentials> = first(
        &db,
        &format!("SELECT u.password_hash, {USER_COLUMNS} FROM users u WHERE u.email = ?1"),
        &[text(&email)],
    )
    .await?;
    let stored = account.as_ref().map(|a| a.password_hash.as_str());
    if !password_matches(&input.password, stored).await? {
        return refuse(401, BAD_CREDENTIALS);
    }
    let Some(Credentials { user, .. }) = account else {
        return refuse(401, BAD_CREDENTIALS);
    };

    let session = format_session_id(&random::<SESSION_ID_BYTES>()?);
    let handle = session_handle(&session);
    let now = now_secs();
    let session_expires = now + SESSION_TTL_SECS;
    write(
        &db,
        "INSERT INTO sessions (handle, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        &[
            text(&handle),
            text(&user.id),
            text(&iso(now_ms())),
            number(session_expires as f64),
        ],
    )
    .await?;
    let claims = Claims {
        sub: user.id.clone(),
        sid: handle.clone(),
        role: user.role.clone(),
        email: user.email.clone(),
        iss: TOKEN_ISSUER.into(),
        aud: TOKEN_AUDIENCE.into(),
        iat: now,
        exp: (now + ACCESS_TOKEN_TTL_SECS).min(session_expires),
    };
    let token = token::sign(&claims, &keys.current);
    Ok(LoginAnswer {
        token,
        expires_at: iso(claims.exp as f64 * 1000.0),
        user: user_of(user),
        session_id: handle,
        session,
        session_expires_at: iso(session_expires as f64 * 1000.0),
    })
}

pub async fn logout(ctx: &Ctx, input: LogoutInput) -> Outcome<LogoutAnswer> {
    let user_id = caller(ctx)?;
    if input.session_id.is_none() && input.session.is_none() {
        return refuse(
            400,
            "name a session: sessionId (a handle) or session (an id)",
        );
    }
    let db = store::database()?;
    let mut targets = Vec::new();
    if let Some(handle) = input.session_id.as_deref() {
        if !is_session_handle(handle) {
            return refuse(400, "sessionId is not a session handle");
        }
        // Only the caller's own sessions (any for an admin); others are left alone.
        let owner: Option<serde_json::Value> = first(
            &db,
            "SELECT user_id FROM sessions WHERE handle = ?1 AND (user_id = ?2 OR ?3 = 1)",
            &[
                text(handle),
                text(user_id),
                number(if caller_is_admin(ctx) { 1.0 } else { 0.0 }),
            ],
        )
        .await?;
        if owner.is_some() {
            targets.push(handle.to_string());
        }
    }
    if let Some(session) = input.session.as_deref() {
        // Holding the id proves the right to end it, whoever it belongs to.
        if !is_session_id(session) {
            return refuse(400, "session is not a session id");
        }
        let handle = session_handle(session);
        if !targets.contains(&handle) {
            targets.push(handle);
        }
    }
    let mut revoked = Vec::new();
    for handle in targets {
        // KV first: if the D1 write then fails the session is dead for tokens already, and
        // the caller's retry finishes the job (logout is idempotent).
        put_revocation_record(&revoked_session_key(&handle), "1").await?;
        write(
            &db,
            "UPDATE sessions SET revoked_at = ?2 WHERE handle = ?1 AND revoked_at IS NULL",
            &[text(&handle), text(&iso(now_ms()))],
        )
        .await?;
        revoked.push(handle);
    }
    Ok(LogoutAnswer { revoked })
}

fn clean_key_name(name: &str) -> Outcome<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return refuse(400, "name must be 1-100 characters");
    }
    if name.chars().any(char::is_control) {
        return refuse(400, "name must not hold control characters");
    }
    Ok(name.to_string())
}

pub async fn create_api_key(ctx: &Ctx, input: CreateKeyInput) -> Outcome<CreatedKey> {
    let user_id = caller(ctx)?;
    let name = clean_key_name(&input.name)?;
    let db = store::database()?;
    if user_by_id(&db, user_id).await?.is_none() {
        return refuse(403, "this identity has no account to own API keys");
    }
    let created = iso(now_ms());
    // A lookup-id collision (62^12 ids) is astronomically rare; one retry covers it.
    for _ in 0..2 {
        let id = new_key_id()?;
        let Some(key) = format_api_key(&id, &random::<32>()?) else {
            return Err(Fault("could not format an API key".into()).into());
        };
        let prefix = format!("{}{id}", token::API_KEY_PREFIX);
        // The cap is checked inside the INSERT: one statement, so concurrent creations are
        // serialised by D1 and at most MAX_ACTIVE_KEYS are ever active (a separate count
        // first would let every racer see room).
        let inserted = write(
            &db,
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
             WHERE (SELECT COUNT(*) FROM api_keys WHERE user_id = ?2 AND revoked_at IS NULL) < ?7",
            &[
                text(&id),
                text(user_id),
                text(&name),
                text(&prefix),
                text(&sha256_hex(key.as_bytes())),
                text(&created),
                number(MAX_ACTIVE_KEYS as f64),
            ],
        )
        .await;
        match inserted {
            Ok(0) => {
                return refuse(
                    409,
                    "at most 100 active API keys per account: revoke one first",
                )
            }
            Ok(_) => {
                return Ok(CreatedKey {
                    id,
                    name,
                    prefix,
                    key,
                    created_at: created,
                })
            }
            Err(f) if store::is_unique_violation(&f) => continue,
            Err(f) => return Err(f.into()),
        }
    }
    Err(Fault("API key id collided twice".into()).into())
}

pub async fn list_api_keys(ctx: &Ctx) -> Outcome<KeyList> {
    let user_id = caller(ctx)?;
    let db = store::database()?;
    Ok(KeyList {
        keys: active_keys(&db, user_id).await?,
    })
}

pub async fn revoke_api_key(ctx: &Ctx, input: RevokeKeyInput) -> Outcome<RevokedKey> {
    let user_id = caller(ctx)?;
    let db = store::database()?;
    let now = iso(now_ms());
    let admin = number(if caller_is_admin(ctx) { 1.0 } else { 0.0 });
    // An admin revoking someone else's key is audited, in the same transaction.
    let audit = statement(
        &db,
        &format!(
            "INSERT INTO audit ({AUDIT_COLUMNS}) SELECT ?5, ?3, ?2, 'revokeKey', user_id, id, \
             {KEY_JSON}, json_object('revoked', json('true')), ?6 FROM api_keys \
             WHERE id = ?1 AND revoked_at IS NULL AND user_id <> ?2 AND ?4 = 1"
        ),
        &[
            text(&input.id),
            text(user_id),
            text(&now),
            admin.clone(),
            text(&audit_id()?),
            text(&ctx.request_id),
        ],
    )?;
    // Another user's key answers exactly like a missing one.
    let revoke = statement(
        &db,
        "UPDATE api_keys SET revoked_at = ?3 \
         WHERE id = ?1 AND revoked_at IS NULL AND (user_id = ?2 OR ?4 = 1)",
        &[text(&input.id), text(user_id), text(&now), admin],
    )?;
    let results = batch(&db, vec![audit, revoke]).await?;
    let changed = results.get(1).map(changes).transpose()?.unwrap_or(0);
    if changed == 0 {
        return refuse(404, "no such API key");
    }
    Ok(RevokedKey { id: input.id })
}

pub async fn set_role(ctx: &Ctx, input: SetRoleInput) -> Outcome<UserAnswer> {
    caller(ctx)?;
    if !caller_is_admin(ctx) {
        return refuse(403, "only an admin can change roles");
    }
    let Some(role) = parse_role(&input.role) else {
        return refuse(400, "role must be \"user\" or \"admin\"");
    };
    let db = store::database()?;
    let Some(mut user) = user_by_id(&db, &input.user_id).await? else {
        return refuse(404, "no such user");
    };
    // Tokens already issued carry the old role; the KV record overrides it. The order makes
    // every failure leave tokens granting at most what D1 holds: a demotion restricts tokens
    // (KV) before D1 changes, and puts the record back if the D1 write fails; a promotion
    // changes D1 first and only then lets tokens carry the higher role.
    let key = user_role_key(&user.id);
    if role == user.role {
        // Nothing changes in D1; the record still reasserts it for old tokens.
        put_revocation_record(&key, role).await?;
    } else if role == token::ROLE_USER {
        put_revocation_record(&key, role).await?;
        if let Err(fault) = store_role(&db, ctx, &user.id, role).await {
            if let Err(undo) = put_revocation_record(&key, &user.role).await {
                // Tokens stay restricted below what D1 holds: safe, and a retry finishes it.
                warn("setRole: restoring the role record failed", &undo.0);
            }
            return Err(fault.into());
        }
    } else {
        store_role(&db, ctx, &user.id, role).await?;
        // D1 holds the higher role; if the record cannot follow, tokens keep granting less
        // (safe) and the caller is told to retry: the retry (same role) writes the record.
        put_revocation_record(&key, role).await?;
    }
    user.role = role.to_string();
    Ok(UserAnswer {
        user: user_of(user),
    })
}

/// The role change and its audit row, one transaction; `before` is read inside it.
async fn store_role(db: &D1Database, ctx: &Ctx, user_id: &str, role: &str) -> Result<(), Fault> {
    let now = iso(now_ms());
    let audit = statement(
        db,
        &format!(
            "INSERT INTO audit ({AUDIT_COLUMNS}) SELECT ?4, ?3, ?5, 'setRole', id, NULL, \
             json_object('role', role), json_object('role', ?2), ?6 FROM users \
             WHERE id = ?1 AND role <> ?2"
        ),
        &[
            text(user_id),
            text(role),
            text(&now),
            text(&audit_id()?),
            text(actor(ctx)),
            text(&ctx.request_id),
        ],
    )?;
    let update = statement(
        db,
        "UPDATE users SET role = ?2, updated_at = ?3 WHERE id = ?1",
        &[text(user_id), text(role), text(&now)],
    )?;
    batch(db, vec![audit, update]).await.map(drop)
}

// ---------------------------------------------------------------------------------------
// Admin: finding users, ending a user's sessions, another user's keys, the audit trail.
// Every change here writes its audit row in the same D1 batch as the change itself.

const AUDIT_COLUMNS: &str = "id, at, actor, action, user_id, key_id, before, after, request_id";
/// A key as the audit shows it (never its hash).
const KEY_JSON: &str = "json_object('keyId', id, 'name', name, 'prefix', prefix)";
const MAX_QUERY_CHARS: usize = 254;

fn admin(ctx: &Ctx) -> Outcome<()> {
    caller(ctx)?;
    if !caller_is_admin(ctx) {
        return refuse(403, "only an admin can do this");
    }
    Ok(())
}

/// The admin's user id as the audit records it (`admin` for the ADMIN_API_KEY).
fn actor(ctx: &Ctx) -> &str {
    ctx.user_id.as_deref().unwrap_or("unknown")
}

/// A ULID: audit rows sort by time.
fn audit_id() -> Result<String, Fault> {
    let entropy = random::<16>().map_err(|e| Fault(e.to_string()))?;
    Ok(ulid::Ulid::from_parts(now_ms() as u64, u128::from_be_bytes(entropy)).to_string())
}

fn limit_of(limit: Option<&serde_json::Value>) -> Outcome<usize> {
    page_limit(limit).or_else(|why| refuse(400, why))
}

fn user_id_of(id: &str) -> Outcome<&str> {
    if is_user_id(id) {
        Ok(id)
    } else {
        refuse(400, "userId is not a user id (a ULID)")
    }
}

async fn existing_user(db: &D1Database, id: &str) -> Outcome<UserRow> {
    match user_by_id(db, id).await? {
        Some(user) => Ok(user),
        None => refuse(404, "no such user"),
    }
}

pub async fn find_users(ctx: &Ctx, input: FindUsersInput) -> Outcome<UserPage> {
    admin(ctx)?;
    let limit = limit_of(input.limit.as_ref())?;
    let q = input.q.as_deref().unwrap_or("").trim().to_lowercase();
    if q.chars().count() > MAX_QUERY_CHARS || q.chars().any(char::is_control) {
        return refuse(
            400,
            "q must be at most 254 characters, without control characters",
        );
    }
    let prefix = match input.mode.as_deref() {
        None | Some("substring") => false,
        Some("prefix") => true,
        Some(_) => return refuse(400, "match must be \"substring\" or \"prefix\""),
    };
    if let Some(c) = input.cursor.as_deref() {
        if c.is_empty() || c.len() > MAX_QUERY_CHARS {
            return refuse(400, "cursor is not a cursor from this listing");
        }
    }
    let matcher = if prefix {
        "substr(u.email, 1, length(?1)) = ?1"
    } else {
        "instr(u.email, ?1) > 0"
    };
    let db = store::database()?;
    let mut found: Vec<UserRow> = all(
        &db,
        &format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE {matcher} AND (?2 IS NULL OR u.email > ?2) \
             ORDER BY u.email LIMIT ?3"
        ),
        &[
            text(&q),
            opt_text(input.cursor.as_deref()),
            number((limit + 1) as f64),
        ],
    )
    .await?;
    let next_cursor = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|u| u.email.clone())
    } else {
        None
    };
    Ok(UserPage {
        users: found.into_iter().map(user_of).collect(),
        next_cursor,
    })
}

#[derive(serde::Deserialize)]
struct Handle {
    handle: String,
    created_at: String,
}

/// Sessions whose access tokens may still be alive need a KV record (tokens are checked in
/// the api against KV, not D1); older ones are dead for tokens already, and their cookies are
/// validated against D1.
async fn revoke_tokens_of(handles: &[Handle]) -> Result<(), Fault> {
    let horizon = now_ms() - (REVOCATION_TTL_SECS as f64) * 1000.0;
    for h in handles {
        let created = js_sys::Date::parse(&h.created_at);
        if !created.is_finite() || created >= horizon {
            put_revocation_record(&revoked_session_key(&h.handle), "1").await?;
        }
    }
    Ok(())
}

pub async fn end_user_sessions(ctx: &Ctx, input: UserIdInput) -> Outcome<EndedSessions> {
    admin(ctx)?;
    let user_id = user_id_of(&input.user_id)?;
    let db = store::database()?;
    existing_user(&db, user_id).await?;
    let now_s = number(now_secs() as f64);
    let live: Vec<Handle> = all(
        &db,
        "SELECT handle, created_at FROM sessions \
         WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
        &[text(user_id), now_s.clone()],
    )
    .await?;
    // KV first (as logout): if D1 then fails, tokens are dead already and a retry finishes.
    revoke_tokens_of(&live).await?;
    let now = iso(now_ms());
    let audit = statement(
        &db,
        &format!(
            "INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?3, ?4, ?5, 'endSessions', ?1, NULL, \
             json_object('liveSessions', (SELECT COUNT(*) FROM sessions \
               WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2)), \
             json_object('liveSessions', 0), ?6)"
        ),
        &[
            text(user_id),
            now_s.clone(),
            text(&audit_id()?),
            text(&now),
            text(actor(ctx)),
            text(&ctx.request_id),
        ],
    )?;
    let end = statement(
        &db,
        "UPDATE sessions SET revoked_at = ?3 \
         WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 \
         RETURNING handle, created_at",
        &[text(user_id), now_s, text(&now)],
    )?;
    let results = batch(&db, vec![audit, end]).await?;
    let ended: Vec<Handle> = match results.get(1) {
        Some(r) => rows(r)?,
        None => Vec::new(),
    };
    // A session created between the read and the batch: its tokens get their record too.
    let late: Vec<Handle> = ended
        .iter()
        .filter(|e| !live.iter().any(|l| l.handle == e.handle))
        .map(|e| Handle {
            handle: e.handle.clone(),
            created_at: e.created_at.clone(),
        })
        .collect();
    revoke_tokens_of(&late).await?;
    Ok(EndedSessions {
        user_id: user_id.to_string(),
        ended: ended.len() as u64,
        revoked: ended.into_iter().map(|e| e.handle).collect(),
    })
}

pub async fn list_user_keys(ctx: &Ctx, input: UserIdInput) -> Outcome<UserKeys> {
    admin(ctx)?;
    let user_id = user_id_of(&input.user_id)?;
    let db = store::database()?;
    existing_user(&db, user_id).await?;
    let keys = active_keys(&db, user_id).await?;
    Ok(UserKeys {
        user_id: user_id.to_string(),
        keys,
    })
}

async fn active_keys(db: &D1Database, user_id: &str) -> Result<Vec<ApiKeyInfo>, Fault> {
    let rows: Vec<KeyInfoRow> = all(
        db,
        "SELECT id, name, prefix, created_at, last_used_at FROM api_keys \
         WHERE user_id = ?1 AND revoked_at IS NULL ORDER BY created_at, id",
        &[text(user_id)],
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ApiKeyInfo {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        })
        .collect())
}

pub async fn revoke_user_key(ctx: &Ctx, input: RevokeUserKeyInput) -> Outcome<RevokedKey> {
    admin(ctx)?;
    let user_id = user_id_of(&input.user_id)?;
    if !is_key_id(&input.key_id) {
        return refuse(400, "keyId is not an API key id (12 letters and digits)");
    }
    let db = store::database()?;
    let now = iso(now_ms());
    let args = [
        text(&input.key_id),
        text(user_id),
        text(&now),
        text(&audit_id()?),
        text(actor(ctx)),
        text(&ctx.request_id),
    ];
    let audit = statement(
        &db,
        &format!(
            "INSERT INTO audit ({AUDIT_COLUMNS}) SELECT ?4, ?3, ?5, 'revokeKey', user_id, id, \
             {KEY_JSON}, json_object('revoked', json('true')), ?6 FROM api_keys \
             WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL"
        ),
        &args,
    )?;
    let revoke = statement(
        &db,
        "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        &args[..3],
    )?;
    let results = batch(&db, vec![audit, revoke]).await?;
    if results.get(1).map(changes).transpose()?.unwrap_or(0) == 0 {
        return refuse(404, "this user has no such active API key");
    }
    Ok(RevokedKey { id: input.key_id })
}

pub async fn list_audit(ctx: &Ctx, input: AuditInput) -> Outcome<AuditPage> {
    admin(ctx)?;
    let limit = limit_of(input.limit.as_ref())?;
    if let Some(id) = input.user_id.as_deref() {
        user_id_of(id)?;
    }
    if input
        .actor
        .as_deref()
        .is_some_and(|a| a.is_empty() || a.len() > 64)
    {
        return refuse(400, "actor must be a user id or \"admin\"");
    }
    if input.cursor.as_deref().is_some_and(|c| !is_user_id(c)) {
        return refuse(400, "cursor is not a cursor from this listing");
    }
    let db = store::database()?;
    let mut found: Vec<AuditRow> = all(
        &db,
        &format!(
            "SELECT {AUDIT_COLUMNS} FROM audit WHERE (?1 IS NULL OR user_id = ?1) \
             AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
        ),
        &[
            opt_text(input.user_id.as_deref()),
            opt_text(input.actor.as_deref()),
            opt_text(input.cursor.as_deref()),
            number((limit + 1) as f64),
        ],
    )
    .await?;
    let next_cursor = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|a| a.id.clone())
    } else {
        None
    };
    let json = |t: Option<String>| t.and_then(|t| serde_json::from_str(&t).ok());
    Ok(AuditPage {
        items: found
            .into_iter()
            .map(|a| AuditEntry {
                id: a.id,
                at: a.at,
                actor: a.actor,
                action: a.action,
                user_id: a.user_id,
                key_id: a.key_id,
                before: json(a.before),
                after: json(a.after),
                request_id: a.request_id,
            })
            .collect(),
        next_cursor,
    })
}

// ---------------------------------------------------------------------------------------
// Validation (authoritative: always reads D1)

const SESSION_SELECT: &str = "SELECT s.expires_at, s.revoked_at, \
     u.id, u.email, u.name, u.role, u.created_at \
     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.handle = ?1";

async fn live_session(handle: &str) -> Result<Option<UserRow>, Fault> {
    let db = store::database()?;
    let row: Option<SessionRow> = first(&db, SESSION_SELECT, &[text(handle)]).await?;
    Ok(row
        .filter(|s| s.revoked_at.is_none() && s.expires_at > now_secs() as f64)
        .map(|s| s.user))
}

fn valid(user: UserRow, session_id: Option<String>, key_id: Option<String>) -> Validation {
    Validation {
        valid: true,
        user: Some(user_of(user)),
        session_id,
        key_id,
    }
}

pub async fn validate_token(token_text: &str) -> Result<Validation, Fault> {
    let keys = signing_keys()?;
    let Ok(claims) = token::verify(token_text, &keys, TOKEN_ISSUER, TOKEN_AUDIENCE, now_secs())
    else {
        return Ok(Validation::invalid());
    };
    if !is_session_handle(&claims.sid) {
        return Ok(Validation::invalid());
    }
    Ok(match live_session(&claims.sid).await? {
        Some(user) if user.id == claims.sub => valid(user, Some(claims.sid), None),
        _ => Validation::invalid(),
    })
}

pub async fn validate_session(session: &str) -> Result<Validation, Fault> {
    if !is_session_id(session) {
        return Ok(Validation::invalid());
    }
    let handle = session_handle(session);
    Ok(match live_session(&handle).await? {
        Some(user) => valid(user, Some(handle), None),
        None => Validation::invalid(),
    })
}

pub async fn validate_api_key(key: &str) -> Result<Validation, Fault> {
    let Some((id, _)) = parse_api_key(key) else {
        return Ok(Validation::invalid());
    };
    let db = store::database()?;
    let row: Option<KeyRow> = first(
        &db,
        "SELECT k.key_hash, k.revoked_at, k.last_used_at, \
         u.id, u.email, u.name, u.role, u.created_at \
         FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?1",
        &[text(id)],
    )
    .await?;
    let Some(row) = row else {
        return Ok(Validation::invalid());
    };
    if !token::constant_time_eq(
        sha256_hex(key.as_bytes()).as_bytes(),
        row.key_hash.as_bytes(),
    ) || row.revoked_at.is_some()
    {
        return Ok(Validation::invalid());
    }
    let now = now_ms();
    let last_used_ms = row
        .last_used_at
        .as_deref()
        .map(js_sys::Date::parse)
        .filter(|ms| ms.is_finite());
    if last_used_ms.is_none_or(|ms| now - ms >= LAST_USED_EVERY_MS) {
        // Conditional, so concurrent validations write it once. Best effort: a key that
        // checked out is valid whether or not its bookkeeping could be written.
        let touched = write(
            &db,
            "UPDATE api_keys SET last_used_at = ?2 \
             WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?3)",
            &[
                text(id),
                text(&iso(now)),
                text(&iso(now - LAST_USED_EVERY_MS)),
            ],
        )
        .await;
        if let Err(fault) = touched {
            warn("validateApiKey: lastUsedAt was not updated", &fault.0);
        }
    }
    Ok(valid(row.user, None, Some(id.to_string())))
}
