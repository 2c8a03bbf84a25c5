//! The domain-routes file (`DomainRoutes::parse`). Properties of an accepted table: every
//! exact entry is what its own domain looks up; a wildcard `*.s` covers `x.s` but never its
//! apex `s`; every domain is reachable (a Host header normalises to it) and stored
//! lower-case; `metadata` is kept as valid compact JSON.
#![no_main]

use gateway::host::normalize_host;
use gateway::routes::DomainRoutes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = DomainRoutes::parse(data) else {
        return;
    };
    assert_eq!(table.iter().count(), table.len());
    for r in table.iter() {
        assert!(
            !r.domain.bytes().any(|b| b.is_ascii_uppercase()),
            "{:?}",
            r.domain
        );
        match r.domain.strip_prefix("*.") {
            None => {
                assert_eq!(table.lookup(&r.domain), Some(r), "exact {:?}", r.domain);
                // Reachable: some Host header normalises to exactly this domain.
                let host = normalize_host(&r.domain).map(|h| h.name);
                assert_eq!(host.as_deref(), Ok(r.domain.as_str()), "unreachable route");
            }
            Some(apex) => {
                let below = format!("x.{apex}");
                if below.len() <= 253 {
                    let host = normalize_host(&below).map(|h| h.name);
                    assert_eq!(host.as_deref(), Ok(below.as_str()), "unreachable wildcard");
                }
                assert!(
                    table.lookup(&below).is_some(),
                    "wildcard {:?} misses {below:?}",
                    r.domain
                );
                assert_ne!(
                    table.lookup(apex),
                    Some(r),
                    "wildcard {:?} matches its apex",
                    r.domain
                );
            }
        }
        if let Some(meta) = &r.metadata {
            let value: serde_json::Value =
                serde_json::from_str(meta.as_str()).expect("metadata is kept as valid JSON");
            assert_eq!(value, meta.to_value());
        }
    }
});
