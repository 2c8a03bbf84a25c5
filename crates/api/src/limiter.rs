//! limit: counts every request against its policy in the limit key's `RateLimiter` Durable
//! Object (one `fetch` round trip answered in a header, no other I/O), records the decision
//! for the response headers, and answers 429 over the limit. When the limiter cannot answer,
//! the configured failure mode decides (closed → 503, open → the request proceeds unlimited),
//! logged either way.
//!
//! Vars: `RATE_LIMITS` (JSON `LimitConfig`; absent = 100 per 60 s) and
//! `RATE_LIMIT_FAILURE_MODE` (`open` | `closed`, default closed), parsed once per isolate.

use std::cell::RefCell;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use gateway::ratelimit::{limit_key, route_key, Decision, FailureMode, LimitConfig, Policy};
use worker::{Delay, Env};

use crate::config::{self, Config};
use crate::context::RequestCtx;
use crate::error::ApiError;
use crate::log;

/// The Durable Object namespace binding (wrangler.jsonc, scripts/platform.mjs).
const BINDING: &str = "RATE_LIMITER";

/// How long a decision may take before the limiter counts as unavailable. A warm object
/// answers in well under a millisecond of its own time; this bounds a cold start in a far
/// location or a stuck object, so a limiter outage degrades to the failure mode rather than
/// hanging every request.
const TIMEOUT: Duration = Duration::from_millis(2_000);

struct Settings {
    config: LimitConfig,
    failure_mode: FailureMode,
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

pub async fn limit(env: &Env, rc: &mut RequestCtx) -> Result<(), ApiError> {
    let settings = settings(env);
    let route = rc.route.as_ref().and_then(route_key);
    let role = rc.identity.as_ref().map(|i| i.role.as_str());
    let policy = settings.config.policy_for(route.as_deref(), role);
    let user_id = rc.identity.as_ref().map(|i| i.user_id.as_str());
    let key = limit_key(user_id, rc.ip.as_deref(), &policy);

    match decide(env, &key, &policy).await {
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

/// One round trip to the key's object; any failure comes back as a reason for the log.
async fn decide(env: &Env, key: &str, policy: &Policy) -> Result<Decision, String> {
    let namespace = env
        .durable_object(BINDING)
        .map_err(|e| format!("binding {BINDING}: {e}"))?;
    let stub = namespace
        .get_by_name(key)
        .map_err(|e| format!("stub: {e}"))?;
    let url = format!("https://rate-limiter/check?{}", policy.to_query());
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
    match select(pin!(call), pin!(Delay::from(TIMEOUT))).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(_) => Err(format!("no answer within {} ms", TIMEOUT.as_millis())),
    }
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
fn parse(limits: Option<&str>, failure_mode: Option<&str>) -> Settings {
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
    }
}
