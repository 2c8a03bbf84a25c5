//! The RPC surface between workers: wire types every service shares, the raw JS bindings
//! (kept in `sys`, the only place that touches `wasm_bindgen` externs), and typed clients.

pub mod auth;
pub mod clients;
pub mod db;
pub mod deadline;
pub mod do_;
pub mod health;
pub mod sys;
pub mod wire;

pub use clients::{AuthClient, DbClient, DoClient, RpcError};
pub use wire::{Ctx, Health};
