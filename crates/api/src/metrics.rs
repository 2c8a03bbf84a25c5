//! One Workers Analytics Engine data point per request (binding `ANALYTICS`): strategy,
//! service, status, duration and the rate-limit outcome. Missing binding = no metrics.

use worker::{AnalyticsEngineDataPointBuilder, Env};

use crate::context::RequestCtx;

pub fn record(env: &Env, rc: &RequestCtx, status: u16, duration_ms: u64) {
    let Ok(dataset) = env.analytics_engine("ANALYTICS") else {
        return;
    };
    let strategy = rc.strategy().map(|s| s.as_str()).unwrap_or("none");
    let service = rc.service().unwrap_or_default();
    let rate = match (&rc.rate, &rc.limiter_failure) {
        (_, Some(_)) => "limiter-failed",
        (Some((_, d)), _) if d.allowed => "allowed",
        (Some(_), _) => "limited",
        (None, None) => "unlimited",
    };
    let remaining = rc
        .rate
        .as_ref()
        .map(|(_, d)| d.remaining as f64)
        .unwrap_or(-1.0);
    let point = AnalyticsEngineDataPointBuilder::new()
        // The index is the sampling key: per service, so quiet services keep full resolution.
        .indexes([service.as_str()])
        .blobs([
            strategy,
            service.as_str(),
            rate,
            rc.method.as_str(),
            rc.request_id.as_str(),
        ])
        .doubles([status as f64, duration_ms as f64, remaining])
        .build();
    if let Err(e) = dataset.write_data_point(&point) {
        crate::log::event(
            "warn",
            "analytics write failed",
            &[("error", &e.to_string()), ("requestId", &rc.request_id)],
        );
    }
}
