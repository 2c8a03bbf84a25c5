//! The per-request context every pipeline phase reads and fills in: who is asking, where the
//! request goes, what the limiter said, and what the log line will record.

use gateway::access::{authorize, AccessDenied, AccessLevel};
use gateway::ids::TraceParent;
use gateway::ratelimit::{Decision, Policy};
use gateway::router::{Route, Strategy};
use rpc::Ctx;

use crate::error::ApiError;

/// Roles a caller can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Role {
        if s == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Token,
    ApiKey,
    Session,
    AdminKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Token => "token",
            CredentialKind::ApiKey => "apiKey",
            CredentialKind::Session => "session",
            CredentialKind::AdminKey => "adminKey",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub email: Option<String>,
    pub role: Role,
    pub permissions: Vec<String>,
    pub via: CredentialKind,
    pub session_id: Option<String>,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

pub struct RequestCtx {
    pub request_id: String,
    pub trace: TraceParent,
    pub started_ms: f64,
    pub method: String,
    pub host: String,
    pub path: String,
    pub ip: Option<String>,
    pub identity: Option<Identity>,
    pub route: Option<Route>,
    pub rate: Option<(Policy, Decision)>,
    /// The limiter was unavailable and the configured mode decided (for the log).
    pub limiter_failure: Option<String>,
    /// Extra detail for the log line only (never sent to the client).
    pub log_error: Option<String>,
    /// A session cookie was rejected: the response tells the browser to drop it, so a dead
    /// cookie cannot lock its owner out of `/login`.
    pub clear_session_cookie: bool,
    /// Through the console's API prefix (`/console/api/*`): its cookie is the credential.
    pub console: bool,
}

impl RequestCtx {
    /// The one access check: whether this caller meets `level` (anon, authenticated, admin).
    pub fn access(&self, level: AccessLevel) -> Result<(), AccessDenied> {
        let identity = self.identity.as_ref();
        authorize(
            level,
            identity.is_some(),
            identity.is_some_and(Identity::is_admin),
        )
    }

    /// [`access`](Self::access) as the HTTP answer: 401 without an identity, 403 without the
    /// role.
    pub fn require(&self, level: AccessLevel) -> Result<(), ApiError> {
        self.access(level).map_err(|denied| match denied.status() {
            401 => ApiError::Unauthorized("this route needs a credential".into()),
            _ => ApiError::Forbidden("this route needs an admin".into()),
        })
    }

    /// The trusted context passed to RPC services.
    pub fn rpc_ctx(&self) -> Ctx {
        Ctx {
            request_id: self.request_id.clone(),
            traceparent: self.trace.to_header(),
            user_id: self.identity.as_ref().map(|i| i.user_id.clone()),
            role: self.identity.as_ref().map(|i| i.role.as_str().to_string()),
            owner: None,
        }
    }

    pub fn strategy(&self) -> Option<Strategy> {
        self.route.as_ref().and_then(|r| r.strategy())
    }

    pub fn service(&self) -> Option<String> {
        self.route
            .as_ref()
            .and_then(|r| r.target_name())
            .map(str::to_string)
    }
}
