//! `db`: the document store on D1, reached only over Workers RPC (no fetch handler).
//!
//! Each export below is an RPC method (`get`, `put`, `patch`, `delete`, `list`, `health`). A
//! method checks its arguments with `gateway::documents`, runs one `store` operation, writes one
//! JSON log line, and answers `{ok: true, value}` or `{ok: false, error: {status, code, detail}}`
//! (see `rpc::db`). It throws only on internal failures. `ctx` is trusted as given: whoever
//! holds the binding is inside the platform (the api builds it from the verified identity).

mod store;

use gateway::documents::{
    self, address_as, parse_body, validate_collection, validate_id, DocError,
};
use gateway::ids::TraceParent;
use rpc::db::{
    js_to_json, js_to_json_text, json_to_js, DbError, PutMode, PutOpts, Reply, WriteOpts,
};
use rpc::sys;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use store::{Caller, Failure, Store};
use wasm_bindgen::prelude::*;

const SERVICE: &str = "db";
/// Longest accepted `ctx.userId`; real ids are ULIDs or short names.
const MAX_USER_ID_LEN: usize = 256;

/// `health()`: can the service reach its D1 database?
#[wasm_bindgen]
pub async fn health() -> Result<JsValue, JsValue> {
    rpc::health::d1_health_js(SERVICE).await
}

/// `get(ctx, collection, id)` → the document.
#[wasm_bindgen]
pub async fn get(ctx: JsValue, collection: JsValue, id: JsValue) -> Result<JsValue, JsValue> {
    let call = Call::begin("get", &ctx, &collection);
    let outcome = async {
        let caller = call.caller()?;
        let (collection, id) = (collection_arg(&collection)?, id_arg(&id)?);
        store()?.get(&caller, &collection, &id).await
    }
    .await;
    call.finish(outcome)
}

/// `put(ctx, collection, id, data, opts?)` → `{created, document}`. With `opts.mode: "create"`
/// it only inserts (409 if the id exists), and a null id gets a new ULID.
#[wasm_bindgen]
pub async fn put(
    ctx: JsValue,
    collection: JsValue,
    id: JsValue,
    data: JsValue,
    opts: JsValue,
) -> Result<JsValue, JsValue> {
    let call = Call::begin("put", &ctx, &collection);
    let outcome = async {
        let caller = call.caller()?;
        let collection = collection_arg(&collection)?;
        let opts: PutOpts = opts_arg(&opts)?;
        if opts.mode == Some(PutMode::Create) {
            if opts.if_match.is_some() {
                return Err(bad("opts.ifMatch cannot be combined with mode \"create\"").into());
            }
            let (id, path_id) = if id.is_null() || id.is_undefined() {
                // Per call, never at global scope: the id carries this request's time.
                (new_id(), None)
            } else {
                let id = id_arg(&id)?;
                (id.clone(), Some(id))
            };
            let data = object_arg(&data, "data", path_id.as_deref())?;
            return store()?.create(&caller, &collection, &id, &data).await;
        }
        let id = id_arg(&id)?;
        let data = object_arg(&data, "data", Some(&id))?;
        store()?
            .put(&caller, &collection, &id, &data, opts.if_match.as_deref())
            .await
    }
    .await;
    call.finish(outcome)
}

/// `patch(ctx, collection, id, patch, opts?)` → the merged document (RFC 7396).
#[wasm_bindgen]
pub async fn patch(
    ctx: JsValue,
    collection: JsValue,
    id: JsValue,
    patch: JsValue,
    opts: JsValue,
) -> Result<JsValue, JsValue> {
    let call = Call::begin("patch", &ctx, &collection);
    let outcome = async {
        let caller = call.caller()?;
        let (collection, id) = (collection_arg(&collection)?, id_arg(&id)?);
        let opts: WriteOpts = opts_arg(&opts)?;
        let patch = object_arg(&patch, "patch", Some(&id))?;
        store()?
            .patch(&caller, &collection, &id, &patch, opts.if_match.as_deref())
            .await
    }
    .await;
    call.finish(outcome)
}

// `delete` is a JS keyword, which wasm-bindgen will not use as an export name (it exports
// `_delete`). This one-line JS shim is re-exported under the name `delete`, so worker-build
// puts a `delete` method on the entrypoint; it forwards to `_delete` on the same instance.
#[wasm_bindgen(
    inline_js = "export function deleteMethod(ctx, collection, id, opts) { return this._delete(ctx, collection, id, opts); }"
)]
extern "C" {
    #[wasm_bindgen(reexport = "delete")]
    fn deleteMethod();
}

/// `delete(ctx, collection, id, opts?)` → `{id}` (exported by wasm-bindgen as `_delete`).
#[wasm_bindgen(js_name = "delete")]
pub async fn delete_document(
    ctx: JsValue,
    collection: JsValue,
    id: JsValue,
    opts: JsValue,
) -> Result<JsValue, JsValue> {
    let call = Call::begin("delete", &ctx, &collection);
    let outcome = async {
        let caller = call.caller()?;
        let (collection, id) = (collection_arg(&collection)?, id_arg(&id)?);
        let opts: WriteOpts = opts_arg(&opts)?;
        store()?
            .delete(&caller, &collection, &id, opts.if_match.as_deref())
            .await
    }
    .await;
    call.finish(outcome)
}

/// `list` options as they arrive: the limit is checked by `documents::list_opts`, so a bad
/// one gets the same message as over HTTP.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    limit: Option<Value>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `list(ctx, collection, opts?)` → `{items, nextCursor}`.
#[wasm_bindgen]
pub async fn list(ctx: JsValue, collection: JsValue, opts: JsValue) -> Result<JsValue, JsValue> {
    let call = Call::begin("list", &ctx, &collection);
    let outcome = async {
        let caller = call.caller()?;
        let collection = collection_arg(&collection)?;
        let args: ListArgs = opts_arg(&opts)?;
        let opts = documents::list_opts(args.limit.as_ref(), args.cursor.as_deref())?;
        store()?.list(&caller, &collection, &opts).await
    }
    .await;
    call.finish(outcome)
}

// ---------------------------------------------------------------------------------------------
// Arguments

fn bad(detail: impl Into<String>) -> DocError {
    DocError::BadRequest(detail.into())
}

fn store() -> Result<Store, Failure> {
    let db = sys::importable_env()
        .d1("DB")
        .map_err(|_| Failure::Internal("D1 binding DB is not configured".into()))?;
    Ok(Store::new(db))
}

fn collection_arg(value: &JsValue) -> Result<String, DocError> {
    let name = value
        .as_string()
        .ok_or_else(|| bad("collection must be a string"))?;
    validate_collection(&name)?;
    Ok(name)
}

fn id_arg(value: &JsValue) -> Result<String, DocError> {
    let id = value
        .as_string()
        .ok_or_else(|| bad("id must be a string"))?;
    validate_id(&id)?;
    Ok(id)
}

/// A document body or merge patch: through JSON text, so it passes exactly the checks an HTTP
/// body does (`parse_body`: size, depth, object, reserved `_` names, `id` member).
fn object_arg(
    value: &JsValue,
    what: &str,
    path_id: Option<&str>,
) -> Result<Map<String, Value>, DocError> {
    let text = js_to_json_text(value)
        .map_err(|_| bad(format!("{what} is not JSON (a cycle or a BigInt?)")))?
        .ok_or_else(|| bad(format!("{what} must be a JSON object")))?;
    parse_body(text.as_bytes(), path_id)
}

/// Options object; `undefined` or `null` means all defaults, unknown members are refused (a
/// misspelt `ifMatch` must not silently make a write unconditional).
fn opts_arg<T: for<'de> Deserialize<'de> + Default>(value: &JsValue) -> Result<T, DocError> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    js_to_json::<T>(value).map_err(|e| bad(format!("invalid opts: {e}")))
}

// ---------------------------------------------------------------------------------------------
// One call: caller, timing, the log line, the reply

/// `ctx` as it arrives; every member optional so a bad one is a clear error, not a throw.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct IncomingCtx {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    role: Option<String>,
    /// An admin's named owner (see `gateway::documents::address_as`).
    #[serde(default)]
    owner: Option<String>,
}

struct Call {
    method: &'static str,
    started_ms: f64,
    ctx: Result<IncomingCtx, String>,
    collection: Option<String>,
}

impl Call {
    fn begin(method: &'static str, ctx: &JsValue, collection: &JsValue) -> Call {
        let ctx = if ctx.is_undefined() || ctx.is_null() {
            Ok(IncomingCtx::default())
        } else {
            js_to_json::<IncomingCtx>(ctx).map_err(|e| e.to_string())
        };
        Call {
            method,
            started_ms: js_sys::Date::now(),
            ctx,
            // Logged only when it is a valid name: the log never echoes arbitrary input.
            collection: collection
                .as_string()
                .filter(|c| validate_collection(c).is_ok()),
        }
    }

    fn caller(&self) -> Result<Caller, Failure> {
        let ctx = self
            .ctx
            .as_ref()
            .map_err(|e| Failure::Doc(bad(format!("invalid ctx: {e}"))))?;
        let user_id = ctx
            .user_id
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Failure::Unauthenticated("ctx.userId is required".into()))?;
        if user_id.len() > MAX_USER_ID_LEN {
            return Err(bad(format!("ctx.userId is longer than {MAX_USER_ID_LEN} bytes")).into());
        }
        let admin = ctx.role.as_deref() == Some("admin");
        let (user_id, admin) = address_as(user_id, admin, ctx.owner.as_deref())?;
        Ok(Caller { user_id, admin })
    }

    /// Logs the call and turns its outcome into the reply (or a throw for internal failures).
    fn finish<T: Serialize>(self, outcome: Result<T, Failure>) -> Result<JsValue, JsValue> {
        let (label, status, reply) = match outcome {
            Ok(value) => ("ok", 200, json_to_js(&Reply::success(value))),
            Err(Failure::Doc(e)) => {
                let error = DbError {
                    status: e.status(),
                    code: code(&e).into(),
                    detail: e.to_string(),
                };
                (
                    code(&e),
                    error.status,
                    json_to_js(&Reply::<()>::failure(error)),
                )
            }
            Err(Failure::Unauthenticated(detail)) => {
                let error = DbError {
                    status: 401,
                    code: "unauthenticated".into(),
                    detail,
                };
                (
                    "unauthenticated",
                    401,
                    json_to_js(&Reply::<()>::failure(error)),
                )
            }
            Err(Failure::Internal(message)) => return self.fail(&message),
        };
        match reply {
            Ok(reply) => {
                self.log(label, status, None);
                Ok(reply)
            }
            Err(e) => self.fail(&e.to_string()),
        }
    }

    /// An internal failure: logged with its detail, thrown to the caller without it.
    fn fail(&self, message: &str) -> Result<JsValue, JsValue> {
        self.log("error", 500, Some(message));
        let request_id = self.request_id().unwrap_or_default();
        Err(js_sys::Error::new(&format!("db internal error (requestId {request_id})")).into())
    }

    fn request_id(&self) -> Option<String> {
        self.ctx.as_ref().ok().and_then(|c| c.request_id.clone())
    }

    /// One JSON line per call: ids, method, collection, timing, outcome; never a document.
    fn log(&self, outcome: &str, status: u16, error: Option<&str>) {
        let ctx = self.ctx.as_ref().ok();
        let trace_id = ctx
            .and_then(|c| c.traceparent.as_deref())
            .and_then(TraceParent::parse)
            .map(|t| t.trace_id_hex());
        let duration_ms = (js_sys::Date::now() - self.started_ms).max(0.0).round() as u64;
        let mut line = json!({
            "level": if status >= 500 { "error" } else { "info" },
            "message": "db call",
            "service": SERVICE,
            "requestId": self.request_id(),
            "traceId": trace_id,
            "method": self.method,
            "collection": self.collection,
            "userId": ctx.and_then(|c| c.user_id.as_deref()).filter(|u| u.len() <= MAX_USER_ID_LEN),
            "durationMs": duration_ms,
            "outcome": outcome,
            "status": status,
        });
        if let Some(error) = error {
            line["error"] = json!(error);
            worker::console_error!("{line}");
        } else {
            worker::console_log!("{line}");
        }
    }
}

/// The stable machine-readable code of an expected failure.
fn code(e: &DocError) -> &'static str {
    match e {
        DocError::BadRequest(_) => "bad_request",
        DocError::TooLarge => "too_large",
        DocError::NotFound => "not_found",
        DocError::PreconditionFailed => "precondition_failed",
        DocError::Conflict(_) => "conflict",
    }
}

/// A fresh ULID: this call's time and 80 random bits (from `crypto.getRandomValues`).
fn new_id() -> String {
    let mut entropy = [0u8; 16];
    // getrandom on workers is crypto.getRandomValues; it does not fail in a request.
    let _ = getrandom::fill(&mut entropy);
    ulid::Ulid::from_parts(js_sys::Date::now() as u64, u128::from_be_bytes(entropy)).to_string()
}
