//! Runtime domain routes (`/api/routes`, CONTRACT "Operating the platform"): entries an admin
//! puts at runtime, validated by the routes file's own parser and rules (every problem listed),
//! merged over the file's table (runtime wins, a `disabled` entry masks a file entry), listed
//! with their source and paginated, and the audit trail's rows.

use crate::routes::{DomainRoute, DomainRoutes, RouteEntry, RoutesError, TARGET_FIELDS};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Larger bodies are refused before parsing: one entry is a few hundred bytes.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

/// Fields an entry may carry: the file's (it ignores the others, but a typo such as
/// `requireAdmin` silently loosening access is not something an API should accept) plus
/// `disabled`, which only runtime entries have.
const KNOWN_FIELDS: &[&str] = &[
    "domain",
    "service",
    "binding",
    "worker",
    "namespace",
    "requiresAuth",
    "requiresAdmin",
    "method",
    "metadata",
    "rateLimit",
    "updatedAt",
    "disabled",
];

/// A known-good domain to check each field's type under, so a bad domain does not hide them.
const PROBE_DOMAIN: &str = "probe.example";

/// One runtime entry as stored: the domain (lower-case) and either a route or a mask.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeEntry {
    pub domain: String,
    pub route: Option<DomainRoute>,
    pub updated_at: String,
    pub updated_by: String,
}

impl RuntimeEntry {
    pub fn is_disabled(&self) -> bool {
        self.route.is_none()
    }
}

/// One problem with a submitted entry, named by the field it concerns (`""` for the body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub field: String,
    pub message: String,
}

fn issue(field: &str, message: impl Into<String>) -> Issue {
    Issue {
        field: field.to_string(),
        message: message.into(),
    }
}

/// A submitted entry that passed: the text to store (the file's format, compact, domain
/// lower-cased, `updatedAt` set) and what it compiles to (`None`: disabled).
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub domain: String,
    pub stored: String,
    pub route: Option<DomainRoute>,
}

/// Validates `PUT /api/routes/{domain}`'s body for `path_domain` (already percent-decoded)
/// with the file's own type and rules ([`RouteEntry`], [`RouteEntry::problems`]), listing
/// every problem, not only the first: each field's type is checked on its own, then the rules
/// run once over the entry made of the fields that had the right type.
pub fn validate(path_domain: &str, body: &[u8], now: &str) -> Result<Validated, Vec<Issue>> {
    if body.len() > MAX_ENTRY_BYTES {
        return Err(vec![issue(
            "",
            format!("an entry is at most {MAX_ENTRY_BYTES} bytes"),
        )]);
    }
    let mut object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(vec![issue("", "the body must be a JSON object")]),
        Err(e) => return Err(vec![issue("", format!("the body is not JSON: {e}"))]),
    };
    let mut issues = Vec::new();
    let domain = path_domain.to_ascii_lowercase();

    match object.get("domain") {
        None => {}
        Some(Value::String(d)) if d.eq_ignore_ascii_case(path_domain) => {}
        Some(Value::String(d)) => issues.push(issue(
            "domain",
            format!("{d:?} does not match the domain in the path ({path_domain:?})"),
        )),
        Some(_) => issues.push(issue("domain", "must be a string")),
    }
    for key in object.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            issues.push(issue(
                key,
                format!("unknown field; known: {}", KNOWN_FIELDS.join(", ")),
            ));
        }
    }

    let disabled = match object.remove("disabled") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            issues.push(issue("disabled", "must be a boolean"));
            false
        }
    };
    object.remove("domain");
    object.remove("updatedAt");

    if disabled {
        let alone = RouteEntry {
            domain: path_domain.into(),
            ..RouteEntry::default()
        };
        for (_, reason) in alone.problems().into_iter().filter(|(f, _)| *f == "domain") {
            issues.push(issue("domain", reason.to_string()));
        }
        // A mask has no target: anything else would be a route pretending to be off.
        for key in object.keys() {
            issues.push(issue(key, "a disabled entry takes no other fields"));
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let stored = json!({ "domain": domain, "disabled": true, "updatedAt": now });
        return Ok(Validated {
            domain,
            stored: stored.to_string(),
            route: None,
        });
    }

    // Each field's type on its own (as `RouteEntry` reads it), keeping those that pass.
    let mut typed = Map::new();
    let mut target_typed = true;
    for (key, value) in &object {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            continue;
        }
        // Read from text, as the file is: one instantiation of the serde path in the worker.
        let probe = json!({ "domain": PROBE_DOMAIN, key.as_str(): value }).to_string();
        match serde_json::from_str::<RouteEntry>(&probe) {
            Ok(_) => {
                typed.insert(key.clone(), value.clone());
            }
            Err(e) => {
                target_typed &= !TARGET_FIELDS.contains(&key.as_str());
                issues.push(issue(key, tidy_serde_message(&e.to_string())));
            }
        }
    }
    // The rules, once, over the entry of well-typed fields (a target missing a field that had
    // the wrong type is not judged again).
    typed.insert("domain".into(), path_domain.into());
    let typed = Value::Object(typed).to_string();
    match serde_json::from_str::<RouteEntry>(&typed) {
        Ok(entry) => {
            for (field, reason) in entry.problems() {
                if target_typed || !TARGET_FIELDS.contains(&field) {
                    issues.push(issue(field, reason.to_string()));
                }
            }
        }
        Err(e) => issues.push(issue("", tidy_serde_message(&e.to_string()))),
    }
    if !issues.is_empty() {
        return Err(issues);
    }

    // The entry itself, exactly as it will be stored: what passes here is what routing reads.
    object.insert("domain".into(), domain.clone().into());
    object.insert("updatedAt".into(), now.into());
    let stored = Value::Object(object).to_string();
    match compile_one(&stored) {
        Ok(route) => Ok(Validated {
            domain,
            stored,
            route: Some(route),
        }),
        Err(reason) => Err(vec![issue("", reason)]),
    }
}

/// Compiles one stored entry (a JSON object) with the file's type and rules.
fn compile_one(entry: &str) -> Result<DomainRoute, String> {
    let entry: RouteEntry<'_> =
        serde_json::from_str(entry).map_err(|e| tidy_serde_message(&e.to_string()))?;
    entry.compile().map_err(|(_, reason)| reason.to_string())
}

/// serde's messages carry a position in a text the caller never saw.
fn tidy_serde_message(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Reads back a stored row. A row that no longer compiles (rules tightened since it was
/// written) is an error for the caller to log and skip, never a broken table.
pub fn from_stored(
    domain: &str,
    stored: &str,
    updated_at: &str,
    updated_by: &str,
) -> Result<RuntimeEntry, String> {
    let value: Value = serde_json::from_str(stored).map_err(|e| e.to_string())?;
    let route = if value.get("disabled") == Some(&Value::Bool(true)) {
        None
    } else {
        let route = compile_one(stored)?;
        if route.domain != domain {
            return Err(format!(
                "stored entry names {:?}, row is {domain:?}",
                route.domain
            ));
        }
        Some(route)
    };
    Ok(RuntimeEntry {
        domain: domain.to_string(),
        route,
        updated_at: updated_at.to_string(),
        updated_by: updated_by.to_string(),
    })
}

/// The table routing uses: the file's routes minus every domain a runtime entry names, then
/// the runtime routes (disabled entries add nothing, so their domain routes as if no entry
/// existed). Exact-host and wildcard semantics are the table's own.
pub fn merge(file: DomainRoutes, runtime: &[RuntimeEntry]) -> Result<DomainRoutes, RoutesError> {
    if runtime.is_empty() {
        return Ok(file);
    }
    let named: std::collections::HashSet<&str> =
        runtime.iter().map(|e| e.domain.as_str()).collect();
    let kept = file
        .into_routes()
        .into_iter()
        .filter(|r| !named.contains(r.domain.as_str()));
    DomainRoutes::from_routes(kept.chain(runtime.iter().filter_map(|e| e.route.clone())))
}

/// A route in the file's format (for listings and the audit trail): its [`RouteEntry`],
/// serialised.
pub fn route_json(route: &DomainRoute) -> Value {
    // Through text, as the snapshot is written (one serialiser of routes in the worker). A
    // compiled route's metadata reads as a value (checked when it was compiled), so this
    // cannot fail; Null is only the type-level answer.
    serde_json::to_string(route)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null)
}

/// `GET /api/routes` query: `q` (a substring of the domain, case-insensitive), `limit`,
/// `cursor` (the last domain of the previous page).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub q: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
}

pub fn parse_list_query(query: Option<&str>) -> Result<ListQuery, String> {
    let mut out = ListQuery {
        limit: DEFAULT_PAGE,
        ..ListQuery::default()
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(&value.replace('+', " "))
            .ok_or_else(|| format!("{key}: bad percent-encoding"))?;
        match key {
            "q" if !value.is_empty() => out.q = Some(value.to_ascii_lowercase()),
            "q" => {}
            "cursor" if !value.is_empty() => out.cursor = Some(value),
            "cursor" => {}
            "limit" => {
                out.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| format!("limit must be 1..{MAX_PAGE}"))?;
            }
            _ => {}
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub items: Vec<Value>,
    #[serde(rename = "nextCursor")]
    pub next_cursor: Option<String>,
}

/// The merged table as an admin sees it, in domain order: every entry with its `source`
/// (`file` or `runtime`); a runtime entry that replaces or masks a file entry says so with
/// `overridesFile`, and a mask shows as `disabled`.
pub fn list(file: &DomainRoutes, runtime: &[RuntimeEntry], query: &ListQuery) -> Page {
    let matches = |domain: &str| {
        query.q.as_deref().is_none_or(|q| domain.contains(q))
            && query.cursor.as_deref().is_none_or(|c| domain > c)
    };
    let mut rows: Vec<(&str, Value)> = Vec::new();
    for entry in runtime.iter().filter(|e| matches(&e.domain)) {
        rows.push((
            &entry.domain,
            runtime_item(entry, file.get(&entry.domain).is_some()),
        ));
    }
    let overridden: std::collections::HashSet<&str> =
        runtime.iter().map(|e| e.domain.as_str()).collect();
    for route in file.iter() {
        if overridden.contains(route.domain.as_str()) || !matches(&route.domain) {
            continue;
        }
        rows.push((&route.domain, file_item(route)));
    }
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let more = rows.len() > query.limit;
    rows.truncate(query.limit);
    let next_cursor = more
        .then(|| rows.last().map(|(d, _)| d.to_string()))
        .flatten();
    Page {
        items: rows.into_iter().map(|(_, v)| v).collect(),
        next_cursor,
    }
}

/// The one entry for `domain` (as compiled: lower-case) as `list` shows it.
pub fn find(file: &DomainRoutes, runtime: &[RuntimeEntry], domain: &str) -> Option<Value> {
    match runtime.iter().find(|e| e.domain == domain) {
        Some(entry) => Some(runtime_item(entry, file.get(domain).is_some())),
        None => file.get(domain).map(file_item),
    }
}

/// A runtime entry as listed.
pub fn runtime_item(entry: &RuntimeEntry, overrides_file: bool) -> Value {
    let mut item = match &entry.route {
        Some(route) => route_json(route),
        None => json!({ "domain": entry.domain, "disabled": true }),
    };
    if let Value::Object(m) = &mut item {
        m.insert("source".into(), "runtime".into());
        m.insert("overridesFile".into(), overrides_file.into());
        m.insert("updatedAt".into(), entry.updated_at.clone().into());
        m.insert("updatedBy".into(), entry.updated_by.clone().into());
    }
    item
}

fn file_item(route: &DomainRoute) -> Value {
    let mut item = route_json(route);
    if let Value::Object(m) = &mut item {
        m.insert("source".into(), "file".into());
    }
    item
}

/// `GET /api/routes/audit` query: `domain` (exact), `limit`, `cursor` (rows older than
/// this id; the trail is listed newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub domain: Option<String>,
    pub limit: usize,
    pub before_id: Option<i64>,
}

pub fn parse_audit_query(query: Option<&str>) -> Result<AuditQuery, String> {
    let mut out = AuditQuery {
        domain: None,
        limit: DEFAULT_PAGE,
        before_id: None,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or_else(|| format!("{key}: bad percent-encoding"))?;
        match key {
            "domain" if !value.is_empty() => out.domain = Some(value.to_ascii_lowercase()),
            "limit" => {
                out.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| format!("limit must be 1..{MAX_PAGE}"))?;
            }
            "cursor" if !value.is_empty() => {
                out.before_id = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or("cursor must be an audit id")?,
                );
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What `/api/routes/...` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminPath {
    List,
    Audit,
    Entry(String),
}

/// The path after `/api/routes`; the domain is percent-decoded (`%2A.example.com`) and must
/// be ASCII. `audit` is the audit trail, never a domain.
pub fn parse_admin_path(path: &str) -> Option<AdminPath> {
    let rest = path.trim_start_matches('/');
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    match rest {
        "" => Some(AdminPath::List),
        "audit" => Some(AdminPath::Audit),
        _ if rest.contains('/') => None,
        _ => percent_decode(rest)
            .filter(|d| d.is_ascii() && !d.is_empty())
            .map(AdminPath::Entry),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One audit row as D1 returns it (column names as selected).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub domain: String,
    pub before: Option<String>,
    pub after: Option<String>,
    #[serde(rename = "requestId")]
    pub request_id: Option<String>,
}

impl AuditRow {
    /// As listed: the stored texts of before and after back as JSON.
    pub fn to_json(&self) -> Value {
        let parse = |t: &Option<String>| {
            t.as_deref().map_or(Value::Null, |t| {
                serde_json::from_str(t).unwrap_or(Value::Null)
            })
        };
        json!({
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "domain": self.domain,
            "before": parse(&self.before),
            "after": parse(&self.after),
            "requestId": self.request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::RouteTarget;

    const NOW: &str = "2026-12-01T00:00:00.000Z";

    fn ok(domain: &str, body: Value) -> Validated {
        validate(domain, body.to_string().as_bytes(), NOW)
            .unwrap_or_else(|e| panic!("{domain}: {e:?}"))
    }

    fn problems(domain: &str, body: Value) -> Vec<Issue> {
        validate(domain, body.to_string().as_bytes(), NOW)
            .err()
            .unwrap_or_else(|| panic!("{domain} {body} was accepted"))
    }

    fn fields(issues: &[Issue]) -> Vec<&str> {
        issues.iter().map(|i| i.field.as_str()).collect()
    }

    fn entry(domain: &str, body: Value) -> RuntimeEntry {
        let v = ok(domain, body);
        RuntimeEntry {
            domain: v.domain,
            route: v.route,
            updated_at: NOW.into(),
            updated_by: "admin".into(),
        }
    }

    #[test]
    fn accepts_the_file_format_and_normalises_the_domain() {
        let v = ok(
            "Shop.Example.COM",
            json!({"worker": "shop", "namespace": "Production", "requiresAuth": true,
                   "metadata": {"owner": "acme"}, "rateLimit": {"mode": "exact", "limit": 10}}),
        );
        assert_eq!(v.domain, "shop.example.com");
        let route = v.route.expect("a route");
        assert_eq!(route.domain, "shop.example.com");
        assert!(route.requires_auth);
        let stored: Value = serde_json::from_str(&v.stored).unwrap();
        assert_eq!(stored["domain"], "shop.example.com");
        assert_eq!(stored["updatedAt"], NOW);
        // What is stored reads back to the same route.
        let back = from_stored(&v.domain, &v.stored, NOW, "admin").unwrap();
        assert_eq!(back.route, Some(route));
    }

    #[test]
    fn every_rule_of_the_file_applies() {
        // (path domain, body, the field blamed): one per InvalidEntry reason and shape error.
        let cases: Vec<(&str, Value, &str)> = vec![
            ("bad_domain!", json!({"service": "x"}), "domain"),
            ("a.example.com:8080", json!({"service": "x"}), "domain"),
            ("a.example.com.", json!({"service": "x"}), "domain"),
            ("*.1.2.3.4", json!({"service": "x"}), "domain"),
            ("a.*.example.com", json!({"service": "x"}), "domain"),
            ("a.example.com", json!({}), "service"),
            (
                "a.example.com",
                json!({"service": "x", "worker": "w", "namespace": "production"}),
                "service",
            ),
            ("a.example.com", json!({"worker": "w"}), "worker"),
            (
                "a.example.com",
                json!({"worker": "w", "namespace": "qa"}),
                "namespace",
            ),
            (
                "a.example.com",
                json!({"worker": "w", "namespace": "production", "binding": "B"}),
                "binding",
            ),
            ("a.example.com", json!({"service": "bad name"}), "service"),
            (
                "a.example.com",
                json!({"worker": "Bad", "namespace": "production"}),
                "worker",
            ),
            (
                "a.example.com",
                json!({"service": "x", "binding": "9X"}),
                "binding",
            ),
            (
                "a.example.com",
                json!({"service": "x", "rateLimit": {"mode": "exact"}}),
                "rateLimit",
            ),
            (
                "a.example.com",
                json!({"worker": "w", "namespace": "production", "rateLimit": {"limit": 5}}),
                "rateLimit",
            ),
            (
                "a.example.com",
                json!({"worker": "w", "namespace": "production",
                       "rateLimit": {"mode": "exact", "limit": 0}}),
                "rateLimit",
            ),
            (
                "a.example.com",
                json!({"service": "x", "requiresAuth": "yes"}),
                "requiresAuth",
            ),
            (
                "a.example.com",
                json!({"service": "x", "requiresAdmin": 1}),
                "requiresAdmin",
            ),
            (
                "a.example.com",
                json!({"service": "x", "method": 5}),
                "method",
            ),
            ("a.example.com", json!({"service": 7}), "service"),
            (
                "a.example.com",
                json!({"service": "x", "requireAdmin": true}),
                "requireAdmin",
            ),
            (
                "a.example.com",
                json!({"domain": "b.example.com", "service": "x"}),
                "domain",
            ),
        ];
        for (domain, body, field) in cases {
            let issues = problems(domain, body.clone());
            assert!(
                fields(&issues).contains(&field),
                "{domain} {body}: expected {field}, got {issues:?}"
            );
        }
    }

    #[test]
    fn lists_every_problem_not_only_the_first() {
        let issues = problems(
            "bad domain",
            json!({"service": "bad name", "requiresAuth": "yes", "typo": 1}),
        );
        let f = fields(&issues);
        for want in ["domain", "service", "requiresAuth", "typo"] {
            assert!(f.contains(&want), "{want} missing from {issues:?}");
        }
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_once() {
        // The target is not judged again without the field that had the wrong type.
        assert_eq!(
            fields(&problems("a.example.com", json!({"service": 7}))),
            ["service"]
        );
        // The other rules still run over the fields that had the right type.
        let issues = problems(
            "a.example.com:1",
            json!({"worker": "w", "namespace": 1, "requiresAdmin": "no"}),
        );
        let mut f = fields(&issues);
        f.sort_unstable();
        assert_eq!(f, ["domain", "namespace", "requiresAdmin"], "{issues:?}");
    }

    #[test]
    fn body_shape_problems() {
        for body in [&b"[1]"[..], b"not json", b"\"x\""] {
            let issues = validate("a.example.com", body, NOW).unwrap_err();
            assert_eq!(fields(&issues), [""]);
        }
        let big = vec![b' '; MAX_ENTRY_BYTES + 1];
        assert!(validate("a.example.com", &big, NOW).is_err());
    }

    #[test]
    fn disabled_entries_take_no_target() {
        let v = ok("shop.example.com", json!({"disabled": true}));
        assert!(v.route.is_none());
        let back = from_stored(&v.domain, &v.stored, NOW, "a").unwrap();
        assert!(back.is_disabled());
        let issues = problems(
            "shop.example.com",
            json!({"disabled": true, "service": "x"}),
        );
        assert_eq!(fields(&issues), ["service"]);
        assert_eq!(
            fields(&problems(
                "shop.example.com",
                json!({"disabled": "yes", "service": "x"})
            )),
            ["disabled"]
        );
    }

    fn file() -> DomainRoutes {
        DomainRoutes::parse(
            br#"[{"domain": "a.example.com", "service": "svc-a"},
                 {"domain": "*.example.com", "service": "svc-wild"},
                 {"domain": "b.example.com", "worker": "bee", "namespace": "production"}]"#,
        )
        .unwrap()
    }

    fn target(table: &DomainRoutes, host: &str) -> Option<String> {
        table.lookup(host).map(|r| match &r.target {
            RouteTarget::Service { service, .. } => service.clone(),
            RouteTarget::UserWorker { worker, .. } => worker.clone(),
        })
    }

    #[test]
    fn runtime_wins_and_disabled_masks() {
        let runtime = vec![
            entry("a.example.com", json!({"service": "svc-runtime"})),
            entry("b.example.com", json!({"disabled": true})),
            entry(
                "new.example.org",
                json!({"worker": "w", "namespace": "staging"}),
            ),
            entry("*.deep.example.com", json!({"service": "svc-deep"})),
        ];
        let merged = merge(file(), &runtime).unwrap();
        assert_eq!(
            target(&merged, "a.example.com").as_deref(),
            Some("svc-runtime")
        );
        // Masked: the exact entry is gone, so the file's wildcard now answers for it.
        assert_eq!(
            target(&merged, "b.example.com").as_deref(),
            Some("svc-wild")
        );
        assert_eq!(target(&merged, "new.example.org").as_deref(), Some("w"));
        assert_eq!(
            target(&merged, "x.deep.example.com").as_deref(),
            Some("svc-deep")
        );
        assert_eq!(
            target(&merged, "x.example.com").as_deref(),
            Some("svc-wild")
        );
        assert_eq!(target(&merged, "example.com"), None);
        assert_eq!(merged.len(), 4);
        // Nothing at runtime: the file's table as it was.
        assert_eq!(merge(file(), &[]).unwrap().len(), 3);
    }

    #[test]
    fn listing_sources_search_and_pages() {
        let runtime = vec![
            entry("a.example.com", json!({"service": "svc-runtime"})),
            entry("b.example.com", json!({"disabled": true})),
            entry("z.example.org", json!({"service": "zed"})),
        ];
        let all = list(&file(), &runtime, &parse_list_query(None).unwrap());
        let summary: Vec<(String, String)> = all
            .items
            .iter()
            .map(|i| {
                (
                    i["domain"].as_str().unwrap().to_string(),
                    i["source"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("*.example.com".into(), "file".into()),
                ("a.example.com".into(), "runtime".into()),
                ("b.example.com".into(), "runtime".into()),
                ("z.example.org".into(), "runtime".into()),
            ]
        );
        assert_eq!(all.items[1]["overridesFile"], true);
        assert_eq!(all.items[2]["disabled"], true);
        assert_eq!(all.items[3]["overridesFile"], false);
        assert_eq!(all.next_cursor, None);

        let q = parse_list_query(Some("q=EXAMPLE.ORG")).unwrap();
        let found = list(&file(), &runtime, &q);
        assert_eq!(found.items.len(), 1);
        assert_eq!(found.items[0]["service"], "zed");

        let mut query = parse_list_query(Some("limit=2")).unwrap();
        let mut seen = Vec::new();
        loop {
            let page = list(&file(), &runtime, &query);
            assert!(page.items.len() <= 2);
            seen.extend(page.items.iter().map(|i| i["domain"].clone()));
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 4);
        for bad in ["limit=0", "limit=101", "limit=x", "q=%zz"] {
            assert!(parse_list_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn find_and_audit_query() {
        let runtime = vec![entry("a.example.com", json!({"disabled": true}))];
        assert_eq!(
            find(&file(), &runtime, "a.example.com").unwrap()["disabled"],
            true
        );
        assert_eq!(
            find(&file(), &runtime, "b.example.com").unwrap()["source"],
            "file"
        );
        assert_eq!(find(&file(), &runtime, "c.example.com"), None);
        let q = parse_audit_query(Some("domain=A.example.com&limit=5&cursor=9")).unwrap();
        assert_eq!(
            q,
            AuditQuery {
                domain: Some("a.example.com".into()),
                limit: 5,
                before_id: Some(9)
            }
        );
        assert!(parse_audit_query(Some("cursor=x")).is_err());
        assert!(parse_audit_query(Some("limit=1000")).is_err());
    }

    #[test]
    fn admin_paths() {
        assert_eq!(parse_admin_path("/"), Some(AdminPath::List));
        assert_eq!(parse_admin_path(""), Some(AdminPath::List));
        assert_eq!(parse_admin_path("/audit"), Some(AdminPath::Audit));
        assert_eq!(
            parse_admin_path("/%2A.example.com"),
            Some(AdminPath::Entry("*.example.com".into()))
        );
        assert_eq!(
            parse_admin_path("/shop.example.com"),
            Some(AdminPath::Entry("shop.example.com".into()))
        );
        assert_eq!(parse_admin_path("/a/b"), None);
        assert_eq!(parse_admin_path("/%zz"), None);
        assert_eq!(parse_admin_path("/%C3%A9.com"), None);
    }

    #[test]
    fn stored_rows_that_no_longer_compile_are_refused() {
        assert!(from_stored("a.example.com", r#"{"domain":"a.example.com"}"#, NOW, "x").is_err());
        assert!(from_stored("a.example.com", "nope", NOW, "x").is_err());
        assert!(from_stored(
            "a.example.com",
            r#"{"domain":"b.example.com","service":"x"}"#,
            NOW,
            "x"
        )
        .is_err());
    }

    #[test]
    fn audit_rows_hand_back_json() {
        let row = AuditRow {
            id: 3,
            at: NOW.into(),
            actor: "admin".into(),
            action: "put".into(),
            domain: "a.example.com".into(),
            before: None,
            after: Some(r#"{"domain":"a.example.com","service":"x"}"#.into()),
            request_id: Some("01J".into()),
        };
        let v = row.to_json();
        assert_eq!(v["before"], Value::Null);
        assert_eq!(v["after"]["service"], "x");
        assert_eq!(v["requestId"], "01J");
    }

    #[test]
    fn file_entries_render_in_the_file_format() {
        let table = DomainRoutes::parse(
            br#"[{"domain": "s.example.com", "worker": "s", "namespace": "staging",
                  "rateLimit": {"mode": "off"}, "metadata": {"k": [1]}}]"#,
        )
        .unwrap();
        let v = route_json(table.iter().next().unwrap());
        assert_eq!(
            v,
            json!({"domain": "s.example.com", "worker": "s", "namespace": "staging",
                   "requiresAuth": false, "requiresAdmin": false,
                   "rateLimit": {"mode": "off"}, "metadata": {"k": [1]}})
        );
        // And it parses back to the same route (metadata as the text `Value` writes).
        let again = compile_one(&v.to_string()).unwrap();
        assert_eq!(route_json(&again), v);
    }
}
