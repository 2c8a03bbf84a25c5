//! The document store on D1: each operation as the statements of `gateway::documents::sql`,
//! with ownership (a user reaches only their own rows, an admin any row) and optimistic
//! concurrency (conditional UPDATE/DELETE on the version read) applied here.

use gateway::documents::{
    admin_target, budget_page, encode_cursor, encode_cursor_any_owner, if_match_matches,
    merge_patch, plan_patch, plan_put, render, serialize_data, sql, DocError, DocMeta, ListOpts,
    WritePlan, LIST_PAGE_BUDGET_BYTES,
};
use rpc::db::{Deleted, Document, Page, PutResult};
use serde::Deserialize;
use serde_json::{Map, Value};
use wasm_bindgen::JsValue;
use worker::D1Database;

/// How often an unconditional write re-reads and tries again after losing a race to another
/// writer. A client that sent no `If-Match` asked for "whatever is current", so a retry is
/// correct; after this many lost races it gets 409 and retries itself.
const UNCONDITIONAL_ATTEMPTS: usize = 5;

/// Why an operation did not produce a value.
#[derive(Debug)]
pub enum Failure {
    /// Expected: the caller gets a typed error with this status.
    Doc(DocError),
    /// The call carried no `ctx.userId`: nobody to own or read documents as (401).
    Unauthenticated(String),
    /// Unexpected (D1 failed, a stored row is unreadable): thrown to the caller, logged here.
    Internal(String),
}

impl From<DocError> for Failure {
    fn from(e: DocError) -> Self {
        Failure::Doc(e)
    }
}

impl From<worker::Error> for Failure {
    fn from(e: worker::Error) -> Self {
        Failure::Internal(format!("D1: {e}"))
    }
}

/// Who is asking: the owner of what they write, and whether they may reach everyone's rows.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub admin: bool,
}

/// A stored row; `owner` is present only in the statements that select it.
#[derive(Deserialize)]
struct Row {
    #[serde(default)]
    owner: Option<String>,
    data: String,
    version: i64,
    created_at: String,
    updated_at: String,
}

impl Row {
    fn meta(&self) -> DocMeta {
        DocMeta {
            version: self.version,
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        }
    }

    fn data(&self) -> Result<Map<String, Value>, Failure> {
        serde_json::from_str(&self.data)
            .map_err(|e| Failure::Internal(format!("a stored document is not a JSON object: {e}")))
    }
}

/// A row of a budgeted list page: `data` is absent past the page's byte budget.
#[derive(Deserialize)]
struct ListRow {
    #[serde(default)]
    owner: Option<String>,
    id: String,
    #[serde(default)]
    data: Option<String>,
    size: f64,
    version: i64,
    created_at: String,
    updated_at: String,
}

/// What a write's `RETURNING` clause gives back.
#[derive(Deserialize)]
struct Written {
    version: i64,
    created_at: String,
    updated_at: String,
}

impl Written {
    fn meta(self) -> DocMeta {
        DocMeta {
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A document found for a write: whose row it is, and its current state.
struct Located {
    owner: String,
    row: Row,
}

pub struct Store {
    db: D1Database,
    /// One timestamp per call (RFC 3339, UTC): created/updated times of whatever it writes.
    now: String,
}

fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

fn number(n: i64) -> JsValue {
    // Versions and limits are far below 2^53, so an f64 carries them exactly.
    JsValue::from_f64(n as f64)
}

fn as_document(value: Value) -> Document {
    match value {
        Value::Object(map) => map,
        // render always builds an object; an empty one is unreachable but harmless.
        _ => Map::new(),
    }
}

impl Store {
    pub fn new(db: D1Database) -> Self {
        Store {
            db,
            now: String::from(js_sys::Date::new_0().to_iso_string()),
        }
    }

    async fn first<T: for<'de> Deserialize<'de>>(
        &self,
        statement: &str,
        params: &[JsValue],
    ) -> Result<Option<T>, Failure> {
        Ok(self
            .db
            .prepare(statement)
            .bind(params)?
            .first::<T>(None)
            .await?)
    }

    async fn all<T: for<'de> Deserialize<'de>>(
        &self,
        statement: &str,
        params: &[JsValue],
    ) -> Result<Vec<T>, Failure> {
        let result = self.db.prepare(statement).bind(params)?.all().await?;
        Ok(result.results::<T>()?)
    }

    /// The row `caller` means by (collection, id): their own, or for an admin whichever
    /// [`admin_target`] picks.
    async fn locate(
        &self,
        caller: &Caller,
        collection: &str,
        id: &str,
    ) -> Result<Option<Located>, Failure> {
        let (user, c, i) = (text(&caller.user_id), text(collection), text(id));
        if !caller.admin {
            let row = self.first::<Row>(sql::SELECT_ONE, &[user, c, i]).await?;
            return Ok(row.map(|row| Located {
                owner: caller.user_id.clone(),
                row,
            }));
        }
        let mut rows = self
            .all::<Row>(sql::SELECT_ONE_FOR_ADMIN, &[user, c, i])
            .await?;
        let owners: Vec<&str> = rows
            .iter()
            .map(|r| r.owner.as_deref().unwrap_or(""))
            .collect();
        match admin_target(&caller.user_id, &owners)? {
            None => Ok(None),
            Some(index) => {
                let row = rows.swap_remove(index);
                let owner = row
                    .owner
                    .clone()
                    .ok_or_else(|| Failure::Internal("admin read returned no owner".into()))?;
                Ok(Some(Located { owner, row }))
            }
        }
    }

    pub async fn get(
        &self,
        caller: &Caller,
        collection: &str,
        id: &str,
    ) -> Result<Document, Failure> {
        let found = self
            .locate(caller, collection, id)
            .await?
            .ok_or(DocError::NotFound)?;
        let data = found.row.data()?;
        Ok(as_document(render(id, &data, &found.row.meta())))
    }

    /// Insert only (POST, `mode: "create"`): 409 when the id exists for this owner.
    pub async fn create(
        &self,
        caller: &Caller,
        collection: &str,
        id: &str,
        data: &Map<String, Value>,
    ) -> Result<PutResult, Failure> {
        let body = serialize_data(data)?;
        let params = [
            text(&caller.user_id),
            text(collection),
            text(id),
            text(&body),
            text(&self.now),
        ];
        match self.first::<Written>(sql::INSERT, &params).await? {
            Some(written) => Ok(PutResult {
                created: true,
                document: as_document(render(id, data, &written.meta())),
            }),
            None => Err(DocError::Conflict(format!(
                "a document with id {id} already exists in {collection}"
            ))
            .into()),
        }
    }

    /// PUT: create or replace. `If-Match` makes it conditional on the version read.
    pub async fn put(
        &self,
        caller: &Caller,
        collection: &str,
        id: &str,
        data: &Map<String, Value>,
        if_match: Option<&str>,
    ) -> Result<PutResult, Failure> {
        let body = serialize_data(data)?;
        let Some(if_match) = if_match else {
            return self
                .put_unconditional(caller, collection, id, data, &body)
                .await;
        };
        let found = self.locate(caller, collection, id).await?;
        let current = found.as_ref().map(|f| f.row.version);
        match plan_put(Some(if_match), current)? {
            WritePlan::Update { expected_version } => {
                // plan_put answers Update only for a located row.
                let owner = found.map(|f| f.owner).unwrap_or_default();
                let meta = self
                    .update(&owner, collection, id, &body, expected_version)
                    .await?
                    .ok_or_else(|| DocError::lost_race(true))?;
                Ok(PutResult {
                    created: false,
                    document: as_document(render(id, data, &meta)),
                })
            }
            // plan_put never plans an insert when If-Match is present; refuse rather than guess.
            WritePlan::Insert => Err(DocError::PreconditionFailed.into()),
        }
    }

    /// PUT without `If-Match`: last writer wins, and no writer is ever refused for racing.
    async fn put_unconditional(
        &self,
        caller: &Caller,
        collection: &str,
        id: &str,
        data: &Map<String, Value>,
        body: &str,
    ) -> Result<PutResult, Failure> {
        for _ in 0..UNCONDITIONAL_ATTEMPTS {
            // An admin replacing someone else's document keeps it theirs: conditional update
            // on that owner's row. Everything else is one atomic upsert on the caller's own row.
            if caller.admin {
                if let Some(found) = self.locate(caller, collection, id).await? {
                    if found.owner != caller.user_id {
                        match self
                            .update(&found.owner, collection, id, body, found.row.version)
                            .await?
                        {
                            Some(meta) => {
                                return Ok(PutResult {
                                    created: false,
                                    document: as_document(render(id, data, &meta)),
                                })
                            }
                            None => continue,
                        }
                    }
                }
            }
            let params = [
                text(&caller.user_id),
                text(collection),
                text(id),
                text(body),
                text(&self.now),
            ];
            let written = self
                .first::<Written>(sql::UPSERT, &params)
                .await?
                .ok_or_else(|| Failure::Internal("upsert returned no row".into()))?;
            let meta = written.meta();
            return Ok(PutResult {
                created: meta.version == 1,
                document: as_document(render(id, data, &meta)),
            });
        }
        Err(DocError::lost_race(false).into())
    }

    /// `UPDATE ... WHERE version = expected`: `None` when another writer got there first.
    async fn update(
        &self,
        owner: &str,
        collection: &str,
        id: &str,
        body: &str,
        expected_version: i64,
    ) -> Result<Option<DocMeta>, Failure> {
        let params = [
            text(owner),
            text(collection),
            text(id),
            text(body),
            text(&self.now),
            number(expected_version),
        ];
        Ok(self
            .first::<Written>(sql::UPDATE_IF_VERSION, &params)
            .await?
            .map(Written::meta))
    }

    /// PATCH: read, merge (RFC 7396), conditional write.
    pub async fn patch(
        &self,
        caller: &Caller,
        collection: &str,
        id: &str,
        patch: &Map<String, Value>,
        if_match: Option<&str>,
    ) -> Result<Document, Failure> {
        let attempts = if if_match.is_some() {
            1
        } else {
            UNCONDITIONAL_ATTEMPTS
        };
        let patch = Value::Object(patch.clone());
        for _ in 0..attempts {
            let found = self.locate(caller, collection, id).await?;
            let current = found.as_ref().map(|f| f.row.version);
            let WritePlan::Update { expected_version } = plan_patch(if_match, current)? else {
                return Err(DocError::NotFound.into());
            };
            let Some(found) = found else {
                return Err(DocError::NotFound.into());
            };
            let mut merged = Value::Object(found.row.data()?);
            merge_patch(&mut merged, &patch);
            let merged = as_document(merged);
            let body = serialize_data(&merged)?;
            if let Some(meta) = self
                .update(&found.owner, collection, id, &body, expected_version)
                .await?
            {
                return Ok(as_document(render(id, &merged, &meta)));
            }
        }
        Err(DocError::lost_race(if_match.is_some()).into())
    }

    pub async fn delete(
        &self,
        caller: &Caller,
        collection: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Deleted, Failure> {
        let deleted = || Deleted { id: id.to_string() };
        if if_match.is_none() && !caller.admin {
            let params = [text(&caller.user_id), text(collection), text(id)];
            return match self.first::<Value>(sql::DELETE, &params).await? {
                Some(_) => Ok(deleted()),
                None => Err(DocError::NotFound.into()),
            };
        }
        let attempts = if if_match.is_some() {
            1
        } else {
            UNCONDITIONAL_ATTEMPTS
        };
        for _ in 0..attempts {
            let found = self
                .locate(caller, collection, id)
                .await?
                .ok_or(DocError::NotFound)?;
            let version = found.row.version;
            if let Some(h) = if_match {
                if !if_match_matches(h, version) {
                    return Err(DocError::PreconditionFailed.into());
                }
            }
            let params = [
                text(&found.owner),
                text(collection),
                text(id),
                number(version),
            ];
            if self
                .first::<Value>(sql::DELETE_IF_VERSION, &params)
                .await?
                .is_some()
            {
                return Ok(deleted());
            }
        }
        Err(DocError::lost_race(if_match.is_some()).into())
    }

    /// One keyset page. Users page through (id) of their own rows; admins through (id, owner)
    /// of everyone's. The page also ends at [`LIST_PAGE_BUDGET_BYTES`] of stored documents.
    pub async fn list(
        &self,
        caller: &Caller,
        collection: &str,
        opts: &ListOpts,
    ) -> Result<Page, Failure> {
        let fetch = number(i64::from(opts.fetch_limit()));
        let budget = number(LIST_PAGE_BUDGET_BYTES as i64);
        let rows = if caller.admin {
            let params = [
                text(collection),
                text(opts.after_id()),
                text(opts.after_owner()),
                fetch,
                budget,
            ];
            self.all::<ListRow>(sql::LIST_ANY_OWNER, &params).await?
        } else {
            let params = [
                text(&caller.user_id),
                text(collection),
                text(opts.after_id()),
                fetch,
                budget,
            ];
            self.all::<ListRow>(sql::LIST, &params).await?
        };
        let sizes: Vec<Option<usize>> = rows
            .iter()
            .map(|r| r.data.as_ref().map(|_| r.size.max(0.0) as usize))
            .collect();
        let (taken, more) = budget_page(&sizes, opts.limit, LIST_PAGE_BUDGET_BYTES);
        if taken == 0 && more {
            return Err(Failure::Internal("list page came back without data".into()));
        }
        let mut items = Vec::with_capacity(taken);
        let mut last: Option<(String, Option<String>)> = None;
        for row in rows.into_iter().take(taken) {
            let meta = DocMeta {
                version: row.version,
                created_at: row.created_at,
                updated_at: row.updated_at,
            };
            let data: Map<String, Value> = serde_json::from_str(row.data.as_deref().unwrap_or(""))
                .map_err(|e| {
                    Failure::Internal(format!("a stored document is not a JSON object: {e}"))
                })?;
            let mut item = as_document(render(&row.id, &data, &meta));
            // Across owners the same id can appear once per owner: say whose each one is.
            if let (true, Some(owner)) = (caller.admin, &row.owner) {
                item.insert("_owner".into(), Value::String(owner.clone()));
            }
            items.push(item);
            last = Some((row.id, row.owner));
        }
        let next_cursor = match last {
            Some((id, owner)) if more => Some(match (owner, caller.admin) {
                (Some(owner), true) => encode_cursor_any_owner(&id, &owner),
                _ => encode_cursor(&id),
            }),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}
