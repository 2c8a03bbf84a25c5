//! Pure gateway logic, shared by the worker crates and tested natively.
//! Nothing here depends on `worker` or touches JS: inputs in, decisions out.

pub mod access;
pub mod documents;
pub mod faults;
pub mod health;
pub mod host;
pub mod ids;
pub mod jsonrpc;
pub mod limitshard;
pub mod logs;
pub mod metrics;
pub mod passthrough;
pub mod problem;
pub mod ratelimit;
pub mod registry;
pub mod router;
pub mod routes;
pub mod routes_cache;
pub mod runtime_routes;
pub mod token;
pub mod waitlist;
