//! Differential: the route file's two parsers, the hand-written fast path (taken by
//! `DomainRoutes::parse` whenever it accepts the file) and the general serde_json path, must
//! give the same table (routes in order, same lookups) or the same error.
#![no_main]

use gateway::routes::DomainRoutes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let either = DomainRoutes::parse(data);
    let general = DomainRoutes::parse_general(data);
    match (&either, &general) {
        (Ok(a), Ok(b)) => {
            let (ra, rb): (Vec<_>, Vec<_>) = (a.iter().collect(), b.iter().collect());
            assert_eq!(ra, rb, "the two parsers built different routes");
            for r in a.iter() {
                let probe = r
                    .domain
                    .strip_prefix("*.")
                    .map_or(r.domain.clone(), |s| format!("x.{s}"));
                assert_eq!(
                    a.lookup(&probe),
                    b.lookup(&probe),
                    "lookup({probe:?}) differs"
                );
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "the two parsers refused differently"),
        _ => panic!("one parser accepted, the other refused: {either:?} vs {general:?}"),
    }
});
