//! Pass-through: what a tenant's user worker or a forwarded service receives from the api, and
//! what it never receives. The request-header table is data ([`REQUEST_HEADERS`]) and one
//! function applies it ([`upstream_headers`]); the traffic class of a route ([`Traffic`]) says
//! whose CORS, `HEAD` handling and credentials apply. The api's `upstream` module does the I/O.

use crate::access::AccessLevel;
use crate::registry::{self, ServiceKind};
use crate::router::Route;
use crate::token::{
    constant_time_eq, credential, is_session_id, parse_api_key, Credential, CredentialError,
    TOKEN_ISSUER,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

// ---------------------------------------------------------------------------------------
// Traffic classes

/// Whose request this is, decided once from the route. Platform CORS (preflight answers,
/// `Access-Control-*` on responses) and the platform's own `HEAD` apply to `Platform` only: a
/// tenant or a forwarded service gets its `OPTIONS` and `HEAD` as sent and answers them itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Answered by the platform itself: adapters, `/rpc`, `/health`, the waitlist, errors.
    Platform,
    /// A tenant's user worker (Workers for Platforms), by platform host or custom domain.
    Tenant,
    /// A service that still speaks HTTP, reached by forwarding over its binding.
    Forwarded,
}

impl Traffic {
    pub fn of(route: &Route) -> Traffic {
        match route {
            Route::UserWorker { .. } => Traffic::Tenant,
            Route::Service { service, .. } if is_forwarded(service) => Traffic::Forwarded,
            _ => Traffic::Platform,
        }
    }
}

/// Reached by `fetch` through its binding: the registry says `Forward`, and a domain route's
/// own unregistered service is forwarded too.
fn is_forwarded(service: &str) -> bool {
    registry::service(service).map_or(ServiceKind::Forward, |s| s.kind) == ServiceKind::Forward
}

/// How the api reads the request's credentials on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identification {
    /// Not at all: the route is anonymous and every credential on it belongs to the upstream
    /// (a tenant's own `Authorization` and cookies, a waitlist visitor's).
    Skip,
    /// Every credential header is ours: a malformed or invalid one is 401.
    Strict,
    /// An anonymous forwarding route (`/mcp/*`, webhooks): only a credential in the platform's
    /// format is ours (and 401 when invalid); any other passes through untouched.
    PlatformFormatOnly,
}

pub fn identification(route: &Route) -> Identification {
    match route {
        Route::UserWorker { access, .. } if *access == AccessLevel::Anon => Identification::Skip,
        Route::Waitlist { .. } => Identification::Skip,
        Route::Service {
            service, access, ..
        } if *access == AccessLevel::Anon && is_forwarded(service) => {
            Identification::PlatformFormatOnly
        }
        _ => Identification::Strict,
    }
}

// ---------------------------------------------------------------------------------------
// Credentials in the platform's format

/// Whether a bearer token is one of ours: a JWT whose payload names our issuer. Its signature
/// is not checked here (identification does that, and answers 401 when it fails); a token of
/// anyone else, JWT or not, is not ours.
pub fn is_platform_token(token: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Issuer<'a> {
        #[serde(borrow)]
        iss: Option<std::borrow::Cow<'a, str>>,
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')) else {
        return false;
    };
    serde_json::from_slice::<Issuer>(&bytes).is_ok_and(|c| c.iss.as_deref() == Some(TOKEN_ISSUER))
}

/// The request's credential when only the platform's formats count (see
/// [`Identification::PlatformFormatOnly`]): `Bearer` with one of our tokens, an `X-API-Key`
/// that is `sk_…` or the admin key, a `session` cookie shaped like our ids; first match in the
/// contract's order. Anything else is not ours and is ignored. A header in our format is then
/// read as strictly as ever (so a malformed one is still an error).
pub fn platform_credential<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
    cookie: Option<&'a str>,
    admin_key: Option<&str>,
) -> Result<Option<Credential<'a>>, CredentialError> {
    if let Some(header) = authorization {
        let ours = header
            .trim()
            .split_once(' ')
            .is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && is_platform_token(token.trim())
            });
        if ours {
            return credential(Some(header), None, None);
        }
    }
    if let Some(key) = x_api_key {
        let trimmed = key.trim();
        let is_admin = admin_key.is_some_and(|admin| {
            !admin.is_empty() && constant_time_eq(admin.as_bytes(), trimmed.as_bytes())
        });
        if is_admin || parse_api_key(trimmed).is_some() {
            return credential(None, Some(key), None);
        }
    }
    if let Some(cookie) = cookie {
        if let Ok(Some(Credential::Session(id))) = credential(None, None, Some(cookie)) {
            if is_session_id(id) {
                return Ok(Some(Credential::Session(id)));
            }
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// The request-header table

/// A credential header of the platform's, named by what carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialHeader {
    /// `Authorization: Bearer <our token>`.
    Authorization,
    /// `X-API-Key: sk_…` or the admin key.
    ApiKey,
    /// The `session=` entry of `Cookie` (the request's other cookies stay).
    SessionCookie,
}

/// What happens to a request header on its way to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Passed on as sent (unless the client's own `Connection` names it).
    AsSent,
    /// Connection-level (RFC 9110 §7.6.1): never passed on.
    HopByHop,
    /// Connection-level, kept on a WebSocket upgrade only (`Connection: Upgrade`, `Upgrade`).
    KeptOnUpgrade,
    /// The platform's: the client's value is dropped, the api sets its own after everything
    /// else, so neither a forged value nor a `Connection` header can touch it.
    SetByApi,
    /// A platform credential: removed when it proved the caller's identity (the upstream gets
    /// `X-Platform-User-Id` instead). `ADMIN_API_KEY` is removed on every route.
    Credential(CredentialHeader),
}

pub struct HeaderRow {
    /// Lower-case header name; `x-platform-*` is the one prefix row.
    pub header: &'static str,
    pub rule: Rule,
    pub why: &'static str,
}

const fn row(header: &'static str, rule: Rule, why: &'static str) -> HeaderRow {
    HeaderRow { header, rule, why }
}

/// Every request header the api does not pass on as sent. Anything not listed here
/// (`Host`, `Content-Type`, `Sec-WebSocket-*`, `Origin`, the tenant's own cookies and
/// credentials, provider signatures...) reaches the upstream untouched. The README's
/// pass-through table lists the same rows (checked by a test).
pub static REQUEST_HEADERS: &[HeaderRow] = &[
    row("connection", Rule::KeptOnUpgrade, "hop-by-hop; `Connection: Upgrade` is kept on a WebSocket upgrade, and the headers it names are removed (never one the api sets)"),
    row("upgrade", Rule::KeptOnUpgrade, "hop-by-hop; kept on a WebSocket upgrade"),
    row("keep-alive", Rule::HopByHop, "hop-by-hop"),
    row("proxy-authenticate", Rule::HopByHop, "hop-by-hop"),
    row("proxy-authorization", Rule::HopByHop, "hop-by-hop: a credential for a proxy, never for the upstream"),
    row("te", Rule::HopByHop, "hop-by-hop"),
    row("trailer", Rule::HopByHop, "hop-by-hop"),
    row("transfer-encoding", Rule::HopByHop, "hop-by-hop: the body is streamed, re-framed by the runtime"),
    row("x-request-id", Rule::SetByApi, "the request's id (an incoming ULID/UUID is kept by the api, anything else replaced)"),
    row("traceparent", Rule::SetByApi, "the api's span in the caller's trace (or a new trace)"),
    row("cf-connecting-ip", Rule::SetByApi, "the client's address as Cloudflare saw it"),
    row("x-platform-*", Rule::SetByApi, "client-sent values always stripped; `X-Platform-User-Id` and `X-Platform-Role` set when the api identified the caller"),
    row("authorization", Rule::Credential(CredentialHeader::Authorization), "removed when our bearer token proved the identity; any other value passes"),
    row("x-api-key", Rule::Credential(CredentialHeader::ApiKey), "removed when our API key proved the identity, and always when it is `ADMIN_API_KEY`"),
    row("cookie", Rule::Credential(CredentialHeader::SessionCookie), "the `session` entry removed when it proved the identity; other cookies pass"),
];

/// The prefix of the platform's identity headers.
pub const PLATFORM_PREFIX: &str = "x-platform-";

/// The rule for a header name (any case).
pub fn rule(name: &str) -> Rule {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with(PLATFORM_PREFIX) {
        return Rule::SetByApi;
    }
    REQUEST_HEADERS
        .iter()
        .find(|r| r.header == lower)
        .map_or(Rule::AsSent, |r| r.rule)
}

/// What the api knows when it shapes one outbound request.
#[derive(Debug, Clone, Default)]
pub struct Outbound<'a> {
    /// The platform credential that proved the caller's identity; it is removed.
    pub proved_by: Option<CredentialHeader>,
    /// `ADMIN_API_KEY`, removed wherever it appears as a credential, on every route.
    pub admin_key: Option<&'a str>,
    /// The headers the api sets, in order (ids, trace context, client IP, identity).
    pub set: Vec<(&'static str, String)>,
}

/// Whether the request asks for a WebSocket (`Upgrade: websocket` with `Connection: upgrade`).
pub fn is_websocket_upgrade<'h>(headers: impl IntoIterator<Item = (&'h str, &'h str)>) -> bool {
    let (mut upgrade, mut connection) = (false, false);
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(value, "upgrade");
        }
    }
    upgrade && connection
}

fn has_token(list: &str, token: &str) -> bool {
    list.split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The headers the upstream receives: the client's, less what [`REQUEST_HEADERS`] removes and
/// less what the client's own `Connection` names, then the api's own (`outbound.set`).
pub fn upstream_headers<'h>(
    incoming: &[(&'h str, &'h str)],
    outbound: &Outbound<'_>,
) -> Vec<(String, String)> {
    let upgrade = is_websocket_upgrade(incoming.iter().copied());
    let named_by_connection: Vec<String> = incoming
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| value.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let mut out: Vec<(String, String)> = Vec::with_capacity(incoming.len() + outbound.set.len());
    for &(name, value) in incoming {
        let lower = name.to_ascii_lowercase();
        let kept = match rule(&lower) {
            Rule::HopByHop | Rule::SetByApi => None,
            Rule::KeptOnUpgrade if !upgrade => None,
            // Only the upgrade itself: any other option in it was for the client's own hop.
            Rule::KeptOnUpgrade if lower == "connection" => Some("Upgrade".to_string()),
            Rule::KeptOnUpgrade => Some(value.to_string()),
            _ if named_by_connection.contains(&lower) => None,
            Rule::AsSent => Some(value.to_string()),
            Rule::Credential(header) => credential_header(header, value, outbound),
        };
        if let Some(value) = kept {
            out.push((name.to_string(), value));
        }
    }
    for (name, value) in &outbound.set {
        out.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        out.push(((*name).to_string(), value.clone()));
    }
    out
}

/// A credential header's outbound value: `None` when it is removed.
fn credential_header(
    header: CredentialHeader,
    value: &str,
    outbound: &Outbound<'_>,
) -> Option<String> {
    let proved = outbound.proved_by == Some(header);
    let is_admin_key = |candidate: &str| {
        outbound.admin_key.is_some_and(|admin| {
            !admin.is_empty() && constant_time_eq(admin.as_bytes(), candidate.trim().as_bytes())
        })
    };
    match header {
        CredentialHeader::Authorization => {
            let token = value.trim().split_once(' ').map_or(value, |(_, t)| t);
            (!proved && !is_admin_key(value) && !is_admin_key(token)).then(|| value.to_string())
        }
        CredentialHeader::ApiKey => (!proved && !is_admin_key(value)).then(|| value.to_string()),
        CredentialHeader::SessionCookie if proved => without_session_cookie(value),
        CredentialHeader::SessionCookie => Some(value.to_string()),
    }
}

/// `Cookie` without its `session=` entries; `None` when nothing else is left.
fn without_session_cookie(cookie: &str) -> Option<String> {
    let rest: Vec<&str> = cookie
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            pair.split_once('=')
                .is_none_or(|(name, _)| name.trim() != "session")
        })
        .collect();
    (!rest.is_empty()).then(|| rest.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::normalize_host;
    use crate::router::{route, RouterConfig};
    use crate::routes::DomainRoutes;

    const ADMIN: &str = "dev-admin-key";
    const OUR_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImRldjEifQ.eyJpc3MiOiJhdXRoLmFwaXMuZG8ifQ.c2ln";
    const SESSION: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn set() -> Vec<(&'static str, String)> {
        vec![
            ("X-Request-Id", "01ARZ3NDEKTSV4RRFFQ69G5FAV".into()),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            ),
        ]
    }

    fn names(headers: &[(String, String)]) -> Vec<String> {
        headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }

    fn value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// (what, incoming headers, the credential that proved the identity, what passes).
    type TableCase<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<CredentialHeader>,
        Vec<&'a str>,
    );
    /// (Authorization, X-API-Key, Cookie, the credential that counts).
    type CredentialCase<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Result<Option<Credential<'a>>, CredentialError>,
    );

    /// One row per behaviour: (what, incoming headers, proved by, expected outbound headers
    /// besides the api's own, as `name: value`).
    #[test]
    fn the_table_applied() {
        use CredentialHeader::*;
        let bearer = format!("Bearer {OUR_TOKEN}");
        #[rustfmt::skip]
        let cases: Vec<TableCase> = vec![
            ("ordinary headers pass", vec![("Content-Type", "text/plain"), ("X-Custom", "1"), ("Origin", "https://a.example")], None,
                vec!["content-type: text/plain", "x-custom: 1", "origin: https://a.example"]),
            ("hop-by-hop headers go", vec![("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Transfer-Encoding", "chunked"), ("Trailer", "x"), ("Proxy-Authorization", "Basic eA=="), ("Proxy-Authenticate", "x"), ("Accept", "*/*")], None,
                vec!["accept: */*"]),
            ("Connection and Upgrade go without an upgrade", vec![("Connection", "keep-alive"), ("Upgrade", "h2c")], None, vec![]),
            ("headers named by Connection go", vec![("Connection", "x-drop-me, close"), ("X-Drop-Me", "1"), ("X-Keep", "2")], None,
                vec!["x-keep: 2"]),
            ("a WebSocket upgrade keeps its headers", vec![("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "chat")], None,
                vec!["connection: Upgrade", "upgrade: websocket", "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version: 13", "sec-websocket-protocol: chat"]),
            ("Connection cannot remove what the api sets", vec![("Connection", "x-request-id, traceparent, cf-connecting-ip, x-platform-user-id"), ("X-Request-Id", "forged"), ("traceparent", "forged")], None,
                vec![]),
            ("client-sent X-Platform-* are stripped", vec![("X-Platform-User-Id", "u_forged"), ("X-PLATFORM-ROLE", "admin"), ("X-Platformish", "kept")], None,
                vec!["x-platformish: kept"]),
            ("our bearer that proved the identity goes", vec![("Authorization", bearer.as_str())], Some(Authorization), vec![]),
            ("a bearer that proved nothing passes", vec![("Authorization", "Bearer github_pat_123")], None, vec!["authorization: Bearer github_pat_123"]),
            ("Basic auth passes", vec![("Authorization", "Basic dXNlcjpwYXNz")], None, vec!["authorization: Basic dXNlcjpwYXNz"]),
            ("the API key that proved the identity goes, the tenant's Basic auth stays", vec![("Authorization", "Basic dXNlcjpwYXNz"), ("X-API-Key", "sk_abcdefghijkl_c2VjcmV0c2VjcmV0c2VjcmV0")], Some(ApiKey),
                vec!["authorization: Basic dXNlcjpwYXNz"]),
            ("ADMIN_API_KEY never leaves, proved or not", vec![("X-API-Key", ADMIN)], None, vec![]),
            ("ADMIN_API_KEY as a bearer never leaves either", vec![("Authorization", "Bearer dev-admin-key")], None, vec![]),
            ("a provider's API key passes", vec![("X-API-Key", "pk_live_provider")], None, vec!["x-api-key: pk_live_provider"]),
            ("the session cookie that proved the identity goes, other cookies stay", vec![("Cookie", "theme=dark; session=abc; cart=3")], Some(SessionCookie),
                vec!["cookie: theme=dark; cart=3"]),
            ("a Cookie that held only the session goes", vec![("Cookie", "session=abc")], Some(SessionCookie), vec![]),
            ("a tenant's own session cookie stays when it proved nothing", vec![("Cookie", "session=tenant")], Some(Authorization), vec!["cookie: session=tenant"]),
            ("provider signatures pass", vec![("X-Hub-Signature-256", "sha256=abc"), ("Stripe-Signature", "t=1,v1=x")], None,
                vec!["x-hub-signature-256: sha256=abc", "stripe-signature: t=1,v1=x"]),
        ];
        for (what, incoming, proved_by, expected) in cases {
            let outbound = Outbound {
                proved_by,
                admin_key: Some(ADMIN),
                set: set(),
            };
            let out = upstream_headers(&incoming, &outbound);
            let (own, theirs) = out.split_at(out.len() - 2);
            let theirs_seen: Vec<String> = own
                .iter()
                .map(|(n, v)| format!("{}: {v}", n.to_ascii_lowercase()))
                .collect();
            assert_eq!(theirs_seen, expected, "{what}");
            assert_eq!(names(theirs), ["x-request-id", "traceparent"], "{what}");
            assert_eq!(
                value(&out, "x-request-id"),
                Some("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
                "{what}"
            );
        }
    }

    #[test]
    fn identity_headers_are_set_last_and_replace_forgeries() {
        let mut set = set();
        set.push(("X-Platform-User-Id", "u_1".into()));
        set.push(("X-Platform-Role", "user".into()));
        set.push(("CF-Connecting-IP", "198.51.100.9".into()));
        let incoming = [
            ("x-platform-user-id", "forged"),
            ("cf-connecting-ip", "203.0.113.1"),
            ("Connection", "X-Platform-Role"),
        ];
        let out = upstream_headers(
            &incoming,
            &Outbound {
                proved_by: None,
                admin_key: None,
                set,
            },
        );
        assert_eq!(value(&out, "x-platform-user-id"), Some("u_1"));
        assert_eq!(value(&out, "x-platform-role"), Some("user"));
        assert_eq!(value(&out, "cf-connecting-ip"), Some("198.51.100.9"));
        assert_eq!(
            out.iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("x-platform-user-id"))
                .count(),
            1
        );
    }

    #[test]
    fn rules_by_name() {
        for (name, expected) in [
            ("Connection", Rule::KeptOnUpgrade),
            ("UPGRADE", Rule::KeptOnUpgrade),
            ("transfer-encoding", Rule::HopByHop),
            ("X-Platform-Anything", Rule::SetByApi),
            ("X-Request-Id", Rule::SetByApi),
            (
                "Authorization",
                Rule::Credential(CredentialHeader::Authorization),
            ),
            ("Host", Rule::AsSent),
            ("Sec-WebSocket-Key", Rule::AsSent),
            ("Set-Cookie", Rule::AsSent),
        ] {
            assert_eq!(rule(name), expected, "{name}");
        }
    }

    #[test]
    fn websocket_upgrades() {
        for (headers, expected) in [
            (
                vec![("Upgrade", "websocket"), ("Connection", "Upgrade")],
                true,
            ),
            (
                vec![
                    ("upgrade", "WebSocket"),
                    ("connection", "keep-alive, upgrade"),
                ],
                true,
            ),
            (vec![("Upgrade", "websocket")], false),
            (vec![("Connection", "Upgrade")], false),
            (vec![("Upgrade", "h2c"), ("Connection", "Upgrade")], false),
            (
                vec![("Upgrade", "websocketx"), ("Connection", "Upgrade")],
                false,
            ),
        ] {
            assert_eq!(
                is_websocket_upgrade(headers.iter().copied()),
                expected,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn platform_tokens() {
        assert!(is_platform_token(OUR_TOKEN));
        for foreign in [
            "github_pat_123",
            "a.b.c",
            "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJodHRwczovL3Rva2VuLmFjdGlvbnMuZ2l0aHViLmNvbSJ9.c2ln", // iss: GitHub
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", // no iss
            "x.eyJpc3MiOiJhdXRoLmFwaXMuZG8ifQ",          // two segments
        ] {
            assert!(!is_platform_token(foreign), "{foreign}");
        }
    }

    #[test]
    fn only_platform_format_credentials_count_on_forwarding_routes() {
        let bearer = format!("Bearer {OUR_TOKEN}");
        let session = format!("session={SESSION}");
        let api_key = "sk_abcdefghijkl_c2VjcmV0c2VjcmV0c2VjcmV0";
        #[rustfmt::skip]
        let cases: Vec<CredentialCase> = vec![
            (None, None, None, Ok(None)),
            (Some("Bearer github_pat_123"), None, None, Ok(None)),
            (Some("Basic dXNlcjpwYXNz"), None, None, Ok(None)),
            (Some("token abc"), None, None, Ok(None)),
            (Some(bearer.as_str()), None, None, Ok(Some(Credential::Bearer(OUR_TOKEN)))),
            (Some("Basic dXNlcjpwYXNz"), Some(api_key), None, Ok(Some(Credential::ApiKey(api_key)))),
            (None, Some("pk_provider_key"), None, Ok(None)),
            (None, Some("sk_live_51HStripeKey"), None, Ok(None)),
            (None, Some(ADMIN), None, Ok(Some(Credential::ApiKey(ADMIN)))),
            (None, None, Some("session=tenant-own"), Ok(None)),
            (None, None, Some("a=1"), Ok(None)),
            (None, None, Some(session.as_str()), Ok(Some(Credential::Session(SESSION)))),
            (Some("Bearer github_pat_123"), Some("pk_x"), Some(session.as_str()), Ok(Some(Credential::Session(SESSION)))),
        ];
        for (authorization, api_key, cookie, expected) in cases {
            assert_eq!(
                platform_credential(authorization, api_key, cookie, Some(ADMIN)),
                expected,
                "{authorization:?} {api_key:?} {cookie:?}"
            );
        }
    }

    #[test]
    fn traffic_and_identification_by_route() {
        let table = DomainRoutes::parse(
            br#"[
              {"domain": "shop.example", "worker": "shop", "namespace": "production"},
              {"domain": "members.example", "worker": "shop", "namespace": "production", "requiresAuth": true},
              {"domain": "hooks.example", "service": "webhooks"},
              {"domain": "private-hooks.example", "service": "webhooks", "requiresAuth": true},
              {"domain": "docs.example", "service": "db"}
            ]"#,
        )
        .expect("table");
        let cfg = RouterConfig::default();
        use Identification::*;
        for (host, path, traffic, identification_expected) in [
            ("api.do", "/health", Traffic::Platform, Strict),
            ("api.do", "/rpc", Traffic::Platform, Strict),
            ("api.do", "/api/db/notes", Traffic::Platform, Strict),
            ("api.do", "/api/auth/login", Traffic::Platform, Strict),
            ("api.do", "/api/waitlist", Traffic::Platform, Strict),
            ("docs.example", "/notes", Traffic::Platform, Strict),
            (
                "api.do",
                "/mcp/tools",
                Traffic::Forwarded,
                PlatformFormatOnly,
            ),
            (
                "api.do",
                "/api/webhooks/github",
                Traffic::Forwarded,
                PlatformFormatOnly,
            ),
            ("hooks.example", "/", Traffic::Forwarded, PlatformFormatOnly),
            ("private-hooks.example", "/", Traffic::Forwarded, Strict),
            ("api.do", "/api/agents/x", Traffic::Forwarded, Strict),
            ("myapp.do", "/", Traffic::Tenant, Skip),
            ("shop.example", "/", Traffic::Tenant, Skip),
            ("members.example", "/", Traffic::Tenant, Strict),
            ("nobody.example", "/", Traffic::Platform, Skip),
            ("api.do", "/nope", Traffic::Platform, Strict),
        ] {
            let host_parsed = normalize_host(host).expect("host");
            let routed = route(&host_parsed, path, &cfg, Some(&table));
            assert_eq!(Traffic::of(&routed), traffic, "{host}{path}");
            assert_eq!(
                identification(&routed),
                identification_expected,
                "{host}{path}"
            );
        }
    }

    /// The README's pass-through table names every header of the code's table.
    #[test]
    fn the_readme_lists_every_row() {
        let readme = include_str!("../../../README.md").to_ascii_lowercase();
        let marker = "<!-- pass-through table";
        let start = readme
            .find(marker)
            .expect("the README's pass-through table marker");
        let table = &readme[start..];
        let table = &table[..table.find("\n\n").unwrap_or(table.len())];
        for row in REQUEST_HEADERS {
            let name = format!("`{}`", row.header);
            assert!(
                table.contains(&name),
                "README's pass-through table lacks {name}"
            );
        }
    }
}
