//! The `/health` report from the services' probes: 200 when every service is up, else 503
//! naming those down. What went wrong (a service's error text, a timeout) is shown to admins
//! only; an anonymous caller sees each service's status and latency, and the log the rest.

use serde_json::{json, Map, Value};

/// One service's `health()` as the api saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub service: String,
    pub ok: bool,
    pub latency_ms: u64,
    /// Why it is down: internal text, for admins and the log.
    pub error: Option<String>,
}

/// The status and body of `/health`; `detail` adds each failing service's error text.
pub fn report(probes: &[Probe], detail: bool) -> (u16, Value) {
    let mut services = Map::new();
    let mut down = Vec::new();
    for p in probes {
        let mut entry = json!({ "ok": p.ok, "latencyMs": p.latency_ms });
        if !p.ok {
            down.push(p.service.clone());
            if detail {
                entry["error"] = json!(p.error.as_deref().unwrap_or("down"));
            }
        }
        services.insert(p.service.clone(), entry);
    }
    let status = if down.is_empty() { 200 } else { 503 };
    let mut body = json!({
        "status": if down.is_empty() { "ok" } else { "degraded" },
        "services": services,
    });
    if !down.is_empty() {
        body["down"] = json!(down);
    }
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes() -> Vec<Probe> {
        vec![
            Probe {
                service: "db".into(),
                ok: false,
                latency_ms: 3,
                error: Some("D1 query failed: SQLITE_IOERR at /srv/db.sqlite".into()),
            },
            Probe {
                service: "auth".into(),
                ok: true,
                latency_ms: 1,
                error: None,
            },
        ]
    }

    #[test]
    fn anonymous_sees_status_and_latency_only() {
        let (status, body) = report(&probes(), false);
        assert_eq!(status, 503);
        assert_eq!(
            body,
            json!({
                "status": "degraded",
                "down": ["db"],
                "services": { "db": {"ok": false, "latencyMs": 3}, "auth": {"ok": true, "latencyMs": 1} },
            })
        );
        assert!(!body.to_string().contains("SQLITE"));
    }

    #[test]
    fn admins_see_why() {
        let (_, body) = report(&probes(), true);
        assert_eq!(
            body["services"]["db"]["error"],
            "D1 query failed: SQLITE_IOERR at /srv/db.sqlite"
        );
        assert_eq!(body["services"]["auth"].get("error"), None);
    }

    #[test]
    fn all_up() {
        let (status, body) = report(&probes()[1..], false);
        assert_eq!(status, 200);
        assert_eq!(body["status"], "ok");
        assert_eq!(body.get("down"), None);
    }
}
