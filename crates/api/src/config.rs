//! Configuration read from the worker's vars, parsed once per isolate (re-parsed only if a
//! var changes), so the per-request cost is a few string comparisons.

use std::cell::RefCell;
use std::rc::Rc;

use gateway::router::RouterConfig;
use worker::Env;

pub struct Config {
    pub router: RouterConfig,
    pub cors_origins: Vec<String>,
    /// In-isolate freshness of the domain-routes table.
    pub routes_ttl_ms: f64,
    /// Per-request limits for user workers (Workers for Platforms custom limits).
    pub dispatch_cpu_ms: u32,
    pub dispatch_subrequests: u32,
    /// Test-only: `GET /health?panic` panics (var ENABLE_TEST_PANIC=1).
    pub test_panic: bool,
}

const VARS: [&str; 7] = [
    "API_HOSTS",
    "PLATFORM_ZONE",
    "CORS_ORIGINS",
    "ROUTES_TTL_MS",
    "DISPATCH_CPU_MS",
    "DISPATCH_SUBREQUESTS",
    "ENABLE_TEST_PANIC",
];

/// The raw values of `VARS`, in order (an array, so indexing is checked at compile time).
type Raw = [Option<String>; VARS.len()];

thread_local! {
    static CACHE: RefCell<Option<(Raw, Rc<Config>)>> = const { RefCell::new(None) };
}

pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

pub fn load(env: &Env) -> Rc<Config> {
    let raw: Raw = VARS.map(|v| var(env, v));
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((seen, config)) = cache.as_ref() {
            if *seen == raw {
                return config.clone();
            }
        }
        let config = Rc::new(parse(&raw));
        *cache = Some((raw, config.clone()));
        config
    })
}

fn parse(raw: &Raw) -> Config {
    let num = |i: usize, default: f64| {
        raw[i]
            .as_deref()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(default)
    };
    Config {
        router: RouterConfig::from_vars(raw[0].as_deref(), raw[1].as_deref()),
        cors_origins: raw[2]
            .as_deref()
            .unwrap_or("*")
            .split(',')
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect(),
        routes_ttl_ms: num(3, 10_000.0).max(0.0),
        dispatch_cpu_ms: num(4, 50.0).clamp(1.0, 30_000.0) as u32,
        dispatch_subrequests: num(5, 50.0).clamp(1.0, 1_000.0) as u32,
        test_panic: raw[6].as_deref() == Some("1"),
    }
}
