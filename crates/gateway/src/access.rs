//! Access levels and the policy that combines them: a route's required level and whether
//! a caller meets it (CONTRACT "Identity and access").

use serde::Serialize;
use std::fmt;

/// How much identity a route demands. Declaration order is the strength order, so `Ord`
/// gives `Anon < Authenticated < Admin` and `max` picks the stricter level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    Anon,
    Authenticated,
    Admin,
}

impl AccessLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Anon => "anon",
            AccessLevel::Authenticated => "authenticated",
            AccessLevel::Admin => "admin",
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The level a request must meet: a domain route's flags can tighten a service's default
/// but never loosen it, so this is the maximum of all three.
pub fn required_access(
    service_default: AccessLevel,
    requires_auth: bool,
    requires_admin: bool,
) -> AccessLevel {
    let mut level = service_default;
    if requires_auth {
        level = level.max(AccessLevel::Authenticated);
    }
    if requires_admin {
        level = level.max(AccessLevel::Admin);
    }
    level
}

/// Why a caller was turned away; maps to 401 and 403 respectively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDenied {
    /// No identity where one is needed (401).
    Unauthenticated,
    /// An identity, but not an admin one (403).
    Forbidden,
}

impl AccessDenied {
    pub fn status(self) -> u16 {
        match self {
            AccessDenied::Unauthenticated => 401,
            AccessDenied::Forbidden => 403,
        }
    }
}

impl fmt::Display for AccessDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessDenied::Unauthenticated => "authentication required",
            AccessDenied::Forbidden => "admin access required",
        })
    }
}

/// Whether a caller meets `required`. An anonymous caller on an admin route gets 401, not
/// 403: authenticating is the first thing they can do about it.
pub fn authorize(
    required: AccessLevel,
    authenticated: bool,
    is_admin: bool,
) -> Result<(), AccessDenied> {
    match required {
        AccessLevel::Anon => Ok(()),
        _ if !authenticated => Err(AccessDenied::Unauthenticated),
        AccessLevel::Authenticated => Ok(()),
        AccessLevel::Admin if is_admin => Ok(()),
        AccessLevel::Admin => Err(AccessDenied::Forbidden),
    }
}

#[cfg(test)]
mod tests {
    use super::AccessLevel::{Admin, Anon, Authenticated};
    use super::*;

    #[test]
    fn levels_are_ordered_by_strength() {
        assert!(Anon < Authenticated && Authenticated < Admin);
        assert_eq!(Anon.max(Admin), Admin);
    }

    #[test]
    fn required_access_never_loosens() {
        let cases = [
            // (default, requiresAuth, requiresAdmin, expected)
            (Anon, false, false, Anon),
            (Anon, true, false, Authenticated),
            (Anon, false, true, Admin),
            (Anon, true, true, Admin),
            (Authenticated, false, false, Authenticated),
            (Authenticated, true, false, Authenticated),
            (Authenticated, false, true, Admin),
            (Admin, false, false, Admin),
            (Admin, true, false, Admin),
        ];
        for (default, auth, admin, want) in cases {
            assert_eq!(
                required_access(default, auth, admin),
                want,
                "{default} auth={auth} admin={admin}"
            );
        }
    }

    #[test]
    fn authorize_maps_to_401_and_403() {
        use AccessDenied::{Forbidden, Unauthenticated};
        let cases = [
            // (required, authenticated, admin, expected)
            (Anon, false, false, Ok(())),
            (Anon, true, true, Ok(())),
            (Authenticated, false, false, Err(Unauthenticated)),
            (Authenticated, true, false, Ok(())),
            (Admin, false, false, Err(Unauthenticated)),
            (Admin, true, false, Err(Forbidden)),
            (Admin, true, true, Ok(())),
        ];
        for (required, authn, admin, want) in cases {
            assert_eq!(
                authorize(required, authn, admin),
                want,
                "{required} {authn} {admin}"
            );
        }
        assert_eq!(Unauthenticated.status(), 401);
        assert_eq!(Forbidden.status(), 403);
    }

    #[test]
    fn serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&Authenticated).ok().as_deref(),
            Some("\"authenticated\"")
        );
    }
}
