//! The waitlist for unmatched domains: the sign-up page, sign-ups stored in D1
//! (`WAITLIST_DB`, table `waitlist_signups` in `migrations/`), the safety checks that refuse a
//! page (IP literals, lookalikes of platform hosts, the `WAITLIST_DENYLIST` var), and the
//! admin listing at `/api/waitlist/{domain}` (keyset pages of JSON, or a streamed CSV export
//! read from D1 one chunk at a time). The decisions themselves are pure functions in
//! `gateway::waitlist`; this module wires them to the request, D1 and the response.

use std::cell::Cell;

use futures_util::stream;
use gateway::access::AccessLevel;
use gateway::host::normalize_host;
use gateway::problem::Problem;
use gateway::waitlist::{
    check_domain, csv_rows, encode_admin_cursor, form_or_json_email, hash_ip, parse_admin_page,
    parse_admin_path, parse_denylist, platform_hosts, prefers, render_invalid_email_html,
    render_joined_html, render_page, same_origin, AdminPage, AdminRequest, WaitlistError,
    CSV_CHUNK_ROWS, CSV_HEADER, MAX_SIGNUP_BYTES, PAGE_CSP,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use wasm_bindgen::JsValue;
use worker::{Context, D1Database, Env, Method, Request, Response};

use crate::config::{self, Config};
use crate::context::RequestCtx;
use crate::error::{json_response, problem_response, ApiError};
use crate::log;

const DB_BINDING: &str = "WAITLIST_DB";
const DENYLIST_VAR: &str = "WAITLIST_DENYLIST";
const SALT_VAR: &str = "WAITLIST_IP_SALT";
/// The salt when `WAITLIST_IP_SALT` is unset (local dev and tests). A deployment sets the
/// secret: with a public salt the hashes of the small IPv4 space can be enumerated.
const LOCAL_IP_SALT: &str = "local-dev-waitlist-ip-salt";
/// Where the page's form posts, on the waitlist's own host.
const SIGNUP_PATH: &str = "/waitlist";
/// The page is the same for every visitor of a host; short, so a domain that gets a worker
/// stops showing its waitlist soon after.
const PAGE_CACHE_CONTROL: &str = "public, max-age=60";

const INSERT_SIGNUP: &str = "INSERT INTO waitlist_signups (domain, email, ip_hash, created_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (domain, email) DO NOTHING";
/// Keyset page of one domain's sign-ups in sign-up order: `?1 domain, ?2 after created_at,
/// ?3 after email ("" and "" for the first page), ?4 rows`.
const SELECT_SIGNUPS: &str = "SELECT email, created_at AS createdAt FROM waitlist_signups \
     WHERE domain = ?1 AND (created_at > ?2 OR (created_at = ?2 AND email > ?3)) \
     ORDER BY created_at, email LIMIT ?4";
/// Keyset page of the per-domain counts: `?1 after domain ("" for the first page), ?2 rows`.
const SELECT_DOMAINS: &str = "SELECT domain, COUNT(*) AS count, MAX(created_at) AS latestAt \
     FROM waitlist_signups WHERE domain > ?1 GROUP BY domain ORDER BY domain LIMIT ?2";

/// Any host nothing else claimed (and a platform-zone host whose user worker is missing):
/// `GET`/`HEAD` any path → the page; `POST /waitlist` → a sign-up; else 405.
pub async fn handle_domain(
    req: &Request,
    env: &Env,
    _ctx: &Context,
    rc: &RequestCtx,
) -> Result<Response, ApiError> {
    let config = config::load(env);
    refuse_unsafe_host(env, &config, rc)?;
    let on_signup_path = rc.path.trim_end_matches('/') == SIGNUP_PATH;
    match req.method() {
        Method::Get | Method::Head => page(&rc.host, &config),
        Method::Post if on_signup_path => signup(req, env, rc).await,
        _ if on_signup_path => Ok(method_not_allowed(rc, "GET, HEAD, POST")),
        _ => Ok(method_not_allowed(rc, "GET, HEAD")),
    }
}

/// The `waitlist` registry service (`/api/waitlist/...`, `/waitlist/...` on API hosts): the
/// admin's view of the sign-ups. The registry row is anon (sign-ups happen on the domains
/// themselves), so the admin check is made here.
pub async fn handle_service(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    path: &str,
) -> Result<Response, ApiError> {
    rc.require(AccessLevel::Admin)?;
    let Some(parsed) = parse_admin_path(path) else {
        return Err(ApiError::NotFound("no such waitlist resource".into()));
    };
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Ok(method_not_allowed(rc, "GET, HEAD"));
    }
    let request = parsed.map_err(|e| ApiError::BadRequest(format!("invalid domain: {e}")))?;
    let query = req.url()?.query().map(str::to_string);
    let db = database(env)?;
    match request {
        AdminRequest::Domains => {
            let page = parse_admin_page(query.as_deref(), 1).map_err(ApiError::BadRequest)?;
            list_domains(&db, &page).await
        }
        AdminRequest::Signups(domain) => {
            let accept = req.headers().get("accept").ok().flatten();
            if prefers(accept.as_deref(), "text/csv", "application/json") {
                return export_csv(env.clone(), domain, rc.request_id.clone());
            }
            let page = parse_admin_page(query.as_deref(), 2).map_err(ApiError::BadRequest)?;
            list_signups(&db, &domain, &page).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The domain's page and sign-ups

/// The safety checks: a 404 problem instead of a page (or a sign-up) for IP literals,
/// lookalikes of the platform's own hosts, and denylisted domains. The reason is logged, not
/// told to the client.
fn refuse_unsafe_host(env: &Env, config: &Config, rc: &RequestCtx) -> Result<(), ApiError> {
    let is_ip = normalize_host(&rc.host).is_ok_and(|h| h.is_ip());
    let router = &config.router;
    let platform = platform_hosts(
        &router.api_hosts,
        &router.services_zone,
        &router.platform_zone,
    );
    let platform: Vec<&str> = platform.iter().map(String::as_str).collect();
    let denylist = parse_denylist(config::var(env, DENYLIST_VAR).as_deref());
    check_domain(&rc.host, is_ip, &platform, &denylist).map_err(|refusal| {
        log::event(
            "info",
            "waitlist refused",
            &[
                ("requestId", &rc.request_id),
                ("host", &rc.host),
                ("reason", &refusal.to_string()),
            ],
        );
        ApiError::NotFound("There is no waitlist for this host.".into())
    })
}

fn page(domain: &str, config: &Config) -> Result<Response, ApiError> {
    let response = Response::from_html(render_page(domain, &config.router.services_zone))?;
    Ok(with_page_headers(response, PAGE_CACHE_CONTROL))
}

#[derive(Serialize)]
struct SignupAnswer {
    status: &'static str,
}

async fn signup(req: &Request, env: &Env, rc: &RequestCtx) -> Result<Response, ApiError> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    // A browser form post without JS asks for HTML; fetch and curl send */* and get JSON.
    let wants_html = prefers(header("accept").as_deref(), "text/html", "application/json");
    // A page elsewhere must not sign up its visitors here with their browsers (browsers send
    // Origin on every POST; non-browser clients send none and are limited by the limiter).
    if let Some(origin) = header("origin") {
        if !same_origin(&origin, &rc.host) {
            return Err(ApiError::Forbidden(
                "sign-ups are accepted only from this domain's own page".into(),
            ));
        }
    }
    let email = match crate::body::read_capped(req, MAX_SIGNUP_BYTES).await? {
        Some(body) => form_or_json_email(header("content-type").as_deref(), &body),
        None => Err(WaitlistError::TooLarge),
    };
    let email = match email {
        Ok(email) => email,
        Err(e) if wants_html && e.status() == 400 => {
            let response = Response::from_html(render_invalid_email_html(&rc.host))?;
            return Ok(with_page_headers(response.with_status(400), "no-store"));
        }
        Err(e) => return Err(signup_error(e)),
    };

    let db = database(env)?;
    let ip_hash = rc
        .ip
        .as_deref()
        .map(|ip| JsValue::from(hash_ip(ip, ip_salt(env).as_bytes())))
        .unwrap_or(JsValue::NULL);
    let created_at = String::from(js_sys::Date::new_0().to_iso_string());
    let result = db
        .prepare(INSERT_SIGNUP)
        .bind(&[
            rc.host.as_str().into(),
            email.into(),
            ip_hash,
            created_at.into(),
        ])?
        .run()
        .await
        .map_err(|e| ApiError::Internal(format!("waitlist insert failed: {e}")))?;
    // ON CONFLICT DO NOTHING: one changed row is a new sign-up, none is a repeat.
    let joined = result.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0;
    let status = if joined { 201 } else { 200 };

    if wants_html {
        let response = Response::from_html(render_joined_html(&rc.host, !joined))?;
        return Ok(with_page_headers(response.with_status(status), "no-store"));
    }
    let answer = SignupAnswer {
        status: if joined { "joined" } else { "already_joined" },
    };
    let mut response = json_response(status, &answer);
    let _ = response.headers_mut().set("Cache-Control", "no-store");
    Ok(response)
}

fn signup_error(e: WaitlistError) -> ApiError {
    match e {
        WaitlistError::TooLarge => ApiError::PayloadTooLarge,
        WaitlistError::UnsupportedMediaType => {
            ApiError::Problem(Box::new(Problem::new(415, e.to_string())))
        }
        WaitlistError::InvalidEmail(_) | WaitlistError::Malformed(_) => {
            ApiError::BadRequest(e.to_string())
        }
    }
}

thread_local! {
    static WARNED_LOCAL_SALT: Cell<bool> = const { Cell::new(false) };
}

fn ip_salt(env: &Env) -> String {
    if let Some(salt) = config::var(env, SALT_VAR) {
        return salt;
    }
    // Once per isolate: loud enough to be noticed in a deployment's logs, quiet in tests.
    if !WARNED_LOCAL_SALT.with(|w| w.replace(true)) {
        log::event(
            "warn",
            "WAITLIST_IP_SALT is not set: IP hashes use the fixed local salt",
            &[],
        );
    }
    LOCAL_IP_SALT.to_string()
}

// ---------------------------------------------------------------------------------------------
// The admin listing

#[derive(Serialize, Deserialize)]
struct SignupRow {
    email: String,
    #[serde(rename = "createdAt")]
    created_at: String,
}

#[derive(Serialize, Deserialize)]
struct DomainRow {
    domain: String,
    count: u64,
    #[serde(rename = "latestAt")]
    latest_at: String,
}

/// One keyset page of `domain`'s sign-ups after `after` (`[created_at, email]`).
async fn signups_after(
    db: &D1Database,
    domain: &str,
    after: Option<&[String]>,
    rows: u32,
) -> Result<Vec<SignupRow>, ApiError> {
    let (at, email) = match after {
        Some([at, email]) => (at.as_str(), email.as_str()),
        _ => ("", ""),
    };
    db.prepare(SELECT_SIGNUPS)
        .bind(&[
            domain.into(),
            at.into(),
            email.into(),
            JsValue::from_f64(f64::from(rows)),
        ])?
        .all()
        .await
        .and_then(|r| r.results())
        .map_err(|e| ApiError::Internal(format!("waitlist listing failed: {e}")))
}

/// Splits `limit + 1` fetched rows into the page and the cursor of the next one.
fn page_of<T>(
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = rows.last().filter(|_| more).map(key);
    (rows, next)
}

async fn list_signups(
    db: &D1Database,
    domain: &str,
    page: &AdminPage,
) -> Result<Response, ApiError> {
    let rows = signups_after(db, domain, page.after.as_deref(), page.limit + 1).await?;
    let (rows, next_cursor) = page_of(rows, page.limit, |r| {
        encode_admin_cursor(&[r.created_at.as_str(), r.email.as_str()])
    });
    let mut response = json_response(
        200,
        &json!({ "domain": domain, "count": rows.len(), "signups": rows, "nextCursor": next_cursor }),
    );
    let _ = response.headers_mut().set("Cache-Control", "no-store");
    let _ = response.headers_mut().set("Vary", "Accept");
    Ok(response)
}

/// Where a streamed export stands: the next chunk starts after `after`.
struct Export {
    env: Env,
    domain: String,
    request_id: String,
    after: Option<Vec<String>>,
    first: bool,
}

/// The whole CSV export of `domain`, streamed: the header, then one chunk of
/// [`CSV_CHUNK_ROWS`] sign-ups per D1 query, so the isolate never holds the whole list. A
/// query failing mid-export is logged and ends the stream with an error (the client sees a
/// truncated transfer, never a short file that looks complete).
fn export_csv(env: Env, domain: String, request_id: String) -> Result<Response, ApiError> {
    let filename = format!("attachment; filename=\"waitlist-{domain}.csv\"");
    let start = Export {
        env,
        domain,
        request_id,
        after: None,
        first: true,
    };
    let chunks = stream::unfold(Some(start), |state| async move {
        let mut state = state?;
        let rows = match database(&state.env) {
            Ok(db) => {
                signups_after(&db, &state.domain, state.after.as_deref(), CSV_CHUNK_ROWS).await
            }
            Err(e) => Err(e),
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                let detail = e
                    .internal_detail()
                    .unwrap_or_else(|| "the waitlist database is not configured".into());
                log::event(
                    "error",
                    "waitlist export failed",
                    &[("requestId", &state.request_id), ("error", &detail)],
                );
                return Some((Err(worker::Error::RustError("export failed".into())), None));
            }
        };
        let mut text = if state.first {
            CSV_HEADER.to_string()
        } else {
            String::new()
        };
        let full = rows.len() >= CSV_CHUNK_ROWS as usize;
        state.after = rows
            .last()
            .map(|r| vec![r.created_at.clone(), r.email.clone()]);
        let pairs: Vec<(String, String)> =
            rows.into_iter().map(|r| (r.email, r.created_at)).collect();
        text.push_str(&csv_rows(&pairs));
        state.first = false;
        Some((Ok(text.into_bytes()), full.then_some(state)))
    });
    let mut response = Response::from_stream(chunks)?;
    let headers = response.headers_mut();
    let _ = headers.set("Content-Type", "text/csv; charset=utf-8");
    // The normalised domain is [a-z0-9._-] (or a bracketed IPv6): safe in a quoted name.
    let _ = headers.set("Content-Disposition", &filename);
    let _ = headers.set("Cache-Control", "no-store");
    let _ = headers.set("Vary", "Accept");
    Ok(response)
}

async fn list_domains(db: &D1Database, page: &AdminPage) -> Result<Response, ApiError> {
    let after = page
        .after
        .as_ref()
        .and_then(|a| a.first())
        .map_or("", String::as_str);
    let rows: Vec<DomainRow> = db
        .prepare(SELECT_DOMAINS)
        .bind(&[after.into(), JsValue::from_f64(f64::from(page.limit + 1))])?
        .all()
        .await
        .and_then(|r| r.results())
        .map_err(|e| ApiError::Internal(format!("waitlist domains failed: {e}")))?;
    let (rows, next_cursor) = page_of(rows, page.limit, |r| {
        encode_admin_cursor(&[r.domain.as_str()])
    });
    let mut response = json_response(
        200,
        &json!({ "count": rows.len(), "domains": rows, "nextCursor": next_cursor }),
    );
    let _ = response.headers_mut().set("Cache-Control", "no-store");
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Shared

fn database(env: &Env) -> Result<D1Database, ApiError> {
    env.d1(DB_BINDING)
        .map_err(|_| ApiError::ServiceUnavailable("the waitlist database is not configured".into()))
}

/// Headers of every HTML answer: the page's CSP (its own hashed style and script only), no
/// sniffing, and no referrer to other sites. Not `no-referrer`: under it a browser sends
/// `Origin: null` with the form's own post, which the same-origin check must refuse.
fn with_page_headers(mut response: Response, cache_control: &str) -> Response {
    let headers = response.headers_mut();
    let _ = headers.set("Content-Security-Policy", PAGE_CSP);
    let _ = headers.set("X-Content-Type-Options", "nosniff");
    let _ = headers.set("Referrer-Policy", "same-origin");
    let _ = headers.set("Cache-Control", cache_control);
    response
}

fn method_not_allowed(rc: &RequestCtx, allow: &str) -> Response {
    let mut response =
        problem_response(Problem::method_not_allowed().with_request_id(&rc.request_id));
    let _ = response.headers_mut().set("Allow", allow);
    response
}
