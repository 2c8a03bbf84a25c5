//! The limiter's wire header (`ratelimit::Decision::from_wire`, what the `RateLimiter` object
//! answers the api with). Properties: a parsed decision never has more remaining than its
//! limit, prints back to a header that parses to the same decision, and renders its response
//! headers; every decision's own wire form parses back to it.
#![no_main]

use arbitrary::Arbitrary;
use gateway::ratelimit::{Decision, Policy};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    Wire(String),
    Decision {
        allowed: bool,
        limit: u32,
        remaining: u32,
        reset_secs: u64,
        retry_after_secs: Option<u64>,
    },
}

fuzz_target!(|input: Input| {
    let decision = match input {
        Input::Wire(wire) => match Decision::from_wire(&wire) {
            Some(d) => d,
            None => return,
        },
        Input::Decision {
            allowed,
            limit,
            remaining,
            reset_secs,
            retry_after_secs,
        } => Decision {
            allowed,
            limit,
            remaining: remaining.min(limit),
            reset_secs,
            retry_after_secs,
        },
    };
    assert!(decision.remaining <= decision.limit);
    let wire = decision.to_wire();
    assert_eq!(
        Decision::from_wire(&wire).as_ref(),
        Some(&decision),
        "{wire:?}"
    );
    let headers = decision.headers(&Policy::default_policy());
    assert!(
        headers
            .iter()
            .all(|(_, v)| v.bytes().all(|b| b.is_ascii_graphic() || b == b' ')),
        "{headers:?}"
    );
});
