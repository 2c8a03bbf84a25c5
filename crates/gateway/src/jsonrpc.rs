//! JSON-RPC 2.0 for `POST /rpc`: parsing and validating requests, the published method
//! allowlist with its parameter signatures, the `do` proxy's allowlist, and rendering the
//! responses.
//!
//! The worker's use is three steps:
//! ```
//! use gateway::jsonrpc::{Plan, RpcFailure};
//! use serde_json::{json, Value};
//!
//! let plan = Plan::from_body(br#"{"jsonrpc":"2.0","id":1,"method":"db.get","params":["notes","n1"]}"#);
//! let ctx = json!({"requestId": "r", "userId": "u", "role": "user"});
//! // One `do.batchCall` entry per call, in order; the gateway prepends `ctx` where the method takes it.
//! let batch: Vec<Value> = plan
//!     .calls()
//!     .map(|c| json!({"service": c.service, "method": c.method, "args": c.args_with_ctx(&ctx)}))
//!     .collect();
//! assert_eq!(batch.len(), 1);
//! let results: Vec<Result<Value, RpcFailure>> = vec![Ok(json!({"id": "n1"}))];
//! let body = plan.finish(results); // None means 204 No Content
//! let body: Value = serde_json::from_str(&body.unwrap()).unwrap();
//! assert_eq!(body, json!({"jsonrpc": "2.0", "id": 1, "result": {"id": "n1"}}));
//! ```

use serde_json::{Map, Number, Value};

use crate::registry;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined server error (-32000..=-32099): the service answered with an error.
pub const SERVICE_FAILED: i64 = -32000;
/// Implementation-defined server error: the service did not answer in time.
pub const TIMEOUT: i64 = -32001;
/// Implementation-defined server error: the service's binding is not configured where the
/// call ran (the `do` worker's env).
pub const SERVICE_UNAVAILABLE: i64 = -32002;
/// Implementation-defined server error: the caller's role may not use this service (its
/// registry access level, e.g. admin for `schedule`).
pub const FORBIDDEN: i64 = -32003;

/// Implementation-defined server error: the call ran, but its result did not fit in what was
/// left of the batch's response budget ([`MAX_BATCH_RESULT_BYTES`]); call it on its own.
pub const RESPONSE_TOO_LARGE: i64 = -32004;

/// Byte budget of one batch's results (their JSON, summed, in request order). A result that
/// would pass it is replaced by a -32004 error object, so a batch of 100 large answers never
/// builds a 100-fold response; the first result always fits, so a single call is never
/// refused for its size (its own service bounds it, e.g. db's page budget).
pub const MAX_BATCH_RESULT_BYTES: usize = 8 << 20;
/// How many calls of a batch run at once. Bounds what the executor holds in flight (at most
/// this many results beyond the budget) while keeping small batches fully parallel.
pub const BATCH_CONCURRENCY: usize = 16;

/// What is left of a batch's response budget; results are offered in request order.
#[derive(Debug, Clone)]
pub struct ResultBudget {
    used: usize,
    limit: usize,
    admitted: usize,
}

impl ResultBudget {
    pub fn new(limit: usize) -> ResultBudget {
        ResultBudget {
            used: 0,
            limit,
            admitted: 0,
        }
    }

    /// Whether a result of `bytes` still fits; if so it is counted. The first result always
    /// fits; once one does not, later (smaller) ones still may: each is judged on its own.
    pub fn admit(&mut self, bytes: usize) -> bool {
        let total = self.used.saturating_add(bytes);
        if self.admitted > 0 && total > self.limit {
            return false;
        }
        self.used = total;
        self.admitted += 1;
        true
    }
}

/// Bounded work per request: a larger batch is refused whole with one -32600, before any call
/// runs. (The body size itself is capped by the HTTP layer before it reaches [`parse`].)
pub const MAX_BATCH: usize = 100;

/// A request id exactly as the client sent it (fractional numbers kept as given).
#[derive(Debug, Clone, PartialEq)]
pub enum Id {
    Num(Number),
    Str(String),
    Null,
}

impl Id {
    fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::Number(n) => Some(Id::Num(n.clone())),
            Value::String(s) => Some(Id::Str(s.clone())),
            Value::Null => Some(Id::Null),
            _ => None,
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Id::Num(n) => Value::Number(n.clone()),
            Id::Str(s) => Value::String(s.clone()),
            Id::Null => Value::Null,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    None,
    Positional(Vec<Value>),
    Named(Map<String, Value>),
}

/// A structurally valid request. `service`/`method` are the two halves of the method name
/// (split at the first `.`; no dot → empty service); whether they name anything is decided
/// later, so that a notification to an unknown method stays silent as the spec requires.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `None` = notification (no `id` member). `Some(Id::Null)` is a request with a null id.
    pub id: Option<Id>,
    pub service: String,
    pub method: String,
    pub params: Params,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Call(Call),
    /// Not a valid Request object: always answered, even without an id.
    Invalid(Response),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Single(Entry),
    Batch(Vec<Entry>),
    /// The whole body is answered with one error: invalid JSON, an empty or oversized batch.
    Error(Response),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: &str, data: Option<Value>) -> RpcError {
        RpcError {
            code,
            message: message.to_owned(),
            data,
        }
    }

    fn invalid_params(reason: String) -> RpcError {
        RpcError::new(
            INVALID_PARAMS,
            "Invalid params",
            Some(Value::String(reason)),
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: Id,
    pub outcome: Result<Value, RpcError>,
}

impl Response {
    pub fn result(id: Id, value: Value) -> Response {
        Response {
            id,
            outcome: Ok(value),
        }
    }

    pub fn error(id: Id, code: i64, message: &str, data: Option<Value>) -> Response {
        Response {
            id,
            outcome: Err(RpcError::new(code, message, data)),
        }
    }

    fn invalid_request(id: Id, reason: &str) -> Response {
        Response::error(
            id,
            INVALID_REQUEST,
            "Invalid Request",
            Some(Value::String(reason.to_owned())),
        )
    }

    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), Value::String("2.0".into()));
        match &self.outcome {
            Ok(v) => {
                obj.insert("result".into(), v.clone());
            }
            Err(e) => {
                let mut err = Map::new();
                err.insert("code".into(), Value::from(e.code));
                err.insert("message".into(), Value::String(e.message.clone()));
                if let Some(d) = &e.data {
                    err.insert("data".into(), d.clone());
                }
                obj.insert("error".into(), Value::Object(err));
            }
        }
        obj.insert("id".into(), self.id.to_value());
        Value::Object(obj)
    }

    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }
}

/// Parses a request body. Never panics: serde_json bounds nesting depth (128) and turns
/// out-of-range numbers into errors, both of which become -32700.
pub fn parse(body: &[u8]) -> Parsed {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return Parsed::Error(Response::error(Id::Null, PARSE_ERROR, "Parse error", None))
        }
    };
    match value {
        Value::Array(items) if items.is_empty() => {
            Parsed::Error(Response::invalid_request(Id::Null, "empty batch"))
        }
        Value::Array(items) if items.len() > MAX_BATCH => Parsed::Error(Response::invalid_request(
            Id::Null,
            "batch larger than 100 requests",
        )),
        Value::Array(items) => Parsed::Batch(items.into_iter().map(entry).collect()),
        other => Parsed::Single(entry(other)),
    }
}

fn entry(value: Value) -> Entry {
    let Value::Object(mut obj) = value else {
        return Entry::Invalid(Response::invalid_request(
            Id::Null,
            "request must be an object",
        ));
    };
    // The id is read first so that later errors can echo it; an id of the wrong type
    // cannot be echoed, so that error goes out with id null.
    let id = match obj.get("id") {
        None => None,
        Some(v) => match Id::from_value(v) {
            Some(id) => Some(id),
            None => {
                return Entry::Invalid(Response::invalid_request(
                    Id::Null,
                    "id must be a string, number or null",
                ))
            }
        },
    };
    let reply_id = id.clone().unwrap_or(Id::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Entry::Invalid(Response::invalid_request(
            reply_id,
            "jsonrpc must be \"2.0\"",
        ));
    }
    let name = match obj.remove("method") {
        Some(Value::String(s)) => s,
        _ => {
            return Entry::Invalid(Response::invalid_request(
                reply_id,
                "method must be a string",
            ))
        }
    };
    let params = match obj.remove("params") {
        None => Params::None,
        Some(Value::Array(a)) => Params::Positional(a),
        Some(Value::Object(o)) => Params::Named(o),
        Some(_) => {
            return Entry::Invalid(Response::invalid_request(
                reply_id,
                "params must be an array or an object",
            ))
        }
    };
    let (service, method) = match name.split_once('.') {
        Some((s, m)) => (s.to_owned(), m.to_owned()),
        None => (String::new(), name),
    };
    Entry::Call(Call {
        id,
        service,
        method,
        params,
    })
}

// ---------------------------------------------------------------------------------------
// The published allowlist: one table gives both "is it callable" and "with what arguments".

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Obj,
}

struct Arg {
    name: &'static str,
    kind: Kind,
    optional: bool,
}

struct Signature {
    service: &'static str,
    method: &'static str,
    /// The service method's first argument is the gateway-supplied `ctx`.
    takes_ctx: bool,
    args: &'static [Arg],
}

const fn req(name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        optional: false,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        optional: true,
    }
}

const fn sig(
    service: &'static str,
    method: &'static str,
    takes_ctx: bool,
    args: &'static [Arg],
) -> Signature {
    Signature {
        service,
        method,
        takes_ctx,
        args,
    }
}

use Kind::{Obj, Str};

/// Everything callable through `/rpc`. Internals (`fetch`, `connect`, `constructor`, `dup`,
/// `validate*`, `_*`) are absent by construction; login/signup go through the HTTP adapter.
const METHODS: &[Signature] = &[
    sig("db", "get", true, &[req("collection", Str), req("id", Str)]),
    sig(
        "db",
        "put",
        true,
        &[
            req("collection", Str),
            req("id", Str),
            req("data", Obj),
            opt("opts", Obj),
        ],
    ),
    sig(
        "db",
        "patch",
        true,
        &[
            req("collection", Str),
            req("id", Str),
            req("patch", Obj),
            opt("opts", Obj),
        ],
    ),
    sig(
        "db",
        "delete",
        true,
        &[req("collection", Str), req("id", Str), opt("opts", Obj)],
    ),
    sig(
        "db",
        "list",
        true,
        &[req("collection", Str), opt("opts", Obj)],
    ),
    sig("db", "health", false, &[]),
    sig("do", "getServices", false, &[]),
    sig("do", "getService", false, &[req("name", Str)]),
    sig("do", "isServiceAvailable", false, &[req("name", Str)]),
    sig("do", "health", false, &[]),
    sig("auth", "health", false, &[]),
];

/// `health()` on a registry service that has no row above (the forwarding services): every
/// service answers it by convention, so adding a registry row publishes it with no edit here.
static FORWARDED_HEALTH: Signature = sig("", "health", false, &[]);

fn signature(service: &str, method: &str) -> Option<&'static Signature> {
    if !is_name(service) || !is_name(method) {
        return None;
    }
    METHODS
        .iter()
        .find(|s| s.service == service && s.method == method)
        .or_else(|| (method == "health" && is_forwarded(service)).then_some(&FORWARDED_HEALTH))
}

/// A registry service with a binding and no rows of its own in [`METHODS`].
fn is_forwarded(service: &str) -> bool {
    registry::service(service).is_some_and(|s| s.binding.is_some())
        && !METHODS.iter().any(|s| s.service == service)
}

/// `[A-Za-z][A-Za-z0-9_]*`: also rules out `_internal` and empty halves.
fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `service.method` is on the published allowlist.
pub fn allowed(service: &str, method: &str) -> bool {
    signature(service, method).is_some()
}

/// The allowlist as `(service, method)` pairs, e.g. for documentation or discovery: the
/// table's rows, then `health` for each forwarding service in registry order.
pub fn methods() -> impl Iterator<Item = (&'static str, &'static str)> {
    METHODS.iter().map(|s| (s.service, s.method)).chain(
        registry::SERVICES
            .iter()
            .filter(|s| is_forwarded(s.name))
            .map(|s| (s.name, "health")),
    )
}

/// The OpenRPC document (1.3.2) of every published method, built from the table above, so
/// what `rpc.discover` describes is exactly what `/rpc` accepts. `ctx` is never a param: the
/// gateway supplies it. Params may be given by position or by name.
pub fn discover() -> Value {
    let schema = |kind: Kind| match kind {
        Kind::Str => serde_json::json!({"type": "string"}),
        Kind::Obj => serde_json::json!({"type": "object"}),
    };
    let described = |service: &str, method: &str, args: &[Arg]| {
        let params: Vec<Value> = args
            .iter()
            .map(|a| {
                serde_json::json!({"name": a.name, "required": !a.optional, "schema": schema(a.kind)})
            })
            .collect();
        let description = match registry::service(service) {
            Some(def) => format!("{} ({})", def.description, service),
            None => service.to_string(),
        };
        serde_json::json!({
            "name": format!("{service}.{method}"),
            "description": description,
            "paramStructure": "either",
            "params": params,
            "result": {"name": "result", "schema": {}},
        })
    };
    let mut methods: Vec<Value> = METHODS
        .iter()
        .map(|s| described(s.service, s.method, s.args))
        .collect();
    methods.extend(
        registry::SERVICES
            .iter()
            .filter(|s| is_forwarded(s.name))
            .map(|s| described(s.name, "health", &[])),
    );
    serde_json::json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "apis.do JSON-RPC",
            "version": "1",
            "description": "POST /rpc on an API host (authenticated). Beyond the spec's codes: -32000 service error, -32001 timeout, -32002 service unavailable, -32003 not allowed for this role."
        },
        "servers": [{"name": "api", "url": "https://api.do/rpc"}],
        "methods": methods,
    })
}

// ---------------------------------------------------------------------------------------
// The `do` proxy's allowlist: what `do.call`/`do.batchCall` forward for callers that reach `do`
// over a service binding (other workers, trusted). It is the public table plus the account
// methods of `auth` that the api exposes through its own HTTP adapter instead of `/rpc`.
// The credential checks (`validate*`) stay internal even here: a worker that needs them binds
// auth directly.

/// Methods every Workers RPC stub or entrypoint has, never forwarded whatever a table says.
const RUNTIME_METHODS: [&str; 4] = ["fetch", "connect", "constructor", "dup"];

const PROXY_ONLY: &[(&str, &str)] = &[
    ("auth", "signup"),
    ("auth", "login"),
    ("auth", "logout"),
    ("auth", "createApiKey"),
    ("auth", "listApiKeys"),
    ("auth", "revokeApiKey"),
    ("auth", "setRole"),
];

/// Whether `do` forwards `service.method`: on the published allowlist or proxy-only, never a
/// runtime method, never `_`-prefixed (names are `[A-Za-z][A-Za-z0-9_]*`).
pub fn proxy_allowed(service: &str, method: &str) -> bool {
    is_name(service)
        && is_name(method)
        && !RUNTIME_METHODS.contains(&method)
        && (allowed(service, method)
            || PROXY_ONLY
                .iter()
                .any(|(s, m)| *s == service && *m == method))
}

/// The methods `do` forwards for one service, in table order (for `getServices`).
pub fn proxy_methods(service: &str) -> Vec<&'static str> {
    methods()
        .chain(PROXY_ONLY.iter().copied())
        .filter(|(s, m)| *s == service && proxy_allowed(s, m))
        .map(|(_, m)| m)
        .collect()
}

/// Whether the service method takes the gateway's `ctx` as its first argument.
pub fn takes_ctx(service: &str, method: &str) -> bool {
    signature(service, method).is_some_and(|s| s.takes_ctx)
}

/// Maps positional or named params onto the method's positional argument list, without
/// `ctx`. Unknown methods are -32601; any shape or type mismatch, extra argument or a
/// caller-supplied `ctx` is -32602. Absent or null optional arguments are left out
/// (trailing) so the service sees them as not given.
pub fn bind_params(service: &str, method: &str, params: &Params) -> Result<Vec<Value>, RpcError> {
    match signature(service, method) {
        Some(sig) => bind(sig, params.clone()),
        None => Err(method_not_found()),
    }
}

fn method_not_found() -> RpcError {
    RpcError::new(METHOD_NOT_FOUND, "Method not found", None)
}

/// Moves the params into place (the plan owns them, so nothing is cloned).
fn bind(sig: &Signature, params: Params) -> Result<Vec<Value>, RpcError> {
    let mut slots: Vec<Option<Value>> = vec![None; sig.args.len()];
    match params {
        Params::None => {}
        Params::Positional(values) => {
            if values.len() > sig.args.len() {
                return Err(RpcError::invalid_params(format!(
                    "expected at most {} arguments, got {}",
                    sig.args.len(),
                    values.len()
                )));
            }
            for (slot, v) in slots.iter_mut().zip(values) {
                *slot = Some(v);
            }
        }
        Params::Named(map) => {
            for (key, v) in map {
                if key == "ctx" {
                    return Err(RpcError::invalid_params(
                        "ctx is supplied by the gateway".into(),
                    ));
                }
                match sig.args.iter().position(|a| a.name == key) {
                    Some(i) => slots[i] = Some(v),
                    None => {
                        return Err(RpcError::invalid_params(format!(
                            "unexpected parameter `{}`",
                            key.chars().take(64).collect::<String>()
                        )))
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(sig.args.len());
    for (arg, slot) in sig.args.iter().zip(slots) {
        match slot {
            None | Some(Value::Null) if arg.optional => out.push(Value::Null),
            None => return Err(RpcError::invalid_params(format!("missing `{}`", arg.name))),
            Some(v) => {
                let (ok, want) = match arg.kind {
                    Kind::Str => (v.is_string(), "a string"),
                    Kind::Obj => (v.is_object(), "an object"),
                };
                if !ok {
                    return Err(RpcError::invalid_params(format!(
                        "`{}` must be {want}",
                        arg.name
                    )));
                }
                out.push(v);
            }
        }
    }
    // Omitted optionals in the middle stay as null placeholders; trailing ones are dropped.
    let required = sig.args.iter().filter(|a| !a.optional).count();
    while out.len() > required && out.last() == Some(&Value::Null) {
        out.pop();
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Plan: what the worker executes, and how the answers are put back together.

/// A call that passed every check and should be executed.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundCall {
    /// `None` = notification: executed, never answered.
    pub id: Option<Id>,
    pub service: String,
    pub method: String,
    /// Arguments without `ctx`.
    pub args: Vec<Value>,
    pub takes_ctx: bool,
}

impl BoundCall {
    /// The argument list for the service: `ctx` first when the method takes it.
    pub fn args_with_ctx(&self, ctx: &Value) -> Vec<Value> {
        if self.takes_ctx {
            std::iter::once(ctx.clone())
                .chain(self.args.iter().cloned())
                .collect()
        } else {
            self.args.clone()
        }
    }
}

/// Why an executed call failed, as told by the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcFailure {
    /// The service answered with an error meant for the caller (not found, conflict, ...).
    /// The worker decides what is safe to show; nothing else is added here.
    Service {
        message: String,
        data: Option<Value>,
    },
    /// The service did not answer in time.
    Timeout,
    /// The service's binding is not configured where the call ran.
    Unavailable,
    /// The caller's role may not use the service.
    Forbidden,
    /// The executor does not know the method (e.g. a `do` deployed with an older table).
    NotFound,
    /// The result did not fit in the batch's response budget.
    TooLarge,
    /// Anything the caller should not see the details of.
    Internal,
}

impl RpcFailure {
    /// The failure an executor reported as a JSON-RPC-style `{code, message}` (what
    /// `do.batchCall` answers). Only a service's own error keeps its message: every other code
    /// gets the fixed text of its kind, and unknown codes are internal.
    pub fn from_code(code: i64, message: &str) -> RpcFailure {
        match code {
            SERVICE_FAILED => RpcFailure::Service {
                message: message.to_owned(),
                data: None,
            },
            TIMEOUT => RpcFailure::Timeout,
            SERVICE_UNAVAILABLE => RpcFailure::Unavailable,
            FORBIDDEN => RpcFailure::Forbidden,
            METHOD_NOT_FOUND => RpcFailure::NotFound,
            RESPONSE_TOO_LARGE => RpcFailure::TooLarge,
            _ => RpcFailure::Internal,
        }
    }

    fn into_error(self) -> RpcError {
        match self {
            RpcFailure::Service { message, data } => RpcError {
                code: SERVICE_FAILED,
                message,
                data,
            },
            RpcFailure::Timeout => RpcError::new(TIMEOUT, "Timeout", None),
            RpcFailure::Unavailable => {
                RpcError::new(SERVICE_UNAVAILABLE, "Service unavailable", None)
            }
            RpcFailure::Forbidden => RpcError::new(FORBIDDEN, "Forbidden", None),
            RpcFailure::NotFound => method_not_found(),
            RpcFailure::TooLarge => RpcError::new(
                RESPONSE_TOO_LARGE,
                "Response too large: the batch's results passed its budget; call this one on its own",
                None,
            ),
            RpcFailure::Internal => RpcError::new(INTERNAL_ERROR, "Internal error", None),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Single,
    Batch,
}

#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Run(BoundCall),
    /// Already decided; `None` = a notification that gets no answer.
    Answer(Option<Response>),
}

/// A parsed, validated request body: the calls to run and the slots their answers go into.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    shape: Shape,
    slots: Vec<Slot>,
}

impl Plan {
    pub fn from_body(body: &[u8]) -> Plan {
        Plan::from_parsed(parse(body))
    }

    pub fn from_parsed(parsed: Parsed) -> Plan {
        let (shape, entries) = match parsed {
            Parsed::Error(r) => {
                return Plan {
                    shape: Shape::Single,
                    slots: vec![Slot::Answer(Some(r))],
                }
            }
            Parsed::Single(e) => (Shape::Single, vec![e]),
            Parsed::Batch(es) => (Shape::Batch, es),
        };
        let slots = entries.into_iter().map(resolve).collect();
        Plan { shape, slots }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The calls to execute, in request order (notifications included).
    pub fn calls(&self) -> impl Iterator<Item = &BoundCall> {
        self.slots.iter().filter_map(|s| match s {
            Slot::Run(c) => Some(c),
            Slot::Answer(_) => None,
        })
    }

    /// Combines the outcomes of [`Plan::calls`] (same order) with the answers decided at
    /// parse time. `None` means nothing to send (HTTP 204). A missing outcome is answered as
    /// an internal error rather than dropped; extra outcomes are ignored.
    pub fn finish(self, results: Vec<Result<Value, RpcFailure>>) -> Option<String> {
        let mut results = results.into_iter();
        let responses: Vec<Value> = self
            .slots
            .into_iter()
            .filter_map(|slot| match slot {
                Slot::Answer(r) => r,
                Slot::Run(call) => {
                    let outcome = results.next().unwrap_or(Err(RpcFailure::Internal));
                    let id = call.id?;
                    Some(Response {
                        id,
                        outcome: outcome.map_err(RpcFailure::into_error),
                    })
                }
            })
            .map(|r| r.to_value())
            .collect();
        match self.shape {
            Shape::Single => responses.into_iter().next().map(|v| v.to_string()),
            Shape::Batch if responses.is_empty() => None,
            Shape::Batch => Some(Value::Array(responses).to_string()),
        }
    }
}

/// Services whose methods (other than `health`) answer a reply envelope instead of throwing:
/// `{ok: true, value}` or `{ok: false, error: {status, code, detail}}` (see `rpc::db`).
const ENVELOPED: [&str; 1] = ["db"];

/// A service's answer as the JSON-RPC caller should see it: an enveloped success becomes its
/// `value`, an enveloped refusal becomes a service error (-32000) whose message is the
/// refusal's `detail` and whose data is `{status, code}`. Anything else passes unchanged.
pub fn settle_reply(service: &str, method: &str, answer: Value) -> Result<Value, RpcFailure> {
    if !ENVELOPED.contains(&service) || method == "health" {
        return Ok(answer);
    }
    let Value::Object(mut reply) = answer else {
        return Ok(answer);
    };
    match reply.get("ok") {
        Some(Value::Bool(true)) if reply.contains_key("value") => {
            Ok(reply.remove("value").unwrap_or(Value::Null))
        }
        Some(Value::Bool(false)) => {
            let error = reply.remove("error").unwrap_or(Value::Null);
            let message = error
                .get("detail")
                .and_then(Value::as_str)
                .unwrap_or("The service refused the call")
                .to_owned();
            let mut data = Map::new();
            for key in ["status", "code"] {
                if let Some(v) = error.get(key) {
                    data.insert(key.into(), v.clone());
                }
            }
            Err(RpcFailure::Service {
                message,
                data: Some(Value::Object(data)),
            })
        }
        _ => Ok(Value::Object(reply)),
    }
}

fn resolve(entry: Entry) -> Slot {
    let call = match entry {
        Entry::Invalid(r) => return Slot::Answer(Some(r)),
        Entry::Call(c) => c,
    };
    // Answered by the gateway itself, from the same table that validates calls.
    if call.service == "rpc" && call.method == "discover" {
        let no_params = match &call.params {
            Params::None => true,
            Params::Positional(a) => a.is_empty(),
            Params::Named(o) => o.is_empty(),
        };
        let outcome = if no_params {
            Ok(discover())
        } else {
            Err(RpcError::invalid_params(
                "rpc.discover takes no params".into(),
            ))
        };
        return Slot::Answer(call.id.map(|id| Response { id, outcome }));
    }
    let bound = match signature(&call.service, &call.method) {
        Some(sig) => bind(sig, call.params).map(|args| (sig.takes_ctx, args)),
        None => Err(method_not_found()),
    };
    match bound {
        Ok((takes_ctx, args)) => Slot::Run(BoundCall {
            id: call.id,
            service: call.service,
            method: call.method,
            args,
            takes_ctx,
        }),
        // Notifications are never answered, not even with an error (spec §4.1).
        Err(e) => Slot::Answer(call.id.map(|id| Response {
            id,
            outcome: Err(e),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn discover_describes_exactly_the_callable_methods() {
        let doc = discover();
        assert_eq!(doc["openrpc"], "1.3.2");
        let names: Vec<String> = doc["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect();
        let table: Vec<String> = methods().map(|(s, m)| format!("{s}.{m}")).collect();
        assert_eq!(names, table);
        for name in &names {
            let (s, m) = name.split_once('.').unwrap();
            assert!(allowed(s, m), "{name}");
        }
        let get = &doc["methods"][0];
        assert_eq!(get["name"], "db.get");
        assert_eq!(
            get["params"][0],
            json!({"name": "collection", "required": true, "schema": {"type": "string"}})
        );
        assert!(
            !doc.to_string().contains("\"ctx\""),
            "ctx is never a documented param"
        );
        // Answered by the plan itself, never run; params are refused.
        let r = run(r#"{"jsonrpc": "2.0", "id": 7, "method": "rpc.discover"}"#).unwrap();
        assert_eq!(r["result"], doc);
        let r =
            run(r#"{"jsonrpc": "2.0", "id": 8, "method": "rpc.discover", "params": [1]}"#).unwrap();
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        assert_eq!(
            Plan::from_body(br#"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}"#)
                .calls()
                .count(),
            0
        );
    }

    /// Runs a body through the plan with a fake service that echoes what it was called with.
    fn run(body: &str) -> Option<Value> {
        let plan = Plan::from_body(body.as_bytes());
        let results = plan
            .calls()
            .map(|c| Ok(json!({"called": format!("{}.{}", c.service, c.method), "args": c.args})))
            .collect();
        plan.finish(results)
            .map(|s| serde_json::from_str(&s).expect("rendered JSON parses"))
    }

    fn err(id: Value, code: i64) -> (Value, i64) {
        (id, code)
    }

    fn error_of(v: &Value) -> (Value, i64) {
        (
            v["id"].clone(),
            v["error"]["code"].as_i64().expect("error code"),
        )
    }

    // --- The spec's examples (§7), with our method names ---

    #[test]
    fn positional_params() {
        let r =
            run(r#"{"jsonrpc": "2.0", "method": "db.get", "params": ["notes", "n1"], "id": 1}"#);
        assert_eq!(
            r,
            Some(
                json!({"jsonrpc": "2.0", "result": {"called": "db.get", "args": ["notes", "n1"]}, "id": 1})
            )
        );
    }

    #[test]
    fn named_params_bind_in_signature_order() {
        let r = run(
            r#"{"jsonrpc": "2.0", "method": "db.get", "params": {"id": "n1", "collection": "notes"}, "id": 3}"#,
        );
        assert_eq!(
            r.map(|v| v["result"]["args"].clone()),
            Some(json!(["notes", "n1"]))
        );
    }

    #[test]
    fn notification_is_executed_but_not_answered() {
        let plan = Plan::from_body(br#"{"jsonrpc": "2.0", "method": "db.health"}"#);
        assert_eq!(plan.calls().count(), 1);
        assert_eq!(plan.calls().next().map(|c| c.id.clone()), Some(None));
        assert_eq!(plan.finish(vec![Ok(json!("ok"))]), None);
    }

    #[test]
    fn non_existent_method() {
        let r = run(r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#).expect("answer");
        assert_eq!(error_of(&r), err(json!("1"), METHOD_NOT_FOUND));
        assert_eq!(r["error"]["message"], "Method not found");
    }

    #[test]
    fn invalid_json() {
        let r =
            run(r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#).expect("answer");
        assert_eq!(
            r,
            json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null})
        );
    }

    #[test]
    fn invalid_request_object() {
        let r = run(r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#).expect("answer");
        assert_eq!(error_of(&r), err(Value::Null, INVALID_REQUEST));
        assert_eq!(r["error"]["message"], "Invalid Request");
    }

    #[test]
    fn batch_with_invalid_json() {
        let r = run(r#"[
            {"jsonrpc": "2.0", "method": "db.health", "id": "1"},
            {"jsonrpc": "2.0", "method"
        ]"#)
        .expect("answer");
        assert_eq!(error_of(&r), err(Value::Null, PARSE_ERROR));
    }

    #[test]
    fn empty_array() {
        let r = run("[]").expect("answer");
        assert!(r.is_object());
        assert_eq!(error_of(&r), err(Value::Null, INVALID_REQUEST));
    }

    #[test]
    fn batch_of_one_non_object() {
        let r = run("[1]").expect("answer");
        let items = r.as_array().expect("array");
        assert_eq!(items.len(), 1);
        assert_eq!(error_of(&items[0]), err(Value::Null, INVALID_REQUEST));
    }

    #[test]
    fn batch_of_three_non_objects() {
        let r = run("[1,2,3]").expect("answer");
        let items = r.as_array().expect("array");
        assert_eq!(items.len(), 3);
        for item in items {
            assert_eq!(error_of(item), err(Value::Null, INVALID_REQUEST));
        }
    }

    #[test]
    fn mixed_batch_keeps_order_and_drops_notifications() {
        let r = run(r#"[
            {"jsonrpc": "2.0", "method": "db.get", "params": ["a", "1"], "id": "1"},
            {"jsonrpc": "2.0", "method": "db.health"},
            {"jsonrpc": "2.0", "method": "db.list", "params": ["a"], "id": "2"},
            {"foo": "boo"},
            {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
            {"jsonrpc": "2.0", "method": "nope.nope", "params": [7]},
            {"jsonrpc": "2.0", "method": "do.getServices", "id": "9"}
        ]"#)
        .expect("answer");
        let items = r.as_array().expect("array");
        assert_eq!(items.len(), 5);
        assert_eq!(items[0]["result"]["called"], "db.get");
        assert_eq!(items[0]["id"], "1");
        assert_eq!(items[1]["result"]["args"], json!(["a"]));
        assert_eq!(items[1]["id"], "2");
        assert_eq!(error_of(&items[2]), err(Value::Null, INVALID_REQUEST));
        assert_eq!(error_of(&items[3]), err(json!("5"), METHOD_NOT_FOUND));
        assert_eq!(items[4]["result"]["called"], "do.getServices");
        assert_eq!(items[4]["id"], "9");
    }

    #[test]
    fn all_notification_batch_is_no_content() {
        let body = r#"[
            {"jsonrpc": "2.0", "method": "db.health", "params": []},
            {"jsonrpc": "2.0", "method": "do.health"}
        ]"#;
        let plan = Plan::from_body(body.as_bytes());
        assert_eq!(plan.shape(), Shape::Batch);
        assert_eq!(plan.calls().count(), 2);
        assert_eq!(run(body), None);
    }

    #[test]
    fn notification_errors_stay_silent() {
        // Unknown method and bad params on notifications: nothing to answer, nothing runs.
        let body = r#"[
            {"jsonrpc": "2.0", "method": "db.fetch"},
            {"jsonrpc": "2.0", "method": "db.get", "params": [1]}
        ]"#;
        assert_eq!(Plan::from_body(body.as_bytes()).calls().count(), 0);
        assert_eq!(run(body), None);
        // ...but an invalid Request object is answered even without an id.
        let r = run(r#"[{"jsonrpc": "1.0", "method": "db.health"}]"#).expect("answer");
        assert_eq!(error_of(&r[0]), err(Value::Null, INVALID_REQUEST));
    }

    // --- Request object validation ---

    #[test]
    fn null_id_is_a_request_not_a_notification() {
        let r = run(r#"{"jsonrpc": "2.0", "method": "db.health", "id": null}"#).expect("answer");
        assert_eq!(r["id"], Value::Null);
        assert_eq!(r["result"]["called"], "db.health");
    }

    #[test]
    fn fractional_and_large_ids_are_echoed() {
        let r = run(r#"{"jsonrpc": "2.0", "method": "db.health", "id": 1.5}"#).expect("answer");
        assert_eq!(r["id"], json!(1.5));
        let r = run(r#"{"jsonrpc": "2.0", "method": "db.health", "id": 18446744073709551615}"#)
            .expect("answer");
        assert_eq!(r["id"], json!(u64::MAX));
        let r = run(r#"{"jsonrpc": "2.0", "method": "db.health", "id": -7}"#).expect("answer");
        assert_eq!(r["id"], json!(-7));
    }

    #[test]
    fn invalid_requests_echo_the_id_when_readable() {
        let cases = [
            (r#"{"method": "db.health", "id": 4}"#, json!(4)),
            (
                r#"{"jsonrpc": "1.0", "method": "db.health", "id": 4}"#,
                json!(4),
            ),
            (
                r#"{"jsonrpc": 2.0, "method": "db.health", "id": "x"}"#,
                json!("x"),
            ),
            (r#"{"jsonrpc": "2.0", "id": 4}"#, json!(4)),
            (r#"{"jsonrpc": "2.0", "method": null, "id": 4}"#, json!(4)),
            (
                r#"{"jsonrpc": "2.0", "method": "db.health", "params": null, "id": 4}"#,
                json!(4),
            ),
            (
                r#"{"jsonrpc": "2.0", "method": "db.health", "params": "x", "id": 4}"#,
                json!(4),
            ),
            (
                r#"{"jsonrpc": "2.0", "method": "db.health", "params": 3, "id": 4}"#,
                json!(4),
            ),
            (
                r#"{"jsonrpc": "2.0", "method": "db.health", "id": {"a": 1}}"#,
                Value::Null,
            ),
            (
                r#"{"jsonrpc": "2.0", "method": "db.health", "id": [1]}"#,
                Value::Null,
            ),
            (
                r#"{"jsonrpc": "2.0", "method": "db.health", "id": true}"#,
                Value::Null,
            ),
            (r#""db.health""#, Value::Null),
            ("null", Value::Null),
            ("42", Value::Null),
        ];
        for (body, id) in cases {
            let r = run(body).expect(body);
            assert_eq!(error_of(&r), err(id, INVALID_REQUEST), "{body}");
            assert!(r["error"]["data"].is_string(), "{body}");
        }
    }

    #[test]
    fn not_json_at_all_is_a_parse_error() {
        for body in ["", " ", "{", "nul", "\u{feff}{}", "[1,]", "{\"a\":1}x"] {
            let r = run(body).expect(body);
            assert_eq!(error_of(&r), err(Value::Null, PARSE_ERROR), "{body:?}");
        }
        let r = Plan::from_body(&[0xff, 0xfe, b'{', b'}']).finish(vec![]);
        assert!(r.is_some_and(|s| s.contains("-32700")));
    }

    // --- Allowlist ---

    #[test]
    fn internals_are_never_callable() {
        let blocked = [
            "db._internal",
            "db.fetch",
            "db.connect",
            "db.constructor",
            "db.dup",
            "auth.validateToken",
            "auth.validateApiKey",
            "auth.validateSession",
            "auth.login",
            "auth.signup",
            "do.constructor",
            "do.call",
            "do.batchCall",
            "do.fetch",
            "_db.get",
            "db.get.x",
            "db.",
            ".get",
            "db",
            "DB.get",
            "db.Get",
            "rpc.other",
            "db.get\u{0}",
            "db .get",
            "",
        ];
        for name in blocked {
            let body = json!({"jsonrpc": "2.0", "method": name, "params": ["a", "b"], "id": 1});
            let r = run(&body.to_string()).expect(name);
            assert_eq!(error_of(&r), err(json!(1), METHOD_NOT_FOUND), "{name}");
            let (s, m) = name.split_once('.').unwrap_or(("", name));
            assert!(!allowed(s, m), "{name}");
        }
    }

    #[test]
    fn allowlist_table_is_exactly_the_published_one() {
        let expected = [
            ("db", "get"),
            ("db", "put"),
            ("db", "patch"),
            ("db", "delete"),
            ("db", "list"),
            ("db", "health"),
            ("do", "getServices"),
            ("do", "getService"),
            ("do", "isServiceAvailable"),
            ("do", "health"),
            ("auth", "health"),
            // health() of every forwarding service, in registry order.
            ("schedule", "health"),
            ("webhooks", "health"),
            ("email", "health"),
            ("queue", "health"),
            ("ai", "health"),
            ("embeddings", "health"),
            ("agents", "health"),
            ("workflows", "health"),
            ("business", "health"),
            ("stripe", "health"),
            ("github", "health"),
            ("mcp", "health"),
        ];
        assert_eq!(methods().collect::<Vec<_>>(), expected);
        for (s, m) in methods() {
            assert!(allowed(s, m));
            assert!(is_name(s) && is_name(m), "{s}.{m}");
            assert!(!m.starts_with('_'));
            assert!(!["fetch", "connect", "constructor", "dup"].contains(&m));
            assert!(!m.starts_with("validate"));
        }
        assert!(takes_ctx("db", "get") && takes_ctx("db", "list"));
        assert!(!takes_ctx("db", "health") && !takes_ctx("do", "getService"));
        assert!(!takes_ctx("nope", "get"));
    }

    #[test]
    fn forwarding_services_publish_health_only() {
        assert!(allowed("schedule", "health") && !takes_ctx("schedule", "health"));
        assert_eq!(bind("schedule", "health", Value::Null), Ok(vec![]));
        assert_eq!(bind("schedule", "health", json!([1])), Err(INVALID_PARAMS));
        for name in [
            "schedule.run",
            "schedule.fetch",
            "waitlist.health",
            "nope.health",
        ] {
            let (s, m) = name.split_once('.').unwrap_or_default();
            assert!(!allowed(s, m), "{name}");
        }
    }

    #[test]
    fn proxy_allowlist() {
        let allowed_names = [
            "db.get",
            "db.list",
            "db.health",
            "auth.login",
            "auth.setRole",
            "auth.health",
            "do.getServices",
            "schedule.health",
            "mcp.health",
        ];
        for name in allowed_names {
            let (s, m) = name.split_once('.').unwrap_or_default();
            assert!(proxy_allowed(s, m), "{name}");
        }
        let denied = [
            "db.fetch",
            "db.connect",
            "db.constructor",
            "db.dup",
            "db._x",
            "db.__proto__",
            "auth.validateToken",
            "auth.validateApiKey",
            "auth.validateSession",
            "do.call",
            "do.batchCall",
            "do.constructor",
            "schedule.run",
            "waitlist.health",
            "nope.health",
            "db.",
            ".health",
            "DB.get",
        ];
        for name in denied {
            let (s, m) = name.split_once('.').unwrap_or_default();
            assert!(!proxy_allowed(s, m), "{name}");
        }
        // Whatever the tables say, runtime methods and `_` names are refused.
        for (s, m) in methods().chain(PROXY_ONLY.iter().copied()) {
            assert!(
                !RUNTIME_METHODS.contains(&m) && !m.starts_with('_'),
                "{s}.{m}"
            );
            assert!(!m.starts_with("validate"), "{s}.{m}");
            assert!(
                registry::service(s).is_some(),
                "{s}.{m} names a registry service"
            );
        }
        // Everything public goes through the proxy too (so /rpc can run on do.batchCall).
        for (s, m) in methods() {
            assert!(proxy_allowed(s, m), "{s}.{m}");
        }
    }

    #[test]
    fn proxy_methods_per_service() {
        assert_eq!(
            proxy_methods("db"),
            ["get", "put", "patch", "delete", "list", "health"]
        );
        assert_eq!(
            proxy_methods("auth"),
            [
                "health",
                "signup",
                "login",
                "logout",
                "createApiKey",
                "listApiKeys",
                "revokeApiKey",
                "setRole"
            ]
        );
        assert_eq!(
            proxy_methods("do"),
            ["getServices", "getService", "isServiceAvailable", "health"]
        );
        assert_eq!(proxy_methods("schedule"), ["health"]);
        assert!(proxy_methods("waitlist").is_empty());
        assert!(proxy_methods("nope").is_empty());
    }

    #[test]
    fn failures_from_executor_codes() {
        let cases = [
            (
                SERVICE_FAILED,
                RpcFailure::Service {
                    message: "boom".into(),
                    data: None,
                },
            ),
            (TIMEOUT, RpcFailure::Timeout),
            (SERVICE_UNAVAILABLE, RpcFailure::Unavailable),
            (FORBIDDEN, RpcFailure::Forbidden),
            (METHOD_NOT_FOUND, RpcFailure::NotFound),
            (INVALID_PARAMS, RpcFailure::Internal),
            (INTERNAL_ERROR, RpcFailure::Internal),
            (0, RpcFailure::Internal),
            (i64::MIN, RpcFailure::Internal),
        ];
        for (code, want) in cases {
            assert_eq!(RpcFailure::from_code(code, "boom"), want, "{code}");
        }
        // Only the service's own message is kept; the others get their fixed text.
        let plan = Plan::from_body(
            br#"[{"jsonrpc":"2.0","id":1,"method":"db.health"},
                 {"jsonrpc":"2.0","id":2,"method":"db.health"},
                 {"jsonrpc":"2.0","id":3,"method":"db.health"},
                 {"jsonrpc":"2.0","id":4,"method":"db.health"}]"#,
        );
        let out = plan
            .finish(vec![
                Err(RpcFailure::from_code(SERVICE_UNAVAILABLE, "secret detail")),
                Err(RpcFailure::from_code(FORBIDDEN, "secret detail")),
                Err(RpcFailure::from_code(METHOD_NOT_FOUND, "secret detail")),
                Err(RpcFailure::from_code(-1, "secret detail")),
            ])
            .expect("answer");
        assert!(!out.contains("secret"), "{out}");
        let codes: Vec<i64> = serde_json::from_str::<Value>(&out)
            .expect("json")
            .as_array()
            .expect("batch")
            .iter()
            .filter_map(|r| r["error"]["code"].as_i64())
            .collect();
        assert_eq!(
            codes,
            [
                SERVICE_UNAVAILABLE,
                FORBIDDEN,
                METHOD_NOT_FOUND,
                INTERNAL_ERROR
            ]
        );
    }

    #[test]
    fn db_reply_envelopes_settle_into_results_and_errors() {
        let ok = json!({"ok": true, "value": {"id": "n1", "_version": 1}});
        assert_eq!(
            settle_reply("db", "get", ok.clone()),
            Ok(json!({"id": "n1", "_version": 1}))
        );
        let refused = json!({"ok": false, "error": {"status": 404, "code": "not_found", "detail": "document not found"}});
        assert_eq!(
            settle_reply("db", "get", refused),
            Err(RpcFailure::Service {
                message: "document not found".into(),
                data: Some(json!({"status": 404, "code": "not_found"}))
            })
        );
        let bare = json!({"ok": false});
        assert!(matches!(
            settle_reply("db", "put", bare),
            Err(RpcFailure::Service { message, .. }) if message == "The service refused the call"
        ));
        // health and other services are never unwrapped; odd shapes pass through.
        let health = json!({"ok": true, "service": "db"});
        assert_eq!(
            settle_reply("db", "health", health.clone()),
            Ok(health.clone())
        );
        assert_eq!(settle_reply("do", "getService", ok.clone()), Ok(ok));
        assert_eq!(settle_reply("db", "get", json!([1])), Ok(json!([1])));
        assert_eq!(
            settle_reply("db", "get", json!({"ok": true})),
            Ok(json!({"ok": true}))
        );
    }

    // --- Params ---

    fn bind(s: &str, m: &str, params: Value) -> Result<Vec<Value>, i64> {
        let p = match params {
            Value::Null => Params::None,
            Value::Array(a) => Params::Positional(a),
            Value::Object(o) => Params::Named(o),
            other => panic!("bad test params {other}"),
        };
        bind_params(s, m, &p).map_err(|e| e.code)
    }

    #[test]
    fn forged_ctx_is_invalid_params() {
        let r = run(r#"{"jsonrpc": "2.0", "method": "db.get", "id": 1,
                       "params": {"ctx": {"userId": "admin", "role": "admin"}, "collection": "a", "id": "b"}}"#)
        .expect("answer");
        assert_eq!(error_of(&r), err(json!(1), INVALID_PARAMS));
        assert_eq!(r["error"]["data"], "ctx is supplied by the gateway");
        // Positionally, a ctx can only arrive as an extra argument.
        assert_eq!(
            bind("db", "get", json!([{"userId": "admin"}, "a", "b"])),
            Err(INVALID_PARAMS)
        );
        assert_eq!(
            bind("db", "health", json!({"ctx": {}})),
            Err(INVALID_PARAMS)
        );
        assert_eq!(bind("do", "getServices", json!([{}])), Err(INVALID_PARAMS));
    }

    #[test]
    fn bind_params_table() {
        type Case = (&'static str, &'static str, Value, Result<Vec<Value>, i64>);
        let ok = |v: Value| Ok::<_, i64>(v.as_array().cloned().unwrap_or_default());
        let cases: Vec<Case> = vec![
            ("db", "get", json!(["c", "i"]), ok(json!(["c", "i"]))),
            (
                "db",
                "get",
                json!({"collection": "c", "id": "i"}),
                ok(json!(["c", "i"])),
            ),
            ("db", "get", json!(["c"]), Err(INVALID_PARAMS)),
            ("db", "get", json!(["c", 1]), Err(INVALID_PARAMS)),
            ("db", "get", json!(["c", "i", "x"]), Err(INVALID_PARAMS)),
            ("db", "get", Value::Null, Err(INVALID_PARAMS)),
            ("db", "get", json!({"collection": "c"}), Err(INVALID_PARAMS)),
            (
                "db",
                "get",
                json!({"collection": "c", "id": "i", "x": 1}),
                Err(INVALID_PARAMS),
            ),
            (
                "db",
                "get",
                json!({"collection": "c", "id": null}),
                Err(INVALID_PARAMS),
            ),
            (
                "db",
                "put",
                json!(["c", "i", {"a": 1}]),
                ok(json!(["c", "i", {"a": 1}])),
            ),
            (
                "db",
                "put",
                json!(["c", "i", {"a": 1}, null]),
                ok(json!(["c", "i", {"a": 1}])),
            ),
            (
                "db",
                "put",
                json!(["c", "i", {}, {"ifMatch": "v1"}]),
                ok(json!(["c", "i", {}, {"ifMatch": "v1"}])),
            ),
            ("db", "put", json!(["c", "i", [1]]), Err(INVALID_PARAMS)),
            ("db", "put", json!(["c", "i", "str"]), Err(INVALID_PARAMS)),
            ("db", "put", json!(["c", "i", {}, "x"]), Err(INVALID_PARAMS)),
            (
                "db",
                "patch",
                json!({"opts": {"ifMatch": "v"}, "patch": {"a": null}, "id": "i", "collection": "c"}),
                ok(json!(["c", "i", {"a": null}, {"ifMatch": "v"}])),
            ),
            (
                "db",
                "patch",
                json!({"collection": "c", "id": "i", "data": {}}),
                Err(INVALID_PARAMS),
            ),
            ("db", "delete", json!(["c", "i"]), ok(json!(["c", "i"]))),
            ("db", "list", json!(["c"]), ok(json!(["c"]))),
            (
                "db",
                "list",
                json!({"collection": "c", "opts": {"limit": 5}}),
                ok(json!(["c", {"limit": 5}])),
            ),
            (
                "db",
                "list",
                json!({"collection": "c", "opts": null}),
                ok(json!(["c"])),
            ),
            ("db", "list", json!([]), Err(INVALID_PARAMS)),
            ("db", "health", Value::Null, ok(json!([]))),
            ("db", "health", json!([]), ok(json!([]))),
            ("db", "health", json!({}), ok(json!([]))),
            ("db", "health", json!([1]), Err(INVALID_PARAMS)),
            ("do", "getServices", json!([]), ok(json!([]))),
            ("do", "getService", json!(["db"]), ok(json!(["db"]))),
            ("do", "getService", json!({"name": "db"}), ok(json!(["db"]))),
            ("do", "getService", json!([]), Err(INVALID_PARAMS)),
            (
                "do",
                "isServiceAvailable",
                json!([{"name": "db"}]),
                Err(INVALID_PARAMS),
            ),
            ("do", "health", Value::Null, ok(json!([]))),
            ("auth", "health", Value::Null, ok(json!([]))),
            ("auth", "me", Value::Null, Err(METHOD_NOT_FOUND)),
            ("db", "drop", Value::Null, Err(METHOD_NOT_FOUND)),
        ];
        for (s, m, params, want) in cases {
            assert_eq!(bind(s, m, params.clone()), want, "{s}.{m} {params}");
        }
    }

    #[test]
    fn args_with_ctx_prepends_only_where_taken() {
        let ctx = json!({"requestId": "r", "userId": "u", "role": "user"});
        let plan = Plan::from_body(
            br#"[{"jsonrpc":"2.0","id":1,"method":"db.get","params":["c","i"]},
                 {"jsonrpc":"2.0","id":2,"method":"do.getService","params":["db"]}]"#,
        );
        let args: Vec<Vec<Value>> = plan.calls().map(|c| c.args_with_ctx(&ctx)).collect();
        assert_eq!(
            args,
            vec![vec![ctx.clone(), json!("c"), json!("i")], vec![json!("db")]]
        );
    }

    // --- Finishing ---

    #[test]
    fn failures_map_to_codes() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"db.health"},
                        {"jsonrpc":"2.0","id":2,"method":"db.health"},
                        {"jsonrpc":"2.0","id":3,"method":"db.health"},
                        {"jsonrpc":"2.0","method":"db.health"},
                        {"jsonrpc":"2.0","id":4,"method":"db.health"}]"#;
        let plan = Plan::from_body(body);
        let out = plan
            .finish(vec![
                Err(RpcFailure::Service {
                    message: "not found".into(),
                    data: Some(json!({"status": 404})),
                }),
                Err(RpcFailure::Timeout),
                Err(RpcFailure::Internal),
                Err(RpcFailure::Internal),
                // the fifth outcome is missing
            ])
            .expect("answer");
        let v: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            v,
            json!([
                {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "not found", "data": {"status": 404}}},
                {"jsonrpc": "2.0", "id": 2, "error": {"code": -32001, "message": "Timeout"}},
                {"jsonrpc": "2.0", "id": 3, "error": {"code": -32603, "message": "Internal error"}},
                {"jsonrpc": "2.0", "id": 4, "error": {"code": -32603, "message": "Internal error"}},
            ])
        );
    }

    #[test]
    fn response_constructors_render() {
        let r = Response::result(Id::Str("a".into()), json!([1]));
        assert_eq!(
            serde_json::from_str::<Value>(&r.to_json()).ok(),
            Some(json!({"jsonrpc": "2.0", "result": [1], "id": "a"}))
        );
        let e = Response::error(Id::Null, INVALID_PARAMS, "Invalid params", None);
        assert_eq!(
            e.to_value(),
            json!({"jsonrpc": "2.0", "error": {"code": -32602, "message": "Invalid params"}, "id": null})
        );
    }

    // --- Limits and hostile input ---

    #[test]
    fn result_budget() {
        let mut budget = ResultBudget::new(100);
        // the first result always fits, however large
        assert!(budget.admit(150));
        assert!(!budget.admit(1));
        let mut budget = ResultBudget::new(100);
        let admitted: Vec<bool> = [40, 40, 40, 20, 0, 1]
            .iter()
            .map(|&n| budget.admit(n))
            .collect();
        assert_eq!(admitted, [true, true, false, true, true, false]);
        assert!(matches!(
            RpcFailure::from_code(RESPONSE_TOO_LARGE, "x"),
            RpcFailure::TooLarge
        ));
        assert_eq!(RpcFailure::TooLarge.into_error().code, RESPONSE_TOO_LARGE);
    }

    #[test]
    fn batch_limit() {
        let call = r#"{"jsonrpc":"2.0","method":"db.health","id":1}"#;
        let batch = |n: usize| format!("[{}]", vec![call; n].join(","));
        let ok = run(&batch(MAX_BATCH)).expect("answer");
        assert_eq!(ok.as_array().map(Vec::len), Some(MAX_BATCH));
        let plan = Plan::from_body(batch(MAX_BATCH + 1).as_bytes());
        assert_eq!(plan.calls().count(), 0);
        let r = run(&batch(MAX_BATCH + 1)).expect("answer");
        assert_eq!(error_of(&r), err(Value::Null, INVALID_REQUEST));
    }

    #[test]
    fn deep_nesting_and_huge_numbers_do_not_panic() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            error_of(&run(&deep).expect("answer")),
            err(Value::Null, PARSE_ERROR)
        );
        let nested = format!("{}1{}", r#"{"a":"#.repeat(5_000), "}".repeat(5_000));
        let deep_params =
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"db.put","params":["c","i",{nested}]}}"#);
        assert_eq!(
            error_of(&run(&deep_params).expect("answer")),
            err(Value::Null, PARSE_ERROR)
        );
        let huge = r#"{"jsonrpc":"2.0","id":1e400,"method":"db.health"}"#;
        assert_eq!(
            error_of(&run(huge).expect("answer")),
            err(Value::Null, PARSE_ERROR)
        );
        let big_int = format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"db.health"}}"#,
            "9".repeat(400)
        );
        let r = run(&big_int).expect("answer");
        assert!(r["id"].is_number() || r["error"]["code"] == PARSE_ERROR);
        let big_param = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"db.get","params":["c",{}]}}"#,
            "9".repeat(400)
        );
        assert!(run(&big_param).is_some());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let plan = Plan::from_body(&body);
            let n = plan.calls().count();
            let _ = plan.finish(vec![Ok(Value::Null); n]);
        }

        #[test]
        fn jsonish_text_never_panics(body in r#"[\[\]{}":,0-9a-z. \-]{0,200}"#) {
            let plan = Plan::from_body(body.as_bytes());
            let _ = plan.finish(vec![]);
        }

        #[test]
        fn every_answered_id_comes_from_the_request(
            ids in proptest::collection::vec(proptest::option::of(0u32..1000), 1..20),
            names in proptest::collection::vec("(db|do|auth|x)\\.(get|health|list|_x|fetch)", 20),
        ) {
            let entries: Vec<Value> = ids.iter().zip(&names).map(|(id, name)| {
                let mut o = json!({"jsonrpc": "2.0", "method": name, "params": ["c", "i"]});
                if let Some(id) = id { o["id"] = json!(id); }
                o
            }).collect();
            let out = run(&Value::Array(entries).to_string());
            let answered: Vec<Value> = match out {
                None => vec![],
                Some(Value::Array(a)) => a.iter().map(|r| r["id"].clone()).collect(),
                Some(other) => panic!("batch answered with {other}"),
            };
            let expected: Vec<Value> = ids.iter().flatten().map(|id| json!(id)).collect();
            prop_assert_eq!(answered, expected);
        }
    }
}
