//! The db service's RPC surface: the wire types its methods take and return, and the typed
//! `DbClient` methods over the `DB_SERVICE` binding. `types/db.d.ts` is the same surface for JS.
//!
//! Every method answers a [`Reply`]: `{ok: true, value}` or `{ok: false, error: {status, code,
//! detail}}`. Expected failures (bad input, not found, version mismatch) are values, so callers
//! map them to exact statuses; only internal failures (D1 down, a bug) are thrown, which a
//! caller sees as [`RpcError::Failed`].
//!
//! Documents cross the binding as JSON text parsed into plain JS objects (`JSON.parse`) and are
//! read back with `JSON.stringify`: any JSON value survives, integers beyond 2^53 included
//! (they become JS numbers, as in any JS JSON), and nesting never recurses on the wasm stack.

use js_sys::JSON;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wasm_bindgen::JsValue;

use crate::clients::{to_js, DbClient, RpcError};
use crate::wire::Ctx;

/// A document as db renders it: `{id, ...data, _version, _createdAt, _updatedAt}`.
pub type Document = Map<String, Value>;

/// An expected failure, with the HTTP status it maps to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbError {
    /// 400, 401, 404, 409, 412 or 413.
    pub status: u16,
    /// Stable machine-readable code: `bad_request`, `unauthenticated`, `not_found`, `conflict`,
    /// `precondition_failed`, `too_large`.
    pub code: String,
    /// Safe to show the caller.
    pub detail: String,
}

/// What every db method answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply<T> {
    pub ok: bool,
    // No `default` attribute: serde already treats a missing `Option` as `None`, and the
    // attribute would demand `T: Default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<DbError>,
}

impl<T> Reply<T> {
    pub fn success(value: T) -> Self {
        Reply {
            ok: true,
            value: Some(value),
            error: None,
        }
    }

    pub fn failure(error: DbError) -> Self {
        Reply {
            ok: false,
            value: None,
            error: Some(error),
        }
    }

    /// `Ok(Ok(value))`, `Ok(Err(expected failure))`, or `Err` when the reply is malformed.
    pub fn into_result(self) -> Result<Result<T, DbError>, RpcError> {
        match (self.ok, self.value, self.error) {
            (true, Some(value), _) => Ok(Ok(value)),
            (false, _, Some(error)) => Ok(Err(error)),
            _ => Err(RpcError::Codec(
                "db reply has neither value nor error".into(),
            )),
        }
    }
}

/// `put` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutOpts {
    /// An `If-Match` header value (`"3"`, `*`, a list): the write happens only if it matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PutMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PutMode {
    /// Insert only: 409 if the id exists. With no id, db generates a ULID (what POST does).
    Create,
}

/// `patch` and `delete` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteOpts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
}

/// `list` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListOpts {
    /// 1..=100, default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// A `nextCursor` from the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `put`'s value: the stored document and whether this call created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutResult {
    pub created: bool,
    pub document: Document,
}

/// `list`'s value. `nextCursor` is null on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub items: Vec<Document>,
    pub next_cursor: Option<String>,
}

/// `delete`'s value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub id: String,
}

/// Any serialisable value as a plain JS value, through JSON text (see the module note).
pub fn json_to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, RpcError> {
    let text = serde_json::to_string(value).map_err(|e| RpcError::Codec(e.to_string()))?;
    JSON::parse(&text).map_err(|_| RpcError::Codec("JSON.parse refused serde output".into()))
}

/// JSON text of a JS value (`None` for `undefined`, functions and symbols, which have none).
/// Fails on cycles and BigInts.
pub fn js_to_json_text(value: &JsValue) -> Result<Option<String>, RpcError> {
    let text =
        JSON::stringify(value).map_err(|e| RpcError::Codec(crate::sys::error_message(&e)))?;
    Ok(text.as_string())
}

/// A JS value decoded through JSON text.
pub fn js_to_json<T: DeserializeOwned>(value: &JsValue) -> Result<T, RpcError> {
    let text = js_to_json_text(value)?.unwrap_or_else(|| "null".into());
    serde_json::from_str(&text).map_err(|e| RpcError::Codec(e.to_string()))
}

type DbResult<T> = Result<Result<T, DbError>, RpcError>;

impl DbClient {
    async fn invoke<T: DeserializeOwned>(&self, method: &str, args: &[JsValue]) -> DbResult<T> {
        let answer = self.0.call_js(method, args).await?;
        js_to_json::<Reply<T>>(&answer)?.into_result()
    }

    /// A document by id.
    pub async fn get(&self, ctx: &Ctx, collection: &str, id: &str) -> DbResult<Document> {
        self.invoke("get", &[to_js(ctx)?, collection.into(), id.into()])
            .await
    }

    /// Creates or replaces `id` (or, with `id: None` and mode create, creates a new ULID).
    pub async fn put(
        &self,
        ctx: &Ctx,
        collection: &str,
        id: Option<&str>,
        data: &Document,
        opts: &PutOpts,
    ) -> DbResult<PutResult> {
        let id = id.map_or(JsValue::NULL, JsValue::from);
        let args = [
            to_js(ctx)?,
            collection.into(),
            id,
            json_to_js(data)?,
            to_js(opts)?,
        ];
        self.invoke("put", &args).await
    }

    /// Creates a document with a new ULID id (POST).
    pub async fn create(
        &self,
        ctx: &Ctx,
        collection: &str,
        data: &Document,
    ) -> DbResult<PutResult> {
        let opts = PutOpts {
            if_match: None,
            mode: Some(PutMode::Create),
        };
        self.put(ctx, collection, None, data, &opts).await
    }

    /// Applies an RFC 7396 merge patch.
    pub async fn patch(
        &self,
        ctx: &Ctx,
        collection: &str,
        id: &str,
        patch: &Document,
        opts: &WriteOpts,
    ) -> DbResult<Document> {
        let args = [
            to_js(ctx)?,
            collection.into(),
            id.into(),
            json_to_js(patch)?,
            to_js(opts)?,
        ];
        self.invoke("patch", &args).await
    }

    pub async fn delete(
        &self,
        ctx: &Ctx,
        collection: &str,
        id: &str,
        opts: &WriteOpts,
    ) -> DbResult<Deleted> {
        let args = [to_js(ctx)?, collection.into(), id.into(), to_js(opts)?];
        self.invoke("delete", &args).await
    }

    /// One page of the caller's documents in `collection`, in id order.
    pub async fn list(&self, ctx: &Ctx, collection: &str, opts: &ListOpts) -> DbResult<Page> {
        let args = [to_js(ctx)?, collection.into(), to_js(opts)?];
        self.invoke("list", &args).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reply_shapes() {
        let ok = Reply::success(Deleted { id: "a".into() });
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            json!({"ok": true, "value": {"id": "a"}})
        );
        let err: Reply<Deleted> = Reply::failure(DbError {
            status: 404,
            code: "not_found".into(),
            detail: "document not found".into(),
        });
        let v = serde_json::to_value(&err).unwrap();
        assert_eq!(
            v,
            json!({"ok": false, "error": {"status": 404, "code": "not_found", "detail": "document not found"}})
        );
        let back: Reply<Deleted> = serde_json::from_value(v).unwrap();
        assert_eq!(back.into_result().unwrap().unwrap_err().status, 404);
        let broken: Reply<Deleted> = serde_json::from_value(json!({"ok": true})).unwrap();
        assert!(broken.into_result().is_err());
    }

    #[test]
    fn opts_are_camel_case_and_strict() {
        let opts = PutOpts {
            if_match: Some("\"1\"".into()),
            mode: Some(PutMode::Create),
        };
        assert_eq!(
            serde_json::to_value(&opts).unwrap(),
            json!({"ifMatch": "\"1\"", "mode": "create"})
        );
        assert_eq!(serde_json::to_value(PutOpts::default()).unwrap(), json!({}));
        assert!(serde_json::from_value::<PutOpts>(json!({"ifmatch": "\"1\""})).is_err());
        assert!(serde_json::from_value::<PutOpts>(json!({"mode": "replace"})).is_err());
        assert!(serde_json::from_value::<ListOpts>(json!({"limit": 5, "cursor": "x"})).is_ok());
        let page = Page {
            items: vec![],
            next_cursor: None,
        };
        assert_eq!(
            serde_json::to_value(page).unwrap(),
            json!({"items": [], "nextCursor": null})
        );
    }
}
