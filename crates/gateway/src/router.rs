//! The routing order (CONTRACT "Hosts and routing") as one pure function: a normalised host
//! and a path in, the one place the request goes out. Service subdomains, API-host path
//! routes, domain routes, user workers, waitlist: first match wins.

use crate::access::{required_access, AccessLevel};
use crate::host::{normalize_host, Host, HostKind};
use crate::ratelimit::TenantSpec;
use crate::registry::{self, ServiceDef};
use crate::routes::{DomainRoute, DomainRoutes, Namespace, RouteTarget};

const DEFAULT_API_HOSTS: &[&str] = &["api.do", "localhost", "127.0.0.1"];
const DEFAULT_PLATFORM_ZONE: &str = "do";
const DEFAULT_SERVICES_ZONE: &str = "apis.do";

/// Labels in the platform zone that name namespaces, not workers: `dev.do` would otherwise
/// be a production worker sitting on top of the DEVELOPMENT namespace's hosts.
const NAMESPACE_LABELS: &[&str] = &["staging", "dev"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Normalised hosts on which path routes (`/api/*`, `/rpc`, `/health`, ...) apply.
    pub api_hosts: Vec<String>,
    /// User workers live at `{name}.{zone}`, `{name}.staging.{zone}`, `{name}.dev.{zone}`.
    pub platform_zone: String,
    /// Internal services live at `{name}.{services_zone}`.
    pub services_zone: String,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            api_hosts: DEFAULT_API_HOSTS.iter().map(|h| h.to_string()).collect(),
            platform_zone: DEFAULT_PLATFORM_ZONE.to_string(),
            services_zone: DEFAULT_SERVICES_ZONE.to_string(),
        }
    }
}

impl RouterConfig {
    /// From the `API_HOSTS` (comma separated) and `PLATFORM_ZONE` vars. Unset or blank means
    /// the default (wrangler turns an unset var into ""). Entries are normalised like a Host
    /// header, so `localhost:8787` and `API.DO` work; an entry that cannot be a host is
    /// dropped, since no request could ever match it.
    pub fn from_vars(api_hosts: Option<&str>, platform_zone: Option<&str>) -> RouterConfig {
        let mut cfg = RouterConfig::default();
        if let Some(list) = api_hosts.filter(|s| !s.trim().is_empty()) {
            cfg.api_hosts = list
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .filter_map(|h| normalize_host(h).ok())
                .map(|h| h.name)
                .collect();
        }
        if let Some(zone) = platform_zone.map(str::trim).filter(|s| !s.is_empty()) {
            if let Ok(zone) = normalize_host(zone) {
                if zone.kind == HostKind::Name {
                    cfg.platform_zone = zone.name;
                }
            }
        }
        cfg
    }

    fn is_api_host(&self, host: &str) -> bool {
        self.api_hosts.iter().any(|h| h == host)
    }
}

/// How a request was routed; logged as `strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    Subdomain,
    Path,
    Domain,
    Wfp,
    Waitlist,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Subdomain => "subdomain",
            Strategy::Path => "path",
            Strategy::Domain => "domain",
            Strategy::Wfp => "wfp",
            Strategy::Waitlist => "waitlist",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// An internal service (registry name), or a domain route's own service name.
    Service {
        service: String,
        /// The binding to reach it through; `None` for built-ins and unbound routes.
        binding: Option<String>,
        /// The path to send on; always starts with '/'.
        path: String,
        access: AccessLevel,
        strategy: Strategy,
    },
    /// `/rpc` on an API host (any method; the worker answers 405 for non-POST).
    Rpc,
    /// `/health` on an API host.
    Health,
    /// `/openapi.json` on an API host: the REST description (admin only).
    OpenApi,
    /// A user worker; the worker falls back to the waitlist when the namespace lacks it.
    UserWorker {
        namespace: Namespace,
        worker: String,
        access: AccessLevel,
        strategy: Strategy,
        /// The domain route's own tenant rate limit, if it set one.
        rate_limit: Option<TenantSpec>,
    },
    Waitlist {
        domain: String,
    },
    /// An API host with no matching route, or a path with a dot segment (404).
    NotFound,
    /// The host needs the domain-routes table and no good copy exists yet (503).
    RoutesUnavailable,
}

/// Whose quota a request spends: the platform's policies, or its tenant's (user workers and
/// waitlist pages). Who *answers* it (which decides CORS, HEAD and identification) is the
/// related `passthrough::Traffic`, where the waitlist is the platform's own answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficClass {
    /// The platform's own routes: path routes, service subdomains, domain routes to services.
    Platform,
    /// A tenant's site or app: user workers (by suffix or custom domain) and waitlist pages.
    Tenant,
}

impl TrafficClass {
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficClass::Platform => "platform",
            TrafficClass::Tenant => "tenant",
        }
    }
}

impl Route {
    pub fn traffic_class(&self) -> TrafficClass {
        match self {
            Route::UserWorker { .. } | Route::Waitlist { .. } => TrafficClass::Tenant,
            _ => TrafficClass::Platform,
        }
    }

    /// For the log line; `None` when nothing was routed.
    pub fn strategy(&self) -> Option<Strategy> {
        match self {
            Route::Service { strategy, .. } | Route::UserWorker { strategy, .. } => Some(*strategy),
            Route::Rpc | Route::Health | Route::OpenApi => Some(Strategy::Path),
            Route::Waitlist { .. } => Some(Strategy::Waitlist),
            Route::NotFound | Route::RoutesUnavailable => None,
        }
    }

    /// The service (or user worker) name, for the log line.
    pub fn target_name(&self) -> Option<&str> {
        match self {
            Route::Service { service, .. } => Some(service),
            Route::UserWorker { worker, .. } => Some(worker),
            Route::Rpc => Some("rpc"),
            Route::Health => Some("health"),
            Route::OpenApi => Some("openapi"),
            Route::Waitlist { .. } => Some("waitlist"),
            Route::NotFound | Route::RoutesUnavailable => None,
        }
    }
}

/// Where a request goes. `path` is the URL path without the query; it is passed on
/// literally (no percent-decoding), but a `.`/`..` segment in any spelling is refused
/// outright so nothing downstream can resolve `/api/db/../auth` into another service.
pub fn route(host: &Host, path: &str, cfg: &RouterConfig, table: Option<&DomainRoutes>) -> Route {
    let path = if path.is_empty() { "/" } else { path };
    if !path.starts_with('/') || has_dot_segment(path) {
        return Route::NotFound;
    }
    let name = host.name.as_str();
    let is_name = host.kind == HostKind::Name;

    // 1. {name}.apis.do
    if is_name {
        if let Some(def) = service_subdomain(name, cfg) {
            return service_route(def, path, Strategy::Subdomain);
        }
    }

    // 2. Path routes, API hosts only: they never shadow a user worker's own /api.
    let api_host = cfg.is_api_host(name);
    if api_host {
        if let Some(route) = path_route(path) {
            return route;
        }
    }

    // 3. Domain routes. Without a table we cannot know whether one would match, so neither
    //    a user worker nor the waitlist may answer in its place.
    let Some(table) = table else {
        return Route::RoutesUnavailable;
    };
    if let Some(entry) = table.lookup(name) {
        return domain_route(entry, path);
    }
    // API hosts are the platform's own: never dispatched, never a waitlist.
    if api_host {
        return Route::NotFound;
    }

    // 4. User workers in the platform zone.
    if is_name {
        if let Some(route) = platform_worker(name, cfg) {
            return route;
        }
    }

    // 5. Everything else, IP literals included.
    Route::Waitlist {
        domain: name.to_string(),
    }
}

/// The registry row for `{label}.{services_zone}`, aliases resolved.
fn service_subdomain(host: &str, cfg: &RouterConfig) -> Option<&'static ServiceDef> {
    let label = single_label_under(host, &cfg.services_zone)?;
    registry::service(registry::resolve_alias(label))
}

fn service_route(def: &ServiceDef, path: &str, strategy: Strategy) -> Route {
    Route::Service {
        service: def.name.to_string(),
        binding: def.binding.map(str::to_string),
        path: path.to_string(),
        access: def.access,
        strategy,
    }
}

/// `Some` when the path belongs to a path route (including a 404 inside `/api`), `None`
/// when the path is not the platform's and domain routes get their turn.
fn path_route(path: &str) -> Option<Route> {
    match path {
        "/rpc" => return Some(Route::Rpc),
        "/health" => return Some(Route::Health),
        "/openapi.json" => return Some(Route::OpenApi),
        _ => {}
    }
    if let Some(rest) = prefix_rest(path, "/api") {
        // rest is "/" or "/{service}[/{sub}]"
        let rest = &rest[1..];
        let (name, sub) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        return Some(match registry::service(registry::resolve_alias(name)) {
            Some(def) => service_route(def, sub, Strategy::Path),
            None => Route::NotFound,
        });
    }
    // Services the contract also mounts at the root of API hosts.
    for (prefix, service) in [
        ("/mcp", "mcp"),
        ("/waitlist", "waitlist"),
        ("/console", "console"),
    ] {
        if let Some(rest) = prefix_rest(path, prefix) {
            return registry::service(service).map(|def| service_route(def, rest, Strategy::Path));
        }
    }
    None
}

/// For `prefix` = "/api": "/api" → "/", "/api/x" → "/x", "/apix" → None.
fn prefix_rest<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    match path.strip_prefix(prefix)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

fn domain_route(entry: &DomainRoute, path: &str) -> Route {
    match &entry.target {
        RouteTarget::Service { service, binding } => {
            // A registered service keeps its default as a floor and its binding as a
            // fallback; an unregistered one (the seed has many) has only what the route says.
            let def = registry::service(service);
            let floor = def.map_or(AccessLevel::Anon, |d| d.access);
            Route::Service {
                service: service.clone(),
                binding: binding
                    .clone()
                    .or_else(|| def.and_then(|d| d.binding).map(str::to_string)),
                path: path.to_string(),
                access: required_access(floor, entry.requires_auth, entry.requires_admin),
                strategy: Strategy::Domain,
            }
        }
        RouteTarget::UserWorker { worker, namespace } => Route::UserWorker {
            namespace: *namespace,
            worker: worker.clone(),
            access: required_access(AccessLevel::Anon, entry.requires_auth, entry.requires_admin),
            strategy: Strategy::Domain,
            rate_limit: entry.rate_limit.clone(),
        },
    }
}

/// `{name}.{zone}`, `{name}.staging.{zone}`, `{name}.dev.{zone}` with `name` one label that
/// is not an internal service or a platform host of its own.
fn platform_worker(host: &str, cfg: &RouterConfig) -> Option<Route> {
    let zone = cfg.platform_zone.as_str();
    let prefix = host.strip_suffix(zone)?.strip_suffix('.')?;
    let (worker, namespace) = match prefix.split_once('.') {
        None => (prefix, Namespace::Production),
        Some((worker, "staging")) => (worker, Namespace::Staging),
        Some((worker, "dev")) => (worker, Namespace::Development),
        Some(_) => return None,
    };
    if worker.is_empty() || worker.contains('.') || is_reserved_worker(worker, cfg) {
        return None;
    }
    Some(Route::UserWorker {
        namespace,
        worker: worker.to_string(),
        access: AccessLevel::Anon,
        strategy: Strategy::Wfp,
        rate_limit: None,
    })
}

/// Names a user worker can never take: internal services and their aliases, the namespace
/// labels, and the first label of the platform's own hosts inside the zone (`apis`, `api`).
fn is_reserved_worker(worker: &str, cfg: &RouterConfig) -> bool {
    registry::is_internal_name(worker)
        || NAMESPACE_LABELS.contains(&worker)
        || std::iter::once(&cfg.services_zone)
            .chain(&cfg.api_hosts)
            .any(|h| single_label_under(h, &cfg.platform_zone) == Some(worker))
}

/// `label` when `host` is exactly `{label}.{zone}`.
fn single_label_under<'a>(host: &'a str, zone: &str) -> Option<&'a str> {
    let label = host.strip_suffix(zone)?.strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then_some(label)
}

/// Whether any segment is `.` or `..`, counting `%2e` as a dot and `\`, `%2f`, `%5c` as
/// separators: whatever a downstream decoder or URL parser might make of it.
fn has_dot_segment(path: &str) -> bool {
    let bytes = path.as_bytes();
    let (mut dots, mut other) = (0usize, false);
    let mut i = 0;
    loop {
        let (separator, step) = match bytes.get(i) {
            None => (true, 1),
            Some(b'/' | b'\\') => (true, 1),
            Some(b'.') => {
                dots += 1;
                (false, 1)
            }
            Some(b'%') => match escaped(bytes, i) {
                Some(b'.') => {
                    dots += 1;
                    (false, 3)
                }
                Some(b'/' | b'\\') => (true, 3),
                _ => {
                    other = true;
                    (false, 1)
                }
            },
            Some(_) => {
                other = true;
                (false, 1)
            }
        };
        if separator {
            if !other && (dots == 1 || dots == 2) {
                return true;
            }
            if i >= bytes.len() {
                return false;
            }
            dots = 0;
            other = false;
        }
        i += step;
    }
}

/// The byte a `%XX` escape at `i` stands for, for the three escapes that matter here.
fn escaped(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = *bytes.get(i + 1)?;
    let lo = bytes.get(i + 2)?.to_ascii_lowercase();
    match (hi, lo) {
        (b'2', b'e') => Some(b'.'),
        (b'2', b'f') => Some(b'/'),
        (b'5', b'c') => Some(b'\\'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AccessLevel::{Admin, Anon, Authenticated};

    fn host(raw: &str) -> Host {
        match normalize_host(raw) {
            Ok(h) => h,
            Err(e) => panic!("{raw}: {e}"),
        }
    }

    fn svc(
        service: &str,
        binding: Option<&str>,
        path: &str,
        access: AccessLevel,
        strategy: Strategy,
    ) -> Route {
        Route::Service {
            service: service.into(),
            binding: binding.map(Into::into),
            path: path.into(),
            access,
            strategy,
        }
    }

    fn wfp(namespace: Namespace, worker: &str) -> Route {
        Route::UserWorker {
            namespace,
            worker: worker.into(),
            access: Anon,
            strategy: Strategy::Wfp,
            rate_limit: None,
        }
    }

    fn waitlist(domain: &str) -> Route {
        Route::Waitlist {
            domain: domain.into(),
        }
    }

    const TABLE: &str = r#"[
        {"domain": "db.do", "service": "db", "binding": "DB_SERVICE", "requiresAuth": true},
        {"domain": "open-db.do", "service": "db"},
        {"domain": "admin-db.do", "service": "db", "requiresAdmin": true},
        {"domain": "queue.do", "service": "queue", "requiresAuth": true},
        {"domain": "*.myapp.do", "service": "myapp", "binding": "MYAPP_SERVICE"},
        {"domain": "api.myapp.do", "service": "myapp-api", "binding": "MYAPP_API", "requiresAuth": true},
        {"domain": "nouns.do", "service": "nouns", "binding": "NOUNS_SERVICE", "requiresAdmin": true},
        {"domain": "plain.do", "service": "plain"},
        {"domain": "shop.example.com", "worker": "shop", "namespace": "production"},
        {"domain": "*.preview.example.com", "worker": "shop", "namespace": "Staging", "requiresAuth": true},
        {"domain": "db.apis.do", "service": "shadowed"},
        {"domain": "localhost", "service": "local-home"}
    ]"#;

    fn table() -> DomainRoutes {
        match DomainRoutes::parse(TABLE.as_bytes()) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn routing_table() {
        use Namespace::{Development, Production, Staging};
        use Strategy::{Domain, Path, Subdomain};
        let t = table();
        let cfg = RouterConfig::default();
        let cases: Vec<(&str, &str, Route)> = vec![
            // 1. service subdomains, aliases, unknown names falling through
            (
                "db.apis.do",
                "/notes/1",
                svc(
                    "db",
                    Some("DB_SERVICE"),
                    "/notes/1",
                    Authenticated,
                    Subdomain,
                ),
            ),
            (
                "DB.APIS.DO:443",
                "/",
                svc("db", Some("DB_SERVICE"), "/", Authenticated, Subdomain),
            ),
            (
                "database.apis.do",
                "/x",
                svc("db", Some("DB_SERVICE"), "/x", Authenticated, Subdomain),
            ),
            (
                "agent.apis.do",
                "/",
                svc(
                    "agents",
                    Some("AGENTS_SERVICE"),
                    "/",
                    Authenticated,
                    Subdomain,
                ),
            ),
            (
                "agents.apis.do",
                "/",
                svc(
                    "agents",
                    Some("AGENTS_SERVICE"),
                    "/",
                    Authenticated,
                    Subdomain,
                ),
            ),
            (
                "schedule.apis.do",
                "/",
                svc("schedule", Some("SCHEDULE_SERVICE"), "/", Admin, Subdomain),
            ),
            (
                "waitlist.apis.do",
                "/",
                svc("waitlist", None, "/", Anon, Subdomain),
            ),
            ("functions.apis.do", "/", waitlist("functions.apis.do")),
            ("nope.apis.do", "/", waitlist("nope.apis.do")),
            ("a.db.apis.do", "/", waitlist("a.db.apis.do")),
            // the apex of the services zone is neither a service nor a user worker
            ("apis.do", "/", waitlist("apis.do")),
            // 2. path routes on API hosts
            (
                "api.do",
                "/api/db/notes/1",
                svc("db", Some("DB_SERVICE"), "/notes/1", Authenticated, Path),
            ),
            (
                "api.do",
                "/api/db",
                svc("db", Some("DB_SERVICE"), "/", Authenticated, Path),
            ),
            (
                "api.do",
                "/api/db/",
                svc("db", Some("DB_SERVICE"), "/", Authenticated, Path),
            ),
            (
                "api.do",
                "/api/db//x",
                svc("db", Some("DB_SERVICE"), "//x", Authenticated, Path),
            ),
            (
                "api.do",
                "/api/db/a%2Fb",
                svc("db", Some("DB_SERVICE"), "/a%2Fb", Authenticated, Path),
            ),
            (
                "api.do",
                "/api/database/x",
                svc("db", Some("DB_SERVICE"), "/x", Authenticated, Path),
            ),
            (
                "api.do",
                "/api/auth/login",
                svc("auth", Some("AUTH_SERVICE"), "/login", Anon, Path),
            ),
            (
                "localhost:8787",
                "/api/queue/x",
                svc("queue", Some("QUEUE_SERVICE"), "/x", Admin, Path),
            ),
            (
                "127.0.0.1:8787",
                "/api/waitlist",
                svc("waitlist", None, "/", Anon, Path),
            ),
            ("api.do", "/api/logs", svc("logs", None, "/", Admin, Path)),
            ("api.do", "/api/nope/x", Route::NotFound),
            ("api.do", "/api/DB/x", Route::NotFound),
            ("api.do", "/api/functions/x", Route::NotFound),
            ("api.do", "/api", Route::NotFound),
            ("api.do", "/api/", Route::NotFound),
            ("api.do", "/apix", Route::NotFound),
            ("api.do", "/rpc", Route::Rpc),
            ("api.do", "/rpc/", Route::NotFound),
            ("api.do", "/health", Route::Health),
            ("api.do", "/openapi.json", Route::OpenApi),
            ("api.do", "/openapi.jsonx", Route::NotFound),
            ("api.do", "/healthz", Route::NotFound),
            (
                "api.do",
                "/mcp",
                svc("mcp", Some("MCP_SERVICE"), "/", Anon, Path),
            ),
            (
                "api.do",
                "/mcp/sse",
                svc("mcp", Some("MCP_SERVICE"), "/sse", Anon, Path),
            ),
            ("api.do", "/mcpx", Route::NotFound),
            (
                "api.do",
                "/waitlist",
                svc("waitlist", None, "/", Anon, Path),
            ),
            (
                "api.do",
                "/waitlist/join",
                svc("waitlist", None, "/join", Anon, Path),
            ),
            ("api.do", "/console", svc("console", None, "/", Anon, Path)),
            (
                "api.do",
                "/console/console.js",
                svc("console", None, "/console.js", Anon, Path),
            ),
            ("api.do", "/consolex", Route::NotFound),
            (
                "api.do",
                "/api/routes/audit",
                svc("routes", None, "/audit", Admin, Path),
            ),
            ("api.do", "/", Route::NotFound),
            ("api.do", "", Route::NotFound),
            // an API host with a domain route of its own gets it for non-platform paths
            ("localhost", "/", svc("local-home", None, "/", Anon, Domain)),
            ("localhost", "/rpc", Route::Rpc),
            // path routes never apply on other hosts
            ("myapp.do", "/api/db/x", wfp(Production, "myapp")),
            ("myapp.do", "/rpc", wfp(Production, "myapp")),
            (
                "plain.do",
                "/health",
                svc("plain", None, "/health", Anon, Domain),
            ),
            // 3. domain routes: registry floor, route tightening, binding fallback
            (
                "db.do",
                "/notes/1",
                svc("db", Some("DB_SERVICE"), "/notes/1", Authenticated, Domain),
            ),
            (
                "open-db.do",
                "/",
                svc("db", Some("DB_SERVICE"), "/", Authenticated, Domain),
            ),
            (
                "admin-db.do",
                "/",
                svc("db", Some("DB_SERVICE"), "/", Admin, Domain),
            ),
            (
                "queue.do",
                "/",
                svc("queue", Some("QUEUE_SERVICE"), "/", Admin, Domain),
            ),
            (
                "nouns.do",
                "/x?",
                svc("nouns", Some("NOUNS_SERVICE"), "/x?", Admin, Domain),
            ),
            (
                "a.myapp.do",
                "/p",
                svc("myapp", Some("MYAPP_SERVICE"), "/p", Anon, Domain),
            ),
            (
                "a.b.myapp.do",
                "/p",
                svc("myapp", Some("MYAPP_SERVICE"), "/p", Anon, Domain),
            ),
            (
                "api.myapp.do",
                "/",
                svc("myapp-api", Some("MYAPP_API"), "/", Authenticated, Domain),
            ),
            (
                "shop.example.com",
                "/cart",
                Route::UserWorker {
                    namespace: Production,
                    worker: "shop".into(),
                    access: Anon,
                    strategy: Domain,
                    rate_limit: None,
                },
            ),
            (
                "pr-1.preview.example.com",
                "/",
                Route::UserWorker {
                    namespace: Staging,
                    worker: "shop".into(),
                    access: Authenticated,
                    strategy: Domain,
                    rate_limit: None,
                },
            ),
            // the service subdomain wins over a domain route for the same host
            (
                "db.apis.do",
                "/",
                svc("db", Some("DB_SERVICE"), "/", Authenticated, Subdomain),
            ),
            // a wildcard never matches its apex or a lookalike
            ("badmyapp.do", "/", wfp(Production, "badmyapp")),
            ("preview.example.com", "/", waitlist("preview.example.com")),
            ("evilexample.com", "/", waitlist("evilexample.com")),
            // 4. user workers
            ("myapp.do", "/", wfp(Production, "myapp")),
            ("myapp.staging.do", "/", wfp(Staging, "myapp")),
            ("myapp.dev.do", "/", wfp(Development, "myapp")),
            ("MyApp.Staging.DO.", "/", wfp(Staging, "myapp")),
            ("a.myapp.staging.do", "/", waitlist("a.myapp.staging.do")),
            ("a.b.do", "/", waitlist("a.b.do")),
            ("staging.do", "/", waitlist("staging.do")),
            ("dev.do", "/", waitlist("dev.do")),
            ("do", "/", waitlist("do")),
            // internal names are never dispatched
            ("auth.do", "/", waitlist("auth.do")),
            ("waitlist.do", "/", waitlist("waitlist.do")),
            ("database.do", "/", waitlist("database.do")),
            ("agent.staging.do", "/", waitlist("agent.staging.do")),
            ("fn.dev.do", "/", waitlist("fn.dev.do")),
            ("api.do", "/x", Route::NotFound),
            ("apis.staging.do", "/", waitlist("apis.staging.do")),
            ("api.dev.do", "/", waitlist("api.dev.do")),
            // 5. waitlist
            ("example.com", "/", waitlist("example.com")),
            ("example.com", "/api/db/x", waitlist("example.com")),
            ("10.0.0.1", "/", waitlist("10.0.0.1")),
            ("[::1]:8787", "/", waitlist("[::1]")),
            ("notdo", "/", waitlist("notdo")),
            ("xdo", "/", waitlist("xdo")),
        ];
        for (raw, path, want) in cases {
            assert_eq!(
                route(&host(raw), path, &cfg, Some(&t)),
                want,
                "{raw} {path}"
            );
        }
    }

    #[test]
    fn dot_segments_are_refused_everywhere() {
        let t = table();
        let cfg = RouterConfig::default();
        let bad = [
            "/api/db/../auth",
            "/api/db/..",
            "/api/db/./x",
            "/api/db/%2e%2e/auth",
            "/api/db/%2E%2E/auth",
            "/api/db/.%2e/auth",
            "/api/db/%2e./auth",
            "/api/db/%2e",
            "/api/db%2f..%2fauth/x",
            "/api/db%2F..%2Fauth",
            "/api/db\\..\\auth",
            "/api/db%5c..%5cauth",
            "/..",
            "/.",
            "/a/./",
            "x",
        ];
        for path in bad {
            for raw in ["api.do", "myapp.do", "db.apis.do", "example.com"] {
                assert_eq!(
                    route(&host(raw), path, &cfg, Some(&t)),
                    Route::NotFound,
                    "{raw} {path}"
                );
            }
        }
        let fine = [
            "/",
            "//",
            "/...",
            "/a..b",
            "/.well-known/x",
            "/a/.b",
            "/%2e%2e%2e",
            "/%2",
            "/%",
            "/x%2",
        ];
        for path in fine {
            assert!(!has_dot_segment(path), "{path}");
            assert_ne!(
                route(&host("myapp.do"), path, &cfg, Some(&t)),
                Route::NotFound,
                "{path}"
            );
        }
    }

    #[test]
    fn routes_unavailable_only_past_step_2() {
        use Strategy::{Path, Subdomain};
        let cfg = RouterConfig::default();
        let cases: Vec<(&str, &str, Route)> = vec![
            (
                "db.apis.do",
                "/",
                svc("db", Some("DB_SERVICE"), "/", Authenticated, Subdomain),
            ),
            (
                "api.do",
                "/api/db/x",
                svc("db", Some("DB_SERVICE"), "/x", Authenticated, Path),
            ),
            ("api.do", "/api/nope", Route::NotFound),
            ("api.do", "/rpc", Route::Rpc),
            ("api.do", "/health", Route::Health),
            (
                "api.do",
                "/mcp",
                svc("mcp", Some("MCP_SERVICE"), "/", Anon, Path),
            ),
            ("api.do", "/other", Route::RoutesUnavailable),
            ("myapp.do", "/", Route::RoutesUnavailable),
            ("nope.apis.do", "/", Route::RoutesUnavailable),
            ("example.com", "/", Route::RoutesUnavailable),
            ("10.0.0.1", "/", Route::RoutesUnavailable),
        ];
        for (raw, path, want) in cases {
            assert_eq!(route(&host(raw), path, &cfg, None), want, "{raw} {path}");
        }
        // An empty (but good) table is not "unavailable".
        let empty = DomainRoutes::empty();
        assert_eq!(
            route(&host("myapp.do"), "/", &cfg, Some(&empty)),
            wfp(Namespace::Production, "myapp")
        );
    }

    #[test]
    fn seed_table_routes_every_domain_to_its_service() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/seed-domain-routes.json"
        );
        let Ok(bytes) = std::fs::read(path) else {
            eprintln!("skipping: {path} not found");
            return;
        };
        let entries: Vec<serde_json::Value> = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        let t = match DomainRoutes::parse(&bytes) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let cfg = RouterConfig::default();
        assert_eq!(entries.len(), 107);
        for e in &entries {
            let domain = e["domain"].as_str().unwrap_or_default();
            let got = route(&host(domain), "/x", &cfg, Some(&t));
            let Route::Service {
                service,
                binding,
                path,
                access,
                strategy,
            } = got
            else {
                panic!("{domain}: {got:?}")
            };
            assert_eq!(Some(service.as_str()), e["service"].as_str(), "{domain}");
            assert_eq!(binding.as_deref(), e["binding"].as_str(), "{domain}");
            assert_eq!(
                (path.as_str(), strategy),
                ("/x", Strategy::Domain),
                "{domain}"
            );
            let floor = registry::service(&service).map_or(Anon, |d| d.access);
            let flags = required_access(
                floor,
                e["requiresAuth"].as_bool().unwrap_or(false),
                e["requiresAdmin"].as_bool().unwrap_or(false),
            );
            assert_eq!(access, flags, "{domain}");
        }
    }

    #[test]
    fn config_from_vars() {
        let d = RouterConfig::default();
        assert_eq!(d.api_hosts, ["api.do", "localhost", "127.0.0.1"]);
        assert_eq!(
            (d.platform_zone.as_str(), d.services_zone.as_str()),
            ("do", "apis.do")
        );
        // (API_HOSTS, PLATFORM_ZONE, api_hosts, platform_zone)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Vec<&'a str>, &'a str);
        let cases: Vec<Case> = vec![
            (None, None, vec!["api.do", "localhost", "127.0.0.1"], "do"),
            (
                Some(""),
                Some("  "),
                vec!["api.do", "localhost", "127.0.0.1"],
                "do",
            ),
            (
                Some(" API.example.com , localhost:8787,,[::1]"),
                Some(" Example.COM "),
                vec!["api.example.com", "localhost", "[::1]"],
                "example.com",
            ),
            (
                Some("bad host, ok.do"),
                Some("not a zone"),
                vec!["ok.do"],
                "do",
            ),
            (Some("gw.do"), Some("10.0.0.1"), vec!["gw.do"], "do"),
        ];
        for (hosts, zone, want_hosts, want_zone) in cases {
            let cfg = RouterConfig::from_vars(hosts, zone);
            assert_eq!(cfg.api_hosts, want_hosts, "{hosts:?}");
            assert_eq!(cfg.platform_zone, want_zone, "{zone:?}");
            assert_eq!(cfg.services_zone, "apis.do");
        }
    }

    #[test]
    fn custom_zone() {
        let cfg = RouterConfig::from_vars(Some("gw.example.dev"), Some("example.dev"));
        let t = DomainRoutes::empty();
        let cases = [
            ("shop.example.dev", "/", wfp(Namespace::Production, "shop")),
            (
                "shop.staging.example.dev",
                "/",
                wfp(Namespace::Staging, "shop"),
            ),
            ("gw.example.dev", "/", Route::NotFound),
            ("gw.example.dev", "/rpc", Route::Rpc),
            ("api.do", "/rpc", waitlist("api.do")),
            ("shop.do", "/", waitlist("shop.do")),
        ];
        for (raw, path, want) in cases {
            assert_eq!(route(&host(raw), path, &cfg, Some(&t)), want, "{raw}");
        }
    }

    #[test]
    fn log_fields() {
        assert_eq!(Route::Rpc.strategy().map(Strategy::as_str), Some("path"));
        assert_eq!(
            waitlist("x.com").strategy().map(Strategy::as_str),
            Some("waitlist")
        );
        assert_eq!(
            wfp(Namespace::Staging, "a")
                .strategy()
                .map(Strategy::as_str),
            Some("wfp")
        );
        assert_eq!(wfp(Namespace::Staging, "a").target_name(), Some("a"));
        assert_eq!(Route::NotFound.strategy(), None);
        let names: Vec<_> = [
            Strategy::Subdomain,
            Strategy::Path,
            Strategy::Domain,
            Strategy::Wfp,
            Strategy::Waitlist,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(names, ["subdomain", "path", "domain", "wfp", "waitlist"]);
    }
}
