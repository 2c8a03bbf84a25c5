//! Configuration read from the worker's vars and secrets, parsed once per isolate. workerd
//! hands an isolate one `env` object for its whole life, so a request whose `env` is the object
//! seen last time costs one identity check; any other `env` is read again and re-parsed only
//! if a value changed.

use std::cell::RefCell;
use std::rc::Rc;

use gateway::router::RouterConfig;
use js_sys::Object;
use wasm_bindgen::JsValue;
use worker::Env;

pub struct Config {
    pub router: RouterConfig,
    pub cors_origins: Vec<String>,
    /// In-isolate freshness of the domain-routes table.
    pub routes_ttl_ms: f64,
    /// Per-request limits for user workers (Workers for Platforms custom limits).
    pub dispatch_cpu_ms: u32,
    pub dispatch_subrequests: u32,
    /// Deadlines (ms, `deadline`): dispatch and forward until the response headers; one RPC
    /// of the db/auth/do adapters, of identification (API keys, sessions) and of `/health`;
    /// one KV read.
    pub upstream_timeout_ms: u64,
    pub service_timeout_ms: u64,
    pub kv_timeout_ms: u64,
    /// Test-only: `GET /health?panic` panics (var ENABLE_TEST_PANIC=1).
    pub test_panic: bool,
    /// Raw values parsed by their own modules (limiter, identity), which cache the result.
    pub rate_limits: Option<String>,
    pub rate_limit_failure_mode: Option<String>,
    pub token_keys: Option<String>,
    pub admin_api_key: Option<String>,
    /// `RATE_LIMIT_SHARDS`: limiter shards (objects) the exact limit keys are spread over.
    pub rate_limit_shards: Option<u32>,
}

/// Vars and secrets alike (workerd exposes both as strings on `env`).
const VARS: [&str; 15] = [
    "API_HOSTS",
    "PLATFORM_ZONE",
    "CORS_ORIGINS",
    "ROUTES_TTL_MS",
    "DISPATCH_CPU_MS",
    "DISPATCH_SUBREQUESTS",
    "ENABLE_TEST_PANIC",
    "RATE_LIMITS",
    "RATE_LIMIT_FAILURE_MODE",
    "TOKEN_KEYS",
    "ADMIN_API_KEY",
    "RATE_LIMIT_SHARDS",
    "UPSTREAM_TIMEOUT_MS",
    "SERVICE_TIMEOUT_MS",
    "KV_TIMEOUT_MS",
];

/// The raw values of `VARS`, in order (an array, so indexing is checked at compile time).
type Raw = [Option<String>; VARS.len()];

struct Cached {
    /// The `env` object these values were read from.
    env: JsValue,
    raw: Raw,
    config: Rc<Config>,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

pub fn load(env: &Env) -> Rc<Config> {
    let same_env = CACHE.with(|cache| {
        cache
            .borrow()
            .as_ref()
            .filter(|c| Object::is(&c.env, env))
            .map(|c| c.config.clone())
    });
    if let Some(config) = same_env {
        return config;
    }
    let raw: Raw = VARS.map(|v| var(env, v));
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let config = match cache.as_ref().filter(|c| c.raw == raw) {
            Some(c) => c.config.clone(),
            None => Rc::new(parse(&raw)),
        };
        *cache = Some(Cached {
            env: JsValue::from(env.clone()),
            raw,
            config: config.clone(),
        });
        config
    })
}

/// A deadline var: 1 ms to 5 minutes (a zero or negative value would fail every call).
fn timeout(ms: f64) -> u64 {
    ms.clamp(1.0, 300_000.0) as u64
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
        upstream_timeout_ms: timeout(num(12, 30_000.0)),
        service_timeout_ms: timeout(num(13, 10_000.0)),
        kv_timeout_ms: timeout(num(14, 2_000.0)),
        test_panic: raw[6].as_deref() == Some("1"),
        rate_limits: raw[7].clone(),
        rate_limit_failure_mode: raw[8].clone(),
        token_keys: raw[9].clone(),
        admin_api_key: raw[10].clone(),
        rate_limit_shards: raw[11]
            .as_deref()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .map(|n| n.clamp(1, gateway::limitshard::MAX_SHARDS)),
    }
}
