//! Document bodies and RFC 7396 merge patches (`documents::parse_body`, `serialize_data`,
//! `merge_patch`). Properties: an accepted body has no reserved `_` member and no `id`
//! member left, and what is stored reads back as the same data; a merge patch applied
//! twice gives what it gives once, and never nests deeper than its inputs.
#![no_main]

use gateway::documents::{depth, merge_patch, parse_body, serialize_data, DocError, MAX_DEPTH};
use gateway_fuzz::fields;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let [target, patch] = fields::<2>(data, 0);
    let path_id = (target.first() == Some(&b' ')).then_some("doc-1");
    let Ok(target) = parse_body(target, path_id) else {
        return;
    };
    assert!(target.keys().all(|k| !k.starts_with('_')) && !target.contains_key("id"));
    assert!(depth(&target) <= MAX_DEPTH);
    match serialize_data(&target) {
        Ok(stored) => assert_eq!(
            parse_body(stored.as_bytes(), None).as_ref(),
            Ok(&target),
            "{stored}"
        ),
        Err(e) => assert_eq!(e, DocError::TooLarge),
    }

    // The patch as db takes it (an object through `parse_body`), or any JSON value at all.
    let patch: Value = match parse_body(patch, path_id) {
        Ok(map) => Value::Object(map),
        Err(_) => match serde_json::from_slice(patch) {
            Ok(v) => v,
            Err(_) => return,
        },
    };
    let target = Value::Object(target);
    let mut once = target.clone();
    merge_patch(&mut once, &patch);
    let mut twice = once.clone();
    merge_patch(&mut twice, &patch);
    assert_eq!(once, twice, "a merge patch is not idempotent");
    if let (Value::Object(t), Value::Object(p), Value::Object(m)) = (&target, &patch, &once) {
        assert!(
            depth(m) <= depth(t).max(depth(p)),
            "the merge nests deeper than its inputs"
        );
    }
});
