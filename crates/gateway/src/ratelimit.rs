//! Rate limiting: the exact sliding-log algorithm run by the limiter Durable Object, the
//! policies it enforces (config, per-route and per-role overrides), limit keys, and the
//! response headers (IETF `RateLimit`/`RateLimit-Policy` plus the legacy `X-RateLimit-*` trio).
//!
//! Why a sliding *log* rather than a fixed window or token bucket: the contract requires
//! "exact" limiting. A log of accepted timestamps guarantees that no window of length
//! `window_ms` (anywhere on the time line, not just aligned ones) ever holds more than `limit`
//! accepted units, and it costs at most `limit` timestamps per key. One Durable Object per
//! limit key serialises calls, so the algorithm itself needs no locking.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::router::Route;

/// Built-in default: 100 requests per 60 s (the contract's default).
pub const DEFAULT_LIMIT: u32 = 100;
/// Built-in default window in seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 60;
/// Largest configurable limit. The log keeps one `u64` per accepted unit in the Durable
/// Object's memory and one row per unit in its storage, so the limit bounds both: at most
/// 800 KB and 100 000 rows per key (generous load-test configs use this much).
pub const MAX_LIMIT: u32 = 100_000;
/// Largest configurable window (one day); longer windows want a different algorithm.
pub const MAX_WINDOW_SECS: u64 = 86_400;

/// One quota: `limit` units per `window_ms` milliseconds, identified by `name` (which appears
/// in headers and in the limit key, so distinct policies never share a counter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub name: String,
    pub limit: u32,
    pub window_ms: u64,
}

impl Policy {
    /// The contract's default policy, `"default"`: 100 per 60 s.
    pub fn default_policy() -> Policy {
        Policy {
            name: "default".to_owned(),
            limit: DEFAULT_LIMIT,
            window_ms: DEFAULT_WINDOW_SECS * 1000,
        }
    }

    /// `RateLimit-Policy` value, e.g. `"default";q=100;w=60` (window in whole seconds, rounded
    /// up so a client never under-estimates the window).
    pub fn header_policy(&self) -> String {
        format!(
            "{};q={};w={}",
            sf_string(&self.name),
            self.limit,
            ceil_secs(self.window_ms)
        )
    }

    /// The window actually enforced: a zero window would make every entry expire at once,
    /// so it is treated as 1 ms rather than as "unlimited".
    fn effective_window_ms(&self) -> u64 {
        self.window_ms.max(1)
    }
}

impl Policy {
    /// The policy as the query string of a limiter call (`name=default&limit=100&windowMs=60000`).
    /// The api sends the policy with every check, so a config change takes effect on the next
    /// request without the object storing any policy. Encoded as a form (`form_urlencoded`);
    /// names are validated to a URL-safe alphabet, so in practice nothing is escaped.
    pub fn to_query(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("name", &self.name)
            .append_pair("limit", &self.limit.to_string())
            .append_pair("windowMs", &self.window_ms.to_string())
            .finish()
    }

    /// Parses [`to_query`](Self::to_query) with the same bounds as the config (limit
    /// 1..=[`MAX_LIMIT`], window 1 ms..=[`MAX_WINDOW_SECS`]); anything else, including a
    /// missing, repeated or unknown parameter, is an error.
    pub fn from_query(query: &str) -> Result<Policy, ConfigError> {
        let (mut name, mut limit, mut window_ms) = (None, None, None);
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot_taken = match key.as_ref() {
                "name" => name.replace(value).is_some(),
                "limit" => limit.replace(value).is_some(),
                "windowMs" => window_ms.replace(value).is_some(),
                _ => return Err(ConfigError(format!("unknown query parameter {key:?}"))),
            };
            if slot_taken {
                return Err(ConfigError(format!("repeated query parameter {key:?}")));
            }
        }
        let missing = |what: &str| ConfigError(format!("missing query parameter {what:?}"));
        let name = name.ok_or_else(|| missing("name"))?;
        if name.is_empty() || name.len() > 64 || !name.bytes().all(is_name_byte) {
            return Err(ConfigError(format!("bad policy name {name:?}")));
        }
        let limit = limit
            .ok_or_else(|| missing("limit"))?
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ConfigError(format!("limit must be 1..={MAX_LIMIT}")))?;
        let window_ms = window_ms
            .ok_or_else(|| missing("windowMs"))?
            .parse::<u64>()
            .ok()
            .filter(|w| (1..=MAX_WINDOW_SECS * 1000).contains(w))
            .ok_or_else(|| {
                ConfigError(format!("windowMs must be 1..={}", MAX_WINDOW_SECS * 1000))
            })?;
        Ok(Policy {
            name: name.into_owned(),
            limit,
            window_ms,
        })
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::default_policy()
    }
}

/// The outcome of one [`SlidingLog::check`].
///
/// - `remaining`: units still available in the current window *after* this decision.
/// - `reset_secs`: seconds (rounded up) until the oldest counted entry leaves the window, i.e.
///   until `remaining` next grows; `0` when nothing is counted (full quota available). This is
///   the `t` of `RateLimit` and the value of `X-RateLimit-Reset`.
/// - `retry_after_secs`: only on rejection: seconds (rounded up, at least 1) until a request of
///   the same cost would be allowed. For a cost of 1 it equals `reset_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl Decision {
    /// The name of the header that carries a decision from the `RateLimiter` object to the api.
    pub const WIRE_HEADER: &'static str = "x-ratelimit-decision";

    /// The decision as one header value, `allowed;limit;remaining;reset[;retry]` (allowed is
    /// `1` or `0`): the object answers with headers only, so the api reads no body.
    pub fn to_wire(&self) -> String {
        let mut out = format!(
            "{};{};{};{}",
            u8::from(self.allowed),
            self.limit,
            self.remaining,
            self.reset_secs
        );
        if let Some(retry) = self.retry_after_secs {
            out.push(';');
            out.push_str(&retry.to_string());
        }
        out
    }

    /// Parses [`to_wire`](Self::to_wire); anything else (missing or extra fields, signs,
    /// spaces, a remaining above the limit) is `None`, which the api treats as a limiter fault.
    pub fn from_wire(value: &str) -> Option<Decision> {
        fn num<T: std::str::FromStr>(field: &str) -> Option<T> {
            if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            field.parse().ok()
        }
        let mut fields = value.split(';');
        let allowed = match fields.next()? {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        let limit: u32 = num(fields.next()?)?;
        let remaining: u32 = num(fields.next()?)?;
        let reset_secs: u64 = num(fields.next()?)?;
        let retry_after_secs = match fields.next() {
            None => None,
            Some(field) => Some(num::<u64>(field)?),
        };
        if fields.next().is_some() || remaining > limit {
            return None;
        }
        Some(Decision {
            allowed,
            limit,
            remaining,
            reset_secs,
            retry_after_secs,
        })
    }

    /// All rate-limit response headers for this decision, in a stable order:
    /// `RateLimit-Policy`, `RateLimit`, `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
    /// `X-RateLimit-Reset`, and `Retry-After` when rejected.
    pub fn headers(&self, policy: &Policy) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("RateLimit-Policy", policy.header_policy()),
            (
                "RateLimit",
                format!(
                    "{};r={};t={}",
                    sf_string(&policy.name),
                    self.remaining,
                    self.reset_secs
                ),
            ),
            ("X-RateLimit-Limit", self.limit.to_string()),
            ("X-RateLimit-Remaining", self.remaining.to_string()),
            ("X-RateLimit-Reset", self.reset_secs.to_string()),
        ];
        if !self.allowed {
            // A rejection always carries Retry-After; fall back to the reset time if a
            // hand-built Decision lacks it.
            let retry = self.retry_after_secs.unwrap_or(self.reset_secs).max(1);
            headers.push(("Retry-After", retry.to_string()));
        }
        headers
    }
}

/// The exact limiter state for one limit key: timestamps (ms) of accepted units, oldest first.
///
/// Invariants kept by [`check`](Self::check): entries are sorted and none is later than the
/// latest time seen. An entry is only added while the window holds fewer than `limit`, so the
/// log never exceeds the largest limit in force during the last window. Entries above a
/// lowered limit are kept, not trimmed: they still count if the limit is raised again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlidingLog {
    entries: VecDeque<u64>,
    /// Latest `now_ms` seen; the clock is never allowed to run backwards past it.
    last_seen_ms: u64,
    /// Window of the policy last checked, so expiry times can be answered without a policy.
    window_ms: Option<u64>,
}

impl SlidingLog {
    pub fn new() -> SlidingLog {
        SlidingLog::default()
    }

    /// Decides a request of `cost` units at `now_ms` under `policy`, recording it if allowed.
    ///
    /// `cost == 0` is a peek: it answers whether one more unit would be allowed and consumes
    /// nothing. A rejected request consumes nothing. A `now_ms` earlier than one already seen
    /// is treated as that later time, so a clock stepping back never frees quota.
    pub fn check(&mut self, policy: &Policy, now_ms: u64, cost: u32) -> Decision {
        let now = now_ms.max(self.last_seen_ms);
        self.last_seen_ms = now;
        let window = policy.effective_window_ms();
        self.window_ms = Some(window);
        self.prune(window, now);
        let limit = policy.limit;

        let count = self.entries.len() as u64;
        let asked = u64::from(cost.max(1));
        let allowed = count + asked <= u64::from(limit);
        let mut retry_after_secs = None;
        if allowed {
            for _ in 0..cost {
                self.entries.push_back(now);
            }
        } else {
            retry_after_secs = Some(
                self.retry_after_ms(limit, asked, window, now)
                    .div_ceil(1000)
                    .max(1),
            );
        }

        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(u32::try_from(self.entries.len()).unwrap_or(u32::MAX)),
            reset_secs: self
                .entries
                .front()
                .map_or(0, |&oldest| expires_in(oldest, window, now).div_ceil(1000)),
            retry_after_secs,
        }
    }

    /// Accepted timestamps (ms), oldest first, for persistence. May include expired entries
    /// until the next `check` prunes them.
    pub fn snapshot(&self) -> Vec<u64> {
        self.entries.iter().copied().collect()
    }

    /// Rebuilds a log from [`snapshot`](Self::snapshot). Drops nothing (the next `check` prunes
    /// with the policy then in force); sorts, in case the stored value was tampered with.
    pub fn restore(mut ts: Vec<u64>) -> SlidingLog {
        ts.sort_unstable();
        SlidingLog {
            last_seen_ms: ts.last().copied().unwrap_or(0),
            entries: ts.into(),
            window_ms: None,
        }
    }

    /// True when no entry is inside `policy`'s window at `now_ms`: the log is equivalent to an
    /// empty one and the Durable Object may delete its stored state.
    pub fn is_idle(&self, policy: &Policy, now_ms: u64) -> bool {
        let now = now_ms.max(self.last_seen_ms);
        let window = policy.effective_window_ms();
        self.entries
            .back()
            .is_none_or(|&newest| now - newest >= window)
    }

    /// True when no entry is inside a window of `window_ms` at `now_ms` (the clock clamped
    /// as in [`check`](Self::check)).
    pub fn is_idle_for(&self, window_ms: u64, now_ms: u64) -> bool {
        let now = now_ms.max(self.last_seen_ms);
        self.entries
            .back()
            .is_none_or(|&newest| now - newest >= window_ms.max(1))
    }

    /// The latest time this log has seen (ms).
    pub fn last_seen(&self) -> u64 {
        self.last_seen_ms
    }

    /// Absolute time (ms) at which the oldest entry leaves the window of the policy last
    /// checked, i.e. when a unit is next freed. `None` when empty or not yet checked since
    /// [`restore`](Self::restore).
    pub fn next_expiry(&self) -> Option<u64> {
        let window = self.window_ms?;
        self.entries.front().map(|&t| t.saturating_add(window))
    }

    /// Absolute time (ms) at which the newest entry leaves the window of the policy last
    /// checked: from then on [`is_idle`](Self::is_idle) holds. A good time for the Durable
    /// Object's clean-up alarm (one alarm per idle period rather than one per entry).
    pub fn idle_at(&self) -> Option<u64> {
        let window = self.window_ms?;
        self.entries.back().map(|&t| t.saturating_add(window))
    }

    /// Time (ms) of the newest accepted entry: after an accepting [`check`](Self::check), the
    /// time it recorded (the clock-clamped one, which may be later than the `now_ms` passed).
    /// This is what the Durable Object appends to storage.
    pub fn newest(&self) -> Option<u64> {
        self.entries.back().copied()
    }

    /// Number of stored entries (including any not yet pruned).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops entries that have left the window `(now - window, now]`.
    fn prune(&mut self, window: u64, now: u64) {
        while let Some(&oldest) = self.entries.front() {
            if now - oldest >= window {
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    /// Milliseconds until `asked` units fit: the `(count + asked - limit)`-th oldest entry must
    /// expire. A request larger than the whole limit can never fit; it is told to wait a
    /// full window so a misbehaving client backs off rather than hammering.
    fn retry_after_ms(&self, limit: u32, asked: u64, window: u64, now: u64) -> u64 {
        if asked > u64::from(limit) {
            return window;
        }
        let must_expire = (self.entries.len() as u64 + asked).saturating_sub(u64::from(limit));
        let index = usize::try_from(must_expire.saturating_sub(1)).unwrap_or(usize::MAX);
        self.entries
            .get(index)
            .map_or(window, |&t| expires_in(t, window, now))
    }
}

/// What to do when the limiter itself cannot be reached (Durable Object error or timeout).
///
/// The default is `Closed`: limits protect every service behind the gateway, and `/health`
/// fans out to all of them, so a limiter outage must not become an unlimited amplifier
/// exactly when the platform is already degraded. Operators who prefer availability opt in
/// to `Open`. Either way the caller logs the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    Open,
    #[default]
    Closed,
}

impl FailureMode {
    /// Parses `"open"` / `"closed"` (case-insensitive, surrounding whitespace ignored).
    /// Anything else is `None`, so the caller can log the bad value before defaulting.
    pub fn parse(value: &str) -> Option<FailureMode> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("open") {
            Some(FailureMode::Open)
        } else if value.eq_ignore_ascii_case("closed") {
            Some(FailureMode::Closed)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::Open => "open",
            FailureMode::Closed => "closed",
        }
    }
}

/// A malformed rate-limit configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid rate-limit config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn new(reason: impl Into<String>) -> ConfigError {
        ConfigError(reason.into())
    }
}

/// Rate-limit policies: a default plus overrides per route (service name) and per role.
///
/// Precedence in [`policy_for`](Self::policy_for): **role beats route beats default**. A role
/// says who the caller is (admins, paid tiers) and should hold on every route; a route
/// override tunes one service for ordinary callers.
///
/// JSON form (every part optional; unknown fields are rejected so a typo is not silently
/// ignored; an override's missing `limit`/`windowSecs` is inherited from the default):
/// ```json
/// { "default": {"limit": 100, "windowSecs": 60},
///   "routes": {"db": {"limit": 50}},
///   "roles": {"admin": {"limit": 1000, "windowSecs": 60, "name": "admin"}} }
/// ```
/// Policy names default to `default`, `route.{service}` and `role.{role}`; an explicit `name`
/// must be 1–64 of `[A-Za-z0-9_.-]` and unique, since the name keys the counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitConfig {
    pub default: Policy,
    pub routes: BTreeMap<String, Policy>,
    pub roles: BTreeMap<String, Policy>,
    /// Tenant traffic (user workers, custom domains to them, waitlist pages).
    pub tenant: TenantLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigWire {
    #[serde(default)]
    default: Option<PolicyWire>,
    #[serde(default)]
    routes: BTreeMap<String, PolicyWire>,
    #[serde(default)]
    roles: BTreeMap<String, PolicyWire>,
    #[serde(default)]
    tenant: Option<TenantWire>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TenantWire {
    #[serde(default)]
    default: Option<TenantSpec>,
    #[serde(default)]
    namespaces: BTreeMap<String, TenantSpec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyWire {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    window_secs: Option<u64>,
}

impl LimitConfig {
    /// Parses the JSON config described on [`LimitConfig`]. Blank input means the defaults.
    pub fn from_json(json: &str) -> Result<LimitConfig, ConfigError> {
        if json.trim().is_empty() {
            return Ok(LimitConfig::default());
        }
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| ConfigError(e.to_string()))?;
        // serde would also accept a JSON array for a struct; only an object is a config.
        if !value.is_object() {
            return Err(ConfigError("expected a JSON object".to_owned()));
        }
        if value.get("tenant").is_some_and(|t| !t.is_object()) {
            return Err(ConfigError("\"tenant\" must be a JSON object".to_owned()));
        }
        let wire: ConfigWire =
            serde_json::from_value(value).map_err(|e| ConfigError(e.to_string()))?;
        let base = Policy::default_policy();
        let default = build_policy(
            wire.default.unwrap_or_default(),
            "default".to_owned(),
            &base,
        )?;
        let mut names = BTreeSet::from([default.name.clone()]);
        let mut section = |entries: BTreeMap<String, PolicyWire>, prefix: &str| {
            let mut out = BTreeMap::new();
            for (key, spec) in entries {
                if key.is_empty() || !key.bytes().all(is_name_byte) {
                    return Err(ConfigError(format!("bad {prefix} key {key:?}")));
                }
                let policy = build_policy(spec, format!("{prefix}.{key}"), &default)?;
                if !names.insert(policy.name.clone()) {
                    return Err(ConfigError(format!(
                        "duplicate policy name {:?}",
                        policy.name
                    )));
                }
                out.insert(key, policy);
            }
            Ok(out)
        };
        let routes = section(wire.routes, "route")?;
        let roles = section(wire.roles, "role")?;
        let tenant = TenantLimits::from_wire(wire.tenant.unwrap_or_default())?;
        Ok(LimitConfig {
            default,
            routes,
            roles,
            tenant,
        })
    }

    /// The policy for a request to `service` (registry name, if routed to one) by a caller
    /// with `role` (if identified): role override, else route override, else default.
    pub fn policy_for(&self, service: Option<&str>, role: Option<&str>) -> Policy {
        role.and_then(|r| self.roles.get(r))
            .or_else(|| service.and_then(|s| self.routes.get(s)))
            .unwrap_or(&self.default)
            .clone()
    }
}

fn build_policy(
    spec: PolicyWire,
    default_name: String,
    base: &Policy,
) -> Result<Policy, ConfigError> {
    let name = spec.name.unwrap_or(default_name);
    if name.is_empty() || name.len() > 64 || !name.bytes().all(is_name_byte) {
        return Err(ConfigError(format!("bad policy name {name:?}")));
    }
    let limit = spec.limit.unwrap_or(base.limit);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ConfigError(format!(
            "{name}: limit must be 1..={MAX_LIMIT}"
        )));
    }
    let window_ms = match spec.window_secs {
        Some(secs) if secs == 0 || secs > MAX_WINDOW_SECS => {
            return Err(ConfigError(format!(
                "{name}: windowSecs must be 1..={MAX_WINDOW_SECS}"
            )))
        }
        Some(secs) => secs * 1000,
        None => base.window_ms,
    };
    Ok(Policy {
        name,
        limit,
        window_ms,
    })
}

/// How a tenant policy is enforced.
///
/// - `exact`: the limiter shards (the platform's own exact sliding log), one round trip.
/// - `approximate`: the Workers Rate Limiting binding `TENANT_RATE_LIMITER` (counters kept
///   per Cloudflare location, eventually consistent; its limit and 10 s / 60 s period are
///   set on the binding in `wrangler.jsonc`, not here). No round trip to an object.
/// - `off`: not limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Exact,
    Approximate,
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Exact => "exact",
            Mode::Approximate => "approximate",
            Mode::Off => "off",
        }
    }
}

/// The binding that serves `approximate` tenant policies.
pub const APPROXIMATE_BINDING: &str = "TENANT_RATE_LIMITER";
/// The built-in tenant quota: 1 000 requests per 60 s per client address and tenant, so a
/// visitor loading a busy page (HTML, scripts, images: dozens of requests) is never throttled
/// while a single address hammering one tenant still is.
pub const DEFAULT_TENANT_LIMIT: u32 = 1_000;
pub const DEFAULT_TENANT_WINDOW_SECS: u64 = 60;

/// A tenant policy: its mode and, for `exact`, the quota (for `approximate` the quota lives
/// on the binding; `policy` then only names the counter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    pub mode: Mode,
    pub policy: Policy,
}

impl TenantPolicy {
    /// The built-in default: `approximate` (see README, "Rate limiting": tenant pages are many
    /// per visit and cheap for the platform; the binding costs no round trip in production).
    pub fn builtin() -> TenantPolicy {
        TenantPolicy {
            mode: Mode::Approximate,
            policy: Policy {
                name: "tenant".to_owned(),
                limit: DEFAULT_TENANT_LIMIT,
                window_ms: DEFAULT_TENANT_WINDOW_SECS * 1000,
            },
        }
    }

    /// Builds an override from its JSON form, inheriting what it leaves out from `base`.
    pub fn from_spec(
        spec: &TenantSpec,
        name: String,
        base: &TenantPolicy,
    ) -> Result<TenantPolicy, ConfigError> {
        let mode = spec.mode.unwrap_or(base.mode);
        if mode != Mode::Exact && (spec.limit.is_some() || spec.window_secs.is_some()) {
            return Err(ConfigError(format!(
                "{name}: limit and windowSecs apply to mode \"exact\" only (an approximate limit is set on the {APPROXIMATE_BINDING} binding)"
            )));
        }
        let policy = build_policy(
            PolicyWire {
                name: None,
                limit: spec.limit,
                window_secs: spec.window_secs,
            },
            name,
            &base.policy,
        )?;
        Ok(TenantPolicy { mode, policy })
    }
}

/// A tenant policy as written: in `RATE_LIMITS.tenant` and as a domain route's `rateLimit`.
/// Every field is optional and inherited (route → namespace → tenant default → built-in).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TenantSpec {
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub window_secs: Option<u64>,
}

/// Tenant policies: a default and per-namespace overrides (a domain route's own `rateLimit`
/// beats both; see [`LimitConfig::tenant_policy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantLimits {
    pub default: TenantPolicy,
    pub namespaces: BTreeMap<String, TenantPolicy>,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            default: TenantPolicy::builtin(),
            namespaces: BTreeMap::new(),
        }
    }
}

impl TenantLimits {
    fn from_wire(wire: TenantWire) -> Result<TenantLimits, ConfigError> {
        let builtin = TenantPolicy::builtin();
        let default = match wire.default {
            Some(spec) => TenantPolicy::from_spec(&spec, "tenant".to_owned(), &builtin)?,
            None => builtin,
        };
        let mut namespaces = BTreeMap::new();
        for (ns, spec) in wire.namespaces {
            if !matches!(ns.as_str(), "production" | "staging" | "development") {
                return Err(ConfigError(format!(
                    "tenant namespace {ns:?} is not production, staging or development"
                )));
            }
            let policy = TenantPolicy::from_spec(&spec, format!("tenant.{ns}"), &default)?;
            namespaces.insert(ns, policy);
        }
        Ok(TenantLimits {
            default,
            namespaces,
        })
    }
}

impl LimitConfig {
    /// The policy for tenant traffic: the domain route's own (already resolved against the
    /// namespace when the table was built is not possible, so it is resolved here), else the
    /// namespace's, else the tenant default. `namespace` is `None` for waitlist pages.
    pub fn tenant_policy(
        &self,
        namespace: Option<&str>,
        route: Option<&TenantSpec>,
    ) -> Result<TenantPolicy, ConfigError> {
        let base = namespace
            .and_then(|ns| self.tenant.namespaces.get(ns))
            .unwrap_or(&self.tenant.default);
        match route {
            None => Ok(base.clone()),
            Some(spec) => TenantPolicy::from_spec(spec, "tenant.route".to_owned(), base),
        }
    }
}

/// The limit key of tenant traffic: `t:{tenant}:{address}:{policy}`, with the address
/// bucketed as in [`limit_key`] (`anon` when there is none). `tenant` is `{namespace}/{worker}`,
/// so two tenants never share a counter, or `waitlist` (one counter per address for every
/// waitlist page: its domain is whatever Host the caller sends).
pub fn tenant_key(tenant: &str, ip: Option<&str>, policy: &Policy) -> String {
    let address = ip
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
        .map_or_else(|| "anon".to_owned(), ip_bucket);
    format!("t:{tenant}:{address}:{}", policy.name)
}

/// Policy names go into header strings and limit keys: keep them to a safe token alphabet
/// (no `:` so a key's parts cannot run into each other).
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// The `routes` key of a [`LimitConfig`] that applies to `route`: the service name for a
/// service route (path, subdomain or domain route alike), `rpc`, `health`, `waitlist`, and
/// `worker.{name}` for a user worker (prefixed so a user worker can never pick up a service's
/// override). Unrouted requests (404, routes unavailable) have none and get the default.
pub fn route_key(route: &Route) -> Option<String> {
    match route {
        Route::Service { service, .. } => Some(service.clone()),
        Route::Rpc => Some("rpc".to_owned()),
        Route::Health => Some("health".to_owned()),
        Route::OpenApi => Some("openapi".to_owned()),
        Route::Waitlist { .. } => Some("waitlist".to_owned()),
        Route::UserWorker { worker, .. } => Some(format!("worker.{worker}")),
        Route::NotFound | Route::RoutesUnavailable => None,
    }
}

/// The Durable Object name for a caller under a policy: `user:{id}:{policy}` when
/// authenticated, else `ip:{ip}:{policy}`, else `anon:{policy}` (no usable IP; all such
/// callers share one counter, which errs on the side of limiting).
///
/// The IP is canonicalised: IPv4-mapped IPv6 becomes IPv4, and other IPv6 addresses are keyed
/// by their /64 prefix (`ip:2001:db8:1:2::/64:default`), because one subscriber typically holds
/// a whole /64 and could otherwise rotate addresses to get fresh quota. An IP that does not
/// parse counts as no IP.
pub fn limit_key(user_id: Option<&str>, ip: Option<&str>, policy: &Policy) -> String {
    if let Some(id) = user_id.filter(|id| !id.is_empty()) {
        return format!("user:{id}:{}", policy.name);
    }
    match ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) {
        Some(ip) => format!("ip:{}:{}", ip_bucket(ip), policy.name),
        None => format!("anon:{}", policy.name),
    }
}

fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

/// Milliseconds until an entry accepted at `t` leaves the window (`t <= now` always holds).
fn expires_in(t: u64, window: u64, now: u64) -> u64 {
    t.saturating_add(window).saturating_sub(now)
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// An RFC 8941 sf-string: quoted, with `"` and `\` escaped; bytes outside printable ASCII
/// are not representable and become `_` (names are validated, this is belt and braces).
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A `"default"` policy of `limit` per `window_ms` (shared with the shard's tests).
    pub(crate) fn policy(limit: u32, window_ms: u64) -> Policy {
        Policy {
            name: "default".into(),
            limit,
            window_ms,
        }
    }

    #[test]
    fn header_policy_rounds_window_up() {
        assert_eq!(
            policy(100, 60_000).header_policy(),
            "\"default\";q=100;w=60"
        );
        assert_eq!(policy(5, 1_500).header_policy(), "\"default\";q=5;w=2");
        assert_eq!(policy(5, 1).header_policy(), "\"default\";q=5;w=1");
    }

    #[test]
    fn wire_round_trips_and_refuses_anything_else() {
        let p = policy(2, 60_000);
        let mut log = SlidingLog::new();
        let accepted = log.check(&p, 1_000, 1);
        log.check(&p, 1_001, 1);
        let rejected = log.check(&p, 1_002, 1);
        assert!(!rejected.allowed && rejected.retry_after_secs.is_some());
        for d in [&accepted, &rejected] {
            assert_eq!(Decision::from_wire(&d.to_wire()).as_ref(), Some(d));
        }
        assert_eq!(accepted.to_wire(), "1;2;1;60");
        assert_eq!(rejected.to_wire(), "0;2;0;60;60");
        for bad in [
            "",
            "1",
            "1;2;1",
            "2;2;1;60",
            "1;2;3;60",
            "1;2;1;60;5;6",
            "1;-2;1;60",
            "1; 2;1;60",
            "1;2;1;+60",
            "1;2;1;60;",
            "true;2;1;60",
            "1;4294967296;1;60",
        ] {
            assert_eq!(Decision::from_wire(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn headers_on_accept_and_reject() {
        let p = policy(2, 60_000);
        let mut log = SlidingLog::new();
        let d = log.check(&p, 1_000, 1);
        assert_eq!(
            d.headers(&p),
            vec![
                ("RateLimit-Policy", "\"default\";q=2;w=60".to_owned()),
                ("RateLimit", "\"default\";r=1;t=60".to_owned()),
                ("X-RateLimit-Limit", "2".to_owned()),
                ("X-RateLimit-Remaining", "1".to_owned()),
                ("X-RateLimit-Reset", "60".to_owned()),
            ]
        );
        assert!(log.check(&p, 5_000, 1).allowed);
        let d = log.check(&p, 17_500, 1);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        // Oldest (t=1000) leaves at 61000: 43.5 s away, rounded up.
        assert_eq!(d.reset_secs, 44);
        assert_eq!(d.retry_after_secs, Some(44));
        let h = d.headers(&p);
        assert_eq!(h[1], ("RateLimit", "\"default\";r=0;t=44".to_owned()));
        assert_eq!(h.last(), Some(&("Retry-After", "44".to_owned())));
        assert_eq!(h.len(), 6);
    }

    #[test]
    fn empty_log_has_zero_reset() {
        let p = policy(3, 10_000);
        let d = SlidingLog::new().check(&p, 0, 0);
        assert_eq!(
            d,
            Decision {
                allowed: true,
                limit: 3,
                remaining: 3,
                reset_secs: 0,
                retry_after_secs: None
            }
        );
    }

    #[test]
    fn policy_name_is_escaped() {
        let p = Policy {
            name: "a\"b\\c\n".into(),
            limit: 1,
            window_ms: 1000,
        };
        assert_eq!(p.header_policy(), "\"a\\\"b\\\\c_\";q=1;w=1");
    }

    #[test]
    fn decision_json_round_trip() {
        let d = Decision {
            allowed: false,
            limit: 100,
            remaining: 0,
            reset_secs: 17,
            retry_after_secs: Some(17),
        };
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"allowed":false,"limit":100,"remaining":0,"resetSecs":17,"retryAfterSecs":17}"#
        );
        assert_eq!(serde_json::from_str::<Decision>(&json).unwrap(), d);
        let p = policy(100, 60_000);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"name":"default","limit":100,"windowMs":60000}"#);
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
    }

    #[test]
    fn entry_expires_exactly_at_window_end() {
        let p = policy(1, 1_000);
        let mut log = SlidingLog::new();
        assert!(log.check(&p, 0, 1).allowed);
        let d = log.check(&p, 999, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, Some(1));
        assert!(log.check(&p, 1_000, 1).allowed);
    }

    #[test]
    fn clock_going_backwards_grants_nothing() {
        let p = policy(2, 10_000);
        let mut log = SlidingLog::new();
        assert!(log.check(&p, 50_000, 1).allowed);
        assert!(log.check(&p, 50_000, 1).allowed);
        // Far in the past: must not panic, must not see the entries as expired.
        let d = log.check(&p, 0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, Some(10));
        assert!(!log.check(&p, 59_999, 1).allowed);
        assert!(log.check(&p, 60_000, 1).allowed);
    }

    #[test]
    fn lowered_limit_is_enforced_and_raising_it_again_frees_nothing() {
        let mut log = SlidingLog::new();
        let wide = policy(10, 10_000);
        for t in 0..10 {
            assert!(log.check(&wide, t * 100, 1).allowed);
        }
        let narrow = policy(3, 10_000);
        let d = log.check(&narrow, 1_000, 1);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        // Eight must leave before one fits under 3; the eighth oldest (700) frees at 10_700.
        assert_eq!(d.retry_after_secs, Some(10));
        // Entries above the lowered limit were kept, so restoring the limit grants nothing.
        assert!(!log.check(&wide, 1_000, 1).allowed);
        assert!(!log.check(&narrow, 10_699, 1).allowed);
        assert!(log.check(&narrow, 10_700, 1).allowed);
    }

    #[test]
    fn cost_larger_than_limit_is_rejected_with_full_window() {
        let p = policy(3, 30_000);
        let mut log = SlidingLog::new();
        let d = log.check(&p, 0, 4);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 3);
        assert_eq!(d.retry_after_secs, Some(30));
        assert!(log.is_empty());
    }

    #[test]
    fn multi_unit_cost_waits_for_enough_expiries() {
        let p = policy(3, 10_000);
        let mut log = SlidingLog::new();
        assert!(log.check(&p, 0, 1).allowed);
        assert!(log.check(&p, 2_000, 1).allowed);
        assert!(log.check(&p, 4_000, 1).allowed);
        let d = log.check(&p, 5_000, 2);
        assert!(!d.allowed);
        // Two must leave: the second oldest (2000) expires at 12000.
        assert_eq!(d.retry_after_secs, Some(7));
        assert_eq!(d.reset_secs, 5);
        assert!(!log.check(&p, 11_999, 2).allowed);
        let d = log.check(&p, 12_000, 2);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn zero_limit_rejects_everything() {
        let p = policy(0, 1_000);
        let mut log = SlidingLog::new();
        let d = log.check(&p, 5, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, Some(1));
        assert!(!log.check(&p, 5, 0).allowed);
    }

    #[test]
    fn peek_reports_without_consuming() {
        let p = policy(1, 1_000);
        let mut log = SlidingLog::new();
        assert!(log.check(&p, 0, 0).allowed);
        assert!(log.is_empty());
        assert!(log.check(&p, 0, 1).allowed);
        let d = log.check(&p, 10, 0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, Some(1));
    }

    #[test]
    fn idle_and_expiry_times() {
        let p = policy(5, 1_000);
        let mut log = SlidingLog::new();
        assert!(log.is_idle(&p, 0));
        assert_eq!(log.next_expiry(), None);
        log.check(&p, 100, 1);
        log.check(&p, 300, 1);
        assert_eq!(log.next_expiry(), Some(1_100));
        assert_eq!(log.idle_at(), Some(1_300));
        assert!(!log.is_idle(&p, 1_299));
        assert!(log.is_idle(&p, 1_300));
        // A clock behind the newest entry does not make the log look idle.
        assert!(!log.is_idle(&p, 0));
    }

    #[test]
    fn restore_sorts_and_drops_nothing() {
        let log = SlidingLog::restore(vec![300, 100, 200]);
        assert_eq!(log.snapshot(), vec![100, 200, 300]);
        assert_eq!(log.next_expiry(), None, "window unknown until checked");
        // A restored future timestamp pins the clock rather than being ignored.
        let mut log = SlidingLog::restore(vec![10_000]);
        assert!(!log.check(&policy(1, 1_000), 0, 1).allowed);
    }

    #[test]
    fn large_times_do_not_overflow() {
        let p = policy(1, u64::MAX);
        let mut log = SlidingLog::new();
        assert!(log.check(&p, u64::MAX - 1, 1).allowed);
        let d = log.check(&p, u64::MAX, 1);
        assert!(!d.allowed);
        assert_eq!(log.next_expiry(), Some(u64::MAX));
    }

    #[test]
    fn zero_window_acts_as_one_ms() {
        let p = policy(1, 0);
        let mut log = SlidingLog::new();
        assert!(log.check(&p, 7, 1).allowed);
        assert!(!log.check(&p, 7, 1).allowed);
        assert!(log.check(&p, 8, 1).allowed);
    }

    #[test]
    fn failure_mode_parsing() {
        assert_eq!(FailureMode::parse("open"), Some(FailureMode::Open));
        assert_eq!(FailureMode::parse(" Closed "), Some(FailureMode::Closed));
        assert_eq!(FailureMode::parse("maybe"), None);
        assert_eq!(FailureMode::default(), FailureMode::Closed);
        assert_eq!(FailureMode::Open.as_str(), "open");
    }

    #[test]
    fn tenant_policies_default_override_and_refuse_bad_input() {
        let config = LimitConfig::default();
        let builtin = config.tenant_policy(Some("production"), None).unwrap();
        assert_eq!(builtin.mode, Mode::Approximate);
        assert_eq!(
            (builtin.policy.limit, builtin.policy.window_ms),
            (1_000, 60_000)
        );
        assert_eq!(builtin.policy.name, "tenant");

        let config = LimitConfig::from_json(
            r#"{"tenant": {"default": {"mode": "exact", "limit": 300},
                           "namespaces": {"staging": {"limit": 20, "windowSecs": 10},
                                          "development": {"mode": "off"}}}}"#,
        )
        .unwrap();
        let prod = config.tenant_policy(Some("production"), None).unwrap();
        assert_eq!(
            (prod.mode, prod.policy.limit, prod.policy.window_ms),
            (Mode::Exact, 300, 60_000)
        );
        let staging = config.tenant_policy(Some("staging"), None).unwrap();
        assert_eq!(
            (staging.mode, staging.policy.limit, staging.policy.window_ms),
            (Mode::Exact, 20, 10_000)
        );
        assert_eq!(staging.policy.name, "tenant.staging");
        assert_eq!(
            config
                .tenant_policy(Some("development"), None)
                .unwrap()
                .mode,
            Mode::Off
        );
        // Waitlist pages have no namespace: the tenant default.
        assert_eq!(config.tenant_policy(None, None).unwrap(), prod);
        // A route's own limit beats the namespace, inheriting what it leaves out.
        let route = TenantSpec {
            mode: Some(Mode::Exact),
            limit: Some(2),
            window_secs: None,
        };
        let own = config.tenant_policy(Some("staging"), Some(&route)).unwrap();
        assert_eq!(
            (
                own.policy.limit,
                own.policy.window_ms,
                own.policy.name.as_str()
            ),
            (2, 10_000, "tenant.route")
        );
        // The platform policies are untouched by the tenant section.
        assert_eq!(config.default, Policy::default_policy());

        for bad in [
            r#"{"tenant": {"default": {"mode": "approximate", "limit": 5}}}"#,
            r#"{"tenant": {"default": {"mode": "sideways"}}}"#,
            r#"{"tenant": {"namespaces": {"prod": {"mode": "off"}}}}"#,
            r#"{"tenant": {"default": {"mode": "exact", "limit": 0}}}"#,
            r#"{"tenant": {"default": {"mode": "exact", "windowSecs": 86401}}}"#,
            r#"{"tenant": {"default": {"mode": "exact"}, "extra": 1}}"#,
            r#"{"tenant": []}"#,
        ] {
            assert!(LimitConfig::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_keys_separate_tenants_and_bucket_addresses() {
        let p = TenantPolicy::builtin().policy;
        assert_eq!(
            tenant_key("production/myapp", Some("192.0.2.1"), &p),
            "t:production/myapp:192.0.2.1:tenant"
        );
        assert_eq!(
            tenant_key("waitlist/example.com", Some("2001:db8:1:2:3:4:5:6"), &p),
            "t:waitlist/example.com:2001:db8:1:2::/64:tenant"
        );
        assert_eq!(tenant_key("staging/x", None, &p), "t:staging/x:anon:tenant");
        assert_ne!(
            tenant_key("production/a", Some("192.0.2.1"), &p),
            tenant_key("production/b", Some("192.0.2.1"), &p)
        );
    }

    #[test]
    fn config_defaults_and_overrides() {
        assert_eq!(LimitConfig::from_json("").unwrap(), LimitConfig::default());
        assert_eq!(
            LimitConfig::from_json("{}").unwrap(),
            LimitConfig::default()
        );
        let cfg = LimitConfig::from_json(
            r#"{"default": {"limit": 200, "windowSecs": 30},
                "routes": {"db": {"limit": 50}, "ai": {"windowSecs": 3600, "name": "ai-hourly"}},
                "roles": {"admin": {"limit": 1000}}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.default,
            Policy {
                name: "default".into(),
                limit: 200,
                window_ms: 30_000
            }
        );
        assert_eq!(
            cfg.policy_for(Some("db"), None),
            Policy {
                name: "route.db".into(),
                limit: 50,
                window_ms: 30_000
            }
        );
        assert_eq!(
            cfg.policy_for(Some("ai"), Some("user")),
            Policy {
                name: "ai-hourly".into(),
                limit: 200,
                window_ms: 3_600_000
            }
        );
        // Role beats route.
        assert_eq!(
            cfg.policy_for(Some("db"), Some("admin")),
            Policy {
                name: "role.admin".into(),
                limit: 1000,
                window_ms: 30_000
            }
        );
        assert_eq!(cfg.policy_for(Some("email"), None), cfg.default);
        assert_eq!(cfg.policy_for(None, None), cfg.default);
    }

    #[test]
    fn config_rejects_bad_input() {
        for bad in [
            "nope",
            "[]",
            r#"{"default": {"limit": 0}}"#,
            r#"{"default": {"limit": 100001}}"#,
            r#"{"default": {"windowSecs": 0}}"#,
            r#"{"default": {"windowSecs": 86401}}"#,
            r#"{"default": {"limit": -1}}"#,
            r#"{"default": {"windowSec": 60}}"#,
            r#"{"route": {}}"#,
            r#"{"routes": {"db": {"name": "bad name"}}}"#,
            r#"{"routes": {"db": {"name": "a:b"}}}"#,
            r#"{"routes": {"db": {"name": "default"}}}"#,
            r#"{"routes": {"db": {}}, "roles": {"x": {"name": "route.db"}}}"#,
            r#"{"roles": {"": {}}}"#,
        ] {
            assert!(LimitConfig::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limit_keys() {
        let p = Policy::default_policy();
        assert_eq!(
            limit_key(Some("01J"), Some("1.2.3.4"), &p),
            "user:01J:default"
        );
        assert_eq!(
            limit_key(Some(""), Some("1.2.3.4"), &p),
            "ip:1.2.3.4:default"
        );
        assert_eq!(limit_key(None, Some("1.2.3.4"), &p), "ip:1.2.3.4:default");
        assert_eq!(
            limit_key(None, Some("::ffff:1.2.3.4"), &p),
            "ip:1.2.3.4:default"
        );
        assert_eq!(
            limit_key(None, Some("2001:db8:1:2:3:4:5:6"), &p),
            "ip:2001:db8:1:2::/64:default"
        );
        assert_eq!(
            limit_key(None, Some("2001:DB8:1:2::ff"), &p),
            limit_key(None, Some("2001:db8:1:2:aaaa::1"), &p)
        );
        assert_eq!(limit_key(None, Some("not-an-ip"), &p), "anon:default");
        assert_eq!(limit_key(None, None, &p), "anon:default");
    }

    #[test]
    fn newest_is_the_recorded_time() {
        let p = policy(3, 1_000);
        let mut log = SlidingLog::new();
        assert_eq!(log.newest(), None);
        log.check(&p, 500, 1);
        assert_eq!(log.newest(), Some(500));
        // The clock stepped back: the entry is recorded at the clamped time, and that is
        // what must be persisted so a restored log expires it no earlier.
        log.check(&p, 100, 1);
        assert_eq!(log.newest(), Some(500));
        log.check(&p, 700, 1);
        assert_eq!(log.newest(), Some(700));
        // A rejection records nothing.
        log.check(&p, 800, 1);
        assert_eq!(log.newest(), Some(700));
        let restored = SlidingLog::restore(log.snapshot());
        assert_eq!(restored.newest(), Some(700));
    }

    #[test]
    fn policy_query_round_trip() {
        let p = Policy {
            name: "route.worker.my-app_2".into(),
            limit: 5,
            window_ms: 2_000,
        };
        assert_eq!(
            p.to_query(),
            "name=route.worker.my-app_2&limit=5&windowMs=2000"
        );
        assert_eq!(Policy::from_query(&p.to_query()), Ok(p));
        let d = Policy::default_policy();
        assert_eq!(Policy::from_query(&d.to_query()), Ok(d));
        // Order does not matter; bounds are inclusive.
        assert_eq!(
            Policy::from_query("windowMs=86400000&limit=100000&name=x"),
            Ok(Policy {
                name: "x".into(),
                limit: 100_000,
                window_ms: 86_400_000
            })
        );
        // It is a form: escapes decode before validation.
        assert_eq!(
            Policy::from_query("na%6De=x&limit=1%30&windowMs=1"),
            Ok(Policy {
                name: "x".into(),
                limit: 10,
                window_ms: 1
            })
        );
    }

    #[test]
    fn policy_query_rejects_bad_input() {
        for bad in [
            "",
            "name=a&limit=1",
            "name=a&windowMs=1",
            "limit=1&windowMs=1",
            "name=&limit=1&windowMs=1",
            "name=a b&limit=1&windowMs=1",
            "name=a%3Ab&limit=1&windowMs=1",
            "name=a:b&limit=1&windowMs=1",
            "name=a&limit=0&windowMs=1",
            "name=a&limit=100001&windowMs=1",
            "name=a&limit=-1&windowMs=1",
            "name=a&limit=1.5&windowMs=1",
            "name=a&limit=1&windowMs=0",
            "name=a&limit=1&windowMs=86400001",
            "name=a&limit=1&windowMs=99999999999999999999999",
            "name=a&limit=1&windowMs=1&cost=2",
            "name=a&name=b&limit=1&windowMs=1",
            "name=a&limit=1&windowMs",
        ] {
            assert!(Policy::from_query(bad).is_err(), "{bad}");
        }
        let long = format!("name={}&limit=1&windowMs=1", "a".repeat(65));
        assert!(Policy::from_query(&long).is_err());
    }

    #[test]
    fn route_keys_for_every_kind_of_route() {
        use crate::host::normalize_host;
        use crate::router::{route, RouterConfig};
        use crate::routes::DomainRoutes;
        let table = match DomainRoutes::parse(
            br#"[{"domain": "shop.example.com", "worker": "shop", "namespace": "production"},
                 {"domain": "*.myapp.do", "service": "myapp", "binding": "MYAPP_SERVICE"}]"#,
        ) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let cfg = RouterConfig::from_vars(None, None);
        let key = |host: &str, path: &str| {
            let host = match normalize_host(host) {
                Ok(h) => h,
                Err(e) => panic!("{host}: {e:?}"),
            };
            route_key(&route(&host, path, &cfg, Some(&table)))
        };
        assert_eq!(key("api.do", "/api/db/notes/1"), Some("db".into()));
        assert_eq!(key("db.apis.do", "/notes/1"), Some("db".into()));
        assert_eq!(key("api.do", "/rpc"), Some("rpc".into()));
        assert_eq!(key("api.do", "/health"), Some("health".into()));
        assert_eq!(key("api.do", "/nope"), None);
        assert_eq!(key("a.myapp.do", "/x"), Some("myapp".into()));
        assert_eq!(key("shop.example.com", "/"), Some("worker.shop".into()));
        assert_eq!(key("myapp.do", "/"), Some("worker.myapp".into()));
        assert_eq!(key("nobody.example.org", "/"), Some("waitlist".into()));
        assert_eq!(key("api.do", "/api/waitlist/x"), Some("waitlist".into()));
        // Every key is usable as a config key, so each route can be given its own policy.
        let cfg = LimitConfig::from_json(
            r#"{"routes": {"worker.shop": {"limit": 7}, "health": {"limit": 3}}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.policy_for(key("shop.example.com", "/").as_deref(), None)
                .limit,
            7
        );
        assert_eq!(
            cfg.policy_for(key("api.do", "/health").as_deref(), None)
                .name,
            "route.health"
        );
    }

    /// A time step: mostly forward, sometimes backwards (a clock correction).
    fn step() -> impl Strategy<Value = (i64, u32)> {
        (
            prop_oneof![
                6 => 0i64..50,
                3 => 0i64..3_000,
                1 => -2_000i64..0,
            ],
            prop_oneof![8 => Just(1u32), 1 => Just(0u32), 1 => 2u32..5],
        )
    }

    /// Applies a signed step to a clock that cannot go below zero.
    fn advance(t: u64, dt: i64) -> u64 {
        t.saturating_add_signed(dt)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// (1) Never more than `limit` accepted in any window, even with the limit changing
        /// and the clock stepping back: each acceptance at (effective) time t under limit L
        /// sees at most L accepted units in (t - W, t], itself included.
        #[test]
        fn never_more_than_limit_in_any_window(
            window_ms in 1u64..5_000,
            limits in proptest::collection::vec(1u32..8, 1..4),
            steps in proptest::collection::vec(step(), 1..300),
        ) {
            let mut log = SlidingLog::new();
            let mut raw = 0u64;
            let mut effective = 0u64;
            let mut accepted: Vec<u64> = Vec::new();
            for (i, (dt, cost)) in steps.iter().enumerate() {
                let limit = limits[i * limits.len() / steps.len()];
                let p = policy(limit, window_ms);
                raw = advance(raw, *dt);
                effective = effective.max(raw);
                let d = log.check(&p, raw, *cost);
                prop_assert!(d.remaining <= limit);
                if d.allowed && *cost > 0 {
                    accepted.extend(std::iter::repeat_n(effective, *cost as usize));
                    let in_window = accepted
                        .iter()
                        .filter(|&&t| effective - t < window_ms)
                        .count();
                    prop_assert!(in_window <= limit as usize, "{in_window} > {limit}");
                    prop_assert_eq!(d.remaining as usize, limit as usize - in_window);
                }
                if !d.allowed {
                    let r = d.retry_after_secs.unwrap_or(0);
                    prop_assert!(r >= 1);
                }
            }
            // Brute force over every window start, with a single fixed limit in force.
            if limits.len() == 1 {
                let limit = limits[0] as usize;
                for &start in &accepted {
                    let n = accepted.iter().filter(|&&t| t >= start && t - start < window_ms).count();
                    prop_assert!(n <= limit);
                }
            }
        }

        /// (2a) Requests spaced at least ceil(window/limit) apart are never rejected.
        #[test]
        fn evenly_spaced_requests_all_pass(
            window_ms in 1u64..100_000,
            limit in 1u32..200,
            extra in 0u64..3,
            n in 1usize..500,
        ) {
            let p = policy(limit, window_ms);
            let spacing = window_ms.div_ceil(u64::from(limit)) + extra;
            let mut log = SlidingLog::new();
            for i in 0..n as u64 {
                prop_assert!(log.check(&p, 1_000 + i * spacing, 1).allowed, "request {}", i);
            }
        }

        /// (2b) Of a simultaneous burst of N > limit, exactly `limit` pass, and each
        /// rejection says to retry after the full window.
        #[test]
        fn burst_passes_exactly_limit(
            window_ms in 1u64..100_000,
            limit in 1u32..300,
            over in 1u32..300,
            at in 0u64..1_000_000_000,
        ) {
            let p = policy(limit, window_ms);
            let mut log = SlidingLog::new();
            let passed = (0..limit + over).filter(|_| log.check(&p, at, 1).allowed).count();
            prop_assert_eq!(passed, limit as usize);
            let d = log.check(&p, at, 1);
            prop_assert_eq!(d.retry_after_secs, Some(window_ms.div_ceil(1000)));
        }

        /// (3) A rejected request changes no state: the log equals the one a peek leaves,
        /// and `remaining` is unchanged.
        #[test]
        fn rejections_change_nothing(
            window_ms in 1u64..5_000,
            limit in 1u32..6,
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let p = policy(limit, window_ms);
            let mut log = SlidingLog::new();
            let mut t = 0u64;
            for (dt, cost) in steps {
                t = advance(t, dt);
                let mut peeked = log.clone();
                let before = peeked.check(&p, t, 0);
                let d = log.check(&p, t, cost);
                if !d.allowed {
                    prop_assert_eq!(&log, &peeked);
                    prop_assert_eq!(d.remaining, before.remaining);
                    prop_assert_eq!(d.reset_secs, before.reset_secs);
                }
            }
        }

        /// Snapshot + restore mid-stream yields the same decisions as never stopping. (The
        /// clock only moves forward here: a snapshot knows the newest accepted time, not the
        /// latest time seen, so a clock stepping back after a restore errs on the strict side.)
        #[test]
        fn snapshot_restore_round_trip(
            window_ms in 1u64..5_000,
            limit in 1u32..6,
            steps in proptest::collection::vec(step(), 2..200),
            cut in 0usize..200,
        ) {
            let p = policy(limit, window_ms);
            let cut = cut % steps.len();
            let mut a = SlidingLog::new();
            let mut b = SlidingLog::new();
            let mut t = 0u64;
            for (i, (dt, cost)) in steps.into_iter().enumerate() {
                let dt = dt.abs();
                if i == cut {
                    b = SlidingLog::restore(b.snapshot());
                    prop_assert_eq!(b.snapshot(), a.snapshot());
                }
                t = advance(t, dt);
                prop_assert_eq!(a.check(&p, t, cost), b.check(&p, t, cost));
            }
        }
    }
}
