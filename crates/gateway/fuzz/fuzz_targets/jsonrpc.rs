//! JSON-RPC request bodies (`jsonrpc::Plan::from_body`). Properties: only allowlisted methods
//! are ever planned for execution (never `fetch`, `constructor`, `validateToken` or a `_`
//! name), a batch never plans more than `MAX_BATCH` calls, `ctx` goes first exactly when the
//! method takes it, and the finished answer is valid JSON of the request's shape whatever
//! the services answer.
#![no_main]

use gateway::jsonrpc::{allowed, takes_ctx, Plan, RpcFailure, Shape, MAX_BATCH};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    // The last byte picks how the services answer; the rest is the body.
    let (outcome, body) = data.split_last().unwrap_or((&0, data));
    let plan = Plan::from_body(body);
    let ctx = json!({"requestId": "r", "traceparent": "t", "userId": "u", "role": "user"});
    let mut n = 0;
    for call in plan.calls() {
        n += 1;
        assert!(
            allowed(&call.service, &call.method),
            "{}.{} is not published",
            call.service,
            call.method
        );
        assert!(
            !call.method.starts_with('_')
                && !["fetch", "constructor", "validateToken"].contains(&call.method.as_str()),
            "an internal method was planned: {}",
            call.method
        );
        assert_eq!(call.takes_ctx, takes_ctx(&call.service, &call.method));
        let args = call.args_with_ctx(&ctx);
        if call.takes_ctx {
            assert_eq!(args.first(), Some(&ctx));
            assert_eq!(args.len(), call.args.len() + 1);
        } else {
            assert_eq!(args, call.args);
        }
    }
    assert!(n <= MAX_BATCH);
    let shape = plan.shape();
    let results = (0..n)
        .map(|i| match (outcome.wrapping_add(i as u8)) % 4 {
            0 => Ok(Value::Null),
            1 => Ok(json!({"id": i, "nested": [1, "two", null]})),
            2 => Err(RpcFailure::Timeout),
            _ => Err(RpcFailure::Service {
                message: "no".into(),
                data: Some(json!({"status": 404})),
            }),
        })
        .collect();
    if let Some(answer) = plan.finish(results) {
        let value: Value = serde_json::from_str(&answer).expect("the answer is JSON");
        match shape {
            Shape::Single => assert!(value.is_object(), "{answer}"),
            Shape::Batch => assert!(value.as_array().is_some_and(|a| !a.is_empty()), "{answer}"),
        }
        let responses = value
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![value.clone()]);
        for r in responses {
            assert_eq!(r.get("jsonrpc"), Some(&json!("2.0")), "{answer}");
            assert!(
                r.get("result").is_some() != r.get("error").is_some(),
                "{answer}"
            );
        }
    }
});
