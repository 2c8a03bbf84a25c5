//! The auth service's one error type: a `Failure` is either a refusal (an answer the caller
//! maps to 400/401/403/404/409) or a `Fault` (an internal error). Its own module so that
//! `service` and `store` both use it without importing each other.

use rpc::auth::Refusal;

/// An internal error: logged by the service, thrown to the caller without detail.
#[derive(Debug)]
pub struct Fault(pub String);

pub enum Failure {
    Refused(Refusal),
    Fault(Fault),
}

impl From<Fault> for Failure {
    fn from(f: Fault) -> Self {
        Failure::Fault(f)
    }
}

impl From<crate::crypto::CryptoError> for Failure {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Failure::Fault(Fault(e.to_string()))
    }
}

pub type Outcome<T> = Result<T, Failure>;
