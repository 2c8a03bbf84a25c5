//! D1 access for users, sessions and API keys: typed rows and the few query shapes the
//! service needs (one row, all rows, a write with its change count).

use serde::de::DeserializeOwned;
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::D1Database;

use crate::error::Fault;

#[derive(Debug, Clone, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub created_at: String,
}

/// A user and their password record, for login.
#[derive(Deserialize)]
pub struct Credentials {
    pub password_hash: String,
    #[serde(flatten)]
    pub user: UserRow,
}

/// A session and its user, as `validateSession` / `validateToken` read them.
#[derive(Deserialize)]
pub struct SessionRow {
    pub expires_at: f64,
    pub revoked_at: Option<String>,
    #[serde(flatten)]
    pub user: UserRow,
}

/// An API key and its user.
#[derive(Deserialize)]
pub struct KeyRow {
    pub key_hash: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    #[serde(flatten)]
    pub user: UserRow,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyInfoRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

pub const USER_COLUMNS: &str = "u.id, u.email, u.name, u.role, u.created_at";

pub fn database() -> Result<D1Database, Fault> {
    rpc::sys::importable_env()
        .d1("DB")
        .map_err(|_| Fault("the D1 binding DB is not configured".into()))
}

fn d1_fault(e: worker::Error) -> Fault {
    // D1 messages name tables and constraints, never bound values.
    Fault(format!("D1: {e}"))
}

pub fn is_unique_violation(fault: &Fault) -> bool {
    gateway::faults::classify_d1(&fault.0) == gateway::faults::D1Failure::UniqueViolation
}

pub fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

pub fn opt_text(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, JsValue::from_str)
}

pub fn number(n: f64) -> JsValue {
    JsValue::from_f64(n)
}

pub async fn first<T: DeserializeOwned>(
    db: &D1Database,
    sql: &str,
    args: &[JsValue],
) -> Result<Option<T>, Fault> {
    db.prepare(sql)
        .bind(args)
        .map_err(d1_fault)?
        .first::<T>(None)
        .await
        .map_err(d1_fault)
}

pub async fn all<T: DeserializeOwned>(
    db: &D1Database,
    sql: &str,
    args: &[JsValue],
) -> Result<Vec<T>, Fault> {
    db.prepare(sql)
        .bind(args)
        .map_err(d1_fault)?
        .all()
        .await
        .map_err(d1_fault)?
        .results::<T>()
        .map_err(d1_fault)
}

/// Runs a write; returns how many rows it changed.
pub async fn write(db: &D1Database, sql: &str, args: &[JsValue]) -> Result<usize, Fault> {
    let result = db
        .prepare(sql)
        .bind(args)
        .map_err(d1_fault)?
        .run()
        .await
        .map_err(d1_fault)?;
    Ok(result
        .meta()
        .map_err(d1_fault)?
        .and_then(|m| m.changes)
        .unwrap_or(0))
}

/// A statement for [`batch`].
pub fn statement(
    db: &D1Database,
    sql: &str,
    args: &[JsValue],
) -> Result<worker::D1PreparedStatement, Fault> {
    db.prepare(sql).bind(args).map_err(d1_fault)
}

/// Runs statements as one D1 batch (one transaction: all or nothing, in order); returns each
/// one's result.
pub async fn batch(
    db: &D1Database,
    statements: Vec<worker::D1PreparedStatement>,
) -> Result<Vec<worker::D1Result>, Fault> {
    db.batch(statements).await.map_err(d1_fault)
}

/// How many rows a batched statement changed.
pub fn changes(result: &worker::D1Result) -> Result<usize, Fault> {
    Ok(result
        .meta()
        .map_err(d1_fault)?
        .and_then(|m| m.changes)
        .unwrap_or(0))
}

/// The rows a batched statement returned (`RETURNING`, or a query).
pub fn rows<T: DeserializeOwned>(result: &worker::D1Result) -> Result<Vec<T>, Fault> {
    result.results::<T>().map_err(d1_fault)
}

/// An audit row as stored; `before`/`after` are JSON text.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditRow {
    pub id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub user_id: String,
    pub key_id: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub request_id: String,
}
