//! The domain-routes table (`assets/domain-routes.json`, CONTRACT "assets/domain-routes.json"):
//! parsing and validating the file as a whole, and O(labels) host lookup over the compiled
//! table.

use crate::host::{check_name, normalize_host, HostError, HostKind};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt::{self, Write as _};

/// A Workers-for-Platforms dispatch namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    Production,
    Staging,
    Development,
}

impl Namespace {
    /// The dispatch-namespace binding's name in the api worker's env.
    pub fn binding(&self) -> &'static str {
        match self {
            Namespace::Production => "PRODUCTION",
            Namespace::Staging => "STAGING",
            Namespace::Development => "DEVELOPMENT",
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Namespace::Production => "production",
            Namespace::Staging => "staging",
            Namespace::Development => "development",
        }
    }

    /// Case-insensitive, as the file format allows.
    pub fn parse(s: &str) -> Option<Namespace> {
        [
            Namespace::Production,
            Namespace::Staging,
            Namespace::Development,
        ]
        .into_iter()
        .find(|ns| ns.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// An internal (or not-yet-registered) service, reached through `binding` when given.
    Service {
        service: String,
        binding: Option<String>,
    },
    /// A custom domain served by a user worker.
    UserWorker {
        worker: String,
        namespace: Namespace,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DomainRoute {
    /// As compiled: lower-cased, `*.suffix` for wildcards.
    pub domain: String,
    pub target: RouteTarget,
    pub requires_auth: bool,
    pub requires_admin: bool,
    /// Carried through untouched (the seed uses it for method-prefix hints).
    pub method: Option<String>,
    /// Free-form; carried through untouched for listings, as compact JSON text.
    pub metadata: Option<RawJson>,
}

impl DomainRoute {
    pub fn is_wildcard(&self) -> bool {
        self.domain.starts_with("*.")
    }
}

/// A JSON value kept as compact text. Routes carry `metadata` only to hand it back in
/// listings, so a `serde_json::Value` tree per route (a B-tree node and a string per field)
/// would cost refresh time and, at 100 000 routes, tens of MB of a 128 MB isolate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawJson(Box<str>);

impl RawJson {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value itself, for the rare reader that wants to look inside.
    pub fn to_value(&self) -> serde_json::Value {
        // The text was written by `JsonWriter` from valid JSON, so this cannot fail; Null is
        // only the type-level answer to an impossible error.
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Typical metadata is a short object; start big enough to rarely grow.
        let mut text = String::with_capacity(96);
        JsonWriter(&mut text).deserialize(deserializer)?;
        Ok(RawJson(text.into_boxed_str()))
    }
}

/// Re-emits whatever it is fed as compact JSON text (a minimal transcoder).
struct JsonWriter<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for JsonWriter<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonWriter<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push_str("null");
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    // Writing into a String cannot fail, hence the ignored fmt::Results below.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        let _ = write!(self.0, "{v}");
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let _ = write!(self.0, "{v}");
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // JSON input never yields a non-finite number; `Number` prints it as JSON would.
        match serde_json::Number::from_f64(v) {
            Some(n) => {
                let _ = write!(self.0, "{n}");
            }
            None => self.0.push_str("null"),
        }
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        push_json_string(self.0, v);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push('[');
        let mut first = true;
        while seq
            .next_element_seed(Separated(&mut *self.0, &mut first, ""))?
            .is_some()
        {}
        self.0.push(']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push('{');
        let mut first = true;
        while map
            .next_key_seed(Separated(&mut *self.0, &mut first, ""))?
            .is_some()
        {
            map.next_value_seed(Separated(&mut *self.0, &mut false, ":"))?;
        }
        self.0.push('}');
        Ok(())
    }
}

/// A `JsonWriter` that first writes a separator: `,` before every item but the first, or
/// a fixed one (`:` before a map value).
struct Separated<'a>(&'a mut String, &'a mut bool, &'static str);

impl<'de> DeserializeSeed<'de> for Separated<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let Separated(out, first, fixed) = self;
        if !fixed.is_empty() {
            out.push_str(fixed);
        } else if *first {
            *first = false;
        } else {
            out.push(',');
        }
        JsonWriter(out).deserialize(deserializer)
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // Copy the run of plain bytes in one go; `i` is on an ASCII byte, a char boundary.
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// The compiled table, built once per refresh and then only read. Routes sit in file order
/// in one `Vec`; the maps hold only keys and indices, which keeps their buckets small for
/// cheap growth and cache-friendly probes.
#[derive(Debug, Clone, Default)]
pub struct DomainRoutes {
    routes: Vec<DomainRoute>,
    exact: HashMap<Box<str>, usize>,
    /// Keyed by the suffix after `*.`: `*.example.do` lives under `example.do`.
    wildcard: HashMap<Box<str>, usize>,
}

impl DomainRoutes {
    pub fn empty() -> DomainRoutes {
        DomainRoutes::default()
    }

    /// Parses and validates the whole file; any bad entry rejects all of it, so the caller
    /// keeps its last good table. Entries are compiled as they stream out of the parser, so
    /// no intermediate copy of the file is ever held.
    pub fn parse(json: &[u8]) -> Result<DomainRoutes, RoutesError> {
        let mut invalid = None;
        let mut de = serde_json::Deserializer::from_slice(json);
        let parsed = TableBuilder {
            invalid: &mut invalid,
            // Real entries run 150-300 bytes (the seed averages ~310); a low guess only
            // means some growth, a high one is bounded by the input's own size.
            expected: json.len() / 256,
        }
        .deserialize(&mut de)
        .and_then(|table| de.end().map(|()| table));
        match (invalid, parsed) {
            // The builder aborts the parse with a placeholder error after recording why.
            (Some(err), _) => Err(err),
            (None, Ok(table)) => Ok(table),
            (None, Err(e)) => Err(RoutesError::Malformed(e.to_string())),
        }
    }

    /// Appends the next entry (its index is `self.len()`), refusing a second route for the
    /// same domain.
    fn push(&mut self, route: DomainRoute) -> Result<(), RoutesError> {
        let index = self.routes.len();
        let (map, key) = match route.domain.strip_prefix("*.") {
            Some(suffix) => (&mut self.wildcard, suffix),
            None => (&mut self.exact, route.domain.as_str()),
        };
        match map.entry(key.into()) {
            Entry::Occupied(first) => Err(RoutesError::InvalidEntry {
                index,
                domain: route.domain,
                reason: InvalidEntry::Duplicate {
                    first: *first.get(),
                },
            }),
            Entry::Vacant(vacant) => {
                vacant.insert(index);
                self.routes.push(route);
                Ok(())
            }
        }
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route for an already-normalised host: the exact entry, else the longest wildcard
    /// whose suffix is a proper suffix of the host on a label boundary. One hash probe per
    /// label, whatever the table's size.
    pub fn lookup(&self, host: &str) -> Option<&DomainRoute> {
        let slot = match self.exact.get(host) {
            Some(slot) => *slot,
            None if self.wildcard.is_empty() => return None,
            // Each dot starts a candidate suffix; left to right is longest to shortest, and
            // starting after a dot guarantees at least one label in front (never the apex).
            None => *host
                .match_indices('.')
                .find_map(|(i, _)| self.wildcard.get(&host[i + 1..]))?,
        };
        self.routes.get(slot)
    }

    /// Every route, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &DomainRoute> {
        self.routes.iter()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoutesError {
    /// Not JSON, not an array, or an entry of the wrong shape.
    Malformed(String),
    /// Entry `index` (0-based) parsed but is not a valid route.
    InvalidEntry {
        index: usize,
        domain: String,
        reason: InvalidEntry,
    },
}

impl fmt::Display for RoutesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutesError::Malformed(msg) => write!(f, "domain routes: malformed file: {msg}"),
            RoutesError::InvalidEntry {
                index,
                domain,
                reason,
            } => write!(f, "domain routes: entry {index} ({domain:?}): {reason}"),
        }
    }
}

impl std::error::Error for RoutesError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidEntry {
    /// The domain is not a valid host.
    Domain(HostError),
    /// A valid host, but not written in normal form: a port, a trailing dot, or a
    /// non-canonical IPv6 spelling (case alone is fine).
    NotNormalForm,
    /// The domain is a normal host but not a name (`1.2.3.4`, `[::1]`) where only a name is
    /// meaningful, i.e. under a wildcard.
    WildcardOverIp,
    /// A `*` anywhere but a single leading `*.` label.
    Wildcard,
    /// Neither `service` nor `worker` + `namespace`.
    NoTarget,
    /// Both a service and a worker target.
    BothTargets,
    /// `worker` without `namespace`, or the reverse.
    WorkerNeedsNamespace,
    BadNamespace(String),
    /// `binding` only means something on a service route.
    BindingOnWorker,
    BadService(String),
    BadWorker(String),
    BadBinding(String),
    /// The same domain (case-insensitively) as entry `first`.
    Duplicate {
        first: usize,
    },
}

impl fmt::Display for InvalidEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidEntry::Domain(e) => write!(f, "invalid domain: {e}"),
            InvalidEntry::NotNormalForm => {
                f.write_str("domain must be a bare host: no port, no trailing dot")
            }
            InvalidEntry::WildcardOverIp => f.write_str("a wildcard must cover a domain name"),
            InvalidEntry::Wildcard => f.write_str("a wildcard may only be a leading '*.'"),
            InvalidEntry::NoTarget => {
                f.write_str("needs \"service\" or \"worker\" + \"namespace\"")
            }
            InvalidEntry::BothTargets => {
                f.write_str("has both \"service\" and \"worker\"; pick one")
            }
            InvalidEntry::WorkerNeedsNamespace => {
                f.write_str("\"worker\" and \"namespace\" go together")
            }
            InvalidEntry::BadNamespace(ns) => write!(
                f,
                "namespace {ns:?} is not production, staging or development"
            ),
            InvalidEntry::BindingOnWorker => {
                f.write_str("\"binding\" only applies to service routes")
            }
            InvalidEntry::BadService(s) => write!(f, "invalid service name {s:?}"),
            InvalidEntry::BadWorker(s) => write!(f, "invalid worker name {s:?}"),
            InvalidEntry::BadBinding(s) => write!(f, "invalid binding name {s:?}"),
            InvalidEntry::Duplicate { first } => write!(f, "duplicates entry {first}"),
        }
    }
}

/// One entry as written. The target fields are all optional here so that the "exactly one
/// target" rule is checked in `compile` with a precise reason; unknown fields (`updatedAt`,
/// ...) are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    domain: String,
    service: Option<String>,
    binding: Option<String>,
    worker: Option<String>,
    namespace: Option<String>,
    requires_auth: Option<bool>,
    requires_admin: Option<bool>,
    method: Option<String>,
    metadata: Option<RawJson>,
}

/// Deserialises the top-level array straight into a table. A shape error is prefixed with
/// its entry index; a validation error is parked in `invalid` (serde errors cannot carry it).
struct TableBuilder<'a> {
    invalid: &'a mut Option<RoutesError>,
    /// A guess at the entry count, to size the table once instead of growing it.
    expected: usize,
}

impl<'de> DeserializeSeed<'de> for TableBuilder<'_> {
    type Value = DomainRoutes;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<DomainRoutes, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TableBuilder<'_> {
    type Value = DomainRoutes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of route entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DomainRoutes, A::Error> {
        let mut table = DomainRoutes {
            routes: Vec::with_capacity(self.expected),
            exact: HashMap::with_capacity(self.expected),
            wildcard: HashMap::new(),
        };
        for index in 0.. {
            let raw = match seq.next_element::<RawEntry>() {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(e) => return Err(de::Error::custom(format!("entry {index}: {e}"))),
            };
            let added = compile(raw)
                .map_err(|(domain, reason)| RoutesError::InvalidEntry {
                    index,
                    domain,
                    reason,
                })
                .and_then(|route| table.push(route));
            if let Err(err) = added {
                *self.invalid = Some(err);
                return Err(de::Error::custom("invalid entry"));
            }
        }
        Ok(table)
    }
}

/// Validates one entry; on failure returns the domain as written (for the message) and why.
/// Takes the entry by value so the strings move into the route instead of being copied.
fn compile(raw: RawEntry) -> Result<DomainRoute, (String, InvalidEntry)> {
    let RawEntry {
        domain,
        service,
        binding,
        worker,
        namespace,
        requires_auth,
        requires_admin,
        method,
        metadata,
    } = raw;
    if let Err(reason) = check_domain(&domain) {
        return Err((domain, reason));
    }
    let target = match compile_target(service, binding, worker, namespace) {
        Ok(target) => target,
        Err(reason) => return Err((domain, reason)),
    };
    // Valid apart from case: lower-casing in place is the whole normalisation.
    let mut domain = domain;
    domain.make_ascii_lowercase();
    Ok(DomainRoute {
        domain,
        target,
        requires_auth: requires_auth.unwrap_or(false),
        requires_admin: requires_admin.unwrap_or(false),
        method,
        metadata,
    })
}

/// A domain must already be a normal host apart from case, optionally under one leading
/// `*.`: a port, a trailing dot or a stray `*` is a mistake in the file, not something to
/// guess around.
fn check_domain(domain: &str) -> Result<(), InvalidEntry> {
    let (wildcard, host) = match domain.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, domain),
    };
    if host.contains('*') || (!wildcard && domain.starts_with('*')) {
        return Err(InvalidEntry::Wildcard);
    }
    let kind = if host.starts_with('[') || host.contains(':') || host.ends_with('.') {
        // Something normalisation would rewrite: valid only if the rewrite is a no-op
        // (a canonical IPv6 literal); otherwise say whether it is a host at all.
        let normal = normalize_host(host).map_err(InvalidEntry::Domain)?;
        if !normal.name.eq_ignore_ascii_case(host) {
            return Err(InvalidEntry::NotNormalForm);
        }
        normal.kind
    } else {
        check_name(host).map_err(InvalidEntry::Domain)?
    };
    if wildcard && kind != HostKind::Name {
        return Err(InvalidEntry::WildcardOverIp);
    }
    Ok(())
}

/// Exactly one of a service target or a worker + namespace target.
fn compile_target(
    service: Option<String>,
    binding: Option<String>,
    worker: Option<String>,
    namespace: Option<String>,
) -> Result<RouteTarget, InvalidEntry> {
    match (service, worker, namespace) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => Err(InvalidEntry::BothTargets),
        (Some(service), None, None) => {
            if !is_service_name(&service) {
                return Err(InvalidEntry::BadService(service));
            }
            if let Some(b) = binding.as_deref().filter(|b| !is_binding_name(b)) {
                return Err(InvalidEntry::BadBinding(b.to_string()));
            }
            Ok(RouteTarget::Service { service, binding })
        }
        (None, Some(worker), Some(ns)) => {
            if binding.is_some() {
                return Err(InvalidEntry::BindingOnWorker);
            }
            if !is_worker_name(&worker) {
                return Err(InvalidEntry::BadWorker(worker));
            }
            match Namespace::parse(&ns) {
                Some(namespace) => Ok(RouteTarget::UserWorker { worker, namespace }),
                None => Err(InvalidEntry::BadNamespace(ns)),
            }
        }
        (None, Some(_), None) | (None, None, Some(_)) => Err(InvalidEntry::WorkerNeedsNamespace),
        (None, None, None) => Err(InvalidEntry::NoTarget),
    }
}

/// Service names are registry-style identifiers; anything else is a typo in the file.
fn is_service_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Worker script names: what Workers accepts, lower-case letters, digits, `-`, `_`.
fn is_worker_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Binding names are JS identifiers in the worker's env.
fn is_binding_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: &str) -> DomainRoutes {
        match DomainRoutes::parse(json.as_bytes()) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    fn service_of(t: &DomainRoutes, host: &str) -> Option<String> {
        t.lookup(host).map(|r| match &r.target {
            RouteTarget::Service { service, .. } => service.clone(),
            RouteTarget::UserWorker { worker, .. } => format!("worker:{worker}"),
        })
    }

    #[test]
    fn seed_fixture_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/seed-domain-routes.json"
        );
        let Ok(bytes) = std::fs::read(path) else {
            eprintln!("skipping: {path} not found");
            return;
        };
        let t = match DomainRoutes::parse(&bytes) {
            Ok(t) => t,
            Err(e) => panic!("seed rejected: {e}"),
        };
        assert_eq!(t.len(), 107);
        let Some(r) = t.lookup("embeddings.do") else {
            panic!("embeddings.do missing")
        };
        assert_eq!(
            r.target,
            RouteTarget::Service {
                service: "ai".into(),
                binding: Some("AI_SERVICE".into())
            }
        );
        assert_eq!(r.method.as_deref(), Some("embed_*"));
        assert!(r.requires_auth && !r.requires_admin);
        assert!(r.metadata.is_some());
        assert!(t.lookup("do.com.ai").is_some());
        assert!(t.lookup("nope.do").is_none());
    }

    const LOOKUP_TABLE: &str = r#"[
        {"domain": "example.do", "service": "apex"},
        {"domain": "*.example.do", "service": "wild"},
        {"domain": "*.b.example.do", "service": "wild-b"},
        {"domain": "exact.b.example.do", "service": "exact-b"},
        {"domain": "Shop.Example.COM", "worker": "shop", "namespace": "Production"},
        {"domain": "*.ONLY-WILD.do", "worker": "w", "namespace": "staging"}
    ]"#;

    #[test]
    fn lookup_table() {
        let t = table(LOOKUP_TABLE);
        assert_eq!(t.len(), 6);
        let cases = [
            // apex: only the exact entry, never the wildcard
            ("example.do", Some("apex")),
            ("a.example.do", Some("wild")),
            ("a.b.c.example.do", Some("wild")),
            // lookalikes never match on a non-label boundary
            ("badexample.do", None),
            ("evilexample.do", None),
            ("example.do.evil.com", None),
            ("xexample.do", None),
            // the longest wildcard wins
            ("b.example.do", Some("wild")),
            ("a.b.example.do", Some("wild-b")),
            ("x.y.b.example.do", Some("wild-b")),
            // exact beats wildcard
            ("exact.b.example.do", Some("exact-b")),
            ("x.exact.b.example.do", Some("wild-b")),
            // compiled lower-case
            ("shop.example.com", Some("worker:shop")),
            ("a.only-wild.do", Some("worker:w")),
            ("only-wild.do", None),
            ("do", None),
            ("", None),
        ];
        for (host, want) in cases {
            assert_eq!(service_of(&t, host).as_deref(), want, "{host}");
        }
        let Some(shop) = t.lookup("shop.example.com") else {
            panic!("shop missing")
        };
        assert_eq!(shop.domain, "shop.example.com");
        assert_eq!(
            shop.target,
            RouteTarget::UserWorker {
                worker: "shop".into(),
                namespace: Namespace::Production
            }
        );
    }

    #[test]
    fn fields_and_defaults() {
        let t = table(
            r#"[{"domain": "a.do", "service": "a", "binding": "A_SERVICE", "requiresAuth": true,
                 "requiresAdmin": true, "method": "a_*", "metadata": {"k": 1},
                 "updatedAt": "2025-10-04T00:00:00Z", "somethingNew": [1, 2]},
                {"domain": "b.do", "service": "b", "binding": null, "requiresAuth": null}]"#,
        );
        let (Some(a), Some(b)) = (t.lookup("a.do"), t.lookup("b.do")) else {
            panic!("entries missing")
        };
        assert!(a.requires_auth && a.requires_admin);
        assert_eq!(a.method.as_deref(), Some("a_*"));
        let meta = a.metadata.as_ref();
        assert_eq!(meta.map(RawJson::as_str), Some(r#"{"k":1}"#));
        assert_eq!(
            meta.map(RawJson::to_value),
            Some(serde_json::json!({"k": 1}))
        );
        assert!(!b.requires_auth && !b.requires_admin && b.method.is_none());
        assert_eq!(
            b.target,
            RouteTarget::Service {
                service: "b".into(),
                binding: None
            }
        );
        assert!(table("[]").is_empty());
        assert!(DomainRoutes::empty().lookup("a.do").is_none());
        assert_eq!(t.iter().count(), 2);
    }

    #[test]
    fn metadata_round_trips_as_compact_json() {
        // (as written, as kept): compact, key order preserved, escapes normalised.
        let cases = [
            (
                r#"{"description": "x", "category": "Agent"}"#,
                r#"{"description":"x","category":"Agent"}"#,
            ),
            (
                r#"{"nested": {"a": [1, -2, 3.5, 1e300, true, false, null, []]}, "e": {}}"#,
                r#"{"nested":{"a":[1,-2,3.5,1e+300,true,false,null,[]]},"e":{}}"#,
            ),
            (
                r#"{"esc": "q \" b \\ n \n t \t c \u0001 \/ \u00e9 😀"}"#,
                r#"{"esc":"q \" b \\ n \n t \t c \u0001 / é 😀"}"#,
            ),
            (r#"[1, "two", {"3": 3}]"#, r#"[1,"two",{"3":3}]"#),
            (r#""just a string""#, r#""just a string""#),
            ("18446744073709551615", "18446744073709551615"),
        ];
        for (meta, kept) in cases {
            let json = format!(r#"[{{"domain": "a.do", "service": "s", "metadata": {meta}}}]"#);
            let t = match DomainRoutes::parse(json.as_bytes()) {
                Ok(t) => t,
                Err(e) => panic!("{meta}: {e}"),
            };
            let want: serde_json::Value = match serde_json::from_str(meta) {
                Ok(v) => v,
                Err(e) => panic!("{meta}: {e}"),
            };
            let got = t.lookup("a.do").and_then(|r| r.metadata.as_ref());
            assert_eq!(got.map(RawJson::as_str), Some(kept), "{meta}");
            assert_eq!(got.map(RawJson::to_value), Some(want.clone()), "{meta}");
            assert_eq!(
                got.and_then(|m| serde_json::to_value(m).ok()),
                Some(want),
                "{meta}"
            );
        }
        // `null` reads as an absent field.
        let t = table(r#"[{"domain": "a.do", "service": "s", "metadata": null}]"#);
        assert!(t.lookup("a.do").is_some_and(|r| r.metadata.is_none()));
    }

    #[test]
    fn namespaces() {
        for (s, want) in [
            ("production", Some(Namespace::Production)),
            ("STAGING", Some(Namespace::Staging)),
            ("Development", Some(Namespace::Development)),
            ("dev", None),
            ("", None),
        ] {
            assert_eq!(Namespace::parse(s), want, "{s}");
        }
        assert_eq!(Namespace::Staging.binding(), "STAGING");
        assert_eq!(Namespace::Development.binding(), "DEVELOPMENT");
        assert_eq!(Namespace::Production.binding(), "PRODUCTION");
    }

    #[test]
    fn invalid_entries_reject_the_whole_file() {
        use InvalidEntry::*;
        let good = r#"{"domain": "good.do", "service": "good"}"#;
        let cases: Vec<(&str, InvalidEntry)> = vec![
            (
                r#"{"domain": "a..b", "service": "s"}"#,
                Domain(HostError::EmptyLabel),
            ),
            (
                r#"{"domain": "", "service": "s"}"#,
                Domain(HostError::Empty),
            ),
            (r#"{"domain": "a.do.", "service": "s"}"#, NotNormalForm),
            (r#"{"domain": "a.do:8080", "service": "s"}"#, NotNormalForm),
            (r#"{"domain": "[0::1]", "service": "s"}"#, NotNormalForm),
            (
                r#"{"domain": "bücher.do", "service": "s"}"#,
                Domain(HostError::InvalidChar),
            ),
            (
                r#"{"domain": "-a.do", "service": "s"}"#,
                Domain(HostError::HyphenEdge),
            ),
            (
                r#"{"domain": "a b.do", "service": "s"}"#,
                Domain(HostError::InvalidChar),
            ),
            (r#"{"domain": "a.*.b", "service": "s"}"#, Wildcard),
            (r#"{"domain": "*", "service": "s"}"#, Wildcard),
            (
                r#"{"domain": "*.", "service": "s"}"#,
                Domain(HostError::Empty),
            ),
            (r#"{"domain": "**.x", "service": "s"}"#, Wildcard),
            (r#"{"domain": "*.*.x", "service": "s"}"#, Wildcard),
            (r#"{"domain": "*x.do", "service": "s"}"#, Wildcard),
            (r#"{"domain": "x.*", "service": "s"}"#, Wildcard),
            (r#"{"domain": "*.1.2.3.4", "service": "s"}"#, WildcardOverIp),
            (r#"{"domain": "a.do"}"#, NoTarget),
            (r#"{"domain": "a.do", "binding": "A"}"#, NoTarget),
            (
                r#"{"domain": "a.do", "service": "s", "worker": "w", "namespace": "staging"}"#,
                BothTargets,
            ),
            (
                r#"{"domain": "a.do", "service": "s", "worker": "w"}"#,
                BothTargets,
            ),
            (
                r#"{"domain": "a.do", "service": "s", "namespace": "staging"}"#,
                BothTargets,
            ),
            (r#"{"domain": "a.do", "worker": "w"}"#, WorkerNeedsNamespace),
            (
                r#"{"domain": "a.do", "namespace": "staging"}"#,
                WorkerNeedsNamespace,
            ),
            (
                r#"{"domain": "a.do", "worker": "w", "namespace": "prod"}"#,
                BadNamespace("prod".into()),
            ),
            (
                r#"{"domain": "a.do", "worker": "w", "namespace": "staging", "binding": "B"}"#,
                BindingOnWorker,
            ),
            (
                r#"{"domain": "a.do", "worker": "W!", "namespace": "staging"}"#,
                BadWorker("W!".into()),
            ),
            (
                r#"{"domain": "a.do", "worker": "", "namespace": "staging"}"#,
                BadWorker(String::new()),
            ),
            (
                r#"{"domain": "a.do", "service": ""}"#,
                BadService(String::new()),
            ),
            (
                r#"{"domain": "a.do", "service": "a/b"}"#,
                BadService("a/b".into()),
            ),
            (
                r#"{"domain": "a.do", "service": "s", "binding": "1X"}"#,
                BadBinding("1X".into()),
            ),
            (
                r#"{"domain": "a.do", "service": "s", "binding": ""}"#,
                BadBinding(String::new()),
            ),
            (
                r#"{"domain": "GOOD.do", "service": "s"}"#,
                Duplicate { first: 0 },
            ),
        ];
        for (entry, want) in cases {
            let json = format!("[{good}, {entry}]");
            match DomainRoutes::parse(json.as_bytes()) {
                Err(RoutesError::InvalidEntry { index, reason, .. }) => {
                    assert_eq!((index, reason), (1, want), "{entry}");
                }
                other => panic!("{entry}: expected invalid entry, got {other:?}"),
            }
        }
        // Wildcard and exact on the same suffix are different domains, not duplicates.
        assert_eq!(
            table(r#"[{"domain": "x.do", "service": "s"}, {"domain": "*.x.do", "service": "s"}]"#)
                .len(),
            2
        );
    }

    #[test]
    fn malformed_files() {
        let cases = [
            ("", None),
            ("{}", None),
            ("null", None),
            (r#"[{"domain": "a.do", "service": "s"}"#, None),
            (r#"[1]"#, Some("entry 0")),
            (r#"[{"service": "s"}]"#, Some("entry 0")),
            (
                r#"[{"domain": "a.do", "service": "s"}, {"domain": 5, "service": "s"}]"#,
                Some("entry 1"),
            ),
            (
                r#"[{"domain": "a.do", "service": "s", "requiresAuth": "yes"}]"#,
                Some("entry 0"),
            ),
            (r#"[{"domain": "a.do", "service": 1}]"#, Some("entry 0")),
        ];
        for (json, mention) in cases {
            match DomainRoutes::parse(json.as_bytes()) {
                Err(RoutesError::Malformed(msg)) => {
                    if let Some(m) = mention {
                        assert!(msg.contains(m), "{json}: {msg}");
                    }
                }
                other => panic!("{json}: expected malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_display_names_index_and_reason() {
        let err = DomainRoutes::parse(br#"[{"domain": "a.do", "worker": "w", "namespace": "qa"}]"#);
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg,
            r#"domain routes: entry 0 ("a.do"): namespace "qa" is not production, staging or development"#
        );
    }
}
