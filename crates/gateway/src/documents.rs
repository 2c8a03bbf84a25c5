//! The db service's pure logic: name and body validation, RFC 7396 merge patch, the rendered
//! document shape, ETag / `If-Match`, write planning for optimistic concurrency, list cursors and
//! query parsing, and the parameterised D1 SQL the worker runs (see [`sql`]).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Largest accepted request body and largest stored `data` (serialised), in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Deepest accepted nesting (the body object itself is depth 1). Bounds recursive work
/// (merge patch, drop, re-serialisation) well below serde_json's own limit of 128.
pub const MAX_DEPTH: usize = 64;
pub const MAX_COLLECTION_LEN: usize = 64;
pub const MAX_ID_LEN: usize = 128;
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// Byte budget of one list page: the stored JSON of its documents, summed. A page ends early
/// (with `nextCursor`) when the next document would pass it, so 100 documents of 1 MiB never
/// travel (and get copied) as one 100 MiB answer; a page always holds at least one document,
/// so a walk always advances. 4 MiB keeps the copies of one page (D1 result, parsed values,
/// the RPC clone, the api's JSON) well inside an isolate's 128 MB.
pub const LIST_PAGE_BUDGET_BYTES: usize = 4 << 20;
/// Longest cursor string decoded; real ones are far shorter (bounded work on garbage).
const MAX_CURSOR_LEN: usize = 1024;
/// Longest user input quoted back in an error message.
const ECHO_CHARS: usize = 64;

/// Everything a documents request can fail with; the worker maps it to problem+json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocError {
    BadRequest(String),
    TooLarge,
    NotFound,
    PreconditionFailed,
    Conflict(String),
}

impl DocError {
    pub fn status(&self) -> u16 {
        match self {
            DocError::BadRequest(_) => 400,
            DocError::TooLarge => 413,
            DocError::NotFound => 404,
            DocError::PreconditionFailed => 412,
            DocError::Conflict(_) => 409,
        }
    }

    /// The problem+json `title` for this error.
    pub fn title(&self) -> &'static str {
        match self {
            DocError::BadRequest(_) => "Bad Request",
            DocError::TooLarge => "Payload Too Large",
            DocError::NotFound => "Not Found",
            DocError::PreconditionFailed => "Precondition Failed",
            DocError::Conflict(_) => "Conflict",
        }
    }

    /// What to answer when a conditional UPDATE/DELETE changed no row because another writer
    /// bumped the version between our SELECT and our write. A client that sent `If-Match`
    /// asked for exactly that version, so it gets 412; otherwise 409 tells it to retry.
    pub fn lost_race(had_if_match: bool) -> DocError {
        if had_if_match {
            DocError::PreconditionFailed
        } else {
            DocError::Conflict("the document was changed concurrently; retry".into())
        }
    }

    fn bad(msg: impl Into<String>) -> DocError {
        DocError::BadRequest(msg.into())
    }
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocError::BadRequest(m) | DocError::Conflict(m) => f.write_str(m),
            DocError::TooLarge => write!(f, "the document exceeds {MAX_BODY_BYTES} bytes"),
            DocError::NotFound => f.write_str("document not found"),
            DocError::PreconditionFailed => {
                f.write_str("If-Match does not match the current version")
            }
        }
    }
}

impl std::error::Error for DocError {}

/// Quotes at most [`ECHO_CHARS`] characters of user input, control characters escaped, so an
/// error detail can never carry a large or terminal-hostile payload.
fn echo(input: &str) -> String {
    let mut out = String::from("\"");
    for (n, c) in input.chars().enumerate() {
        if n == ECHO_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Names

pub fn validate_collection(name: &str) -> Result<(), DocError> {
    let ok = (1..=MAX_COLLECTION_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DocError::bad(format!(
            "invalid collection name {}: use 1-{MAX_COLLECTION_LEN} characters of A-Z a-z 0-9 _ -",
            echo(name)
        )))
    }
}

pub fn validate_id(id: &str) -> Result<(), DocError> {
    let ok = (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        // `.` and `..` are path segments, not names: refusing them keeps ids safe to put in
        // URLs (`Location`) without a path-normalising client resolving them away.
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(DocError::bad(format!(
            "invalid document id {}: use 1-{MAX_ID_LEN} characters of A-Z a-z 0-9 _ . : - (not . or ..)",
            echo(id)
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// Parses a POST/PUT body or a PATCH merge patch into the document's `data`.
///
/// `path_id` is the id from the URL (PUT/PATCH) or `None` for POST, where the server assigns
/// the id. An `id` member is accepted only when it equals the path id, and is removed: the id
/// lives in the key, never inside `data`. Top-level members starting with `_` are reserved for
/// system fields (`_version`, `_createdAt`, `_updatedAt`) and refused.
pub fn parse_body(bytes: &[u8], path_id: Option<&str>) -> Result<Map<String, Value>, DocError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(DocError::TooLarge);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        // serde_json stops at depth 128 by itself; report that as the same depth error.
        if e.to_string().starts_with("recursion limit exceeded") {
            depth_error()
        } else {
            DocError::bad(format!("the body is not valid JSON: {e}"))
        }
    })?;
    let mut map = match value {
        Value::Object(map) => map,
        other => {
            return Err(DocError::bad(format!(
                "the body must be a JSON object, not {}",
                json_type(&other)
            )))
        }
    };
    if depth(&map) > MAX_DEPTH {
        return Err(depth_error());
    }
    if let Some(key) = map.keys().find(|k| k.starts_with('_')) {
        return Err(DocError::bad(format!(
            "member {} is reserved: names starting with _ are system fields (_version, _createdAt, _updatedAt)",
            echo(key)
        )));
    }
    if let Some(body_id) = map.remove("id") {
        match (path_id, &body_id) {
            (Some(p), Value::String(s)) if s == p => {}
            (Some(p), _) => {
                return Err(DocError::bad(format!(
                    "member id must equal the id in the path ({})",
                    echo(p)
                )))
            }
            (None, _) => {
                return Err(DocError::bad(
                    "member id is assigned by the server on POST; use PUT /{collection}/{id} to choose it",
                ))
            }
        }
    }
    Ok(map)
}

fn depth_error() -> DocError {
    DocError::bad(format!("the body nests deeper than {MAX_DEPTH} levels"))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Nesting depth of an object (itself = 1), computed with an explicit stack, not recursion.
pub fn depth(map: &Map<String, Value>) -> usize {
    let mut max = 1;
    let mut stack: Vec<(&Value, usize)> = map.values().map(|v| (v, 2)).collect();
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Object(m) => {
                max = max.max(d);
                stack.extend(m.values().map(|c| (c, d + 1)));
            }
            Value::Array(a) => {
                max = max.max(d);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    max
}

/// Serialises `data` for the `data` column, refusing results over [`MAX_BODY_BYTES`]: a merge
/// of a full document with a large patch can outgrow the limit each of them met alone.
pub fn serialize_data(data: &Map<String, Value>) -> Result<String, DocError> {
    let text = serde_json::to_string(data)
        .map_err(|_| DocError::bad("the document cannot be serialised"))?;
    if text.len() > MAX_BODY_BYTES {
        return Err(DocError::TooLarge);
    }
    Ok(text)
}

/// Applies an RFC 7396 JSON merge patch to `target` in place: `null` members delete, objects
/// merge recursively, anything else replaces. Recursion depth is bounded by the patch's depth,
/// which [`parse_body`] caps at [`MAX_DEPTH`].
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (name, value) in patch {
            if value.is_null() {
                map.remove(name);
            } else {
                merge_patch(map.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering and ETags

/// The system fields of a stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocMeta {
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// The public shape `{id, ...data, _version, _createdAt, _updatedAt}`. System fields are
/// written last so they win even if stored data somehow held such keys.
pub fn render(id: &str, data: &Map<String, Value>, meta: &DocMeta) -> Value {
    let mut out = data.clone();
    out.insert("id".into(), Value::String(id.into()));
    out.insert("_version".into(), Value::from(meta.version));
    out.insert("_createdAt".into(), Value::String(meta.created_at.clone()));
    out.insert("_updatedAt".into(), Value::String(meta.updated_at.clone()));
    Value::Object(out)
}

/// The strong ETag of a version: `"3"`. Strong, because the version changes on every write,
/// so equal tags mean byte-identical representations.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Whether an `If-Match` header value matches a document that exists at `version`.
///
/// Handles `*` and comma-separated lists of entity tags. `If-Match` uses the strong comparison
/// (RFC 9110 §13.1.1), so a weak tag `W/"3"` never matches. Malformed values match nothing,
/// which fails safe (412). When the document does not exist, the caller must answer 412 for
/// any `If-Match`, including `*` (see [`plan_put`]).
pub fn if_match_matches(header: &str, version: i64) -> bool {
    let header = header.trim();
    if header == "*" {
        return true;
    }
    let want = version.to_string();
    // The whole list is parsed before answering, so a malformed list never matches.
    let mut matched = false;
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return matched;
        }
        let (weak, tagged) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(r) = tagged.strip_prefix('"') else {
            return false;
        };
        // An opaque tag may itself contain commas, so scan to the closing quote.
        let Some(end) = r.find('"') else {
            return false;
        };
        matched |= !weak && r[..end] == want;
        rest = &r[end + 1..];
        if !(rest.is_empty() || rest.starts_with([' ', '\t', ','])) {
            return false;
        }
    }
}

/// How the worker writes after reading the current row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePlan {
    /// Run [`sql::INSERT`]; no row back means a racing writer created it first: re-read and
    /// plan again (or answer [`DocError::lost_race`]).
    Insert,
    /// Run [`sql::UPDATE_IF_VERSION`] with this expected version; no row back means another
    /// writer won: answer [`DocError::lost_race`].
    Update { expected_version: i64 },
}

/// PUT: create when absent (201), replace when present (200). `If-Match` on an absent document
/// is 412 (RFC 9110 §13.1.1: `*` means "a current representation exists").
pub fn plan_put(
    if_match: Option<&str>,
    current_version: Option<i64>,
) -> Result<WritePlan, DocError> {
    match (current_version, if_match) {
        (None, None) => Ok(WritePlan::Insert),
        (None, Some(_)) => Err(DocError::PreconditionFailed),
        (Some(v), Some(h)) if !if_match_matches(h, v) => Err(DocError::PreconditionFailed),
        (Some(v), _) => Ok(WritePlan::Update {
            expected_version: v,
        }),
    }
}

/// PATCH: the document must exist (404), `If-Match` honoured (412).
pub fn plan_patch(
    if_match: Option<&str>,
    current_version: Option<i64>,
) -> Result<WritePlan, DocError> {
    match (current_version, if_match) {
        (None, _) => Err(DocError::NotFound),
        (Some(v), Some(h)) if !if_match_matches(h, v) => Err(DocError::PreconditionFailed),
        (Some(v), _) => Ok(WritePlan::Update {
            expected_version: v,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Cursors and list queries

/// A list position: the last id of the previous page and, for cross-owner (admin) listings,
/// its owner, because there the same id can exist once per owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub id: String,
    pub owner: Option<String>,
}

const CURSOR_V1_ID: u8 = 1;
const CURSOR_V1_ID_OWNER: u8 = 2;
const CURSOR_CHECK_LEN: usize = 4;

/// Opaque cursor after `last_id` (owner-scoped listing).
pub fn encode_cursor(last_id: &str) -> String {
    seal(CURSOR_V1_ID, last_id.as_bytes())
}

/// Opaque cursor after (`last_id`, `last_owner`) for [`sql::LIST_ANY_OWNER`].
pub fn encode_cursor_any_owner(last_id: &str, last_owner: &str) -> String {
    let mut payload = Vec::with_capacity(last_id.len() + 1 + last_owner.len());
    payload.extend_from_slice(last_id.as_bytes());
    payload.push(0); // ids never contain NUL, so the first NUL splits id from owner
    payload.extend_from_slice(last_owner.as_bytes());
    seal(CURSOR_V1_ID_OWNER, &payload)
}

// Layout: base64url(version byte ‖ payload ‖ first 4 bytes of SHA-256(version ‖ payload)).
// The checksum detects garbage and edits; it is not a MAC, and needs not be: a cursor only
// picks a start position inside the caller's own (owner-filtered) scope.
fn seal(version: u8, payload: &[u8]) -> String {
    let mut raw = Vec::with_capacity(1 + payload.len() + CURSOR_CHECK_LEN);
    raw.push(version);
    raw.extend_from_slice(payload);
    let check = Sha256::digest(&raw);
    raw.extend_from_slice(&check[..CURSOR_CHECK_LEN]);
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(cursor: &str) -> Result<Cursor, DocError> {
    let invalid = || DocError::bad("invalid cursor: pass back nextCursor unchanged");
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(invalid());
    }
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    if raw.len() < 1 + CURSOR_CHECK_LEN {
        return Err(invalid());
    }
    let (body, check) = raw.split_at(raw.len() - CURSOR_CHECK_LEN);
    if Sha256::digest(body)[..CURSOR_CHECK_LEN] != *check {
        return Err(invalid());
    }
    let (version, payload) = (body[0], &body[1..]);
    let (id, owner) = match version {
        CURSOR_V1_ID => (payload, None),
        CURSOR_V1_ID_OWNER => {
            let nul = payload.iter().position(|&b| b == 0).ok_or_else(invalid)?;
            (&payload[..nul], Some(&payload[nul + 1..]))
        }
        _ => return Err(invalid()),
    };
    let id = std::str::from_utf8(id).map_err(|_| invalid())?;
    validate_id(id).map_err(|_| invalid())?;
    let owner = match owner {
        Some(o) => Some(std::str::from_utf8(o).map_err(|_| invalid())?.to_owned()),
        None => None,
    };
    Ok(Cursor {
        id: id.to_owned(),
        owner,
    })
}

/// Parsed `?limit=&cursor=` of a list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOpts {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl ListOpts {
    /// Rows to fetch: one more than the page, to learn whether a next page exists.
    pub fn fetch_limit(&self) -> u32 {
        self.limit + 1
    }

    /// `?3` of [`sql::LIST`] (and `?2` of [`sql::LIST_ANY_OWNER`]): every valid id sorts after
    /// the empty string, so the first page needs no separate statement.
    pub fn after_id(&self) -> &str {
        self.after.as_ref().map_or("", |c| c.id.as_str())
    }

    /// `?3` of [`sql::LIST_ANY_OWNER`]. An owner-less cursor restarts at the first owner of its
    /// id: rows may repeat, but none is skipped.
    pub fn after_owner(&self) -> &str {
        self.after
            .as_ref()
            .and_then(|c| c.owner.as_deref())
            .unwrap_or("")
    }
}

/// Parses the list query string (without the `?`). `limit` is 1..=100 (default 20); `cursor`
/// is optional. An empty value counts as absent (clients build `?limit=&cursor=` templates);
/// a repeated `limit` or `cursor` is refused as ambiguous; unknown parameters are ignored.
pub fn parse_list_query(query: Option<&str>) -> Result<ListOpts, DocError> {
    let mut limit: Option<String> = None;
    let mut cursor: Option<String> = None;
    for (key, value) in query_pairs(query.unwrap_or("")) {
        let slot = match key.as_str() {
            "limit" => &mut limit,
            "cursor" => &mut cursor,
            _ => continue,
        };
        if slot.is_some() {
            return Err(DocError::bad(format!(
                "parameter {key} is given more than once"
            )));
        }
        let value = percent_decode(value, true).ok_or_else(|| {
            DocError::bad(format!(
                "parameter {key} is not valid percent-encoded UTF-8"
            ))
        })?;
        *slot = Some(value);
    }
    let limit = match limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| s.bytes().all(|b| b.is_ascii_digit()) && (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                DocError::bad(format!(
                    "limit {} must be a whole number from 1 to {MAX_LIMIT}",
                    echo(s)
                ))
            })?,
    };
    let after = match cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c)?),
    };
    Ok(ListOpts { limit, after })
}

/// The api side of a list request: the validated `limit` and the cursor as the client sent it
/// (percent-decoded, still opaque), to pass on over RPC, where db decodes it with
/// [`list_opts`]. Validates exactly as [`parse_list_query`] does, so a bad query is 400 at the
/// edge without a round trip.
pub fn list_params(query: Option<&str>) -> Result<(u32, Option<String>), DocError> {
    let opts = parse_list_query(query)?;
    let cursor = query_pairs(query.unwrap_or(""))
        .find(|(key, _)| key == "cursor")
        .and_then(|(_, raw)| percent_decode(raw, true))
        .filter(|c| !c.is_empty());
    Ok((opts.limit, cursor))
}

/// The RPC side of a list request: `limit` (absent: the default) must be a whole number in
/// 1..=100 and `cursor` (absent or empty: the first page) a cursor db issued.
pub fn list_opts(limit: Option<&Value>, cursor: Option<&str>) -> Result<ListOpts, DocError> {
    let limit = match limit {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=u64::from(MAX_LIMIT)).contains(n))
            .map(|n| n as u32)
            .ok_or_else(|| {
                DocError::bad(format!(
                    "limit {} must be a whole number from 1 to {MAX_LIMIT}",
                    echo(&v.to_string())
                ))
            })?,
    };
    let after = match cursor {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c)?),
    };
    Ok(ListOpts { limit, after })
}

/// Which stored copy an admin's by-id request means, given the owners holding that id (as
/// [`sql::SELECT_ONE_FOR_ADMIN`] returns them: the admin's own copy first, then at most one
/// more). The admin's own copy wins; otherwise a single owner's copy; two other owners are
/// ambiguous (409), since an admin cannot name the owner in the path.
pub fn admin_target(admin: &str, owners: &[&str]) -> Result<Option<usize>, DocError> {
    match owners {
        [] => Ok(None),
        [first, ..] if *first == admin => Ok(Some(0)),
        [_] => Ok(Some(0)),
        _ => Err(DocError::Conflict(
            "several users hold a document with this id; name one with ?owner={userId}".into(),
        )),
    }
}

/// Who a call acts as: the caller, or, when an admin names `owner` (`?owner=` over HTTP,
/// `ctx.owner` over RPC), that owner, with that owner's reach only, so every method addresses
/// exactly the copy of an id that owner holds (and a write creates it as theirs).
/// Returns (user id, admin).
pub fn address_as(
    user_id: &str,
    admin: bool,
    owner: Option<&str>,
) -> Result<(String, bool), DocError> {
    match owner {
        None => Ok((user_id.to_string(), admin)),
        Some(_) if !admin => Err(DocError::bad("only an admin may name a document's owner")),
        Some(o) if o.is_empty() || o.len() > MAX_OWNER_LEN => Err(DocError::bad(format!(
            "owner must be 1 to {MAX_OWNER_LEN} bytes"
        ))),
        Some(o) => Ok((o.to_string(), false)),
    }
}

/// As db's bound on `ctx.userId`.
pub const MAX_OWNER_LEN: usize = 256;

/// `?owner=` of a db request, percent-decoded; `Err` when it is given but empty or malformed.
pub fn owner_param(query: Option<&str>) -> Result<Option<String>, DocError> {
    match query_pairs(query.unwrap_or("")).find(|(key, _)| key == "owner") {
        None => Ok(None),
        Some((_, raw)) => match percent_decode(raw, true) {
            Some(o) if !o.is_empty() && o.len() <= MAX_OWNER_LEN => Ok(Some(o)),
            _ => Err(DocError::bad(format!(
                "owner must be 1 to {MAX_OWNER_LEN} bytes"
            ))),
        },
    }
}

/// Splits the `limit + 1` rows fetched into the page and whether another page follows; the
/// worker encodes the next cursor from the page's last row.
pub fn split_page<T>(mut rows: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let limit = limit as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    (rows, more)
}

/// Where a budgeted page ends. `sizes` are the stored sizes of the rows fetched (at most
/// `limit + 1`, in page order); `None` marks a row whose data the statement did not ship
/// because it already lay past the budget ([`sql::LIST`] cuts on the same rule). Returns the
/// number of rows on the page and whether another page follows: the longest prefix of at most
/// `limit` rows whose sizes sum to at most `budget`, but never fewer than one row.
pub fn budget_page(sizes: &[Option<usize>], limit: u32, budget: usize) -> (usize, bool) {
    let mut used = 0usize;
    let mut taken = 0usize;
    for size in sizes.iter().take(limit as usize) {
        let Some(size) = *size else { break };
        if taken > 0 && used.saturating_add(size) > budget {
            break;
        }
        used = used.saturating_add(size);
        taken += 1;
    }
    (taken, sizes.len() > taken)
}

/// Splits a raw query string into (key, raw value) pairs. Keys are percent-decoded (lossily:
/// a key that does not decode simply matches nothing); values are left raw so the caller
/// decodes only what it uses.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, &str)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true).unwrap_or_default(), v)
    })
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`, as in query strings and
/// `application/x-www-form-urlencoded`). Malformed escapes and non-UTF-8 results give `None`:
/// the `percent-encoding` crate keeps a malformed escape as it is, so those are refused first.
pub fn percent_decode(input: &str, plus_is_space: bool) -> Option<String> {
    let bytes = input.as_bytes();
    let escapes_well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_well_formed {
        return None;
    }
    let spaced;
    let input = if plus_is_space && input.contains('+') {
        spaced = input.replace('+', " ");
        spaced.as_str()
    } else {
        input
    };
    percent_encoding::percent_decode_str(input)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

// ---------------------------------------------------------------------------------------------

/// D1 statements, all parameterised (`?N`); user input is only ever bound, never formatted in.
///
/// Schema: `documents(owner, collection, id, data, version, created_at, updated_at,
/// PRIMARY KEY(owner, collection, id))`. Owner-scoped statements take `?1 owner, ?2 collection,
/// ?3 id`. Because the same id can exist once per owner, admin access goes through reads
/// that return `owner` ([`sql::SELECT_ONE_FOR_ADMIN`], [`sql::LIST_ANY_OWNER`]); the worker
/// then writes with the owner-scoped statements using that owner, so every write names its
/// owner explicitly. By id, the admin's own copy wins, then a single other owner's; two other
/// owners are ambiguous (409, see [`admin_target`]). The admin reads want an index on
/// `(collection, id, owner)`.
///
/// Writes use `RETURNING` so one round trip tells the worker both whether it won and the new
/// system fields: no row back means "not created" / "lost the race" / "absent".
pub mod sql {
    /// POST and PUT-create. `?1 owner, ?2 collection, ?3 id, ?4 data (JSON text), ?5 now`
    /// (RFC 3339). Returns no row if the id already exists for this owner.
    pub const INSERT: &str = "INSERT INTO documents \
         (owner, collection, id, data, version, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5) \
         ON CONFLICT (owner, collection, id) DO NOTHING \
         RETURNING version, created_at, updated_at";

    /// PUT-replace and PATCH, optimistic: `?1 owner, ?2 collection, ?3 id, ?4 data, ?5 now,
    /// ?6 expected version`. Of two writers that read the same version, exactly one matches
    /// `version = ?6`; the other gets no row.
    pub const UPDATE_IF_VERSION: &str = "UPDATE documents \
         SET data = ?4, version = version + 1, updated_at = ?5 \
         WHERE owner = ?1 AND collection = ?2 AND id = ?3 AND version = ?6 \
         RETURNING version, created_at, updated_at";

    /// PUT without `If-Match`, in one round trip: create (version 1) or replace (version + 1).
    /// `?1 owner, ?2 collection, ?3 id, ?4 data, ?5 now`. A returned version of 1 means created:
    /// a replace always returns 2 or more.
    pub const UPSERT: &str = "INSERT INTO documents \
         (owner, collection, id, data, version, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5) \
         ON CONFLICT (owner, collection, id) DO UPDATE \
         SET data = excluded.data, version = documents.version + 1, updated_at = excluded.updated_at \
         RETURNING version, created_at, updated_at";

    /// Admin read by id: `?1 admin's own id, ?2 collection, ?3 id`. The admin's own copy sorts
    /// first; `LIMIT 2` is enough for [`super::admin_target`] to tell "one other owner" from
    /// "several" without reading them all.
    pub const SELECT_ONE_FOR_ADMIN: &str = "SELECT owner, data, version, created_at, updated_at \
         FROM documents WHERE collection = ?2 AND id = ?3 \
         ORDER BY owner = ?1 DESC, owner LIMIT 2";

    /// `?1 owner, ?2 collection, ?3 id`.
    pub const SELECT_ONE: &str = "SELECT data, version, created_at, updated_at \
         FROM documents WHERE owner = ?1 AND collection = ?2 AND id = ?3";

    /// Admin read by id: `?1 collection, ?2 id`. `LIMIT 2` detects an id held by several
    /// owners without reading them all.
    pub const SELECT_ONE_ANY_OWNER: &str = "SELECT owner, data, version, created_at, updated_at \
         FROM documents WHERE collection = ?1 AND id = ?2 ORDER BY owner LIMIT 2";

    /// `?1 owner, ?2 collection, ?3 id`. No row back means 404.
    pub const DELETE: &str = "DELETE FROM documents \
         WHERE owner = ?1 AND collection = ?2 AND id = ?3 RETURNING version";

    /// DELETE honouring `If-Match`: `?1 owner, ?2 collection, ?3 id, ?4 expected version`.
    pub const DELETE_IF_VERSION: &str = "DELETE FROM documents \
         WHERE owner = ?1 AND collection = ?2 AND id = ?3 AND version = ?4 RETURNING version";

    /// Keyset page: `?1 owner, ?2 collection, ?3 after id ("" for the first page),
    /// ?4 limit + 1, ?5 byte budget`. Every row comes with its stored `size` (bytes); `data`
    /// is NULL for rows past the budget (all but the first row once the running size passes
    /// it), so D1 never ships a page's worth of documents beyond the budget to the worker,
    /// which cuts the page with [`super::budget_page`].
    pub const LIST: &str = "SELECT id, version, created_at, updated_at, size, \
         CASE WHEN running <= ?5 OR running = size THEN data END AS data FROM (\
           SELECT id, data, version, created_at, updated_at, size, \
             SUM(size) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING) AS running FROM (\
               SELECT id, data, version, created_at, updated_at, \
                 length(CAST(data AS BLOB)) AS size \
               FROM documents WHERE owner = ?1 AND collection = ?2 AND id > ?3 \
               ORDER BY id LIMIT ?4)) \
         ORDER BY id";

    /// Admin keyset page over all owners, ordered by (id, owner): `?1 collection, ?2 after id,
    /// ?3 after owner ("" and "" for the first page), ?4 limit + 1, ?5 byte budget`; sizes and
    /// the budget as in [`LIST`].
    pub const LIST_ANY_OWNER: &str = "SELECT owner, id, version, created_at, updated_at, size, \
         CASE WHEN running <= ?5 OR running = size THEN data END AS data FROM (\
           SELECT owner, id, data, version, created_at, updated_at, size, \
             SUM(size) OVER (ORDER BY id, owner ROWS UNBOUNDED PRECEDING) AS running FROM (\
               SELECT owner, id, data, version, created_at, updated_at, \
                 length(CAST(data AS BLOB)) AS size \
               FROM documents WHERE collection = ?1 AND (id > ?2 OR (id = ?2 AND owner > ?3)) \
               ORDER BY id, owner LIMIT ?4)) \
         ORDER BY id, owner";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collection_names() {
        let cases: &[(&str, bool)] = &[
            ("notes", true),
            ("Notes_2024-x", true),
            ("a", true),
            (&"a".repeat(64), true),
            (&"a".repeat(65), false),
            ("", false),
            ("../etc", false),
            ("..", false),
            ("%2e%2e", false),
            ("a/b", false),
            ("a.b", false),
            ("x'; DROP TABLE documents;--", false),
            ("notes ", false),
            ("nötes", false),
            ("заметки", false),
            ("a\0b", false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_collection(name).is_ok(), *ok, "{name:?}");
        }
    }

    #[test]
    fn ids() {
        let cases: &[(&str, bool)] = &[
            ("01HZX3J5Q8W6Y2K9T4N7M1P0RS", true),
            ("a.b:c_d-e", true),
            ("...", true),
            (".hidden", true),
            (&"a".repeat(128), true),
            (&"a".repeat(129), false),
            ("", false),
            (".", false),
            ("..", false),
            ("../x", false),
            ("..%2f", false),
            ("%2e%2e", false),
            ("a/b", false),
            ("a\\b", false),
            ("x'; DROP TABLE documents;--", false),
            ("1 OR 1=1", false),
            ("ünïcode", false),
            ("😀", false),
            ("a\nb", false),
        ];
        for (id, ok) in cases {
            assert_eq!(validate_id(id).is_ok(), *ok, "{id:?}");
        }
    }

    #[test]
    fn error_messages_echo_at_most_64_chars() {
        let long = "x".repeat(10_000);
        let DocError::BadRequest(msg) = validate_collection(&long).unwrap_err() else {
            panic!("expected BadRequest");
        };
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains(&"x".repeat(64)) && !msg.contains(&"x".repeat(65)));
        let DocError::BadRequest(msg) = validate_id("a\nb").unwrap_err() else {
            panic!("expected BadRequest");
        };
        assert!(
            msg.contains("a\\nb"),
            "control characters are escaped: {msg}"
        );
    }

    #[test]
    fn statuses() {
        let cases = [
            (DocError::BadRequest("x".into()), 400),
            (DocError::TooLarge, 413),
            (DocError::NotFound, 404),
            (DocError::PreconditionFailed, 412),
            (DocError::Conflict("x".into()), 409),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status);
            assert!(!e.to_string().is_empty() && !e.title().is_empty());
        }
    }

    #[test]
    fn bodies() {
        let cases: &[(&str, Option<&str>, Result<Value, u16>)] = &[
            (r#"{"a":1}"#, None, Ok(json!({"a": 1}))),
            (r#"{}"#, None, Ok(json!({}))),
            (
                r#"{"a":{"b":[1,{"c":null}]}}"#,
                Some("x"),
                Ok(json!({"a":{"b":[1,{"c":null}]}})),
            ),
            (r#"{"id":"x","a":1}"#, Some("x"), Ok(json!({"a": 1}))),
            (r#"{"id":"y","a":1}"#, Some("x"), Err(400)),
            (r#"{"id":1}"#, Some("1"), Err(400)),
            (r#"{"id":"x"}"#, None, Err(400)),
            (r#"{"_version":5}"#, Some("x"), Err(400)),
            (r#"{"_createdAt":"now"}"#, None, Err(400)),
            (r#"{"_anything":1}"#, None, Err(400)),
            (
                r#"{"a":{"_nested":1}}"#,
                None,
                Ok(json!({"a":{"_nested":1}})),
            ),
            ("[1,2]", None, Err(400)),
            (r#""text""#, None, Err(400)),
            ("42", None, Err(400)),
            ("null", None, Err(400)),
            ("true", None, Err(400)),
            ("", None, Err(400)),
            ("{", None, Err(400)),
            (r#"{"a":1}x"#, None, Err(400)),
            (r#"{"a":1,}"#, None, Err(400)),
        ];
        for (body, path_id, want) in cases {
            let got = parse_body(body.as_bytes(), *path_id)
                .map(Value::Object)
                .map_err(|e| e.status());
            assert_eq!(&got, want, "{body}");
        }
        assert_eq!(
            parse_body(b"\xff\xfe{}", None).map_err(|e| e.status()),
            Err(400)
        );
    }

    #[test]
    fn reserved_key_error_says_why() {
        let err = parse_body(br#"{"_version":1}"#, None).unwrap_err();
        assert!(err.to_string().contains("system field"), "{err}");
    }

    #[test]
    fn body_size_limit() {
        let filler = |n: usize| format!(r#"{{"a":"{}"}}"#, "x".repeat(n - 8));
        let exact = filler(MAX_BODY_BYTES);
        assert_eq!(exact.len(), MAX_BODY_BYTES);
        assert!(parse_body(exact.as_bytes(), None).is_ok());
        let over = filler(MAX_BODY_BYTES + 1);
        assert_eq!(parse_body(over.as_bytes(), None), Err(DocError::TooLarge));
        let two_mib = filler(2 << 20);
        assert_eq!(
            parse_body(two_mib.as_bytes(), None),
            Err(DocError::TooLarge)
        );
    }

    /// A body of exactly `d` levels: containers alternating array/object, outermost an object.
    fn nested(d: usize) -> String {
        let mut s = String::from("1");
        for i in 0..d - 1 {
            s = if i % 2 == 0 {
                format!("[{s}]")
            } else {
                format!(r#"{{"a":{s}}}"#)
            };
        }
        format!(r#"{{"a":{s}}}"#)
    }

    #[test]
    fn depth_limit() {
        for (d, ok) in [
            (1, true),
            (2, true),
            (64, true),
            (65, false),
            (127, false),
            (200, false),
            (10_000, false),
        ] {
            let body = nested(d);
            if d <= 64 {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(depth(v.as_object().unwrap()), d);
            }
            let r = parse_body(body.as_bytes(), None);
            assert_eq!(r.is_ok(), ok, "depth {d}");
            if !ok {
                assert!(r.unwrap_err().to_string().contains("deeper than 64"));
            }
        }
        assert_eq!(depth(&Map::new()), 1);
        let m = json!({"a": [[{"b": 1}]]});
        assert_eq!(depth(m.as_object().unwrap()), 4);
    }

    #[test]
    fn merge_patch_rfc7396_appendix_a() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            let mut got = target.clone();
            merge_patch(&mut got, &patch);
            assert_eq!(got, want, "target {target} patch {patch}");
        }
    }

    #[test]
    fn serialize_data_limits_merged_size() {
        let mut target = json!({"a": "x".repeat(MAX_BODY_BYTES - 100)});
        merge_patch(&mut target, &json!({"b": "y".repeat(1000)}));
        let map = target.as_object().unwrap();
        assert_eq!(serialize_data(map), Err(DocError::TooLarge));
        assert_eq!(serialize_data(&Map::new()).as_deref(), Ok("{}"));
    }

    #[test]
    fn render_shape() {
        let data = json!({"title": "hi", "n": 2});
        let meta = DocMeta {
            version: 3,
            created_at: "2025-01-01T00:00:00Z".into(),
            updated_at: "2025-01-02T00:00:00Z".into(),
        };
        let got = render("doc1", data.as_object().unwrap(), &meta);
        assert_eq!(
            got,
            json!({"id":"doc1","title":"hi","n":2,"_version":3,
                   "_createdAt":"2025-01-01T00:00:00Z","_updatedAt":"2025-01-02T00:00:00Z"})
        );
        // System fields win over stray stored keys.
        let sneaky = json!({"id": "other", "_version": 99});
        let got = render("doc1", sneaky.as_object().unwrap(), &meta);
        assert_eq!(got["id"], "doc1");
        assert_eq!(got["_version"], 3);
    }

    #[test]
    fn etags_and_if_match() {
        assert_eq!(etag(3), "\"3\"");
        let cases = [
            ("\"3\"", true),
            ("*", true),
            (" * ", true),
            ("\"1\", \"3\"", true),
            ("\"1\",\"2\"", false),
            ("\"1\" ,\t\"3\"", true),
            ("W/\"3\"", false),
            ("W/\"3\", \"3\"", true),
            ("3", false),
            ("\"3", false),
            ("\"30\"", false),
            ("\"03\"", false),
            ("\"3\"x", false),
            ("\"a,b\", \"3\"", true),
            ("", false),
            (",,", false),
            ("*, \"3\"", false),
        ];
        for (h, ok) in cases {
            assert_eq!(if_match_matches(h, 3), ok, "{h:?}");
        }
        assert!(if_match_matches(&etag(i64::MAX), i64::MAX));
    }

    /// (If-Match, current version, expected plan or status)
    type PlanCase<'a> = (Option<&'a str>, Option<i64>, Result<WritePlan, u16>);

    #[test]
    fn write_plans() {
        use WritePlan::*;
        let put: &[PlanCase] = &[
            (None, None, Ok(Insert)),
            (Some("*"), None, Err(412)),
            (Some("\"1\""), None, Err(412)),
            (
                None,
                Some(4),
                Ok(Update {
                    expected_version: 4,
                }),
            ),
            (
                Some("\"4\""),
                Some(4),
                Ok(Update {
                    expected_version: 4,
                }),
            ),
            (
                Some("*"),
                Some(4),
                Ok(Update {
                    expected_version: 4,
                }),
            ),
            (Some("\"3\""), Some(4), Err(412)),
        ];
        for (h, cur, want) in put {
            assert_eq!(
                &plan_put(*h, *cur).map_err(|e| e.status()),
                want,
                "put {h:?} {cur:?}"
            );
        }
        let patch: &[PlanCase] = &[
            (None, None, Err(404)),
            (Some("*"), None, Err(404)),
            (
                None,
                Some(2),
                Ok(Update {
                    expected_version: 2,
                }),
            ),
            (
                Some("\"2\""),
                Some(2),
                Ok(Update {
                    expected_version: 2,
                }),
            ),
            (Some("W/\"2\""), Some(2), Err(412)),
        ];
        for (h, cur, want) in patch {
            assert_eq!(
                &plan_patch(*h, *cur).map_err(|e| e.status()),
                want,
                "patch {h:?} {cur:?}"
            );
        }
        assert_eq!(DocError::lost_race(true).status(), 412);
        assert_eq!(DocError::lost_race(false).status(), 409);
    }

    #[test]
    fn cursor_round_trip() {
        for id in [
            "a",
            "01HZX3J5Q8W6Y2K9T4N7M1P0RS",
            "a.b:c_d-e",
            &"z".repeat(128),
        ] {
            let c = encode_cursor(id);
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{c}"
            );
            assert_eq!(
                decode_cursor(&c),
                Ok(Cursor {
                    id: id.into(),
                    owner: None
                })
            );
            let c = encode_cursor_any_owner(id, "user_1\0x");
            assert_eq!(
                decode_cursor(&c),
                Ok(Cursor {
                    id: id.into(),
                    owner: Some("user_1\0x".into())
                })
            );
        }
    }

    #[test]
    fn cursor_tampering() {
        let good = encode_cursor("01HZX3J5Q8W6Y2K9T4N7M1P0RS");
        // Every single-character edit is rejected.
        for i in 0..good.len() {
            for replacement in ['A', 'b', '0', '-', '_'] {
                let mut bytes = good.clone().into_bytes();
                if bytes[i] == replacement as u8 {
                    continue;
                }
                bytes[i] = replacement as u8;
                let edited = String::from_utf8(bytes).unwrap();
                assert!(decode_cursor(&edited).is_err(), "{edited}");
            }
        }
        let garbage = [
            "",
            "x",
            "!!!!",
            "AAAA",
            "AAAAAAAA",
            &format!("{good}="),
            &format!("{good}A"),
            &good[..good.len() - 1],
            &"A".repeat(5000),
            // Well-formed seal but an invalid id inside.
            &seal(CURSOR_V1_ID, b"../x"),
            &seal(CURSOR_V1_ID, b""),
            &seal(CURSOR_V1_ID, b"\xff"),
            &seal(9, b"abc"),
            &seal(CURSOR_V1_ID_OWNER, b"no-nul"),
        ];
        for g in garbage {
            assert_eq!(decode_cursor(g).map_err(|e| e.status()), Err(400), "{g:?}");
        }
    }

    /// (query, expected (limit, cursor id) or status)
    type QueryCase<'a> = (Option<String>, Result<(u32, Option<&'a str>), u16>);

    #[test]
    fn list_queries() {
        let c = encode_cursor("abc");
        let cases: Vec<QueryCase> = vec![
            (None, Ok((20, None))),
            (Some("".into()), Ok((20, None))),
            (Some("limit=1".into()), Ok((1, None))),
            (Some("limit=100".into()), Ok((100, None))),
            (Some("limit=050".into()), Ok((50, None))),
            (Some("limit=".into()), Ok((20, None))),
            (Some("limit=&cursor=".into()), Ok((20, None))),
            (Some(format!("limit=5&cursor={c}")), Ok((5, Some("abc")))),
            (
                Some(format!("cursor={c}&foo=bar&&x")),
                Ok((20, Some("abc"))),
            ),
            (Some("li%6Dit=7".into()), Ok((7, None))),
            (Some("limit=%37".into()), Ok((7, None))),
            (Some("limit=0".into()), Err(400)),
            (Some("limit=101".into()), Err(400)),
            (Some("limit=abc".into()), Err(400)),
            (Some("limit=-1".into()), Err(400)),
            (Some("limit=+5".into()), Err(400)),
            (Some("limit=5.0".into()), Err(400)),
            (Some("limit=%2B5".into()), Err(400)),
            (Some("limit=99999999999999999999".into()), Err(400)),
            (Some("limit=1&limit=2".into()), Err(400)),
            (Some("limit=%zz".into()), Err(400)),
            (Some("cursor=garbage".into()), Err(400)),
            (Some(format!("cursor={c}&cursor={c}")), Err(400)),
        ];
        for (q, want) in cases {
            let got = parse_list_query(q.as_deref())
                .map(|o| (o.limit, o.after.map(|c| c.id)))
                .map_err(|e| e.status());
            let want = want.map(|(l, id)| (l, id.map(String::from)));
            assert_eq!(got, want, "{q:?}");
        }
    }

    #[test]
    fn list_opts_params() {
        let o = parse_list_query(Some("limit=3")).unwrap();
        assert_eq!(
            (o.fetch_limit(), o.after_id(), o.after_owner()),
            (4, "", "")
        );
        let q = format!("cursor={}", encode_cursor_any_owner("id9", "u2"));
        let o = parse_list_query(Some(&q)).unwrap();
        assert_eq!((o.after_id(), o.after_owner()), ("id9", "u2"));
        assert_eq!(split_page(vec![1, 2, 3, 4], 3), (vec![1, 2, 3], true));
        assert_eq!(split_page(vec![1, 2, 3], 3), (vec![1, 2, 3], false));
        assert_eq!(split_page(Vec::<u8>::new(), 3), (vec![], false));
    }

    #[test]
    fn budgeted_pages() {
        let s = |v: &[usize]| v.iter().map(|&n| Some(n)).collect::<Vec<_>>();
        let mib = 1 << 20;
        // (sizes, limit, budget, (rows on the page, more))
        type Case = (Vec<Option<usize>>, u32, usize, (usize, bool));
        let cases: Vec<Case> = vec![
            (vec![], 20, 100, (0, false)),
            (s(&[10, 10, 10]), 20, 100, (3, false)),
            // limit + 1 rows fetched: the extra one only says "more"
            (s(&[10, 10, 10, 10]), 3, 100, (3, true)),
            // the budget ends the page before the limit does
            (s(&[40, 40, 40, 40]), 3, 100, (2, true)),
            // exactly at the budget still fits
            (s(&[50, 50, 1]), 20, 100, (2, true)),
            // a first row larger than the budget is a page of its own: walks always advance
            (s(&[500, 1]), 20, 100, (1, true)),
            (s(&[500]), 20, 100, (1, false)),
            // rows the statement did not ship (past its cut) end the page
            (vec![Some(10), None, None], 20, 100, (1, true)),
            (vec![None], 20, 100, (0, true)),
            // 100 documents of ~1 MiB: four per 4 MiB page
            (
                vec![Some(mib - 100); 101],
                100,
                LIST_PAGE_BUDGET_BYTES,
                (4, true),
            ),
        ];
        for (sizes, limit, budget, want) in cases {
            assert_eq!(
                budget_page(&sizes, limit, budget),
                want,
                "{sizes:?} {limit} {budget}"
            );
        }
    }

    #[test]
    fn list_params_for_rpc() {
        let c = encode_cursor("abc");
        assert_eq!(list_params(None), Ok((20, None)));
        assert_eq!(
            list_params(Some(&format!("limit=5&cursor={c}"))),
            Ok((5, Some(c.clone())))
        );
        assert_eq!(list_params(Some("limit=&cursor=")), Ok((20, None)));
        for bad in ["limit=0", "cursor=garbage", "limit=1&limit=1"] {
            assert_eq!(
                list_params(Some(bad)).map_err(|e| e.status()),
                Err(400),
                "{bad}"
            );
        }
        let opts = |l: Option<Value>, c: Option<&str>| {
            list_opts(l.as_ref(), c).map(|o| (o.limit, o.after.map(|a| a.id)))
        };
        assert_eq!(opts(None, None), Ok((20, None)));
        assert_eq!(opts(Some(json!(null)), Some("")), Ok((20, None)));
        assert_eq!(
            opts(Some(json!(100)), Some(&c)),
            Ok((100, Some("abc".into())))
        );
        for bad in [
            json!(0),
            json!(101),
            json!(-1),
            json!(2.5),
            json!("5"),
            json!(true),
        ] {
            assert_eq!(
                opts(Some(bad.clone()), None).map_err(|e| e.status()),
                Err(400),
                "{bad}"
            );
        }
        assert_eq!(opts(None, Some("nope")).map_err(|e| e.status()), Err(400));
    }

    #[test]
    fn admin_targets() {
        assert_eq!(admin_target("admin", &[]), Ok(None));
        assert_eq!(admin_target("admin", &["admin"]), Ok(Some(0)));
        assert_eq!(admin_target("admin", &["admin", "u1"]), Ok(Some(0)));
        assert_eq!(admin_target("admin", &["u1"]), Ok(Some(0)));
        assert_eq!(
            admin_target("admin", &["u1", "u2"]).map_err(|e| e.status()),
            Err(409)
        );
    }

    #[test]
    fn percent_decoding() {
        let cases = [
            ("a%20b", true, Some("a b")),
            ("a+b", true, Some("a b")),
            ("a+b", false, Some("a+b")),
            ("%2B", true, Some("+")),
            ("%e2%82%ac", true, Some("€")),
            ("%E2%82%AC", true, Some("€")),
            ("%", true, None),
            ("%4", true, None),
            ("%g0", true, None),
            ("%ff", true, None),
            ("", true, Some("")),
            // Every escape must be whole, wherever it stands (the crate alone would keep these).
            ("%41%", true, None),
            ("a%2", true, None),
            ("%%41", true, None),
            ("a%zzb", false, None),
            ("%41%42", false, Some("AB")),
            // `+` is a space only in forms; an escaped `+` stays a plus.
            ("+%2B+", true, Some(" + ")),
            ("+%2B+", false, Some("+++")),
            ("%20+", false, Some(" +")),
        ];
        for (input, plus, want) in cases {
            assert_eq!(percent_decode(input, plus).as_deref(), want, "{input}");
        }
    }

    /// Highest `?N` in a statement, and that it uses no other placeholder style.
    fn max_param(sql: &str) -> usize {
        assert!(!sql.contains("{}") && !sql.contains('$') && !sql.contains(':'));
        let b = sql.as_bytes();
        let mut max = 0;
        for i in 0..b.len() {
            if b[i] == b'?' {
                let digits: String = sql[i + 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let n: usize = digits.parse().expect("every ? is numbered");
                max = max.max(n);
            }
        }
        max
    }

    #[test]
    fn sql_statements_are_parameterised() {
        let cases = [
            (sql::INSERT, 5),
            (sql::UPDATE_IF_VERSION, 6),
            (sql::SELECT_ONE, 3),
            (sql::SELECT_ONE_ANY_OWNER, 2),
            (sql::DELETE, 3),
            (sql::DELETE_IF_VERSION, 4),
            (sql::LIST, 5),
            (sql::LIST_ANY_OWNER, 5),
            (sql::UPSERT, 5),
            (sql::SELECT_ONE_FOR_ADMIN, 3),
        ];
        for (stmt, params) in cases {
            assert_eq!(max_param(stmt), params, "{stmt}");
            assert!(!stmt.contains('\''), "no literals: {stmt}");
        }
        for stmt in [
            sql::SELECT_ONE,
            sql::DELETE,
            sql::DELETE_IF_VERSION,
            sql::LIST,
            sql::UPDATE_IF_VERSION,
        ] {
            assert!(stmt.contains("owner = ?1"), "owner-scoped: {stmt}");
        }
        assert!(sql::UPDATE_IF_VERSION.contains("AND version = ?6"));
        assert!(sql::LIST.contains("ORDER BY id LIMIT ?4"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn json_leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i32>().prop_map(Value::from),
                "[a-z]{0,3}".prop_map(Value::from),
            ]
        }

        fn json() -> impl Strategy<Value = Value> {
            json_leaf().prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    proptest::collection::btree_map("[a-c]", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn parse_body_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
                let _ = parse_body(&bytes, Some("x"));
            }

            #[test]
            fn merge_patch_is_idempotent(target in json(), patch in json()) {
                let mut once = target.clone();
                merge_patch(&mut once, &patch);
                let mut twice = once.clone();
                merge_patch(&mut twice, &patch);
                prop_assert_eq!(once, twice);
            }

            #[test]
            fn cursors_round_trip(id in "[A-Za-z0-9_.:-]{1,128}", owner in "\\PC{0,40}") {
                prop_assume!(id != "." && id != "..");
                let c = decode_cursor(&encode_cursor(&id)).unwrap();
                prop_assert_eq!(c, Cursor { id: id.clone(), owner: None });
                let c = decode_cursor(&encode_cursor_any_owner(&id, &owner)).unwrap();
                prop_assert_eq!(c, Cursor { id, owner: Some(owner) });
            }

            #[test]
            fn text_parsers_never_panic(s in "\\PC{0,64}") {
                let _ = decode_cursor(&s);
                let _ = parse_list_query(Some(&s));
                let _ = if_match_matches(&s, 1);
                let _ = percent_decode(&s, true);
                let _ = validate_id(&s);
                let _ = validate_collection(&s);
            }
        }
    }

    #[test]
    fn an_admin_names_the_owner() {
        assert_eq!(address_as("u1", false, None), Ok(("u1".into(), false)));
        assert_eq!(address_as("admin", true, None), Ok(("admin".into(), true)));
        // Acting as the owner: that owner's rows only, so one copy of an id is addressed.
        assert_eq!(
            address_as("admin", true, Some("alice")),
            Ok(("alice".into(), false))
        );
        assert!(address_as("u1", false, Some("alice")).is_err());
        assert!(address_as("admin", true, Some("")).is_err());
        assert!(address_as("admin", true, Some(&"x".repeat(MAX_OWNER_LEN + 1))).is_err());
        assert_eq!(owner_param(None), Ok(None));
        assert_eq!(owner_param(Some("limit=2")), Ok(None));
        assert_eq!(
            owner_param(Some("owner=user%3A1&limit=2")),
            Ok(Some("user:1".into()))
        );
        assert!(owner_param(Some("owner=")).is_err());
        assert!(owner_param(Some("owner=%zz")).is_err());
    }
}
