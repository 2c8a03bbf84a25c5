//! The do HTTP adapter (`/api/do/...` on API hosts): the proxy's catalogue and a single call
//! over HTTP. `POST /call` takes the same published methods as `/rpc`, checks their params the
//! same way, and prepends the trusted `ctx` itself; a caller can never name an internal method
//! or supply `ctx`.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /services` | 200 `{services: [{name, binding, description, available, methods}]}` |
//! | `GET /services/{name}` | 200 the service, 404 if unknown |
//! | `POST /call` `{service, method, args?}` | 200 `{result}`; 400 bad params, 404 not callable |
//! | `GET /health` | 200 or 503 with do's `health()` |

use gateway::access::AccessDenied;
use gateway::jsonrpc::{self, bind_params, takes_ctx, Params};
use rpc::do_::ServiceCall;
use rpc::DoClient;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Env, Method, Request, Response};

use super::rpc::{
    call_options, deadline_ms, may_use, method_not_allowed, public_failure, read_body, trusted_ctx,
    within, MAX_BODY_BYTES,
};
use crate::context::RequestCtx;
use crate::error::{json_response, ApiError};

pub async fn handle(
    req: &Request,
    env: &Env,
    rc: &RequestCtx,
    path: &str,
) -> Result<Response, ApiError> {
    let path = path.trim_end_matches('/');
    let method = req.method();
    match (path, method) {
        ("/services", Method::Get) => {
            let services = DoClient::from_env(env)?.get_services().await?;
            Ok(json_response(200, &json!({ "services": services })))
        }
        ("/call", Method::Post) => call(req, env, rc).await,
        ("/health", Method::Get) => {
            let health = DoClient::from_env(env)?.health().await?;
            Ok(json_response(if health.ok { 200 } else { 503 }, &health))
        }
        ("/services" | "/health", _) => method_not_allowed(rc, "GET"),
        ("/call", _) => method_not_allowed(rc, "POST"),
        (other, method) => match other.strip_prefix("/services/") {
            Some(name) if !name.contains('/') => {
                if method != Method::Get {
                    return method_not_allowed(rc, "GET");
                }
                match DoClient::from_env(env)?.get_service(name).await? {
                    Some(service) => Ok(json_response(200, &service)),
                    None => Err(ApiError::NotFound("no such service".into())),
                }
            }
            _ => Err(ApiError::NotFound(
                "the do adapter serves /services, /services/{name}, /call and /health".into(),
            )),
        },
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    service: String,
    method: String,
    /// Positional (array) or named (object); absent means none.
    #[serde(default)]
    args: Option<Value>,
}

async fn call(req: &Request, env: &Env, rc: &RequestCtx) -> Result<Response, ApiError> {
    let body = read_body(req, MAX_BODY_BYTES).await?;
    let CallBody {
        service,
        method,
        args,
    } = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadRequest("the body must be a JSON object {service, method, args?}".into())
    })?;
    let params = match args {
        None | Some(Value::Null) => Params::None,
        Some(Value::Array(values)) => Params::Positional(values),
        Some(Value::Object(named)) => Params::Named(named),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "args must be an array or an object".into(),
            ))
        }
    };
    let args = bind_params(&service, &method, &params).map_err(|e| match e.code {
        jsonrpc::METHOD_NOT_FOUND => {
            ApiError::NotFound("no such callable method (GET /api/do/services lists them)".into())
        }
        _ => ApiError::BadRequest(e.data.as_ref().and_then(Value::as_str).map_or_else(
            || e.message.clone(),
            |reason| format!("invalid args: {reason}"),
        )),
    })?;
    may_use(rc, &service).map_err(|denied| match denied {
        AccessDenied::Unauthenticated => {
            ApiError::Unauthorized("this service needs a credential".into())
        }
        AccessDenied::Forbidden => ApiError::Forbidden("this service needs an admin".into()),
    })?;
    let args = if takes_ctx(&service, &method) {
        std::iter::once(trusted_ctx(rc)?).chain(args).collect()
    } else {
        args
    };
    let call = ServiceCall::new(&service, &method, args);
    let proxy = DoClient::from_env(env)?;
    let options = call_options(rc);
    let outcome = within(
        deadline_ms(env),
        proxy.call_outcome(call.clone(), Some(&options)),
    )
    .await
    .ok_or(ApiError::GatewayTimeout)??;
    match outcome.into_result() {
        Ok(result) => Ok(json_response(200, &json!({ "result": result }))),
        Err(error) => Err(match public_failure(rc, &call, &error) {
            jsonrpc::RpcFailure::Timeout => ApiError::GatewayTimeout,
            jsonrpc::RpcFailure::Unavailable => {
                ApiError::ServiceUnavailable(format!("service {service} is not available here"))
            }
            jsonrpc::RpcFailure::Forbidden => {
                ApiError::Forbidden("this service needs an admin".into())
            }
            jsonrpc::RpcFailure::NotFound => ApiError::NotFound(
                "no such callable method (GET /api/do/services lists them)".into(),
            ),
            jsonrpc::RpcFailure::Service { .. } => ApiError::BadGateway(service),
            // A single call always fits its budget; TooLarge comes only from batches.
            jsonrpc::RpcFailure::Internal | jsonrpc::RpcFailure::TooLarge => {
                ApiError::Internal(error.message)
            }
        }),
    }
}
