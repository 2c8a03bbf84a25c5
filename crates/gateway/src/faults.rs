//! Runtime failures the platform reports only as text, classified in this one place. D1
//! reports a failed statement as an `Error` whose message carries SQLite's own words
//! (`D1_ERROR: UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT`), with no code or
//! type to test; every caller asks here instead of matching messages itself.

/// What a failed D1 statement was, as far as its message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum D1Failure {
    /// A UNIQUE or PRIMARY KEY constraint refused the row: the caller lost a race or
    /// repeated itself, an answer (409), not a fault.
    UniqueViolation,
    /// Anything else: a fault.
    Other,
}

pub fn classify_d1(message: &str) -> D1Failure {
    // SQLite words both as "UNIQUE constraint failed: t.c"; a PRIMARY KEY is reported the same.
    if message.contains("UNIQUE constraint failed") {
        D1Failure::UniqueViolation
    } else {
        D1Failure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d1_messages() {
        let cases = [
            (
                "D1_ERROR: UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT",
                D1Failure::UniqueViolation,
            ),
            (
                "D1: UNIQUE constraint failed: api_keys.id",
                D1Failure::UniqueViolation,
            ),
            (
                "D1_ERROR: NOT NULL constraint failed: users.email: SQLITE_CONSTRAINT",
                D1Failure::Other,
            ),
            ("D1_ERROR: no such table: users", D1Failure::Other),
            ("Network connection lost.", D1Failure::Other),
            ("", D1Failure::Other),
        ];
        for (message, want) in cases {
            assert_eq!(classify_d1(message), want, "{message}");
        }
    }
}
