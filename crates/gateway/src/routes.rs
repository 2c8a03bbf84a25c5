//! The domain-routes table (`assets/domain-routes.json`, CONTRACT "assets/domain-routes.json"):
//! parsing and validating the file as a whole, and O(labels) host lookup over the compiled
//! table.

use crate::host::{check_name, normalize_host, HostError, HostKind};
use crate::ratelimit::{TenantPolicy, TenantSpec};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::{Borrow, Cow};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};

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
    /// The tenant rate limit of a user-worker route (validated; `mode` always given).
    pub rate_limit: Option<TenantSpec>,
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
    exact: HashMap<Stored, usize>,
    /// Keyed by the suffix after `*.`: `*.example.do` lives under `example.do`.
    wildcard: HashMap<Stored, usize>,
}

/// A map key as stored: a lower-cased domain or wildcard suffix, held in the bucket itself
/// when short, as nearly all are, so building the table allocates nothing for it and a probe
/// compares without chasing a pointer.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Stored(Key<'static>);

/// A map key, stored or (to probe with) borrowed. Hashes and compares as its bytes, whatever
/// the variant.
#[derive(Clone)]
enum Key<'a> {
    Inline { len: u8, bytes: [u8; KEY_INLINE] },
    Heap(Box<str>),
    Borrowed(&'a str),
}

/// Fills the 24 bytes the other variants take anyway (on 64-bit), tag and length aside.
const KEY_INLINE: usize = 22;

impl Stored {
    fn new(key: &str) -> Stored {
        let mut bytes = [0; KEY_INLINE];
        Stored(
            match (bytes.get_mut(..key.len()), u8::try_from(key.len())) {
                (Some(head), Ok(len)) => {
                    head.copy_from_slice(key.as_bytes());
                    Key::Inline { len, bytes }
                }
                _ => Key::Heap(key.into()),
            },
        )
    }
}

impl Key<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(key) => key.as_bytes(),
            Key::Borrowed(key) => key.as_bytes(),
        }
    }
}

// `Stored` hashes and compares as its `Key`, so a map of them is probed with a borrowed one.
impl<'a> Borrow<Key<'a>> for Stored {
    fn borrow(&self) -> &Key<'a> {
        &self.0
    }
}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Just the bytes: one key per hash, so no length prefix or terminator is needed.
        state.write(self.as_bytes());
    }
}

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key<'_> {}

/// As the `str` it holds, so the table debug-prints as it always did.
impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(self.0.as_bytes()), f)
    }
}

impl DomainRoutes {
    pub fn empty() -> DomainRoutes {
        DomainRoutes::default()
    }

    /// Parses and validates the whole file; any bad entry rejects all of it, so the caller
    /// keeps its last good table. Entries are compiled as they stream out of the parser, so
    /// no intermediate copy of the file is ever held.
    pub fn parse(json: &[u8]) -> Result<DomainRoutes, RoutesError> {
        // Real entries run 150-300 bytes (the seed averages ~310); a low guess only means
        // some growth, a high one is bounded by the input's own size.
        let expected = json.len() / 256;
        // A well-formed file takes the fast path; anything it does not handle (an error, an
        // escape in a route field, ...) is parsed again from the start by serde_json, which
        // then gives exactly the table or error it always did.
        if let Some(table) = std::str::from_utf8(json)
            .ok()
            .and_then(|text| fast::parse(text, expected))
        {
            return Ok(table);
        }
        DomainRoutes::parse_serde(json, expected)
    }

    /// [`parse`](Self::parse) without its fast path: only the differential fuzz target
    /// (`crates/gateway/fuzz`, `routes_diff`) calls it, to hold the two paths to one answer.
    #[doc(hidden)]
    pub fn parse_general(json: &[u8]) -> Result<DomainRoutes, RoutesError> {
        DomainRoutes::parse_serde(json, json.len() / 256)
    }

    /// The general path: serde_json streaming entries into `TableBuilder`.
    fn parse_serde(json: &[u8], expected: usize) -> Result<DomainRoutes, RoutesError> {
        let mut invalid = None;
        let mut de = serde_json::Deserializer::from_slice(json);
        let parsed = TableBuilder {
            invalid: &mut invalid,
            expected,
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

    fn with_capacity(expected: usize) -> DomainRoutes {
        DomainRoutes {
            routes: Vec::with_capacity(expected),
            exact: HashMap::with_capacity(expected),
            wildcard: HashMap::new(),
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
        match map.entry(Stored::new(key)) {
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
        let slot = match self.exact.get(&Key::Borrowed(host)) {
            Some(slot) => *slot,
            None if self.wildcard.is_empty() => return None,
            // Each dot starts a candidate suffix; left to right is longest to shortest, and
            // starting after a dot guarantees at least one label in front (never the apex).
            None => *host
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'.')
                .find_map(|(i, _)| self.wildcard.get(&Key::Borrowed(&host[i + 1..])))?,
        };
        self.routes.get(slot)
    }

    /// Every route, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &DomainRoute> {
        self.routes.iter()
    }

    /// The exact entry for `domain` as compiled (lower-case; `*.suffix` for a wildcard), not a
    /// host lookup: `*.example.do` finds only the wildcard entry itself.
    pub fn get(&self, domain: &str) -> Option<&DomainRoute> {
        let (map, key) = match domain.strip_prefix("*.") {
            Some(suffix) => (&self.wildcard, suffix),
            None => (&self.exact, domain),
        };
        map.get(&Key::Borrowed(key))
            .and_then(|&slot| self.routes.get(slot))
    }

    /// The routes, in file order, giving up the table (to rebuild a merged one).
    pub fn into_routes(self) -> Vec<DomainRoute> {
        self.routes
    }

    /// A table of routes already compiled by [`DomainRoutes::parse`], in the given order; a
    /// second route for a domain is refused as in the file.
    pub fn from_routes(
        routes: impl IntoIterator<Item = DomainRoute>,
    ) -> Result<DomainRoutes, RoutesError> {
        let routes = routes.into_iter();
        let mut table = DomainRoutes::with_capacity(routes.size_hint().0);
        for route in routes {
            table.push(route)?;
        }
        Ok(table)
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
    /// `rateLimit` is wrong: on a service route, without a mode, or out of range.
    RateLimit(String),
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
            InvalidEntry::RateLimit(why) => write!(f, "invalid rateLimit: {why}"),
            InvalidEntry::Duplicate { first } => write!(f, "duplicates entry {first}"),
        }
    }
}

/// One entry as written, its strings borrowed from the file (only one with escapes is
/// copied), so nothing is allocated before the entry is known to be valid. The target fields
/// are all optional here so that the "exactly one target" rule is checked in `compile` with a
/// precise reason; unknown fields (`updatedAt`, ...) are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry<'a> {
    #[serde(borrow)]
    domain: Text<'a>,
    #[serde(borrow)]
    service: Option<Text<'a>>,
    #[serde(borrow)]
    binding: Option<Text<'a>>,
    #[serde(borrow)]
    worker: Option<Text<'a>>,
    #[serde(borrow)]
    namespace: Option<Text<'a>>,
    requires_auth: Option<bool>,
    requires_admin: Option<bool>,
    #[serde(borrow)]
    method: Option<Text<'a>>,
    metadata: Option<RawJson>,
    rate_limit: Option<TenantSpec>,
}

/// A JSON string, borrowed from the input unless it had to be unescaped. (A plain
/// `Option<Cow<str>>` field would always copy: serde only borrows a bare `Cow`.)
struct Text<'a>(Cow<'a, str>);

impl Text<'_> {
    fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    // As `String`'s, so shape errors read as before.
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v)))
    }
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
        let mut table = DomainRoutes::with_capacity(self.expected);
        for index in 0.. {
            let raw = match seq.next_element::<RawEntry<'de>>() {
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
/// Strings are copied out of the file only once the entry is known to be good.
fn compile(raw: RawEntry<'_>) -> Result<DomainRoute, (String, InvalidEntry)> {
    let RawEntry {
        domain: Text(domain),
        service,
        binding,
        worker,
        namespace,
        requires_auth,
        requires_admin,
        method,
        metadata,
        rate_limit,
    } = raw;
    if let Err(reason) = check_domain(&domain) {
        return Err((domain.into_owned(), reason));
    }
    let target = match compile_target(service, binding, worker, namespace) {
        Ok(target) => target,
        Err(reason) => return Err((domain.into_owned(), reason)),
    };
    if let Some(spec) = &rate_limit {
        if let Err(reason) = check_rate_limit(spec, &target) {
            return Err((domain.into_owned(), reason));
        }
    }
    // Valid apart from case: lower-casing is the whole normalisation.
    let mut domain = domain.into_owned();
    if domain.bytes().any(|b| b.is_ascii_uppercase()) {
        domain.make_ascii_lowercase();
    }
    Ok(DomainRoute {
        domain,
        target,
        requires_auth: requires_auth.unwrap_or(false),
        requires_admin: requires_admin.unwrap_or(false),
        method: method.map(Text::into_string),
        metadata,
        rate_limit,
    })
}

/// A route's `rateLimit` is tenant traffic's: only on user-worker routes, with its mode
/// spelled out (so it means the same whatever the namespace's default is), within the same
/// bounds as `RATE_LIMITS`.
fn check_rate_limit(spec: &TenantSpec, target: &RouteTarget) -> Result<(), InvalidEntry> {
    if !matches!(target, RouteTarget::UserWorker { .. }) {
        return Err(InvalidEntry::RateLimit(
            "only user-worker routes take one (service routes use RATE_LIMITS)".into(),
        ));
    }
    if spec.mode.is_none() {
        return Err(InvalidEntry::RateLimit(
            "\"mode\" is required (exact, approximate or off)".into(),
        ));
    }
    TenantPolicy::from_spec(spec, "tenant.route".into(), &TenantPolicy::builtin())
        .map(|_| ())
        .map_err(|e| InvalidEntry::RateLimit(e.to_string()))
}

/// A domain must already be a normal host apart from case, optionally under one leading
/// `*.`: a port, a trailing dot or a stray `*` is a mistake in the file, not something to
/// guess around.
fn check_domain(domain: &str) -> Result<(), InvalidEntry> {
    let (wildcard, host) = match domain.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, domain),
    };
    let (mut star, mut colon) = (false, false);
    for &b in host.as_bytes() {
        star |= b == b'*';
        colon |= b == b':';
    }
    // (Without the wildcard prefix, `host` is the whole domain, so this also catches a
    // leading `*` that is not `*.`.)
    if star {
        return Err(InvalidEntry::Wildcard);
    }
    let kind = if host.starts_with('[') || colon || host.ends_with('.') {
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
    service: Option<Text<'_>>,
    binding: Option<Text<'_>>,
    worker: Option<Text<'_>>,
    namespace: Option<Text<'_>>,
) -> Result<RouteTarget, InvalidEntry> {
    match (service, worker, namespace) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => Err(InvalidEntry::BothTargets),
        (Some(Text(service)), None, None) => {
            if !is_service_name(&service) {
                return Err(InvalidEntry::BadService(service.into_owned()));
            }
            if let Some(Text(b)) = binding.as_ref().filter(|Text(b)| !is_binding_name(b)) {
                return Err(InvalidEntry::BadBinding(b.to_string()));
            }
            Ok(RouteTarget::Service {
                service: service.into_owned(),
                binding: binding.map(Text::into_string),
            })
        }
        (None, Some(Text(worker)), Some(Text(ns))) => {
            if binding.is_some() {
                return Err(InvalidEntry::BindingOnWorker);
            }
            if !is_worker_name(&worker) {
                return Err(InvalidEntry::BadWorker(worker.into_owned()));
            }
            match Namespace::parse(&ns) {
                Some(namespace) => Ok(RouteTarget::UserWorker {
                    worker: worker.into_owned(),
                    namespace,
                }),
                None => Err(InvalidEntry::BadNamespace(ns.into_owned())),
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

/// A hand-written parser for the shape route files actually have, several times quicker than
/// serde_json's generic path at the size-optimised `opt-level = "z"`. It answers only when
/// the whole file is valid and it understood every byte of it, and then with the very table
/// the serde path builds: the same `compile` runs on the same field values, the maps get the
/// same keys, and `metadata` is the text `JsonWriter` writes. It declines (`None`) an escape
/// in a route field, a value nested deeper than `MAX_DEPTH`, and anything invalid (a
/// duplicate included); the serde path then parses the file from the start and gives its
/// exact error. `tests::fast_path_agrees_*` hold the two paths to that.
mod fast {
    use super::{compile, DomainRoutes, JsonWriter, Key, RawEntry, RawJson, Stored, Text};
    use serde::de::DeserializeSeed;
    use std::borrow::Cow;
    use std::collections::hash_map::{Entry, RandomState};
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    /// Deep enough for any real `metadata`, far inside serde_json's limit.
    const MAX_DEPTH: usize = 32;

    /// Entries read before the rest of the table is sized from them.
    const SAMPLE: usize = 64;

    pub(super) fn parse(text: &str, expected: usize) -> Option<DomainRoutes> {
        let mut p = Parser {
            text,
            pos: 0,
            spaced: false,
            rewrite: false,
        };
        let mut routes = Vec::with_capacity(expected.min(SAMPLE));
        let mut exact = Keys::default();
        let mut wildcard = Keys::default();
        p.ws();
        p.expect(b'[')?;
        p.ws();
        if !p.eat(b']') {
            loop {
                let route = compile(p.entry()?).ok()?;
                match route.domain.strip_prefix("*.") {
                    Some(suffix) => wildcard.add(suffix, routes.len()),
                    None => exact.add(&route.domain, routes.len()),
                }
                routes.push(route);
                if routes.len() == SAMPLE {
                    // The rest of the file is sized like its first entries (bytes per entry,
                    // share of wildcards), with an eighth to spare: a guess from the file's
                    // size alone is off by the entries' typical length, and then the table
                    // either grows (copying every route) or holds megabytes it never uses.
                    let more = text.len().saturating_sub(p.pos) / (p.pos / SAMPLE).max(1);
                    let more = more + more / 8;
                    routes.reserve(more);
                    exact
                        .keys
                        .reserve(more / SAMPLE * exact.keys.len() + more % SAMPLE);
                    wildcard.keys.reserve(more / SAMPLE * wildcard.keys.len());
                }
                p.ws();
                if p.eat(b']') {
                    break;
                }
                p.expect(b',')?;
                p.ws();
            }
        }
        p.ws();
        if p.pos != text.len() {
            return None;
        }
        Some(DomainRoutes {
            routes,
            exact: exact.into_map()?,
            wildcard: wildcard.into_map()?,
        })
    }

    /// One map's keys, hashed as the entries are read, and put in the map only once the file
    /// is done, in the order of the buckets they land in. A large table is far bigger than
    /// the caches, and inserting at random cost a miss or two per key (a third of the whole
    /// refresh at 100 000 routes); in bucket order the map is written front to back.
    #[derive(Default)]
    struct Keys {
        hasher: RandomState,
        /// Hash, key, route index.
        keys: Vec<(u64, Stored, usize)>,
    }

    impl Keys {
        fn add(&mut self, key: &str, index: usize) {
            let key = Stored::new(key);
            self.keys.push((self.hasher.hash_one(&key), key, index));
        }

        /// `None` on a duplicate key: the serde path then reports the first one in file
        /// order.
        fn into_map(self) -> Option<HashMap<Stored, usize>> {
            let Keys { hasher, mut keys } = self;
            let mut map = HashMap::with_capacity_and_hasher(keys.len(), hasher);
            // The bucket count behind that capacity (7/8 of it is usable) and so the bucket
            // a hash lands in, as std's hashbrown places it: a guess that only ever costs
            // speed if it is wrong. Keys are sorted (counting sort) into bins of 64 buckets.
            let buckets = (map.capacity() / 7 * 8).next_power_of_two();
            let bins = (buckets / 64).max(1);
            let shift = (buckets / bins).trailing_zeros();
            let bin = |hash: u64| (hash as usize & (buckets - 1)) >> shift;
            let mut starts = vec![0; bins + 1];
            for &(hash, _, _) in &keys {
                starts[bin(hash) + 1] += 1;
            }
            for b in 1..starts.len() {
                starts[b] += starts[b - 1];
            }
            let mut order = vec![0; keys.len()];
            for (i, &(hash, _, _)) in keys.iter().enumerate() {
                let slot = &mut starts[bin(hash)];
                order[*slot] = i;
                *slot += 1;
            }
            for i in order {
                let (_, key, index) = &mut keys[i];
                // Moved out; the empty placeholder costs nothing and is dropped unused.
                match map.entry(std::mem::replace(key, Stored(Key::Borrowed("")))) {
                    Entry::Occupied(_) => return None,
                    Entry::Vacant(slot) => {
                        slot.insert(*index);
                    }
                }
            }
            Some(map)
        }
    }

    struct Parser<'a> {
        text: &'a str,
        /// Always on a char boundary: it only steps over ASCII bytes and whole strings.
        pos: usize,
        /// Whitespace was stepped over (reset per `metadata` value).
        spaced: bool,
        /// An escape or a number `JsonWriter` may spell differently was stepped over (reset
        /// per `metadata` value).
        rewrite: bool,
    }

    /// `RawEntry`'s fields by their names in the file.
    #[derive(Clone, Copy)]
    enum Field {
        Domain,
        Service,
        Binding,
        Worker,
        Namespace,
        RequiresAuth,
        RequiresAdmin,
        Method,
        Metadata,
        /// Not handled here: the entry is left to the serde path.
        RateLimit,
        Other,
    }

    impl Field {
        /// Length and first byte tell the names apart; one comparison then confirms it.
        fn of(key: &[u8]) -> Field {
            let (field, name): (_, &[u8]) = match (key.len(), key.first()) {
                (6, Some(b'd')) => (Field::Domain, b"domain"),
                (7, Some(b's')) => (Field::Service, b"service"),
                (7, Some(b'b')) => (Field::Binding, b"binding"),
                (6, Some(b'w')) => (Field::Worker, b"worker"),
                (9, Some(b'n')) => (Field::Namespace, b"namespace"),
                (12, Some(b'r')) => (Field::RequiresAuth, b"requiresAuth"),
                (13, Some(b'r')) => (Field::RequiresAdmin, b"requiresAdmin"),
                (6, Some(b'm')) => (Field::Method, b"method"),
                (8, Some(b'm')) => (Field::Metadata, b"metadata"),
                (9, Some(b'r')) => (Field::RateLimit, b"rateLimit"),
                _ => return Field::Other,
            };
            if key == name {
                field
            } else {
                Field::Other
            }
        }
    }

    /// Stores a field's value, refusing a second one as serde's derive does.
    fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
        match slot {
            Some(_) => None,
            None => {
                *slot = Some(value);
                Some(())
            }
        }
    }

    /// Where the first `"`, `\` or control character at or after `i` is (or the end), eight
    /// bytes at a time.
    #[inline(always)]
    fn find_special(bytes: &[u8], mut i: usize) -> usize {
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = ONES << 7;
        while let Some(word) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
            let w = u64::from_le_bytes(*word);
            let quote = w ^ (ONES * u64::from(b'"'));
            let backslash = w ^ (ONES * u64::from(b'\\'));
            // `(x - n) & !x & HIGH` flags the bytes of `x` below `n`, plus perhaps some
            // above a flagged one (where the borrow ran on), never one below: so the lowest
            // flag, in the first byte of the little-endian word, is exact.
            let hits = ((quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (w.wrapping_sub(ONES * 0x20) & !w))
                & HIGH;
            if hits != 0 {
                return i + (hits.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        while let Some(&b) = bytes.get(i) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                break;
            }
            i += 1;
        }
        i
    }

    /// Drops whitespace outside strings from JSON text with no escapes (so every `"` opens or
    /// closes a string).
    fn strip_whitespace(raw: &str) -> String {
        let mut out = String::with_capacity(raw.len());
        let mut in_string = false;
        let mut run = 0;
        for (i, b) in raw.bytes().enumerate() {
            match b {
                b'"' => in_string = !in_string,
                // ASCII, so `i` is a char boundary.
                b' ' | b'\t' | b'\n' | b'\r' if !in_string => {
                    out.push_str(&raw[run..i]);
                    run = i + 1;
                }
                _ => {}
            }
        }
        out.push_str(&raw[run..]);
        out
    }

    impl<'a> Parser<'a> {
        #[inline(always)]
        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.pos).copied()
        }

        #[inline(always)]
        fn eat(&mut self, byte: u8) -> bool {
            let found = self.peek() == Some(byte);
            if found {
                self.pos += 1;
            }
            found
        }

        #[inline(always)]
        fn expect(&mut self, byte: u8) -> Option<()> {
            self.eat(byte).then_some(())
        }

        /// JSON whitespace: exactly serde_json's four bytes.
        #[inline(always)]
        fn ws(&mut self) {
            if let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
                self.skip_ws();
            }
        }

        fn skip_ws(&mut self) {
            self.spaced = true;
            while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
                self.pos += 1;
            }
        }

        /// `true`, `false` or `null`, whole.
        fn literal<const N: usize>(&mut self, word: &[u8; N]) -> Option<()> {
            let rest = self.text.as_bytes().get(self.pos..)?;
            if rest.first_chunk::<N>() != Some(word) {
                return None;
            }
            self.pos += N;
            Some(())
        }

        /// A string without escapes, borrowed from the file.
        fn plain_string(&mut self) -> Option<&'a str> {
            let start = self.pos + 1;
            self.plain_bytes()?;
            self.text.get(start..self.pos - 1)
        }

        /// `plain_string`'s bytes, spared the char-boundary checks.
        #[inline(always)]
        fn plain_bytes(&mut self) -> Option<&'a [u8]> {
            self.expect(b'"')?;
            let bytes = self.text.as_bytes();
            let start = self.pos;
            let end = find_special(bytes, start);
            if bytes.get(end) != Some(&b'"') {
                return None;
            }
            self.pos = end + 1;
            bytes.get(start..end)
        }

        fn opt_string(&mut self) -> Option<Option<Text<'a>>> {
            if self.peek() == Some(b'n') {
                self.literal(b"null")?;
                return Some(None);
            }
            Some(Some(Text(Cow::Borrowed(self.plain_string()?))))
        }

        fn opt_bool(&mut self) -> Option<Option<bool>> {
            match self.peek()? {
                b't' => self.literal(b"true").map(|()| Some(true)),
                b'f' => self.literal(b"false").map(|()| Some(false)),
                _ => self.literal(b"null").map(|()| None),
            }
        }

        /// `metadata` as `RawJson` keeps it. Text with no escapes and only integers is what
        /// `JsonWriter` would write, bar whitespace; anything else `JsonWriter` writes.
        fn opt_metadata(&mut self) -> Option<Option<RawJson>> {
            if self.peek() == Some(b'n') {
                self.literal(b"null")?;
                return Some(None);
            }
            let start = self.pos;
            self.spaced = false;
            self.rewrite = false;
            self.value(0)?;
            let raw = self.text.get(start..self.pos)?;
            let text = if self.rewrite {
                let mut text = String::with_capacity(raw.len());
                // Fails where the serde path would too (a number out of range, a lone
                // surrogate), which then reports it.
                JsonWriter(&mut text)
                    .deserialize(&mut serde_json::Deserializer::from_str(raw))
                    .ok()?;
                text.into_boxed_str()
            } else if self.spaced {
                strip_whitespace(raw).into_boxed_str()
            } else {
                raw.into()
            };
            Some(Some(RawJson(text)))
        }

        fn entry(&mut self) -> Option<RawEntry<'a>> {
            let mut domain = None;
            let mut service = None;
            let mut binding = None;
            let mut worker = None;
            let mut namespace = None;
            let mut requires_auth = None;
            let mut requires_admin = None;
            let mut method = None;
            let mut metadata = None;
            self.expect(b'{')?;
            self.ws();
            if !self.eat(b'}') {
                loop {
                    let key = Field::of(self.plain_bytes()?);
                    self.ws();
                    self.expect(b':')?;
                    self.ws();
                    match key {
                        Field::Domain => {
                            set(&mut domain, Text(Cow::Borrowed(self.plain_string()?)))?
                        }
                        Field::Service => set(&mut service, self.opt_string()?)?,
                        Field::Binding => set(&mut binding, self.opt_string()?)?,
                        Field::Worker => set(&mut worker, self.opt_string()?)?,
                        Field::Namespace => set(&mut namespace, self.opt_string()?)?,
                        Field::RequiresAuth => set(&mut requires_auth, self.opt_bool()?)?,
                        Field::RequiresAdmin => set(&mut requires_admin, self.opt_bool()?)?,
                        Field::Method => set(&mut method, self.opt_string()?)?,
                        Field::Metadata => set(&mut metadata, self.opt_metadata()?)?,
                        Field::RateLimit => return None,
                        // Ignored, as by the derive, but it must still be valid JSON.
                        Field::Other => self.value(0)?,
                    }
                    self.ws();
                    if self.eat(b'}') {
                        break;
                    }
                    self.expect(b',')?;
                    self.ws();
                }
            }
            Some(RawEntry {
                domain: domain?,
                service: service.flatten(),
                binding: binding.flatten(),
                worker: worker.flatten(),
                namespace: namespace.flatten(),
                requires_auth: requires_auth.flatten(),
                requires_admin: requires_admin.flatten(),
                method: method.flatten(),
                metadata: metadata.flatten(),
                rate_limit: None,
            })
        }

        /// Steps over one JSON value, checking it as strictly as serde_json does.
        fn value(&mut self, depth: usize) -> Option<()> {
            match self.peek()? {
                b'"' => self.string(),
                b'-' | b'0'..=b'9' => self.number(),
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                open @ (b'[' | b'{') if depth < MAX_DEPTH => {
                    self.pos += 1;
                    let (close, keyed) = if open == b'[' {
                        (b']', false)
                    } else {
                        (b'}', true)
                    };
                    self.ws();
                    if self.eat(close) {
                        return Some(());
                    }
                    loop {
                        if keyed {
                            self.string()?;
                            self.ws();
                            self.expect(b':')?;
                            self.ws();
                        }
                        self.value(depth + 1)?;
                        self.ws();
                        if self.eat(close) {
                            return Some(());
                        }
                        self.expect(b',')?;
                        self.ws();
                    }
                }
                _ => None,
            }
        }

        /// Any valid string, escapes included (checked, not decoded).
        fn string(&mut self) -> Option<()> {
            self.expect(b'"')?;
            let bytes = self.text.as_bytes();
            loop {
                let i = find_special(bytes, self.pos);
                match *bytes.get(i)? {
                    b'"' => {
                        self.pos = i + 1;
                        return Some(());
                    }
                    b'\\' => {
                        self.rewrite = true;
                        self.pos = match *bytes.get(i + 1)? {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i + 2,
                            b'u' if bytes.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => {
                                i + 6
                            }
                            _ => return None,
                        };
                    }
                    // A control character.
                    _ => return None,
                }
            }
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
        fn number(&mut self) -> Option<()> {
            let start = self.pos;
            self.eat(b'-');
            if !self.eat(b'0') {
                if !matches!(self.peek(), Some(b'1'..=b'9')) {
                    return None;
                }
                self.digits();
            }
            let integer = self.text.get(start..self.pos)?;
            let mut fraction = false;
            if self.eat(b'.') {
                fraction = true;
                if self.digits() == 0 {
                    return None;
                }
            }
            if let Some(b'e' | b'E') = self.peek() {
                self.pos += 1;
                fraction = true;
                if let Some(b'+' | b'-') = self.peek() {
                    self.pos += 1;
                }
                if self.digits() == 0 {
                    return None;
                }
            }
            // An integer of up to 18 characters is an i64 or u64, which `JsonWriter` prints
            // back as written; `-0`, fractions and exponents go through f64.
            if fraction || integer.len() > 18 || integer == "-0" {
                self.rewrite = true;
            }
            Some(())
        }

        fn digits(&mut self) -> usize {
            let start = self.pos;
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            self.pos - start
        }
    }
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
    fn rate_limit_field_is_validated_and_kept() {
        let table = DomainRoutes::parse(
            br#"[{"domain": "shop.example.com", "worker": "shop", "namespace": "production",
                  "rateLimit": {"mode": "exact", "limit": 50, "windowSecs": 10}},
                 {"domain": "free.example.com", "worker": "shop", "namespace": "production",
                  "rateLimit": {"mode": "off"}}]"#,
        )
        .unwrap();
        let shop = table.lookup("shop.example.com").unwrap();
        assert_eq!(
            shop.rate_limit,
            Some(TenantSpec {
                mode: Some(crate::ratelimit::Mode::Exact),
                limit: Some(50),
                window_secs: Some(10)
            })
        );
        assert_eq!(
            table
                .lookup("free.example.com")
                .unwrap()
                .rate_limit
                .as_ref()
                .and_then(|r| r.mode),
            Some(crate::ratelimit::Mode::Off)
        );
        for (bad, why) in [
            (
                r#"[{"domain": "a.com", "service": "db", "rateLimit": {"mode": "off"}}]"#,
                "only user-worker routes",
            ),
            (
                r#"[{"domain": "a.com", "worker": "w", "namespace": "production", "rateLimit": {"limit": 5}}]"#,
                "\"mode\" is required",
            ),
            (
                r#"[{"domain": "a.com", "worker": "w", "namespace": "production", "rateLimit": {"mode": "approximate", "limit": 5}}]"#,
                "exact\" only",
            ),
            (
                r#"[{"domain": "a.com", "worker": "w", "namespace": "production", "rateLimit": {"mode": "exact", "limit": 0}}]"#,
                "limit must be",
            ),
            (
                r#"[{"domain": "a.com", "worker": "w", "namespace": "production", "rateLimit": {"mode": "exact", "burst": 5}}]"#,
                "unknown field",
            ),
        ] {
            let err = DomainRoutes::parse(bad.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
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

    /// Builds `json` both ways; the fast path may decline, but what it builds must be what
    /// the serde path builds. Says whether the fast path took it.
    fn agree(json: &str) -> bool {
        let expected = json.len() / 256;
        let Some(fast) = fast::parse(json, expected) else {
            return false;
        };
        match DomainRoutes::parse_serde(json.as_bytes(), expected) {
            Ok(slow) => assert!(
                fast.routes == slow.routes
                    && fast.exact == slow.exact
                    && fast.wildcard == slow.wildcard,
                "{json}\nfast {fast:?}\nslow {slow:?}"
            ),
            Err(e) => panic!("{json}\nfast path took it, serde path: {e}"),
        }
        true
    }

    #[test]
    fn fast_path_agrees_on_every_value() {
        let shapes = [
            "[]",
            "[1,2]",
            "[1,]",
            "[,1]",
            "[1 2]",
            "{}",
            r#"{"a":1}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":[{"b":{}}]}"#,
            "[",
            "{",
            "]",
            r#"{"a":}"#,
            r#"{"\u0041":"\u00e9"}"#,
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        ];
        for value in VALID_SCALARS.iter().chain(BAD_SCALARS).chain(&shapes) {
            for field in ["metadata", "extra", "service", "requiresAuth"] {
                for ws in ["", " ", "\n"] {
                    agree(&format!(
                        r#"[{{"domain":"a.do",{ws}"service":"s","{field}":{ws}{value}{ws}}}]"#
                    ));
                }
            }
        }
        assert!(agree(r#" [ { "domain" : "a.do" , "service" : "s" } ] "#));
    }

    #[test]
    fn fast_path_agrees_on_the_seed() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/seed-domain-routes.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("skipping: {path} not found");
            return;
        };
        assert!(agree(&text), "the fast path should take the seed");
    }

    #[test]
    fn fast_path_agrees_on_a_large_table() {
        let mut json = String::from("[");
        for i in 0..5000 {
            let domain = match i % 4 {
                0 => format!("app{i}.example.com"),
                1 => format!("*.t{i}.com"),
                2 => format!("a-very-long-label-for-a-heap-key-{i}.example.com"),
                _ => format!("*.Wild-{i}.Example.COM"),
            };
            json.push_str(&format!(
                r#"{{"domain":"{domain}","service":"svc{i}","binding":"SVC_{i}","requiresAuth":{},"metadata":{{"n":{i},"s":"route {i}","f":{i}.5}}}},"#,
                i % 3 == 0
            ));
        }
        let unique = format!("{}]", json.trim_end_matches(','));
        assert!(agree(&unique), "the fast path should take a clean file");
        // A duplicate late in a large file: declined, and reported with both indices.
        let duplicate = format!(r#"{json}{{"domain":"APP40.example.com","service":"s"}}]"#);
        assert!(!agree(&duplicate));
        match DomainRoutes::parse(duplicate.as_bytes()) {
            Err(RoutesError::InvalidEntry { index, reason, .. }) => {
                assert_eq!(
                    (index, reason),
                    (5000, InvalidEntry::Duplicate { first: 40 })
                );
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
    }

    /// The fast path must build exactly the table the serde path builds, or decline: checked
    /// over generated files: a third clean (valid JSON, mostly valid routes, metadata of
    /// every shape), a third with the odd fault, a third with every kind of trouble.
    #[test]
    fn fast_path_agrees_with_serde_path() {
        let mut taken = 0;
        for seed in 0..4000u64 {
            let mut g = Gen {
                state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
                faults: [0, 1, 10][seed as usize % 3],
            };
            taken += usize::from(agree(&g.file()));
        }
        assert!(taken > 500, "{taken}");
    }

    /// A deterministic generator of route files (xorshift64*).
    struct Gen {
        state: u64,
        /// How often faults appear: 0 never (valid JSON, no missing fields), up to 10.
        faults: usize,
    }

    const VALID_SCALARS: &[&str] = &[
        "1",
        "0",
        "-1",
        "-0",
        "12",
        "1.5",
        "-2.25",
        "1e3",
        "1E+2",
        "2e-3",
        "3.0",
        "1.50",
        "0.1000000000000000055511151231257827",
        "123456789012345678",
        "1234567890123456789",
        "-123456789012345678",
        "18446744073709551615",
        "18446744073709551616",
        "true",
        "false",
        "null",
        r#""""#,
        r#""x""#,
        r#""a b""#,
        r#""é😀""#,
        r#""q \" b""#,
        r#""\\""#,
        r#""\/""#,
        r#""\n\t\r\b\f""#,
        r#""\u00e9""#,
        r#""\u0001""#,
        r#""\uD83D\uDE00""#,
    ];

    const BAD_SCALARS: &[&str] = &[
        "1e400",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "tru",
        "nul",
        "True",
        r#""\ud800""#,
        r#""\u12""#,
        r#""\uZZZZ""#,
        r#""\x""#,
        "\"tab\there\"",
        "\"ctl\u{1}\"",
    ];

    impl Gen {
        fn below(&mut self, n: usize) -> usize {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % n
        }

        fn chance(&mut self, per_mille: usize) -> bool {
            self.below(1000) < per_mille
        }

        /// A fault, now and then, in a file that may have them.
        fn fault(&mut self, per_mille: usize) -> bool {
            self.chance(per_mille * self.faults / 10)
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        /// Mostly nothing; now and then JSON whitespace, or something that is not.
        fn ws(&mut self) -> &'static str {
            if self.chance(700) {
                return "";
            }
            if self.fault(200) {
                return self.pick(&[" \u{a0}", "\u{c}", "/**/"]);
            }
            self.pick(&[" ", "  ", "\n", "\n    ", "\t", "\r\n"])
        }

        fn scalar(&mut self) -> &'static str {
            if self.fault(150) {
                return self.pick(BAD_SCALARS);
            }
            self.pick(VALID_SCALARS)
        }

        fn json(&mut self, depth: usize) -> String {
            let roll = self.below(10);
            if depth > 4 || roll < 4 {
                return self.scalar().to_string();
            }
            let (open, close, keyed) = if roll < 7 {
                ('[', ']', false)
            } else {
                ('{', '}', true)
            };
            let mut out = String::from(open);
            for i in 0..self.below(4) {
                if i > 0 {
                    out.push_str(self.ws());
                    out.push(',');
                }
                out.push_str(self.ws());
                if keyed {
                    let key = match self.fault(50) {
                        true => "k",
                        false => self.pick(&[
                            r#""k""#,
                            r#""description""#,
                            r#""\u0041""#,
                            r#""""#,
                            r#""é""#,
                        ]),
                    };
                    out.push_str(key);
                    out.push_str(self.ws());
                    if !self.fault(50) {
                        out.push(':');
                    }
                    out.push_str(self.ws());
                }
                out.push_str(&self.json(depth + 1));
            }
            if self.fault(50) {
                out.push(',');
            }
            out.push_str(self.ws());
            out.push(close);
            out
        }

        fn string_of(&mut self, items: &[&str]) -> String {
            if self.chance(5 + 5 * self.faults) {
                return self.scalar().to_string();
            }
            format!("\"{}\"", self.pick(items))
        }

        fn entry(&mut self, index: usize) -> String {
            let mut fields = Vec::new();
            if !self.fault(50) {
                let domain = if self.chance(100 + 60 * self.faults) {
                    self.pick(&[
                        "a.do",
                        "A.Do",
                        "*.EXAMPLE.com",
                        "1.2.3.4",
                        "*.1.2.3.4",
                        "[::1]",
                        "[0::1]",
                        "a..b",
                        "",
                        "a.do.",
                        "a.do:80",
                        "*",
                        "**.x",
                        "a.*.b",
                        "-a.do",
                        "é.do",
                        "x\\u002edo",
                        "q\\\"x.do",
                        "256.1.1.1",
                    ])
                } else {
                    self.pick(&[
                        "app{i}.example.com",
                        "*.t{i}.com",
                        "*.T{i}.x.do",
                        "_dmarc.s{i}.do",
                        "10.0.0.{i}",
                        "a-very-long-label-for-a-heap-key.n{i}.example.com",
                    ])
                };
                let domain = domain.replace("{i}", &index.to_string());
                let value = match self.fault(30) {
                    true => self.scalar().to_string(),
                    false => format!("\"{domain}\""),
                };
                fields.push(format!("\"domain\":{}{value}", self.ws()));
            }
            let worker = self.chance(250);
            if !worker || self.fault(50) {
                let v = self.string_of(&["svc", "SVC_1", "a-b", "", "a/b", "x\\u0041"]);
                fields.push(format!("\"service\":{v}"));
                if self.chance(700) {
                    let v = self.string_of(&["SVC_SERVICE", "_x", "A", "1X", ""]);
                    fields.push(format!("\"binding\":{v}"));
                }
            }
            if worker || self.fault(20) {
                let v = self.string_of(&["w", "shop", "a_b-1", "W!", ""]);
                fields.push(format!("\"worker\":{v}"));
                if !self.fault(50) {
                    let v = self.string_of(&["production", "Staging", "DEVELOPMENT", "qa"]);
                    fields.push(format!("\"namespace\":{v}"));
                }
            }
            for key in ["requiresAuth", "requiresAdmin"] {
                if self.chance(600) {
                    let v = match self.fault(100) {
                        true => self.scalar(),
                        false => self.pick(&["true", "false", "null"]),
                    };
                    fields.push(format!("\"{key}\":{v}"));
                }
            }
            if self.chance(200) {
                let v = self.string_of(&["a_*", "embed_*", "", "null"]);
                fields.push(format!("\"method\":{v}"));
            }
            if self.chance(800) {
                let v = match self.chance(300) {
                    true => format!(r#"{{"description": "route {index}","category":"Bench"}}"#),
                    false => self.json(0),
                };
                fields.push(format!("\"metadata\":{}{v}", self.ws()));
            }
            if self.chance(500) {
                fields.push(r#""updatedAt":"2025-10-04T19:27:39.451Z""#.to_string());
            }
            if self.chance(100) {
                let key = self.pick(&[
                    "\"extra\"",
                    "\"Domain\"",
                    "\"tags\"",
                    "\"dom\\u0061in\"",
                    "\"domain\"",
                    "\"service\"",
                    "\"metadata\"",
                ]);
                fields.push(format!("{key}:{}", self.json(0)));
            }
            for i in (1..fields.len()).rev() {
                let j = self.below(i + 1);
                fields.swap(i, j);
            }
            let mut out = String::from("{");
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(self.ws());
                    out.push(',');
                }
                out.push_str(self.ws());
                out.push_str(field);
            }
            if self.fault(20) {
                out.push(',');
            }
            out.push_str(self.ws());
            out.push('}');
            out
        }

        fn file(&mut self) -> String {
            let mut out = String::from(self.ws());
            if !self.fault(10) {
                out.push('[');
            }
            for i in 0..self.below(6) {
                if i > 0 && !self.fault(10) {
                    out.push(',');
                }
                out.push_str(self.ws());
                out.push_str(&self.entry(i));
            }
            out.push_str(self.ws());
            if self.fault(10) {
                out.push(',');
            }
            if !self.fault(10) {
                out.push(']');
            }
            out.push_str(self.ws());
            if self.fault(10) {
                out.push_str(self.pick(&["x", "[]", "\u{0}"]));
            }
            out
        }
    }
}
