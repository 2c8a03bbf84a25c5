//! HTTP adapters for the RPC-only services: each maps HTTP to RPC calls and back.

pub mod auth;
pub mod db;
pub mod do_;
pub mod rpc;
