//! limit: counts every request against its traffic class's policy and answers 429 over it.
//! Platform routes are exact: one round trip to the limiter shard that owns the key
//! (`gateway::limitshard`; the answer never waits for a storage commit). Tenant traffic (user
//! workers, waitlist pages) follows its tenant policy: `exact` (the same shards), `approximate`
//! (the Workers Rate Limiting binding, no round trip to an object) or `off`. When the limiter
//! cannot answer, the configured failure mode decides (closed → 503, open → the request
//! proceeds unlimited), logged either way.
//!
//! Vars: `RATE_LIMITS` (JSON `LimitConfig`; absent = 100 per 60 s, tenant traffic 1 000 per
//! 60 s approximate), `RATE_LIMIT_FAILURE_MODE` (`open` | `closed`, default closed),
//! `RATE_LIMIT_SHARDS` (default 32), parsed once per isolate.

use std::cell::RefCell;
use std::rc::Rc;

use gateway::limitshard::{shard_index, shard_name, CheckRequest, DEFAULT_SHARDS};
use gateway::ratelimit::{
    limit_key, route_key, tenant_key, Decision, FailureMode, LimitConfig, Mode, Policy,
    TenantPolicy, APPROXIMATE_BINDING,
};
use gateway::router::Route;
use worker::Env;

use crate::config::{self, Config};
use crate::context::RequestCtx;
use crate::error::ApiError;
use crate::{deadline, log};

/// The Durable Object namespace binding (wrangler.jsonc, scripts/platform.mjs).
const BINDING: &str = "RATE_LIMITER";

/// How long a decision may take before the limiter counts as unavailable. A warm shard
/// answers in well under a millisecond of its own time; this bounds a cold start in a far
/// location or a stuck object, so a limiter outage degrades to the failure mode rather than
/// hanging every request.
const TIMEOUT_MS: u64 = 2_000;

struct Settings {
    config: LimitConfig,
    failure_mode: FailureMode,
    shards: u32,
}

/// Parsed settings with the configuration they came from: re-parsed only when `config::load`
/// hands out a new `Config` (a var changed), so a request costs a pointer comparison.
struct Cached {
    config: Rc<Config>,
    settings: Rc<Settings>,
}

thread_local! {
    static SETTINGS: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

/// What one request is counted as.
enum Plan {
    Exact { key: String, policy: Policy },
    Approximate { key: String, policy: Policy },
    Off,
}

/// The limit phase: `cost` units (1, or the number of calls in a JSON-RPC batch) against the
/// request's policy. Records the decision for the response headers and the log line.
pub async fn limit(env: &Env, rc: &mut RequestCtx, cost: u32) -> Result<(), ApiError> {
    let settings = settings(env);
    let plan = plan(&settings, rc);
    run(env, rc, &settings, plan, cost).await
}

/// One unit of the caller's *address* quota (the platform default policy, keyed by client
/// IP), spent before a credential this isolate has not seen is looked up: a flood of random
/// API keys or session ids from one address is answered 429 without reaching auth.
pub async fn charge_address(env: &Env, rc: &mut RequestCtx) -> Result<(), ApiError> {
    let settings = settings(env);
    let route = rc.route.as_ref().and_then(route_key);
    let policy = settings.config.policy_for(route.as_deref(), None);
    let key = limit_key(None, rc.ip.as_deref(), &policy);
    run(env, rc, &settings, Plan::Exact { key, policy }, 1).await
}

/// A request routed to a user worker that does not exist, now answered by the waitlist: one
/// more unit under the waitlist's key (see `plan`).
pub async fn limit_waitlist(env: &Env, rc: &mut RequestCtx) -> Result<(), ApiError> {
    let settings = settings(env);
    let plan = tenant_plan(&settings, "waitlist", None, None, rc.ip.as_deref());
    run(env, rc, &settings, plan, 1).await
}

fn plan(settings: &Settings, rc: &RequestCtx) -> Plan {
    let ip = rc.ip.as_deref();
    match rc.route.as_ref() {
        Some(Route::UserWorker {
            namespace,
            worker,
            rate_limit,
            ..
        }) => {
            let tenant = format!("{}/{worker}", namespace.as_str());
            tenant_plan(
                settings,
                &tenant,
                Some(namespace.as_str()),
                rate_limit.as_ref(),
                ip,
            )
        }
        // Every waitlist page shares one counter per address, whatever the domain: the
        // domain is the caller's choice (any unmatched Host), so keying by it would let one
        // address mint fresh quota, and sign-ups, by inventing domains.
        Some(Route::Waitlist { .. }) => tenant_plan(settings, "waitlist", None, None, ip),
        route => {
            let route = route.and_then(route_key);
            let role = rc.identity.as_ref().map(|i| i.role.as_str());
            let policy = settings.config.policy_for(route.as_deref(), role);
            let user_id = rc.identity.as_ref().map(|i| i.user_id.as_str());
            Plan::Exact {
                key: limit_key(user_id, ip, &policy),
                policy,
            }
        }
    }
}

fn tenant_plan(
    settings: &Settings,
    tenant: &str,
    namespace: Option<&str>,
    route: Option<&gateway::ratelimit::TenantSpec>,
    ip: Option<&str>,
) -> Plan {
    let TenantPolicy { mode, policy } = settings
        .config
        .tenant_policy(namespace, route)
        .unwrap_or_else(|e| {
            // Validated when the table was loaded; this only guards against a config change.
            log::event(
                "error",
                "tenant rate limit unusable; using the tenant default",
                &[("error", &e.to_string())],
            );
            settings.config.tenant.default.clone()
        });
    let key = tenant_key(tenant, ip, &policy);
    match mode {
        Mode::Exact => Plan::Exact { key, policy },
        Mode::Approximate => Plan::Approximate { key, policy },
        Mode::Off => Plan::Off,
    }
}

async fn run(
    env: &Env,
    rc: &mut RequestCtx,
    settings: &Settings,
    plan: Plan,
    cost: u32,
) -> Result<(), ApiError> {
    let (policy, outcome) = match plan {
        Plan::Off => return Ok(()),
        Plan::Exact { key, policy } => {
            let outcome = decide(env, settings.shards, &key, &policy, cost).await;
            (policy, outcome)
        }
        Plan::Approximate { key, policy } => {
            let outcome = approximate(env, &key, &policy).await;
            (policy, outcome)
        }
    };
    match outcome {
        Ok(decision) => {
            let rejected = (!decision.allowed).then(|| {
                decision
                    .retry_after_secs
                    .unwrap_or(decision.reset_secs)
                    .max(1)
            });
            rc.rate = Some((policy, decision));
            match rejected {
                Some(retry_after) => Err(ApiError::TooManyRequests { retry_after }),
                None => Ok(()),
            }
        }
        Err(reason) => {
            let mode = settings.failure_mode;
            log::event(
                "error",
                "rate limiter unavailable",
                &[
                    ("requestId", &rc.request_id),
                    ("failureMode", mode.as_str()),
                    ("policy", &policy.name),
                    ("error", &reason),
                ],
            );
            rc.limiter_failure = Some(format!("{}: {reason}", mode.as_str()));
            match mode {
                FailureMode::Open => Ok(()),
                FailureMode::Closed => Err(ApiError::ServiceUnavailable(
                    "The rate limiter is unavailable; try again shortly.".into(),
                )),
            }
        }
    }
}

/// One round trip to the key's shard; any failure comes back as a reason for the log.
async fn decide(
    env: &Env,
    shards: u32,
    key: &str,
    policy: &Policy,
    cost: u32,
) -> Result<Decision, String> {
    let namespace = env
        .durable_object(BINDING)
        .map_err(|e| format!("binding {BINDING}: {e}"))?;
    let stub = namespace
        .get_by_name(&shard_name(shard_index(key, shards)))
        .map_err(|e| format!("stub: {e}"))?;
    let request = CheckRequest {
        key: key.to_owned(),
        cost: cost.max(1),
        policy: policy.clone(),
    };
    let url = format!("https://rate-limiter/check?{}", request.to_query());
    let call = async move {
        let response = stub
            .fetch_with_str(&url)
            .await
            .map_err(|e| format!("fetch: {e}"))?;
        if response.status_code() != 200 {
            return Err(format!("status {}", response.status_code()));
        }
        // The decision travels in one header (no body to stream and parse).
        let wire = response
            .headers()
            .get(Decision::WIRE_HEADER)
            .map_err(|e| format!("decision: {e}"))?
            .unwrap_or_default();
        Decision::from_wire(&wire).ok_or_else(|| format!("decision: unreadable {wire:?}"))
    };
    deadline::within(TIMEOUT_MS, call)
        .await
        .unwrap_or_else(|| Err(format!("no answer within {TIMEOUT_MS} ms")))
}

/// The Rate Limiting binding's verdict. It says only yes or no (its counters are per
/// location and approximate), so the decision reports the policy's quota with nothing known
/// about what remains, and a rejection asks the client to wait one period.
async fn approximate(env: &Env, key: &str, policy: &Policy) -> Result<Decision, String> {
    let binding = env
        .rate_limiter(APPROXIMATE_BINDING)
        .map_err(|e| format!("binding {APPROXIMATE_BINDING}: {e}"))?;
    let outcome = deadline::within(TIMEOUT_MS, binding.limit(key.to_owned()))
        .await
        .ok_or_else(|| format!("no answer within {TIMEOUT_MS} ms"))?
        .map_err(|e| format!("limit: {e}"))?;
    let window_secs = policy.window_ms.div_ceil(1000);
    Ok(Decision {
        allowed: outcome.success,
        limit: policy.limit,
        remaining: 0,
        reset_secs: if outcome.success { 0 } else { window_secs },
        retry_after_secs: (!outcome.success).then_some(window_secs),
    })
}

fn settings(env: &Env) -> Rc<Settings> {
    let config = config::load(env);
    SETTINGS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(cached) = cache.as_ref().filter(|c| Rc::ptr_eq(&c.config, &config)) {
            return cached.settings.clone();
        }
        let settings = Rc::new(parse(
            config.rate_limits.as_deref(),
            config.rate_limit_failure_mode.as_deref(),
            config.rate_limit_shards,
        ));
        *cache = Some(Cached {
            config,
            settings: settings.clone(),
        });
        settings
    })
}

/// Bad values are logged (once per isolate, since the result is cached) and replaced by the
/// safe defaults: the built-in limits and failing closed. A typo must never disable limiting.
fn parse(limits: Option<&str>, failure_mode: Option<&str>, shards: Option<u32>) -> Settings {
    let config = match limits.map(LimitConfig::from_json) {
        None => LimitConfig::default(),
        Some(Ok(config)) => config,
        Some(Err(e)) => {
            log::event(
                "error",
                "invalid RATE_LIMITS; using the default limits",
                &[("error", &e.to_string())],
            );
            LimitConfig::default()
        }
    };
    let failure_mode = match failure_mode {
        None => FailureMode::default(),
        Some(value) => FailureMode::parse(value).unwrap_or_else(|| {
            log::event(
                "error",
                "invalid RATE_LIMIT_FAILURE_MODE; failing closed",
                &[("value", value)],
            );
            FailureMode::Closed
        }),
    };
    Settings {
        config,
        failure_mode,
        shards: shards.unwrap_or(DEFAULT_SHARDS),
    }
}
