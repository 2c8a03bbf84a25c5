//! Correlation headers (`ids::accept_request_id`, `ids::TraceParent::parse`). Properties: a
//! kept request id is the incoming value and is kept again; a parsed `traceparent` prints
//! as a header that parses back to the same value.
#![no_main]

use gateway::ids::{accept_request_id, TraceParent};
use gateway_fuzz::{fields, text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [request_id, traceparent] = fields::<2>(data, b'\n');
    let request_id = text(request_id);
    if let Some(kept) = accept_request_id(Some(&request_id)) {
        assert_eq!(
            accept_request_id(Some(&kept)).as_deref(),
            Some(kept.as_str())
        );
        assert!(
            kept.len() <= 36 && kept.bytes().all(|b| b.is_ascii_graphic()),
            "{kept:?}"
        );
    }
    if let Some(tp) = TraceParent::parse(&text(traceparent)) {
        let printed = tp.to_header();
        assert_eq!(TraceParent::parse(&printed), Some(tp), "{printed:?}");
        assert_eq!(tp.child([7; 8]).trace_id, tp.trace_id);
    }
});
