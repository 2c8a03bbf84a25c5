//! Error bodies: RFC 9457 `application/problem+json` for every error the platform returns,
//! with stable `type` URIs and fixed, non-revealing texts for server-side failures.
//!
//! `type` URIs are `https://apis.do/problems/{slug}` and are part of the public contract
//! (clients may switch on them), so slugs never change once published:
//!
//! | status | slug | constructor |
//! | --- | --- | --- |
//! | 400 | `bad-request` | [`Problem::bad_request`] |
//! | 401 | `unauthorized` | [`Problem::unauthorized`] |
//! | 403 | `forbidden` | [`Problem::forbidden`] |
//! | 404 | `not-found` | [`Problem::not_found`] |
//! | 405 | `method-not-allowed` | [`Problem::method_not_allowed`] |
//! | 409 | `conflict` | [`Problem::conflict`] |
//! | 412 | `precondition-failed` | [`Problem::precondition_failed`] |
//! | 413 | `content-too-large` | [`Problem::payload_too_large`] |
//! | 429 | `too-many-requests` | [`Problem::too_many_requests`] |
//! | 500 | `internal` | [`Problem::internal`] |
//! | 502 | `bad-gateway` | [`Problem::bad_gateway`] |
//! | 503 | `service-unavailable` | [`Problem::service_unavailable`] |
//! | 504 | `gateway-timeout` | [`Problem::gateway_timeout`] |
//!
//! Other statuses (via [`Problem::new`]) get `about:blank`, as RFC 9457 §4.2.1 prescribes when
//! the status code says it all. `title` is always the RFC 9110 reason phrase.

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// Media type of problem bodies.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Prefix of every `type` URI defined by the platform.
pub const TYPE_BASE: &str = "https://apis.do/problems/";

/// Members with a fixed meaning, which extras may not overwrite.
const RESERVED: [&str; 6] = ["type", "title", "status", "detail", "requestId", "instance"];

/// An RFC 9457 problem. Serialises as `{"type","title","status","detail","requestId", ...extras}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub status: u16,
    pub title: String,
    pub detail: String,
    pub type_uri: String,
    /// Empty until [`with_request_id`](Self::with_request_id); the edge always sets it.
    pub request_id: String,
    /// Extension members, serialised after the standard ones.
    pub extras: Map<String, Value>,
}

impl Problem {
    /// A problem for any status, with the platform's `type` URI when it defines one for that
    /// status and `about:blank` otherwise. `detail` must be safe to show a client.
    pub fn new(status: u16, detail: impl Into<String>) -> Problem {
        let type_uri = match slug(status) {
            Some(slug) => format!("{TYPE_BASE}{slug}"),
            None => "about:blank".to_owned(),
        };
        Problem {
            status,
            title: reason_phrase(status).to_owned(),
            detail: detail.into(),
            type_uri,
            request_id: String::new(),
            extras: Map::new(),
        }
    }

    /// 400: the request itself is wrong; `detail` says how (shown to the client).
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(400, detail)
    }

    /// 401: no credentials where required, or credentials that are invalid or expired.
    pub fn unauthorized() -> Problem {
        Problem::new(401, "Valid credentials are required for this resource.")
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden() -> Problem {
        Problem::new(403, "You do not have permission to access this resource.")
    }

    /// 404. Also the answer for another user's document, so existence never leaks.
    pub fn not_found() -> Problem {
        Problem::new(404, "The requested resource was not found.")
    }

    /// 405; the caller adds the `Allow` header.
    pub fn method_not_allowed() -> Problem {
        Problem::new(405, "The method is not allowed for this resource.")
    }

    pub fn conflict() -> Problem {
        Problem::new(
            409,
            "The request conflicts with the current state of the resource.",
        )
    }

    /// 412: an `If-Match` (or other precondition) did not hold.
    pub fn precondition_failed() -> Problem {
        Problem::new(
            412,
            "The resource has changed since it was read (precondition failed).",
        )
    }

    /// 413 (RFC 9110 now calls it "Content Too Large").
    pub fn payload_too_large() -> Problem {
        Problem::new(413, "The request body is too large.")
    }

    /// 429, with a `retryAfter` member (seconds) mirroring the `Retry-After` header.
    pub fn too_many_requests(retry_after_secs: u64) -> Problem {
        Problem::new(
            429,
            format!("Rate limit exceeded. Retry after {retry_after_secs} seconds."),
        )
        .with_extra("retryAfter", Value::from(retry_after_secs))
    }

    /// 500. The detail is fixed: internals (messages, stack traces) are logged, never sent.
    pub fn internal() -> Problem {
        Problem::new(500, "An unexpected error occurred.")
    }

    /// 502: the named service (a registry name, not an internal address) failed.
    pub fn bad_gateway(service: &str) -> Problem {
        Problem::new(
            502,
            format!("The {service} service failed to handle the request."),
        )
        .with_extra("service", Value::from(service))
    }

    /// 503: e.g. a route whose binding is not configured, or a limiter that fails closed.
    pub fn service_unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(503, detail)
    }

    /// 504: an upstream did not answer in time.
    pub fn gateway_timeout() -> Problem {
        Problem::new(504, "The upstream service did not respond in time.")
    }

    pub fn with_request_id(mut self, id: impl Into<String>) -> Problem {
        self.request_id = id.into();
        self
    }

    /// Replaces the default detail with a more specific one (must be safe to show).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = detail.into();
        self
    }

    /// Adds an extension member. Standard members (`type`, `title`, `status`, `detail`,
    /// `requestId`, `instance`) cannot be overwritten this way; such keys are ignored.
    pub fn with_extra(mut self, key: impl Into<String>, value: Value) -> Problem {
        let key = key.into();
        if !RESERVED.contains(&key.as_str()) {
            self.extras.insert(key, value);
        }
        self
    }

    pub fn to_json(&self) -> String {
        // Serialising string-keyed maps of JSON values cannot fail; the fallback only keeps
        // this total.
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                r#"{{"type":"about:blank","title":"Internal Server Error","status":500,"requestId":{}}}"#,
                Value::from(self.request_id.as_str())
            )
        })
    }
}

impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(5 + self.extras.len()))?;
        map.serialize_entry("type", &self.type_uri)?;
        map.serialize_entry("title", &self.title)?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry("detail", &self.detail)?;
        map.serialize_entry("requestId", &self.request_id)?;
        for (key, value) in &self.extras {
            if !RESERVED.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// Reads a problem back (e.g. one relayed by an internal service). Missing members get
/// RFC 9457 defaults: `type` `about:blank`, `title` from the status.
impl<'de> Deserialize<'de> for Problem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            #[serde(rename = "type", default)]
            type_uri: Option<String>,
            #[serde(default)]
            title: Option<String>,
            status: u16,
            #[serde(default)]
            detail: String,
            #[serde(rename = "requestId", default)]
            request_id: String,
            #[serde(flatten)]
            extras: Map<String, Value>,
        }
        let w = Wire::deserialize(deserializer)?;
        Ok(Problem {
            status: w.status,
            title: w
                .title
                .unwrap_or_else(|| reason_phrase(w.status).to_owned()),
            detail: w.detail,
            type_uri: w.type_uri.unwrap_or_else(|| "about:blank".to_owned()),
            request_id: w.request_id,
            extras: w.extras,
        })
    }
}

fn slug(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        409 => "conflict",
        412 => "precondition-failed",
        413 => "content-too-large",
        429 => "too-many-requests",
        500 => "internal",
        502 => "bad-gateway",
        503 => "service-unavailable",
        504 => "gateway-timeout",
        _ => return None,
    })
}

/// RFC 9110 (and RFC 6585 for 429) reason phrases for the error statuses a gateway returns.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => match status / 100 {
            4 => "Client Error",
            5 => "Server Error",
            _ => "Error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(p: &Problem) -> Value {
        serde_json::from_str(&p.to_json()).unwrap()
    }

    #[test]
    fn serialises_members_in_order() {
        let p = Problem::not_found().with_request_id("01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert_eq!(
            p.to_json(),
            r#"{"type":"https://apis.do/problems/not-found","title":"Not Found","status":404,"detail":"The requested resource was not found.","requestId":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}"#
        );
        assert_eq!(CONTENT_TYPE, "application/problem+json");
    }

    #[test]
    fn every_constructor_has_matching_status_title_and_type() {
        let cases = [
            (Problem::bad_request("x"), 400, "Bad Request", "bad-request"),
            (Problem::unauthorized(), 401, "Unauthorized", "unauthorized"),
            (Problem::forbidden(), 403, "Forbidden", "forbidden"),
            (Problem::not_found(), 404, "Not Found", "not-found"),
            (
                Problem::method_not_allowed(),
                405,
                "Method Not Allowed",
                "method-not-allowed",
            ),
            (Problem::conflict(), 409, "Conflict", "conflict"),
            (
                Problem::precondition_failed(),
                412,
                "Precondition Failed",
                "precondition-failed",
            ),
            (
                Problem::payload_too_large(),
                413,
                "Content Too Large",
                "content-too-large",
            ),
            (
                Problem::too_many_requests(3),
                429,
                "Too Many Requests",
                "too-many-requests",
            ),
            (
                Problem::internal(),
                500,
                "Internal Server Error",
                "internal",
            ),
            (
                Problem::bad_gateway("db"),
                502,
                "Bad Gateway",
                "bad-gateway",
            ),
            (
                Problem::service_unavailable("x"),
                503,
                "Service Unavailable",
                "service-unavailable",
            ),
            (
                Problem::gateway_timeout(),
                504,
                "Gateway Timeout",
                "gateway-timeout",
            ),
        ];
        for (p, status, title, slug) in cases {
            assert_eq!(p.status, status);
            assert_eq!(p.title, title);
            assert_eq!(p.type_uri, format!("https://apis.do/problems/{slug}"));
            assert!(!p.detail.is_empty());
            let v = parsed(&p);
            assert_eq!(v["status"], json!(status));
            assert_eq!(v["requestId"], json!(""));
        }
    }

    #[test]
    fn too_many_requests_carries_retry_after() {
        let v = parsed(&Problem::too_many_requests(17));
        assert_eq!(v["retryAfter"], json!(17));
        assert_eq!(
            v["detail"],
            json!("Rate limit exceeded. Retry after 17 seconds.")
        );
    }

    #[test]
    fn server_errors_use_fixed_text() {
        assert_eq!(Problem::internal().detail, "An unexpected error occurred.");
        let v = parsed(&Problem::bad_gateway("db"));
        assert_eq!(v["service"], json!("db"));
        assert_eq!(
            v["detail"],
            json!("The db service failed to handle the request.")
        );
    }

    #[test]
    fn extras_follow_and_cannot_override_standard_members() {
        let p = Problem::bad_request("bad email")
            .with_request_id("r1")
            .with_extra("field", json!("email"))
            .with_extra("status", json!(200))
            .with_extra("requestId", json!("spoof"));
        assert_eq!(
            p.to_json(),
            r#"{"type":"https://apis.do/problems/bad-request","title":"Bad Request","status":400,"detail":"bad email","requestId":"r1","field":"email"}"#
        );
        // Even a directly inserted reserved key is not emitted twice.
        let mut p = Problem::not_found();
        p.extras.insert("title".into(), json!("x"));
        assert_eq!(parsed(&p)["title"], json!("Not Found"));
    }

    #[test]
    fn detail_is_escaped() {
        let p = Problem::bad_request("quote \" and </script>\n");
        assert_eq!(parsed(&p)["detail"], json!("quote \" and </script>\n"));
    }

    #[test]
    fn with_detail_replaces_default() {
        let p = Problem::conflict().with_detail("A user with this email already exists.");
        assert_eq!(p.status, 409);
        assert_eq!(p.detail, "A user with this email already exists.");
    }

    #[test]
    fn other_statuses_use_about_blank() {
        let p = Problem::new(422, "nope");
        assert_eq!(p.type_uri, "about:blank");
        assert_eq!(p.title, "Unprocessable Content");
        assert_eq!(Problem::new(599, "").title, "Server Error");
        assert_eq!(Problem::new(299, "").title, "Error");
    }

    #[test]
    fn round_trips_through_json() {
        let p = Problem::too_many_requests(5)
            .with_request_id("r")
            .with_extra("limit", json!({"q": 100}));
        let back: Problem = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(back, p);
        let minimal: Problem = serde_json::from_str(r#"{"status":404}"#).unwrap();
        assert_eq!(minimal.title, "Not Found");
        assert_eq!(minimal.type_uri, "about:blank");
        assert!(serde_json::from_str::<Problem>(r#"{"title":"x"}"#).is_err());
    }
}
