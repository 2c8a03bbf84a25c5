//! Access tokens (JWT, HS256 only) with key rotation, reading credentials from request
//! headers and writing the session's `Set-Cookie`, API key format and hashing, and
//! constant-time secret comparison.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Bounded work: longer tokens are refused before any decoding or hashing.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Minimum HMAC secret length: 256 bits, the output size of SHA-256 (RFC 7518 §3.2).
pub const MIN_SECRET_LEN: usize = 32;
/// Bounded work for X-API-Key and session ids.
pub const MAX_CREDENTIAL_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Session id: logout revokes the session, and with it every token naming it.
    pub sid: String,
    pub role: String,
    pub email: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub secret: Vec<u8>,
}

// Hand-written so that a stray `{:?}` never prints a secret.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The active keys: tokens are signed with `current`; tokens signed with `previous` still
/// verify until they expire, so a rotation never logs anyone out. Any other kid is retired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
}

impl KeySet {
    /// Parses `kid1:base64secret,kid0:base64secret` (first = current, optional second =
    /// previous). Secrets are standard or URL-safe base64, padded or not, at least 32 bytes.
    pub fn from_config(s: &str) -> Result<KeySet, TokenError> {
        let mut keys = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(parse_key_entry);
        let current = keys
            .next()
            .ok_or(TokenError::KeyConfig("no signing key configured"))??;
        let previous = keys.next().transpose()?;
        if keys.next().is_some() {
            return Err(TokenError::KeyConfig(
                "at most two keys (current, previous)",
            ));
        }
        if previous.as_ref().is_some_and(|p| p.kid == current.kid) {
            return Err(TokenError::KeyConfig("key ids must differ"));
        }
        Ok(KeySet { current, previous })
    }

    fn find(&self, kid: &str) -> Option<&SigningKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.kid == kid)
    }
}

fn parse_key_entry(entry: &str) -> Result<SigningKey, TokenError> {
    let (kid, b64) = entry
        .split_once(':')
        .ok_or(TokenError::KeyConfig("each key must be kid:base64secret"))?;
    let kid = kid.trim();
    let valid_kid = !kid.is_empty()
        && kid.len() <= 64
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_kid {
        return Err(TokenError::KeyConfig("key id must be [A-Za-z0-9_-]{1,64}"));
    }
    let b64 = b64.trim();
    let secret = LENIENT_STANDARD
        .decode(b64)
        .or_else(|_| LENIENT_URL_SAFE.decode(b64))
        .map_err(|_| TokenError::KeyConfig("key secret is not valid base64"))?;
    if secret.len() < MIN_SECRET_LEN {
        return Err(TokenError::KeyConfig(
            "key secret must be at least 32 bytes",
        ));
    }
    Ok(SigningKey {
        kid: kid.to_owned(),
        secret,
    })
}

// Secrets come from people (`openssl rand -base64 32`), so accept either alphabet and padding.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Why a token or key configuration was refused. Never carries secrets or token contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    TooLong,
    Malformed(&'static str),
    UnsupportedAlgorithm,
    UnknownKey,
    BadSignature,
    Expired,
    WrongIssuer,
    WrongAudience,
    KeyConfig(&'static str),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::TooLong => write!(f, "token longer than {MAX_TOKEN_LEN} bytes"),
            TokenError::Malformed(why) => write!(f, "malformed token: {why}"),
            TokenError::UnsupportedAlgorithm => f.write_str("token algorithm is not HS256"),
            TokenError::UnknownKey => f.write_str("token key id is not active"),
            TokenError::BadSignature => f.write_str("token signature is invalid"),
            TokenError::Expired => f.write_str("token has expired"),
            TokenError::WrongIssuer => f.write_str("token issuer mismatch"),
            TokenError::WrongAudience => f.write_str("token audience mismatch"),
            TokenError::KeyConfig(why) => write!(f, "invalid signing key configuration: {why}"),
        }
    }
}

impl std::error::Error for TokenError {}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

// Unknown members are ignored except `crit`, which RFC 7515 §4.1.11 says must be understood.
// Duplicate members are a serde error, so `{"alg":"HS256","alg":"none"}` cannot confuse us.
#[derive(Deserialize)]
struct HeaderIn {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// HMAC-SHA256 keyed with `secret`. HMAC (RFC 2104) zero-pads keys up to the 64-byte block
/// and hashes longer ones; doing that here yields a fixed-size key, so construction is
/// infallible without an `expect`.
fn mac(secret: &[u8]) -> Hmac<Sha256> {
    let mut block = [0u8; 64];
    if secret.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    <Hmac<Sha256> as KeyInit>::new(&block.into())
}

/// Signs `claims` as a compact JWS: header `{"alg":"HS256","typ":"JWT","kid":...}`,
/// base64url without padding.
pub fn sign(claims: &Claims, key: &SigningKey) -> String {
    let header = HeaderOut {
        alg: "HS256",
        typ: "JWT",
        kid: &key.kid,
    };
    // Serialising plain structs of strings and integers cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity(64 + 2 * (header.len() + payload.len()));
    URL_SAFE_NO_PAD.encode_string(header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let mut m = mac(&key.secret);
    m.update(token.as_bytes());
    let sig = m.finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut token);
    token
}

/// Verifies a token and returns its claims. The signature is checked (in constant time)
/// before the payload is even decoded, so unauthenticated bytes are never parsed beyond the
/// header. `exp` has no leeway: tokens are minted and checked on the same edge clock, and
/// any leeway would only extend the life of a leaked token.
pub fn verify(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    audience: &str,
    now_secs: u64,
) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three segments"));
    };
    // URL_SAFE_NO_PAD rejects padding and non-canonical trailing bits: one encoding per token.
    let header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed("header is not base64url"))?;
    let header: HeaderIn = serde_json::from_slice(&header)
        .map_err(|_| TokenError::Malformed("header is not a JSON object"))?;
    if header.alg.as_deref() != Some("HS256") {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if header.crit.is_some() {
        return Err(TokenError::Malformed("unsupported critical header"));
    }
    if header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(TokenError::Malformed("typ is not JWT"));
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| keys.find(kid))
        .ok_or(TokenError::UnknownKey)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    let mut m = mac(&key.secret);
    m.update(&token.as_bytes()[..signed_len]);
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let claims: Claims = serde_json::from_slice(&payload)
        .map_err(|_| TokenError::Malformed("payload does not hold the expected claims"))?;
    // `exp` is the first second at which the token is no longer accepted (RFC 7519 §4.1.4).
    if now_secs >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != audience {
        return Err(TokenError::WrongAudience);
    }
    Ok(claims)
}

// ---------------------------------------------------------------------------------------
// Credentials

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
    Session(&'a str),
}

/// A credential was presented but is unusable: the caller answers 401, never anonymous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// Not `Bearer <token>`: another scheme, no token, or characters outside RFC 6750's b64token.
    MalformedAuthorization,
    /// `X-API-Key` empty, too long or holding whitespace/control characters.
    MalformedApiKey,
    /// `session=` with an empty, too long or unprintable value.
    MalformedSession,
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialError::MalformedAuthorization => {
                "Authorization header must be `Bearer <token>`"
            }
            CredentialError::MalformedApiKey => "X-API-Key header is malformed",
            CredentialError::MalformedSession => "session cookie is malformed",
        })
    }
}

impl std::error::Error for CredentialError {}

/// Picks the request's credential in the contract's order: `Authorization: Bearer`, then
/// `X-API-Key`, then `Cookie: session=`. The first header present decides; if it is
/// malformed that is an error, even when a later one would be fine. Cookies without a
/// `session` entry are not a credential (`Ok(None)`).
pub fn credential<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
    cookie: Option<&'a str>,
) -> Result<Option<Credential<'a>>, CredentialError> {
    if let Some(h) = authorization {
        return bearer(h).map(|t| Some(Credential::Bearer(t)));
    }
    if let Some(k) = x_api_key {
        let k = k.trim();
        if k.is_empty() || k.len() > MAX_CREDENTIAL_LEN || !k.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(CredentialError::MalformedApiKey);
        }
        return Ok(Some(Credential::ApiKey(k)));
    }
    if let Some(c) = cookie {
        return session_cookie(c).map(|s| s.map(Credential::Session));
    }
    Ok(None)
}

fn bearer(header: &str) -> Result<&str, CredentialError> {
    let header = header.trim();
    let (scheme, token) = header
        .split_once(' ')
        .ok_or(CredentialError::MalformedAuthorization)?;
    // Auth schemes are case-insensitive (RFC 9110 §11.1).
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(CredentialError::MalformedAuthorization);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !is_b64token(token) {
        return Err(CredentialError::MalformedAuthorization);
    }
    Ok(token)
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

fn session_cookie(header: &str) -> Result<Option<&str>, CredentialError> {
    named_cookie(header, SESSION_COOKIE)
}

/// The `name` entry of a `Cookie` header (the `session` cookie, the console's): pairs split at
/// `;`, name and value trimmed, the first `name` wins, pieces without `=` or a name are
/// skipped; a value that cannot be a credential is `MalformedSession`. (Hand-written: the
/// `cookie` crate did the same job but brought the `time` crate, ~20 KiB gzip of the api's
/// budget.)
pub fn named_cookie<'a>(header: &'a str, name: &str) -> Result<Option<&'a str>, CredentialError> {
    let Some(value) = header.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    }) else {
        return Ok(None);
    };
    // RFC 6265 allows a DQUOTE-wrapped value.
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.is_empty()
        || value.len() > MAX_CREDENTIAL_LEN
        || !value.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
    {
        return Err(CredentialError::MalformedSession);
    }
    Ok(Some(value))
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "session";

/// The `Set-Cookie` value that hands the browser its session: HttpOnly, Secure, SameSite=Lax,
/// the whole site, for `max_age_secs`. `session` is an id the auth service issued
/// (URL-safe), never client input.
pub fn session_set_cookie(session: &str, max_age_secs: u64) -> String {
    let max_age = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
    format!("{SESSION_COOKIE}={session}; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age={max_age}")
}

/// The `Set-Cookie` value that makes the browser drop its session cookie (`Max-Age=0`).
pub fn session_clear_cookie() -> String {
    session_set_cookie("", 0)
}

/// The operators' console's cookie name: its own session, scoped to `/console`.
pub const CONSOLE_COOKIE: &str = "console_session";

/// The console's `Set-Cookie`: HttpOnly, SameSite=Strict, `Path=/console` (so the browser
/// sends it to the console's pages and its `/console/api/*` only), `Secure` when the request
/// came over https. An empty `session` with 0 clears it.
pub fn console_set_cookie(session: &str, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{CONSOLE_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Constant-time equality for secrets such as `ADMIN_API_KEY`. Both sides are hashed first
/// so neither the content nor the length of the secret shows in the timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

// ---------------------------------------------------------------------------------------
// API keys: `sk_{12-char lookup id}_{base64url secret}`. The service finds the row by the
// lookup id and compares `sha256_hex(whole key)` in constant time. A fast hash is enough
// here (unlike passwords): the secret part carries at least 128 random bits.

pub const API_KEY_PREFIX: &str = "sk_";
pub const API_KEY_ID_LEN: usize = 12;
pub const API_KEY_MIN_SECRET: usize = 16;
/// Bounded work: no key we issue comes near this.
pub const API_KEY_MAX_LEN: usize = 256;

fn is_lookup_id(s: &str) -> bool {
    s.len() == API_KEY_ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Builds a key from a 12-character alphanumeric lookup id and at least 16 random bytes.
/// `None` if either is unfit, so no key is ever issued that [`parse_api_key`] would refuse.
pub fn format_api_key(id_part: &str, secret: &[u8]) -> Option<String> {
    if !is_lookup_id(id_part) || secret.len() < API_KEY_MIN_SECRET {
        return None;
    }
    let key = format!(
        "{API_KEY_PREFIX}{id_part}_{}",
        URL_SAFE_NO_PAD.encode(secret)
    );
    (key.len() <= API_KEY_MAX_LEN).then_some(key)
}

/// Splits a key into `(lookup id, secret part)`; `None` if it is not in our format.
/// (The secret's base64url alphabet includes `_`, so the lookup id has a fixed length.)
pub fn parse_api_key(key: &str) -> Option<(&str, &str)> {
    if key.len() > API_KEY_MAX_LEN {
        return None;
    }
    let rest = key.strip_prefix(API_KEY_PREFIX)?;
    let id = rest.get(..API_KEY_ID_LEN)?;
    let secret = rest.get(API_KEY_ID_LEN..)?.strip_prefix('_')?;
    if !is_lookup_id(id) {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(secret).ok()?;
    (bytes.len() >= API_KEY_MIN_SECRET).then_some((id, secret))
}

/// The display prefix of a key (`sk_` + lookup id), safe to list; `None` if malformed.
pub fn api_key_prefix(key: &str) -> Option<&str> {
    parse_api_key(key).and_then(|_| key.get(..API_KEY_PREFIX.len() + API_KEY_ID_LEN))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

// ---------------------------------------------------------------------------------------
// Who issues tokens and for whom: the auth service signs, the api verifies.

pub const TOKEN_ISSUER: &str = "auth.apis.do";
pub const TOKEN_AUDIENCE: &str = "apis.do";
/// Access tokens live an hour (never beyond their session). Revocation records outlive them.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 3600;

// ---------------------------------------------------------------------------------------
// Sessions. The cookie holds a 256-bit random id (43 base64url characters). The service
// stores only its SHA-256, the session's *handle*; the handle also names the session in
// tokens (`sid`) and in revocation records, so neither a token nor a log line ever carries
// anything that works as a cookie.

pub const SESSION_ID_BYTES: usize = 32;
const SESSION_ID_LEN: usize = 43;

pub fn format_session_id(random: &[u8; SESSION_ID_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// Whether `s` is shaped like an id we issue; anything else is refused without a lookup.
pub fn is_session_id(s: &str) -> bool {
    s.len() == SESSION_ID_LEN
        && URL_SAFE_NO_PAD
            .decode(s)
            .is_ok_and(|b| b.len() == SESSION_ID_BYTES)
}

/// The stored, loggable name of a session: SHA-256 of its id, lower-case hex.
pub fn session_handle(session_id: &str) -> String {
    sha256_hex(session_id.as_bytes())
}

pub fn is_session_handle(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

// ---------------------------------------------------------------------------------------
// Roles and what they grant.

pub const ROLE_USER: &str = "user";
pub const ROLE_ADMIN: &str = "admin";

/// The canonical spelling of a role, `None` for anything else (roles are exact, lower-case).
pub fn parse_role(s: &str) -> Option<&'static str> {
    match s {
        ROLE_USER => Some(ROLE_USER),
        ROLE_ADMIN => Some(ROLE_ADMIN),
        _ => None,
    }
}

/// Permissions follow from the role, so a role change changes them in one write.
/// An unknown role grants nothing.
pub fn role_permissions(role: &str) -> &'static [&'static str] {
    match role {
        ROLE_ADMIN => &["*"],
        ROLE_USER => &["read", "write"],
        _ => &[],
    }
}

// ---------------------------------------------------------------------------------------
// Password records: `pbkdf2$iterations$salt_b64$hash_b64` (PBKDF2-HMAC-SHA256, standard
// base64 without padding). The iteration count is stored so it can be raised later and old
// records still verify. Workers' WebCrypto caps PBKDF2 at 100 000 iterations.

pub const PBKDF2_ITERATIONS: u32 = 100_000;
pub const PASSWORD_SALT_BYTES: usize = 16;
pub const PASSWORD_HASH_BYTES: usize = 32;
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Bounded work per attempt; no passphrase needs more.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct PasswordRecord {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

// Hand-written so that a stray `{:?}` never prints a hash.
impl fmt::Debug for PasswordRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordRecord")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

const B64_STD_NO_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

impl PasswordRecord {
    pub fn encode(&self) -> String {
        format!(
            "pbkdf2${}${}${}",
            self.iterations,
            B64_STD_NO_PAD.encode(&self.salt),
            B64_STD_NO_PAD.encode(&self.hash)
        )
    }

    /// `None` for anything that is not a record this module wrote (or a compatible one).
    pub fn parse(s: &str) -> Option<PasswordRecord> {
        let mut parts = s.split('$');
        let (Some("pbkdf2"), Some(iterations), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let iterations: u32 = iterations.parse().ok()?;
        let salt = B64_STD_NO_PAD.decode(salt).ok()?;
        let hash = B64_STD_NO_PAD.decode(hash).ok()?;
        let sane = (1..=PBKDF2_ITERATIONS).contains(&iterations)
            && salt.len() >= PASSWORD_SALT_BYTES
            && hash.len() == PASSWORD_HASH_BYTES;
        sane.then_some(PasswordRecord {
            iterations,
            salt,
            hash,
        })
    }

    /// Constant-time comparison of a freshly derived hash with the stored one.
    pub fn matches(&self, derived: &[u8]) -> bool {
        self.hash.ct_eq(derived).into()
    }
}

/// Why a new password is refused (the caller answers 400).
pub fn check_new_password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err("the password must be at least 8 characters");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err("the password must be at most 1024 bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ISS: &str = "https://api.do";
    const AUD: &str = "api.do";
    const NOW: u64 = 1_750_000_000;

    fn key(kid: &str, fill: u8) -> SigningKey {
        SigningKey {
            kid: kid.into(),
            secret: vec![fill; 32],
        }
    }

    fn keys() -> KeySet {
        KeySet {
            current: key("k2", 2),
            previous: Some(key("k1", 1)),
        }
    }

    fn claims() -> Claims {
        Claims {
            sub: "01JUSER".into(),
            sid: "01JSESSION".into(),
            role: "user".into(),
            email: "a@example.com".into(),
            iss: ISS.into(),
            aud: AUD.into(),
            iat: NOW - 10,
            exp: NOW + 900,
        }
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn segments(t: &str) -> Vec<String> {
        t.split('.').map(str::to_owned).collect()
    }

    /// A token with a hand-made header, correctly signed with `key` (for alg-confusion tests).
    fn forge(header: &str, payload: &Claims, key: &SigningKey) -> String {
        let signing_input = format!(
            "{}.{}",
            b64(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).expect("claims serialise"))
        );
        let mut m = mac(&key.secret);
        m.update(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        )
    }

    fn check(t: &str) -> Result<Claims, TokenError> {
        verify(t, &keys(), ISS, AUD, NOW)
    }

    #[test]
    fn round_trip() {
        let t = sign(&claims(), &keys().current);
        assert_eq!(check(&t), Ok(claims()));
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(&segments(&t)[0])
                .expect("header b64"),
        )
        .expect("header json");
        assert_eq!(
            header,
            serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "k2"})
        );
        assert!(!t.contains('='));
    }

    #[test]
    fn matches_an_independent_hs256() {
        // Same MAC as hmac's own variable-length constructor, across key lengths.
        for len in [0usize, 1, 32, 63, 64, 65, 200] {
            let secret: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut ours = mac(&secret);
            let mut theirs =
                <Hmac<Sha256> as KeyInit>::new_from_slice(&secret).expect("any key length");
            ours.update(b"header.payload");
            theirs.update(b"header.payload");
            assert_eq!(ours.finalize().into_bytes(), theirs.finalize().into_bytes());
        }
        // RFC 4231 test case 2.
        let mut m = mac(b"Jefe");
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            format!("{:x}", m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tampered_payload() {
        let t = sign(&claims(), &keys().current);
        let s = segments(&t);
        let mut admin = claims();
        admin.role = "admin".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin).expect("json"));
        let forged = format!("{}.{}.{}", s[0], payload, s[2]);
        assert_eq!(check(&forged), Err(TokenError::BadSignature));
    }

    #[test]
    fn tampered_signature() {
        let t = sign(&claims(), &keys().current);
        let s = segments(&t);
        let mut sig = URL_SAFE_NO_PAD.decode(&s[2]).expect("sig");
        sig[0] ^= 1;
        let forged = format!("{}.{}.{}", s[0], s[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(check(&forged), Err(TokenError::BadSignature));
        let truncated = format!("{}.{}.{}", s[0], s[1], URL_SAFE_NO_PAD.encode(&sig[..16]));
        assert_eq!(check(&truncated), Err(TokenError::BadSignature));
        let empty = format!("{}.{}.", s[0], s[1]);
        assert_eq!(check(&empty), Err(TokenError::BadSignature));
    }

    #[test]
    fn signed_with_a_foreign_secret() {
        let t = sign(&claims(), &key("k2", 9));
        assert_eq!(check(&t), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let payload = b64(&serde_json::to_string(&claims()).expect("json"));
        for header in [
            r#"{"alg":"none","typ":"JWT","kid":"k2"}"#,
            r#"{"alg":"None","kid":"k2"}"#,
            r#"{"alg":"hs256","kid":"k2"}"#,
            r#"{"typ":"JWT","kid":"k2"}"#,
            r#"{"alg":null,"kid":"k2"}"#,
        ] {
            let unsigned = format!("{}.{payload}.", b64(header));
            assert_eq!(
                check(&unsigned),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
            let signed = forge(header, &claims(), &keys().current);
            assert_eq!(
                check(&signed),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
        }
        for header in [
            r#"{"alg":"HS512","typ":"JWT","kid":"k2"}"#,
            r#"{"alg":"HS384","typ":"JWT","kid":"k2"}"#,
            r#"{"alg":"RS256","typ":"JWT","kid":"k2"}"#,
        ] {
            let signed = forge(header, &claims(), &keys().current);
            assert_eq!(
                check(&signed),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
        }
        // A duplicate member cannot smuggle a second algorithm past the check.
        let dup = forge(
            r#"{"alg":"HS256","alg":"none","kid":"k2"}"#,
            &claims(),
            &keys().current,
        );
        assert!(matches!(check(&dup), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn header_rules() {
        let ok = forge(r#"{"alg":"HS256","kid":"k2"}"#, &claims(), &keys().current);
        assert_eq!(check(&ok), Ok(claims()), "typ is optional");
        let extra = forge(
            r#"{"alg":"HS256","kid":"k2","x5u":"y"}"#,
            &claims(),
            &keys().current,
        );
        assert_eq!(check(&extra), Ok(claims()), "unknown members are ignored");
        let crit = forge(
            r#"{"alg":"HS256","kid":"k2","crit":["exp"]}"#,
            &claims(),
            &keys().current,
        );
        assert!(matches!(check(&crit), Err(TokenError::Malformed(_))));
        let typ = forge(
            r#"{"alg":"HS256","kid":"k2","typ":"at+jwt"}"#,
            &claims(),
            &keys().current,
        );
        assert!(matches!(check(&typ), Err(TokenError::Malformed(_))));
        let no_kid = forge(r#"{"alg":"HS256"}"#, &claims(), &keys().current);
        assert_eq!(check(&no_kid), Err(TokenError::UnknownKey));
        let not_object = format!("{}.{}.x", b64("[1]"), b64("{}"));
        assert!(matches!(check(&not_object), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn expiry_has_no_leeway() {
        let t = sign(&claims(), &keys().current);
        let exp = claims().exp;
        assert!(verify(&t, &keys(), ISS, AUD, exp - 1).is_ok());
        assert_eq!(verify(&t, &keys(), ISS, AUD, exp), Err(TokenError::Expired));
        assert_eq!(
            verify(&t, &keys(), ISS, AUD, u64::MAX),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let t = sign(&claims(), &keys().current);
        assert_eq!(
            verify(&t, &keys(), "https://evil", AUD, NOW),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            verify(&t, &keys(), ISS, "other", NOW),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn rotation() {
        let by_previous = sign(&claims(), &key("k1", 1));
        assert_eq!(
            check(&by_previous),
            Ok(claims()),
            "previous key still verifies"
        );
        // After the next rotation k1 is retired.
        let rotated = KeySet {
            current: key("k3", 3),
            previous: Some(key("k2", 2)),
        };
        assert_eq!(
            verify(&by_previous, &rotated, ISS, AUD, NOW),
            Err(TokenError::UnknownKey)
        );
        let single = KeySet {
            current: key("k2", 2),
            previous: None,
        };
        assert_eq!(
            verify(&by_previous, &single, ISS, AUD, NOW),
            Err(TokenError::UnknownKey)
        );
        // A kid that names one key but a secret from another fails on the signature.
        let mixed = sign(&claims(), &key("k1", 2));
        assert_eq!(check(&mixed), Err(TokenError::BadSignature));
    }

    #[test]
    fn unknown_kid() {
        let t = sign(&claims(), &key("k9", 2));
        assert_eq!(check(&t), Err(TokenError::UnknownKey));
    }

    #[test]
    fn malformed_tokens() {
        let t = sign(&claims(), &keys().current);
        let s = segments(&t);
        let cases = [
            String::new(),
            "a".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{t}."),
            format!("{}.{}", s[0], s[1]),
            format!("{}=.{}.{}", s[0], s[1], s[2]),
            format!("{}.{}.{}=", s[0], s[1], s[2]),
            format!("{}.{}.{}", s[0].replace('e', "+"), s[1], s[2]),
            format!(
                "{}.{}.{}",
                s[0],
                s[1],
                s[2].replace(|c: char| c.is_ascii_digit(), "/")
            ),
            format!("!!.{}.{}", s[1], s[2]),
            format!(" {t}"),
            "...".into(),
        ];
        for bad in cases {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
        // Correctly signed but the payload is not our claims.
        let other = {
            let input = format!("{}.{}", s[0], b64(r#"{"sub":"x"}"#));
            let mut m = mac(&keys().current.secret);
            m.update(input.as_bytes());
            format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
            )
        };
        assert!(matches!(check(&other), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn too_long() {
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(check(&long), Err(TokenError::TooLong));
        let mut big = claims();
        big.email = "x".repeat(MAX_TOKEN_LEN);
        assert_eq!(
            check(&sign(&big, &keys().current)),
            Err(TokenError::TooLong)
        );
    }

    #[test]
    fn errors_do_not_leak() {
        let all = [
            TokenError::TooLong,
            TokenError::Malformed("m"),
            TokenError::UnsupportedAlgorithm,
            TokenError::UnknownKey,
            TokenError::BadSignature,
            TokenError::Expired,
            TokenError::WrongIssuer,
            TokenError::WrongAudience,
            TokenError::KeyConfig("c"),
        ];
        for e in all {
            assert!(!e.to_string().is_empty());
        }
        let ks = KeySet::from_config(&format!("k1:{}", STD.encode([7u8; 32]))).expect("config");
        assert!(!format!("{ks:?}").contains("7, 7"));
        assert!(format!("{ks:?}").contains("redacted"));
    }

    use base64::engine::general_purpose::{STANDARD as STD, URL_SAFE as URL_PAD};

    #[test]
    fn key_config() {
        let s32 = STD.encode([0xfbu8; 32]);
        let s48 = URL_SAFE_NO_PAD.encode([0xfeu8; 48]);
        let ks = KeySet::from_config(&format!(" kid1:{s32} , kid0:{s48} ")).expect("two keys");
        assert_eq!(ks.current.kid, "kid1");
        assert_eq!(ks.current.secret, vec![0xfb; 32]);
        assert_eq!(ks.previous.as_ref().map(|k| k.kid.as_str()), Some("kid0"));
        assert_eq!(ks.previous.map(|k| k.secret), Some(vec![0xfe; 48]));

        let one = KeySet::from_config(&format!("only:{}", URL_PAD.encode([1u8; 33]))).expect("one");
        assert_eq!(one.previous, None);
        let unpadded = STD.encode([1u8; 32]).trim_end_matches('=').to_owned();
        assert!(KeySet::from_config(&format!("a:{unpadded}")).is_ok());

        let bad = [
            String::new(),
            " , ".into(),
            s32.clone(),
            format!(":{s32}"),
            format!("k 1:{s32}"),
            format!("k1:{}", STD.encode([1u8; 31])),
            "k1:not base64!".into(),
            format!("a:{s32},a:{s32}"),
            format!("a:{s32},b:{s32},c:{s32}"),
            format!("{}:{s32}", "k".repeat(65)),
        ];
        for cfg in bad {
            let e = KeySet::from_config(&cfg).expect_err(&cfg);
            assert!(matches!(e, TokenError::KeyConfig(_)));
            assert!(!e.to_string().contains(&s32));
        }
    }

    // --- Credentials ---

    #[test]
    fn credential_order() {
        use Credential::*;
        assert_eq!(credential(None, None, None), Ok(None));
        assert_eq!(
            credential(Some("Bearer t.o.k"), Some("sk_x"), Some("session=s")),
            Ok(Some(Bearer("t.o.k")))
        );
        assert_eq!(
            credential(None, Some("sk_x"), Some("session=s")),
            Ok(Some(ApiKey("sk_x")))
        );
        assert_eq!(
            credential(None, None, Some("session=s")),
            Ok(Some(Session("s")))
        );
        // A broken earlier credential is never skipped in favour of a later one.
        assert_eq!(
            credential(Some("Basic dXNlcjpwYXNz"), Some("sk_x"), Some("session=s")),
            Err(CredentialError::MalformedAuthorization)
        );
        assert_eq!(
            credential(None, Some(""), Some("session=s")),
            Err(CredentialError::MalformedApiKey)
        );
    }

    #[test]
    fn authorization_header() {
        let ok = [
            ("Bearer abc", "abc"),
            ("bearer abc", "abc"),
            ("BEARER abc", "abc"),
            ("Bearer   abc  ", "abc"),
            ("Bearer a-b.c_d~e+f/g==", "a-b.c_d~e+f/g=="),
        ];
        for (h, t) in ok {
            assert_eq!(
                credential(Some(h), None, None),
                Ok(Some(Credential::Bearer(t))),
                "{h}"
            );
        }
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        let bad = [
            "",
            "   ",
            "Bearer",
            "Bearer ",
            "Bearer    ",
            "Bearer a b",
            "Bearer\tabc",
            "Basic abc",
            "Token abc",
            "Bearerabc",
            "abc",
            "Bearer ===",
            "Bearer a=b",
            "Bearer a,b",
            "Bearer \"abc\"",
            "Bearer é",
            long.as_str(),
        ];
        for h in bad {
            assert_eq!(
                credential(Some(h), None, None),
                Err(CredentialError::MalformedAuthorization),
                "{h:?}"
            );
        }
    }

    #[test]
    fn api_key_header() {
        assert_eq!(
            credential(None, Some(" dev-admin-key "), None),
            Ok(Some(Credential::ApiKey("dev-admin-key")))
        );
        let long = "k".repeat(MAX_CREDENTIAL_LEN + 1);
        for k in ["", "  ", "a b", "a\u{7f}", "é", long.as_str()] {
            assert_eq!(
                credential(None, Some(k), None),
                Err(CredentialError::MalformedApiKey),
                "{k:?}"
            );
        }
    }

    #[test]
    fn session_set_cookie_values() {
        let set = session_set_cookie("01JABC", 604_800);
        assert_eq!(
            set,
            "session=01JABC; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=604800"
        );
        assert_eq!(
            session_clear_cookie(),
            "session=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0"
        );
        // What a browser sends back parses as the same session.
        let (pair, _) = set.split_once(';').unwrap();
        assert_eq!(
            credential(None, None, Some(pair)),
            Ok(Some(Credential::Session("01JABC")))
        );
        assert!(session_set_cookie("x", u64::MAX).ends_with(&format!("Max-Age={}", i64::MAX)));
    }

    #[test]
    fn console_cookie_values() {
        assert_eq!(
            console_set_cookie("abc", 60, true),
            "console_session=abc; HttpOnly; SameSite=Strict; Path=/console; Max-Age=60; Secure"
        );
        assert_eq!(
            console_set_cookie("", 0, false),
            "console_session=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0"
        );
    }

    #[test]
    fn named_cookies() {
        let h = "session=site; console_session=abc";
        assert_eq!(named_cookie(h, "console_session"), Ok(Some("abc")));
        assert_eq!(named_cookie(h, "session"), Ok(Some("site")));
        assert_eq!(
            named_cookie("xconsole_session=a", "console_session"),
            Ok(None)
        );
        assert_eq!(
            named_cookie("console_session=a b", "console_session"),
            Err(CredentialError::MalformedSession)
        );
        assert_eq!(
            named_cookie("console_session=", "console_session"),
            Err(CredentialError::MalformedSession)
        );
    }

    #[test]
    fn session_cookie_parsing() {
        use Credential::Session;
        let ok = [
            ("session=abc", "abc"),
            ("theme=dark; session=abc; lang=en", "abc"),
            ("  session = abc ;x=1", "abc"),
            ("session=first; session=second", "first"),
            ("session=\"quoted\"", "quoted"),
            ("xsession=no; session=yes", "yes"),
            ("session=a=b", "a=b"),
        ];
        for (c, s) in ok {
            assert_eq!(credential(None, None, Some(c)), Ok(Some(Session(s))), "{c}");
        }
        for c in [
            "",
            "theme=dark",
            "sessionabc",
            ";;;",
            "Session=abc",
            "sessions=abc",
        ] {
            assert_eq!(credential(None, None, Some(c)), Ok(None), "{c:?}");
        }
        // Whitespace-only and `=`-less pieces between pairs are skipped, not an error.
        for (c, s) in [
            (" ; ;session=abc", "abc"),
            ("flag; session=abc", "abc"),
            ("=x; session=abc", "abc"),
            ("session=abc;", "abc"),
            ("a=\"x;y\"; session=abc", "abc"),
        ] {
            assert_eq!(credential(None, None, Some(c)), Ok(Some(Session(s))), "{c}");
        }
        let long = format!("session={}", "s".repeat(MAX_CREDENTIAL_LEN + 1));
        for c in [
            "session=",
            "session=  ; x=1",
            "session=\"\"",
            "session=a b",
            "session=\"a",
            long.as_str(),
        ] {
            assert_eq!(
                credential(None, None, Some(c)),
                Err(CredentialError::MalformedSession),
                "{c:?}"
            );
        }
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"dev-admin-key", b"dev-admin-key"));
        assert!(!constant_time_eq(b"dev-admin-key", b"dev-admin-kez"));
        assert!(!constant_time_eq(b"dev-admin-key", b"dev-admin-ke"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    // --- API keys ---

    #[test]
    fn api_key_round_trip() {
        let secret = [0xffu8; 32]; // base64url of 0xff... is all `_`: the separator must not confuse parsing
        let key = format_api_key("AbC123xyz789", &secret).expect("valid parts");
        assert!(key.starts_with("sk_AbC123xyz789_"));
        let (id, sec) = parse_api_key(&key).expect("parses");
        assert_eq!(id, "AbC123xyz789");
        assert_eq!(URL_SAFE_NO_PAD.decode(sec).ok(), Some(secret.to_vec()));
        assert_eq!(api_key_prefix(&key), Some("sk_AbC123xyz789"));
        assert_eq!(sha256_hex(key.as_bytes()).len(), 64);
    }

    #[test]
    fn api_key_rejects() {
        assert_eq!(format_api_key("short", &[1; 16]), None);
        assert_eq!(format_api_key("AbC123xyz78_", &[1; 16]), None);
        assert_eq!(format_api_key("AbC123xyz789", &[1; 15]), None);
        assert_eq!(format_api_key("AbC123xyz789", &[1; 500]), None);
        let good = format_api_key("AbC123xyz789", &[7; 16]).expect("valid");
        let bad = [
            String::new(),
            "sk_".into(),
            good.replacen("sk_", "pk_", 1),
            good.replacen("sk_", "SK_", 1),
            good.replacen("789_", "789-", 1),
            good.replacen("AbC123xyz789", "AbC123xyz78é", 1),
            good.replacen("AbC123xyz789", "AbC123xyz78", 1),
            format!("{good}="),
            format!("{good}!"),
            "sk_AbC123xyz789_AAAA".into(),
            format!("{good}{}", "A".repeat(API_KEY_MAX_LEN)),
            "dev-admin-key".into(),
        ];
        for k in bad {
            assert_eq!(parse_api_key(&k), None, "{k:?}");
            assert_eq!(api_key_prefix(&k), None, "{k:?}");
        }
    }

    #[test]
    fn sha256_hex_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    // --- Sessions, roles, password records ---

    #[test]
    fn session_ids() {
        let id = format_session_id(&[0xffu8; SESSION_ID_BYTES]);
        assert_eq!(id.len(), 43);
        assert!(is_session_id(&id));
        assert!(is_session_id(&format_session_id(&[0u8; 32])));
        let long = format!("{id}A");
        let bad = [
            "",
            "abc",
            &id[..42],
            long.as_str(),
            "dev-admin-key",
            // 43 characters but not base64url, or with non-canonical trailing bits.
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
        ];
        for s in bad {
            assert!(!is_session_id(s), "{s:?}");
        }
        let handle = session_handle(&id);
        assert!(is_session_handle(&handle));
        assert_ne!(handle, id);
        assert_eq!(handle, sha256_hex(id.as_bytes()));
        for h in ["", "ABCDEF", &handle.to_uppercase(), &handle[1..], &id] {
            assert!(!is_session_handle(h), "{h:?}");
        }
    }

    #[test]
    fn roles_and_permissions() {
        assert_eq!(parse_role("user"), Some(ROLE_USER));
        assert_eq!(parse_role("admin"), Some(ROLE_ADMIN));
        for r in ["", "Admin", "ADMIN", " admin", "root", "users"] {
            assert_eq!(parse_role(r), None, "{r:?}");
        }
        assert_eq!(role_permissions("admin"), &["*"]);
        assert_eq!(role_permissions("user"), &["read", "write"]);
        assert!(role_permissions("root").is_empty());
    }

    #[test]
    fn password_records_round_trip() {
        let record = PasswordRecord {
            iterations: PBKDF2_ITERATIONS,
            salt: vec![0xab; PASSWORD_SALT_BYTES],
            hash: vec![0xcd; PASSWORD_HASH_BYTES],
        };
        let text = record.encode();
        assert!(text.starts_with("pbkdf2$100000$"));
        assert!(!text.contains('='));
        assert_eq!(PasswordRecord::parse(&text), Some(record.clone()));
        assert!(record.matches(&[0xcd; PASSWORD_HASH_BYTES]));
        assert!(!record.matches(&[0xce; PASSWORD_HASH_BYTES]));
        assert!(!record.matches(&[0xcd; PASSWORD_HASH_BYTES - 1]));
        assert!(!record.matches(&[]));
        assert!(
            !format!("{record:?}").contains("205"),
            "no hash bytes in Debug"
        );
    }

    #[test]
    fn password_records_refuse_garbage() {
        let good = PasswordRecord {
            iterations: 1000,
            salt: vec![1; 16],
            hash: vec![2; 32],
        }
        .encode();
        let s16 = STD.encode([1u8; 16]);
        let h32 = STD.encode([2u8; 32]);
        let h32np = h32.trim_end_matches('=');
        let s16np = s16.trim_end_matches('=');
        let bad = [
            String::new(),
            "pbkdf2".into(),
            good.replacen("pbkdf2", "bcrypt", 1),
            format!("{good}$x"),
            format!("pbkdf2$0${s16np}${h32np}"),
            format!("pbkdf2$100001${s16np}${h32np}"),
            format!("pbkdf2$-1${s16np}${h32np}"),
            format!("pbkdf2$abc${s16np}${h32np}"),
            format!(
                "pbkdf2$1000${}${h32np}",
                STD.encode([1u8; 15]).trim_end_matches('=')
            ),
            format!(
                "pbkdf2$1000${s16np}${}",
                STD.encode([2u8; 31]).trim_end_matches('=')
            ),
            format!("pbkdf2$1000${s16np}$!!"),
            format!("pbkdf2$1000${s16}${h32}"),
        ];
        for b in bad {
            assert_eq!(PasswordRecord::parse(&b), None, "{b:?}");
        }
        assert!(PasswordRecord::parse(&good).is_some());
    }

    #[test]
    fn new_password_rules() {
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("").is_err());
        // Characters, not bytes: seven two-byte characters are still too short.
        assert!(check_new_password("ééééééé").is_err());
        assert!(check_new_password("éééééééé").is_ok());
        assert!(check_new_password(&"p".repeat(MAX_PASSWORD_BYTES)).is_ok());
        assert!(check_new_password(&"p".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[test]
    fn issued_tokens_verify_with_the_platform_issuer_and_audience() {
        let mut c = claims();
        c.iss = TOKEN_ISSUER.into();
        c.aud = TOKEN_AUDIENCE.into();
        let t = sign(&c, &keys().current);
        assert_eq!(
            verify(&t, &keys(), TOKEN_ISSUER, TOKEN_AUDIENCE, NOW),
            Ok(c)
        );
        assert_eq!(
            verify(&t, &keys(), TOKEN_ISSUER, "api.do", NOW),
            Err(TokenError::WrongAudience)
        );
    }

    proptest! {
        #[test]
        fn verify_never_panics(t in ".{0,300}") {
            let _ = check(&t);
        }

        #[test]
        fn verify_never_panics_on_tokenish(t in "[A-Za-z0-9_\\-.=]{0,300}") {
            prop_assert!(check(&t).is_err());
        }

        #[test]
        fn every_single_byte_flip_is_rejected(pos in 0usize..400, bit in 0u8..7) {
            let t = sign(&claims(), &keys().current);
            let mut bytes = t.into_bytes();
            let i = pos % bytes.len();
            bytes[i] ^= 1 << bit;
            if let Ok(s) = String::from_utf8(bytes) {
                prop_assert!(check(&s).is_err());
            }
        }

        #[test]
        fn credential_never_panics(a in proptest::option::of(".{0,64}"), k in proptest::option::of(".{0,64}"), c in proptest::option::of(".{0,64}")) {
            let _ = credential(a.as_deref(), k.as_deref(), c.as_deref());
        }

        #[test]
        fn parse_api_key_never_panics(k in ".{0,80}") {
            let _ = parse_api_key(&k);
            let _ = api_key_prefix(&k);
        }
    }
}
