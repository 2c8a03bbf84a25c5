//! Runtime domain routes: the admin API at `/api/routes` (list, get, put, delete, audit) over
//! the api's own D1 (`WAITLIST_DB`, tables in `migrations/0002_runtime_routes.sql`), and the
//! merge of those entries into the routing table on every refresh (called from `routing`).
//! The rules, the merge and the listings are pure, in `gateway::runtime_routes`.

use std::cell::RefCell;
use std::rc::Rc;

use gateway::access::AccessLevel;
use gateway::problem::Problem;
use gateway::routes::DomainRoutes;
use gateway::runtime_routes::{
    self as pure, parse_admin_path, parse_audit_query, parse_list_query, AdminPath, AuditRow,
    RuntimeEntry, MAX_ENTRY_BYTES,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use wasm_bindgen::JsValue;
use worker::{D1Database, Env, Method, Request, Response};

use crate::body::read_capped;
use crate::config::Config;
use crate::context::RequestCtx;
use crate::error::{json_response, problem_response, ApiError};
use crate::{log, routing};

const DB_BINDING: &str = "WAITLIST_DB";
const KV_BINDING: &str = "ROUTES_CACHE";
/// Written after every committed change; a refresh compares it with the version it last read
/// and reads D1 only when it differs, so an unchanged table costs one small KV read.
const VERSION_KEY: &str = "domain-routes:runtime-version";
/// However the stamp looks, D1 is re-read this often: a lost or slow-to-propagate KV write
/// (KV is eventually consistent across locations) delays a change by at most this much.
const RECHECK_MS: f64 = 60_000.0;
/// Every row as of the last change (written after each commit): what an isolate that has never
/// read D1 falls back to while D1 is down, instead of failing its load.
const SNAPSHOT_KEY: &str = "domain-routes:runtime-snapshot";

const SELECT_ALL: &str = "SELECT domain, entry, updated_at AS updatedAt, \
     updated_by AS updatedBy FROM runtime_routes ORDER BY domain";
/// The audit row first, with `before` read inside the same statement, so the trail and the
/// table change together (a batch is one transaction) and `before` is what was replaced.
const AUDIT_PUT: &str = "INSERT INTO runtime_routes_audit \
     (at, actor, action, domain, before, after, request_id) \
     SELECT ?1, ?2, 'put', ?3, (SELECT entry FROM runtime_routes WHERE domain = ?3), ?4, ?5 \
     RETURNING before";
/// (D1 wants exactly the parameters a statement uses, so each statement binds its own.)
const UPSERT: &str = "INSERT INTO runtime_routes (domain, entry, updated_at, updated_by) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (domain) DO UPDATE SET entry = excluded.entry, \
     updated_at = excluded.updated_at, updated_by = excluded.updated_by";
const AUDIT_DELETE: &str = "INSERT INTO runtime_routes_audit \
     (at, actor, action, domain, before, after, request_id) \
     SELECT ?1, ?2, 'delete', domain, entry, NULL, ?4 FROM runtime_routes WHERE domain = ?3 \
     RETURNING id";
const DELETE: &str = "DELETE FROM runtime_routes WHERE domain = ?1";
const SELECT_AUDIT: &str = "SELECT id, at, actor, action, domain, before, after, \
     request_id AS requestId FROM runtime_routes_audit \
     WHERE (?1 IS NULL OR domain = ?1) AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3";

#[derive(Deserialize, Serialize)]
struct StoredRow {
    domain: String,
    entry: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    #[serde(rename = "updatedBy")]
    updated_by: String,
}

#[derive(Deserialize)]
struct BeforeRow {
    before: Option<String>,
}

/// What this isolate last read from D1, and under which version stamp.
struct Loaded {
    version: Option<String>,
    entries: Rc<Vec<RuntimeEntry>>,
    read_at_ms: f64,
}

thread_local! {
    static LOADED: RefCell<Option<Loaded>> = const { RefCell::new(None) };
}

// ---------------------------------------------------------------------------------------------
// The merge, on every routing refresh

/// The file's table with the runtime entries over it. D1 is read only when the version stamp
/// moved (or `RECHECK_MS` passed); when D1 fails, the entries last read stay in force, an
/// isolate that never read them takes the KV snapshot of the last change, and one without
/// even that fails the load (routing then answers 503 for domain-routed hosts: never a table
/// missing its runtime entries, which could revive a route an admin disabled).
pub async fn merge_into(env: &Env, file: DomainRoutes) -> Result<DomainRoutes, String> {
    let stamp = read_stamp(env).await;
    let now = js_sys::Date::now();
    let cached = LOADED.with(|l| {
        l.borrow()
            .as_ref()
            .map(|l| (l.version.clone(), l.entries.clone(), l.read_at_ms))
    });
    let entries = match cached {
        Some((version, entries, read_at))
            if stamp.as_ref().is_ok_and(|s| *s == version) && now - read_at < RECHECK_MS =>
        {
            entries
        }
        cached => match read_all(env).await {
            Ok(entries) => {
                let entries = Rc::new(entries);
                LOADED.with(|l| {
                    *l.borrow_mut() = Some(Loaded {
                        version: stamp.ok().flatten(),
                        entries: entries.clone(),
                        read_at_ms: now,
                    })
                });
                entries
            }
            Err(e) => match cached {
                Some((_, entries, _)) => {
                    log::event(
                        "error",
                        "runtime routes unreadable; keeping the entries last read",
                        &[("error", &e)],
                    );
                    entries
                }
                None => match read_snapshot(env).await {
                    Some(entries) => {
                        log::event(
                            "error",
                            "runtime routes unreadable; using the snapshot of the last change",
                            &[("error", &e)],
                        );
                        let entries = Rc::new(entries);
                        // Kept as the entries last read, but due for a D1 read next refresh.
                        LOADED.with(|l| {
                            *l.borrow_mut() = Some(Loaded {
                                version: None,
                                entries: entries.clone(),
                                read_at_ms: 0.0,
                            })
                        });
                        entries
                    }
                    None => return Err(format!("runtime routes unreadable: {e}")),
                },
            },
        },
    };
    pure::merge(file, &entries).map_err(|e| e.to_string())
}

/// The stamp (`None`: never written); `Err` when KV could not be read, which forces a D1 read.
async fn read_stamp(env: &Env) -> Result<Option<String>, ()> {
    let kv = env.kv(KV_BINDING).map_err(|_| ())?;
    kv.get(VERSION_KEY).text().await.map_err(|_| ())
}

/// One KV write of `value` under `key`; any failure as text for the log.
async fn kv_put<T: serde::Serialize>(env: &Env, key: &str, value: T) -> Result<(), String> {
    let kv = env.kv(KV_BINDING).map_err(|e| e.to_string())?;
    kv.put(key, value)
        .map_err(|e| e.to_string())?
        .execute()
        .await
        .map_err(|e| e.to_string())
}

async fn write_stamp(env: &Env, version: &str) {
    if let Err(e) = kv_put(env, VERSION_KEY, version).await {
        log::event(
            "warn",
            "runtime routes: version stamp not written; other isolates see the change within RECHECK_MS",
            &[("error", &e)],
        );
    }
}

async fn read_rows(env: &Env) -> Result<Vec<StoredRow>, String> {
    let db = env.d1(DB_BINDING).map_err(|e| e.to_string())?;
    db.prepare(SELECT_ALL)
        .all()
        .await
        .and_then(|r| r.results())
        .map_err(|e| e.to_string())
}

async fn read_all(env: &Env) -> Result<Vec<RuntimeEntry>, String> {
    Ok(compile_rows(read_rows(env).await?))
}

async fn read_snapshot(env: &Env) -> Option<Vec<RuntimeEntry>> {
    let kv = env.kv(KV_BINDING).ok()?;
    let rows = kv.get(SNAPSHOT_KEY).json::<Vec<StoredRow>>().await.ok()??;
    Some(compile_rows(rows))
}

fn compile_rows(rows: Vec<StoredRow>) -> Vec<RuntimeEntry> {
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        match pure::from_stored(&row.domain, &row.entry, &row.updated_at, &row.updated_by) {
            Ok(entry) => entries.push(entry),
            Err(e) => log::event(
                "error",
                "runtime route no longer valid; skipped",
                &[("domain", &row.domain), ("error", &e)],
            ),
        }
    }
    entries
}

// ---------------------------------------------------------------------------------------------
// The admin API

/// `/api/routes/...` (the registry row is admin-only; checked again here, as it is the
/// whole point of these routes).
pub async fn handle(
    req: &Request,
    env: &Env,
    config: &Config,
    rc: &RequestCtx,
    path: &str,
) -> Result<Response, ApiError> {
    // The one access check (the pipeline made it too); the audit names the admin.
    rc.require(AccessLevel::Admin)?;
    let actor = rc
        .identity
        .as_ref()
        .map_or_else(String::new, |i| i.user_id.clone());
    let target = parse_admin_path(path)
        .ok_or_else(|| ApiError::NotFound("no such routes resource".into()))?;
    let method = req.method();
    let mut response = match (method, target) {
        (Method::Get | Method::Head, AdminPath::List) => list(req, env, config).await?,
        (Method::Get | Method::Head, AdminPath::Audit) => audit(req, env).await?,
        (Method::Get | Method::Head, AdminPath::Entry(domain)) => {
            get_one(env, config, &domain.to_ascii_lowercase()).await?
        }
        (Method::Put, AdminPath::Entry(domain)) => {
            put(req, env, config, rc, &actor, &domain).await?
        }
        (Method::Delete, AdminPath::Entry(domain)) => {
            delete(env, config, rc, &actor, &domain.to_ascii_lowercase()).await?
        }
        (_, AdminPath::Entry(_)) => method_not_allowed(rc, "GET, HEAD, PUT, DELETE"),
        (_, _) => method_not_allowed(rc, "GET, HEAD"),
    };
    let _ = response.headers_mut().set("Cache-Control", "no-store");
    Ok(response)
}

async fn file_table(env: &Env, config: &Config) -> Result<DomainRoutes, ApiError> {
    routing::load_file(env, config.routes_ttl_ms, false)
        .await
        .map_err(|e| ApiError::ServiceUnavailable(format!("the routes file is unavailable: {e}")))
}

async fn runtime_entries(env: &Env) -> Result<Vec<RuntimeEntry>, ApiError> {
    read_all(env)
        .await
        .map_err(|e| unavailable("runtime routes unreadable", e))
}

/// A D1 failure: logged with its detail, answered 503 without it. (The entries are validated
/// before they are written, so a failing statement is the database, not the input.)
fn unavailable(what: &str, error: impl std::fmt::Display) -> ApiError {
    log::event("error", what, &[("error", &error.to_string())]);
    ApiError::ServiceUnavailable("the runtime routes database is unavailable".into())
}

async fn list(req: &Request, env: &Env, config: &Config) -> Result<Response, ApiError> {
    let url = req.url()?;
    let query = parse_list_query(url.query()).map_err(ApiError::BadRequest)?;
    let file = file_table(env, config).await?;
    let runtime = runtime_entries(env).await?;
    Ok(json_response(200, &pure::list(&file, &runtime, &query)))
}

async fn get_one(env: &Env, config: &Config, domain: &str) -> Result<Response, ApiError> {
    let file = file_table(env, config).await?;
    let runtime = runtime_entries(env).await?;
    match pure::find(&file, &runtime, domain) {
        Some(item) => Ok(json_response(200, &item)),
        None => Err(ApiError::NotFound(format!("no route for {domain}"))),
    }
}

async fn put(
    req: &Request,
    env: &Env,
    config: &Config,
    rc: &RequestCtx,
    actor: &str,
    domain: &str,
) -> Result<Response, ApiError> {
    let body = read_capped(req, MAX_ENTRY_BYTES)
        .await?
        .ok_or(ApiError::PayloadTooLarge)?;
    let now = String::from(js_sys::Date::new_0().to_iso_string());
    let valid = match pure::validate(domain, &body, &now) {
        Ok(valid) => valid,
        Err(issues) => {
            let summary = issues
                .iter()
                .map(|i| match i.field.as_str() {
                    "" => i.message.clone(),
                    field => format!("{field}: {}", i.message),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let problem = Problem::bad_request(format!("invalid route entry: {summary}"))
                .with_extra("problems", json!(issues));
            return Err(ApiError::Problem(Box::new(problem)));
        }
    };
    let db = database(env)?;
    let args = [
        JsValue::from(now.as_str()),
        JsValue::from(actor),
        JsValue::from(valid.domain.as_str()),
        JsValue::from(valid.stored.as_str()),
        JsValue::from(rc.request_id.as_str()),
    ];
    let results = db
        .batch(vec![
            db.prepare(AUDIT_PUT).bind(&args)?,
            db.prepare(UPSERT).bind(&[
                args[2].clone(),
                args[3].clone(),
                args[0].clone(),
                args[1].clone(),
            ])?,
        ])
        .await
        .map_err(|e| unavailable("runtime route write failed", e))?;
    let replaced = results
        .first()
        .and_then(|r| r.results::<BeforeRow>().ok())
        .and_then(|rows| rows.into_iter().next())
        .is_some_and(|row| row.before.is_some());
    changed(env).await;

    let overrides_file = file_table(env, config)
        .await
        .is_ok_and(|f| f.get(&valid.domain).is_some());
    let entry = RuntimeEntry {
        domain: valid.domain.clone(),
        route: valid.route,
        updated_at: now,
        updated_by: actor.to_string(),
    };
    let mut response = json_response(
        if replaced { 200 } else { 201 },
        &pure::runtime_item(&entry, overrides_file),
    );
    if !replaced {
        let _ = response
            .headers_mut()
            .set("Location", &format!("/api/routes/{}", valid.domain));
    }
    Ok(response)
}

async fn delete(
    env: &Env,
    config: &Config,
    rc: &RequestCtx,
    actor: &str,
    domain: &str,
) -> Result<Response, ApiError> {
    let db = database(env)?;
    let now = String::from(js_sys::Date::new_0().to_iso_string());
    let args = [
        JsValue::from(now.as_str()),
        JsValue::from(actor),
        JsValue::from(domain),
        JsValue::from(rc.request_id.as_str()),
    ];
    let results = db
        .batch(vec![
            db.prepare(AUDIT_DELETE).bind(&args)?,
            db.prepare(DELETE).bind(&[args[2].clone()])?,
        ])
        .await
        .map_err(|e| unavailable("runtime route delete failed", e))?;
    let deleted = results
        .first()
        .and_then(|r| r.results::<serde_json::Value>().ok())
        .is_some_and(|rows| !rows.is_empty());
    if !deleted {
        let in_file = file_table(env, config)
            .await
            .is_ok_and(|f| f.get(domain).is_some());
        return Err(if in_file {
            ApiError::Conflict(format!(
                "{domain} comes from the routes file and cannot be deleted; \
                 PUT a runtime entry to override it, or {{\"disabled\": true}} to mask it"
            ))
        } else {
            ApiError::NotFound(format!("no runtime route for {domain}"))
        });
    }
    changed(env).await;
    Ok(Response::empty()?.with_status(204))
}

/// After a committed change: a new stamp for every isolate, and this one refreshes at once.
async fn changed(env: &Env) {
    // The snapshot first, so an isolate that sees the new stamp and then fails to read D1
    // finds rows at least as new.
    match read_rows(env).await {
        Ok(rows) => {
            if let Err(e) = kv_put(env, SNAPSHOT_KEY, &rows).await {
                log::event(
                    "warn",
                    "runtime routes: snapshot not written",
                    &[("error", &e)],
                );
            }
        }
        Err(e) => log::event(
            "warn",
            "runtime routes: snapshot not read",
            &[("error", &e)],
        ),
    }
    write_stamp(env, &crate::pipeline::new_ulid()).await;
    routing::invalidate();
}

async fn audit(req: &Request, env: &Env) -> Result<Response, ApiError> {
    let url = req.url()?;
    let query = parse_audit_query(url.query()).map_err(ApiError::BadRequest)?;
    let db = database(env)?;
    let rows: Vec<AuditRow> = db
        .prepare(SELECT_AUDIT)
        .bind(&[
            query.domain.as_deref().map_or(JsValue::NULL, JsValue::from),
            query
                .before_id
                .map_or(JsValue::NULL, |id| JsValue::from_f64(id as f64)),
            JsValue::from_f64(query.limit as f64),
        ])?
        .all()
        .await
        .and_then(|r| r.results())
        .map_err(|e| unavailable("runtime routes audit failed", e))?;
    let next_cursor = (rows.len() == query.limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let items: Vec<_> = rows.iter().map(AuditRow::to_json).collect();
    Ok(json_response(
        200,
        &json!({ "items": items, "nextCursor": next_cursor }),
    ))
}

fn database(env: &Env) -> Result<D1Database, ApiError> {
    env.d1(DB_BINDING).map_err(|_| {
        ApiError::ServiceUnavailable("the runtime routes database is not configured".into())
    })
}

fn method_not_allowed(rc: &RequestCtx, allow: &str) -> Response {
    let mut response =
        problem_response(Problem::method_not_allowed().with_request_id(&rc.request_id));
    let _ = response.headers_mut().set("Allow", allow);
    response
}
