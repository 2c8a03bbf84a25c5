//! The domain-routes table (`assets/domain-routes.json`, CONTRACT "assets/domain-routes.json"):
//! one serde type for an entry of the file, [`RouteEntry`], read and written by serde_json
//! (the file, a runtime route and the api's KV snapshot all go through it, so a new field is
//! added in one place); validating an entry; and O(labels) host lookup over the compiled
//! table.

use crate::host::{check_name, normalize_host, HostError, HostKind};
use crate::ratelimit::{Mode, TenantPolicy, TenantSpec};
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use std::borrow::{Borrow, Cow};
use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

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

/// A route as compiled from a valid [`RouteEntry`]: what routing reads. It serialises as the
/// entry it came from ([`DomainRoute::entry`]), in the file's format.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainRoute {
    /// As compiled: lower-cased, `*.suffix` for wildcards.
    pub domain: String,
    pub target: RouteTarget,
    pub requires_auth: bool,
    pub requires_admin: bool,
    /// Carried through untouched (the seed uses it for method-prefix hints).
    pub method: Option<String>,
    /// Free-form; carried through untouched for listings, as the JSON text it was written as.
    pub metadata: Option<RawJson>,
    /// The tenant rate limit of a user-worker route (validated; `mode` always given).
    pub rate_limit: Option<TenantSpec>,
}

impl DomainRoute {
    pub fn is_wildcard(&self) -> bool {
        self.domain.starts_with("*.")
    }

    /// The route in the file's format, borrowing from it (`requiresAuth` and `requiresAdmin`
    /// always spelled out, as listings show them).
    pub fn entry(&self) -> RouteEntry<'_> {
        let (service, binding, worker, namespace) = match &self.target {
            RouteTarget::Service { service, binding } => {
                (Some(service.as_str()), binding.as_deref(), None, None)
            }
            RouteTarget::UserWorker { worker, namespace } => {
                (None, None, Some(worker.as_str()), Some(namespace.as_str()))
            }
        };
        RouteEntry {
            domain: Cow::Borrowed(&self.domain),
            service: service.map(Cow::Borrowed),
            binding: binding.map(Cow::Borrowed),
            worker: worker.map(Cow::Borrowed),
            namespace: namespace.map(Cow::Borrowed),
            requires_auth: Some(self.requires_auth),
            requires_admin: Some(self.requires_admin),
            method: self.method.as_deref().map(Cow::Borrowed),
            metadata: self.metadata.clone(),
            rate_limit: self.rate_limit.clone(),
        }
    }
}

impl Serialize for DomainRoute {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.entry().serialize(serializer)
    }
}

/// A JSON value kept as the text it was written as (serde_json's `RawValue`: checked as JSON,
/// whitespace and escapes as written). Routes carry `metadata` only to hand it back in
/// listings, so a `serde_json::Value` tree per route (a B-tree node and a string per field)
/// would cost refresh time and, at 100 000 routes, tens of MB of a 128 MB isolate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The value itself, for the rare reader that wants to look inside. A valid entry's
    /// metadata always reads as a value ([`RouteEntry::problems`]); Null answers only a
    /// snapshot that was not written by this code.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// As JSON text.
impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// One entry of the routes file, as written and as written back: the one type the file, a
/// runtime route (`/api/routes`) and the api's KV snapshot are read through, by serde_json.
/// Its strings borrow from the input when they hold no escape. Reading checks only the shape;
/// the rules are [`RouteEntry::problems`] (every one) and [`RouteEntry::compile`] (the first).
/// The target fields are all optional here so that the "exactly one target" rule has a
/// precise reason; unknown fields (`updatedAt`, ...) are ignored.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteEntry<'a> {
    #[serde(borrow)]
    pub domain: Cow<'a, str>,
    #[serde(
        default,
        borrow,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub service: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub binding: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub worker: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_auth: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_admin: Option<bool>,
    #[serde(
        default,
        borrow,
        deserialize_with = "opt_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub method: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RawJson>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rate_limit_out"
    )]
    pub rate_limit: Option<TenantSpec>,
}

/// An optional string, borrowed from the input unless it had to be unescaped. (serde borrows
/// a bare `Cow<str>` field with `#[serde(borrow)]`, but an `Option` of one would always copy.)
fn opt_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Text<'a>(Cow<'a, str>);
    struct TextVisitor;
    impl<'de> Visitor<'de> for TextVisitor {
        type Value = Text<'de>;
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
    impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(TextVisitor)
        }
    }
    Ok(Option::<Text<'a>>::deserialize(d)?.map(|t| t.0))
}

/// `rateLimit` as written: only the fields given.
fn rate_limit_out<S: Serializer>(spec: &Option<TenantSpec>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out {
        #[serde(skip_serializing_if = "Option::is_none")]
        mode: Option<Mode>,
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        window_secs: Option<u64>,
    }
    spec.as_ref()
        .map(|spec| Out {
            mode: spec.mode,
            limit: spec.limit,
            window_secs: spec.window_secs,
        })
        .serialize(s)
}

/// `rateLimit` as a field of a snapshot's positional entry.
struct RateLimitOut(Option<TenantSpec>);

impl Serialize for RateLimitOut {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        rate_limit_out(&self.0, s)
    }
}

/// The fields of an entry that a problem names.
pub const TARGET_FIELDS: [&str; 4] = ["service", "binding", "worker", "namespace"];

impl RouteEntry<'_> {
    /// Every problem with the entry, each with the field it concerns (`domain`, a target field,
    /// `metadata` or `rateLimit`), in that order; empty when it is a valid route. A
    /// `rateLimit` is only judged over a valid target, as its rules depend on the target.
    pub fn problems(&self) -> Vec<(&'static str, InvalidEntry)> {
        let mut out = Vec::new();
        if let Err(reason) = check_domain(&self.domain) {
            out.push(("domain", reason));
        }
        let target = compile_target(
            self.service.clone(),
            self.binding.clone(),
            self.worker.clone(),
            self.namespace.clone(),
            true,
        );
        match target {
            Err(reason) => out.push((reason.field(), reason)),
            Ok(target) => {
                if let Some(Err(reason)) = self
                    .rate_limit
                    .as_ref()
                    .map(|s| check_rate_limit(s, &target))
                {
                    out.push(("rateLimit", reason));
                }
            }
        }
        if let Some(Err(reason)) = self.metadata.as_ref().map(check_metadata) {
            out.push(("metadata", reason));
        }
        out
    }

    /// The route, if the entry is valid; else the domain as written (for the message) and the
    /// first of its [`problems`](Self::problems). Strings are copied out of the input only
    /// once the entry is known to be good.
    pub fn compile(self) -> Result<DomainRoute, (String, InvalidEntry)> {
        self.build(true)
    }

    /// As [`compile`](Self::compile) with `validate`, else without the rules (names, domain
    /// syntax, `rateLimit` bounds, metadata): for a snapshot this code wrote from a table it
    /// had validated. The target's shape still decides its kind.
    fn build(self, validate: bool) -> Result<DomainRoute, (String, InvalidEntry)> {
        let RouteEntry {
            domain,
            service,
            binding,
            worker,
            namespace,
            requires_auth,
            requires_admin,
            method,
            metadata,
            rate_limit,
        } = self;
        let checked = match validate {
            true => check_domain(&domain),
            false => Ok(()),
        };
        let target = checked
            .and_then(|()| compile_target(service, binding, worker, namespace, validate))
            .and_then(|target| {
                if validate {
                    if let Some(spec) = &rate_limit {
                        check_rate_limit(spec, &target)?;
                    }
                    if let Some(meta) = &metadata {
                        check_metadata(meta)?;
                    }
                }
                Ok(target)
            });
        let target = match target {
            Ok(target) => target,
            Err(reason) => return Err((domain.into_owned(), reason)),
        };
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
            method: method.map(Cow::into_owned),
            metadata,
            rate_limit,
        })
    }
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

/// A stamp of a routes file's text (its length and a 64-bit SipHash of it): equal stamps mean
/// the same file, so a table built from it before (a snapshot) may be loaded instead of
/// parsing and validating the file again. Not a defence against a crafted collision: only the
/// operators write the file.
pub fn source_stamp(text: &[u8]) -> String {
    // `DefaultHasher::new()` is keyed with zeros: the same in every isolate of one build (a
    // later build hashing differently only costs one parse).
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(text);
    format!("{}:{:016x}", text.len(), hasher.finish())
}

/// The version of [`DomainRoutes::snapshot`]'s format; a snapshot of another version is
/// refused (the api then reads the file again).
pub const SNAPSHOT_VERSION: u32 = 1;

impl DomainRoutes {
    pub fn empty() -> DomainRoutes {
        DomainRoutes::default()
    }

    /// Parses and validates the whole file; any bad entry rejects all of it, so the caller
    /// keeps its last good table. Entries are compiled as they stream out of serde_json, their
    /// strings borrowed until the entry is known to be good, so no intermediate copy of the
    /// file is ever held.
    pub fn parse(json: &[u8]) -> Result<DomainRoutes, RoutesError> {
        // One UTF-8 check of the whole input, instead of one per string.
        let text = std::str::from_utf8(json)
            .map_err(|e| RoutesError::Malformed(format!("not UTF-8: {e}")))?;
        DomainRoutes::read(text, false)
    }

    /// The table as a compact snapshot: `[SNAPSHOT_VERSION, [route, ...]]`, each route the
    /// [`RouteEntry`] it compiles from (domain lower-cased, `false` flags left out) as an
    /// array of its fields in declaration order, which serde reads into the same struct (no
    /// field names to write, scan and match). What the api keeps in KV for other isolates to
    /// load with [`from_snapshot`](Self::from_snapshot).
    pub fn snapshot(&self) -> String {
        struct Routes<'a>(&'a [DomainRoute]);
        impl Serialize for Routes<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|route| {
                    // Every field, in order, no `..`: a field added to `RouteEntry` does not
                    // compile until it is written here too.
                    let RouteEntry {
                        domain,
                        service,
                        binding,
                        worker,
                        namespace,
                        requires_auth,
                        requires_admin,
                        method,
                        metadata,
                        rate_limit,
                    } = route.entry();
                    (
                        domain,
                        service,
                        binding,
                        worker,
                        namespace,
                        requires_auth.filter(|&on| on),
                        requires_admin.filter(|&on| on),
                        method,
                        metadata,
                        RateLimitOut(rate_limit),
                    )
                }))
            }
        }
        // Strings, bools, integers and JSON text already checked: serialising cannot fail.
        serde_json::to_string(&(SNAPSHOT_VERSION, Routes(&self.routes))).unwrap_or_default()
    }

    /// Loads a [`snapshot`](Self::snapshot) this code wrote of a table it had validated: the
    /// same serde path as [`parse`](Self::parse), in one pass, without the rules (so a
    /// snapshot must only ever come from `snapshot`, never from outside). A duplicate domain
    /// or a target of the wrong shape is still refused: the table cannot be built with them.
    pub fn from_snapshot(json: &str) -> Result<DomainRoutes, RoutesError> {
        DomainRoutes::read(json, true)
    }

    /// Parses `json`, a file (validated) or a snapshot (trusted), into a table.
    fn read(json: &str, snapshot: bool) -> Result<DomainRoutes, RoutesError> {
        let mut invalid = None;
        let mut de = serde_json::Deserializer::from_str(json);
        let builder = TableBuilder {
            invalid: &mut invalid,
            validate: !snapshot,
            input_len: json.len(),
        };
        let parsed = match snapshot {
            true => Versioned(builder).deserialize(&mut de),
            false => builder.deserialize(&mut de),
        }
        .and_then(|table| de.end().map(|()| table));
        match (invalid, parsed) {
            // The builder aborts the parse with a placeholder error after recording why.
            (Some(err), _) => Err(err),
            (None, Ok(table)) => Ok(table),
            (None, Err(e)) if snapshot => Err(RoutesError::Malformed(format!("snapshot: {e}"))),
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

/// Same routes in the same order, hence the same lookups.
impl PartialEq for DomainRoutes {
    fn eq(&self, other: &Self) -> bool {
        self.routes == other.routes
    }
}

/// Deserialises the top-level array straight into a table. A shape error is prefixed with
/// its entry index; a validation error is parked in `invalid` (serde errors cannot carry it).
struct TableBuilder<'a> {
    invalid: &'a mut Option<RoutesError>,
    validate: bool,
    /// The input's size, to guess the entry count from (and size the table once instead of
    /// growing it).
    input_len: usize,
}

/// A snapshot: its version, then the routes (read by the `TableBuilder` it wraps).
struct Versioned<'a>(TableBuilder<'a>);

impl<'de> DeserializeSeed<'de> for Versioned<'_> {
    type Value = DomainRoutes;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<DomainRoutes, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Versioned<'_> {
    type Value = DomainRoutes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{SNAPSHOT_VERSION}, [route entries]]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DomainRoutes, A::Error> {
        match seq.next_element::<u32>()? {
            Some(SNAPSHOT_VERSION) => {}
            Some(v) => {
                return Err(de::Error::custom(format_args!(
                    "version {v}, not {SNAPSHOT_VERSION}"
                )))
            }
            None => return Err(de::Error::invalid_length(0, &self)),
        }
        let table = seq
            .next_element_seed(self.0)?
            .ok_or_else(|| de::Error::custom("no routes"))?;
        match seq.next_element::<de::IgnoredAny>()? {
            None => Ok(table),
            Some(_) => Err(de::Error::custom("more than version and routes")),
        }
    }
}

/// Entries read before the rest of the table is sized from them.
const SAMPLE: usize = 64;

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
        let mut routes: Vec<DomainRoute> = Vec::with_capacity(SAMPLE);
        let mut exact = Keys::default();
        let mut wildcard = Keys::default();
        // Bytes of the input the first `SAMPLE` routes' strings take, to size the rest by.
        let mut sampled = 0;
        for index in 0.. {
            let entry = match seq.next_element::<RouteEntry<'de>>() {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(e) => return Err(de::Error::custom(format!("entry {index}: {e}"))),
            };
            let route = match entry.build(self.validate) {
                Ok(route) => route,
                Err((domain, reason)) => {
                    *self.invalid = Some(RoutesError::InvalidEntry {
                        index,
                        domain,
                        reason,
                    });
                    return Err(de::Error::custom("invalid entry"));
                }
            };
            match route.domain.strip_prefix("*.") {
                Some(suffix) => wildcard.add(suffix, index),
                None => exact.add(&route.domain, index),
            }
            if index < SAMPLE {
                sampled += route_bytes(&route);
            }
            routes.push(route);
            if index + 1 == SAMPLE {
                // The rest of the file is sized like its first entries (bytes per entry,
                // share of wildcards), with an eighth to spare: a guess from the file's size
                // alone is off by the entries' typical length, and then the table either
                // grows (copying every route) or holds megabytes it never uses. Entries take
                // more bytes in the input than their strings (keys, quotes): hence the 3/2.
                let per_entry = (sampled * 3 / 2 / SAMPLE).max(1);
                let more = self.input_len.saturating_sub(sampled * 3 / 2) / per_entry;
                let more = more + more / 8;
                routes.reserve(more);
                exact.reserve(more / SAMPLE * exact.keys.len() + more % SAMPLE);
                wildcard.reserve(more / SAMPLE * wildcard.keys.len());
            }
        }
        match (exact.into_map(), wildcard.into_map()) {
            (Some(exact), Some(wildcard)) => Ok(DomainRoutes {
                routes,
                exact,
                wildcard,
            }),
            // A duplicate: found again in file order, to name both entries.
            _ => match DomainRoutes::from_routes(routes) {
                Err(err) => {
                    *self.invalid = Some(err);
                    Err(de::Error::custom("invalid entry"))
                }
                Ok(table) => Ok(table),
            },
        }
    }
}

/// The bytes of a route's strings, a measure of its entry's size in the input.
fn route_bytes(route: &DomainRoute) -> usize {
    let target = match &route.target {
        RouteTarget::Service { service, binding } => {
            service.len() + binding.as_ref().map_or(0, String::len)
        }
        RouteTarget::UserWorker { worker, .. } => worker.len() + 10,
    };
    // Field names and punctuation, and the flags, of a typical entry.
    60 + route.domain.len()
        + target
        + route.method.as_ref().map_or(0, String::len)
        + route.metadata.as_ref().map_or(0, |m| m.as_str().len())
}

/// One map's keys, hashed as the entries are read, and put in the map only once the input is
/// done, in the order of the buckets they land in. A large table is far bigger than the
/// caches, and inserting at random cost a miss or two per key (a third of the whole refresh
/// at 100 000 routes); in bucket order the map is written front to back.
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

    fn reserve(&mut self, more: usize) {
        self.keys.reserve(more);
    }

    /// `None` on a duplicate key (the caller then finds the first one in input order).
    fn into_map(self) -> Option<HashMap<Stored, usize>> {
        let Keys { hasher, mut keys } = self;
        let mut map = HashMap::with_capacity_and_hasher(keys.len(), hasher);
        // The bucket count behind that capacity (7/8 of it is usable) and so the bucket a
        // hash lands in, as std's hashbrown places it: a guess that only ever costs speed if
        // it is wrong. Keys are sorted (counting sort) into bins of 64 buckets.
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
    /// `metadata` is JSON, but not a value serde_json reads back (a number out of range, a
    /// lone surrogate), so it could not be listed.
    Metadata(String),
    /// The same domain (case-insensitively) as entry `first`.
    Duplicate {
        first: usize,
    },
}

impl InvalidEntry {
    /// The entry's field the problem is about.
    pub fn field(&self) -> &'static str {
        match self {
            InvalidEntry::WorkerNeedsNamespace | InvalidEntry::BadWorker(_) => "worker",
            InvalidEntry::BadNamespace(_) => "namespace",
            InvalidEntry::BindingOnWorker | InvalidEntry::BadBinding(_) => "binding",
            InvalidEntry::NoTarget | InvalidEntry::BothTargets | InvalidEntry::BadService(_) => {
                "service"
            }
            InvalidEntry::RateLimit(_) => "rateLimit",
            InvalidEntry::Metadata(_) => "metadata",
            InvalidEntry::Domain(_)
            | InvalidEntry::NotNormalForm
            | InvalidEntry::WildcardOverIp
            | InvalidEntry::Wildcard
            | InvalidEntry::Duplicate { .. } => "domain",
        }
    }
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
            InvalidEntry::Metadata(why) => write!(f, "invalid metadata: {why}"),
            InvalidEntry::Duplicate { first } => write!(f, "duplicates entry {first}"),
        }
    }
}

/// `metadata` must read back as a value, so that every listing can show it.
fn check_metadata(meta: &RawJson) -> Result<(), InvalidEntry> {
    serde_json::from_str::<serde_json::Value>(meta.as_str())
        .map(drop)
        .map_err(|e| InvalidEntry::Metadata(e.to_string()))
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

/// Exactly one of a service target or a worker + namespace target; with `validate`, the
/// names must be good ones too.
fn compile_target(
    service: Option<Cow<'_, str>>,
    binding: Option<Cow<'_, str>>,
    worker: Option<Cow<'_, str>>,
    namespace: Option<Cow<'_, str>>,
    validate: bool,
) -> Result<RouteTarget, InvalidEntry> {
    match (service, worker, namespace) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => Err(InvalidEntry::BothTargets),
        (Some(service), None, None) => {
            if validate && !is_service_name(&service) {
                return Err(InvalidEntry::BadService(service.into_owned()));
            }
            if let Some(b) = binding.as_ref().filter(|b| validate && !is_binding_name(b)) {
                return Err(InvalidEntry::BadBinding(b.to_string()));
            }
            Ok(RouteTarget::Service {
                service: service.into_owned(),
                binding: binding.map(Cow::into_owned),
            })
        }
        (None, Some(worker), Some(ns)) => {
            if binding.is_some() {
                return Err(InvalidEntry::BindingOnWorker);
            }
            if validate && !is_worker_name(&worker) {
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
        assert_eq!(meta.map(RawJson::as_str), Some(r#"{"k": 1}"#));
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
    fn metadata_is_kept_as_written() {
        // Kept as the text it was written as (key order, spacing, escapes), and reading as the
        // value it spells.
        for meta in [
            r#"{"description": "x", "category": "Agent"}"#,
            r#"{"nested": {"a": [1, -2, 3.5, 1e300, true, false, null, []]}, "e": {}}"#,
            r#"{"esc": "q \" b \\ n \n t \t c \u0001 \/ \u00e9 😀"}"#,
            r#"[1, "two", {"3": 3}]"#,
            r#""just a string""#,
            "18446744073709551615",
        ] {
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
            assert_eq!(got.map(RawJson::as_str), Some(meta), "{meta}");
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
        // JSON, but not a value that reads back (so no listing could show it).
        for meta in ["1e400", r#"{"k": "\ud800"}"#] {
            let json = format!(r#"[{{"domain": "a.do", "service": "s", "metadata": {meta}}}]"#);
            match DomainRoutes::parse(json.as_bytes()) {
                Err(RoutesError::InvalidEntry {
                    reason: InvalidEntry::Metadata(_),
                    ..
                }) => {}
                other => panic!("{meta}: {other:?}"),
            }
        }
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

    /// What every accepted file must satisfy, now that one parser reads it: the table
    /// written back in the file's format parses to itself, and so does its snapshot (and the
    /// snapshot of that is the same text). Says whether the file was accepted.
    fn round_trips(json: &str) -> bool {
        let Ok(t) = DomainRoutes::parse(json.as_bytes()) else {
            return false;
        };
        let written = serde_json::to_string(&t.iter().collect::<Vec<_>>()).unwrap();
        match DomainRoutes::parse(written.as_bytes()) {
            Ok(again) => assert!(again == t, "{json}\nwritten {written}"),
            Err(e) => panic!("{json}\nwritten {written}\nrefused: {e}"),
        }
        let snapshot = t.snapshot();
        match DomainRoutes::from_snapshot(&snapshot) {
            Ok(again) => {
                assert!(again == t, "{json}\nsnapshot {snapshot}");
                assert_eq!(again.snapshot(), snapshot);
                for r in t.iter() {
                    assert_eq!(again.get(&r.domain), Some(r));
                }
            }
            Err(e) => panic!("{json}\nsnapshot {snapshot}\nrefused: {e}"),
        }
        true
    }

    #[test]
    fn every_value_round_trips_or_is_refused() {
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
        let mut accepted = 0;
        for value in VALID_SCALARS.iter().chain(BAD_SCALARS).chain(&shapes) {
            for field in ["metadata", "extra", "service", "requiresAuth"] {
                for ws in ["", " ", "\n"] {
                    accepted += usize::from(round_trips(&format!(
                        r#"[{{"domain":"a.do",{ws}"service":"s","{field}":{ws}{value}{ws}}}]"#
                    )));
                }
            }
        }
        assert!(accepted > 100, "{accepted}");
        assert!(round_trips(
            r#" [ { "domain" : "a.do" , "service" : "s" } ] "#
        ));
    }

    #[test]
    fn the_seed_round_trips() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/seed-domain-routes.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("skipping: {path} not found");
            return;
        };
        assert!(round_trips(&text), "the seed should parse");
    }

    #[test]
    fn a_large_table_round_trips_and_a_late_duplicate_is_named() {
        let mut json = String::from("[");
        for i in 0..5000 {
            let domain = match i % 4 {
                0 => format!("app{i}.example.com"),
                1 => format!("*.t{i}.com"),
                2 => format!("a-very-long-label-for-a-heap-key-{i}.example.com"),
                _ => format!("*.Wild-{i}.Example.COM"),
            };
            let target = match i % 5 {
                0 => format!(
                    r#""worker":"w{i}","namespace":"Staging","rateLimit":{{"mode":"exact","limit":{}}}"#,
                    i + 1
                ),
                _ => format!(r#""service":"svc{i}","binding":"SVC_{i}""#),
            };
            json.push_str(&format!(
                r#"{{"domain":"{domain}",{target},"requiresAuth":{},"metadata":{{"n":{i},"s":"route {i}","f":{i}.5}}}},"#,
                i % 3 == 0
            ));
        }
        let unique = format!("{}]", json.trim_end_matches(','));
        assert!(round_trips(&unique), "a clean file should parse");
        assert_eq!(table(&unique).len(), 5000);
        // A duplicate late in a large file, reported with both indices.
        let duplicate = format!(r#"{json}{{"domain":"APP40.example.com","service":"s"}}]"#);
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

    #[test]
    fn snapshots_of_another_version_or_shape_are_refused() {
        let t = table(LOOKUP_TABLE);
        let snapshot = t.snapshot();
        assert!(
            snapshot.starts_with(&format!("[{SNAPSHOT_VERSION},[")),
            "{snapshot}"
        );
        for bad in [
            snapshot.replacen(&format!("[{SNAPSHOT_VERSION},"), "[0,", 1),
            format!("{snapshot} x"),
            snapshot.replacen("]]", "],1]", 1),
            "[1]".to_string(),
            "[]".to_string(),
            r#"[1,[{"domain":"a.do"}]]"#.to_string(),
            r#"[1,[{"domain":"a.do","service":"s"},{"domain":"a.do","service":"t"}]]"#.to_string(),
            // A file is not a snapshot.
            LOOKUP_TABLE.to_string(),
        ] {
            assert!(DomainRoutes::from_snapshot(&bad).is_err(), "{bad}");
        }
    }

    /// Over generated files (a third clean: valid JSON, mostly valid routes, metadata of every
    /// shape; a third with the odd fault; a third with every kind of trouble): parsing never
    /// panics, and every accepted file round-trips.
    #[test]
    fn generated_files_round_trip_or_are_refused() {
        let mut accepted = 0;
        for seed in 0..4000u64 {
            let mut g = Gen {
                state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
                faults: [0, 1, 10][seed as usize % 3],
            };
            accepted += usize::from(round_trips(&g.file()));
        }
        assert!(accepted > 500, "{accepted}");
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
