//! The api's one error type, mapped once to an RFC 9457 problem response at the edge.
//! Internal detail is logged by the pipeline, never sent to the client.

use gateway::problem::{Problem, CONTENT_TYPE};
use rpc::RpcError;
use worker::Response;

#[derive(Debug, Clone)]
pub enum ApiError {
    BadRequest(String),
    /// A missing or invalid credential; the detail says which, never the credential.
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    PayloadTooLarge,
    Conflict(String),
    TooManyRequests {
        retry_after: u64,
    },
    /// A service answered with a failure; names the service.
    BadGateway(String),
    ServiceUnavailable(String),
    GatewayTimeout,
    /// A named upstream (a user worker, a service, KV) missed its deadline (`deadline`).
    UpstreamTimeout {
        upstream: String,
        ms: u64,
    },
    /// Anything unexpected: the client sees a fixed text, the log sees this one.
    Internal(String),
    /// A problem already shaped by a module (status and detail chosen there).
    Problem(Box<Problem>),
}

impl ApiError {
    pub fn problem(&self) -> Problem {
        match self {
            ApiError::BadRequest(d) => Problem::bad_request(d.clone()),
            ApiError::Unauthorized(d) => Problem::unauthorized().with_detail(d.clone()),
            ApiError::Forbidden(d) => Problem::forbidden().with_detail(d.clone()),
            ApiError::NotFound(d) => Problem::not_found().with_detail(d.clone()),
            ApiError::MethodNotAllowed => Problem::method_not_allowed(),
            ApiError::PayloadTooLarge => Problem::payload_too_large(),
            ApiError::Conflict(d) => Problem::conflict().with_detail(d.clone()),
            ApiError::TooManyRequests { retry_after } => Problem::too_many_requests(*retry_after),
            ApiError::BadGateway(service) => Problem::bad_gateway(service),
            ApiError::ServiceUnavailable(d) => Problem::service_unavailable(d.clone()),
            ApiError::GatewayTimeout | ApiError::UpstreamTimeout { .. } => {
                Problem::gateway_timeout()
            }
            ApiError::Internal(_) => Problem::internal(),
            ApiError::Problem(p) => (**p).clone(),
        }
    }

    /// What the log line records beyond the problem itself.
    pub fn internal_detail(&self) -> Option<String> {
        match self {
            ApiError::Internal(d) => Some(d.clone()),
            ApiError::UpstreamTimeout { upstream, ms } => {
                Some(format!("{upstream} did not answer within {ms} ms"))
            }
            _ => None,
        }
    }

    /// The problem+json response, stamped with the request id.
    pub fn to_response(&self, request_id: &str) -> Response {
        problem_response(self.problem().with_request_id(request_id))
    }
}

pub fn problem_response(problem: Problem) -> Response {
    let status = problem.status;
    let retry_after = problem.extras.get("retryAfter").and_then(|v| v.as_u64());
    let mut response = Response::builder()
        .with_status(status)
        .fixed(problem.to_json().into_bytes());
    let headers = response.headers_mut();
    let _ = headers.set("Content-Type", CONTENT_TYPE);
    let _ = headers.set("Cache-Control", "no-store");
    if let Some(secs) = retry_after {
        let _ = headers.set("Retry-After", &secs.to_string());
    }
    response
}

/// A JSON response with a status (serialising our own values cannot fail in practice;
/// if it ever does, the client gets a clean 500 problem).
pub fn json_response<T: serde::Serialize>(status: u16, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::builder().with_status(status).fixed(body);
            let _ = response
                .headers_mut()
                .set("Content-Type", "application/json");
            response
        }
        Err(_) => problem_response(Problem::internal()),
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Unavailable(binding) => {
                ApiError::ServiceUnavailable(format!("binding {binding} is not configured"))
            }
            RpcError::Failed { service, .. } => ApiError::BadGateway(service),
            RpcError::Codec(m) => ApiError::Internal(m),
        }
    }
}
