//! Per-request cost of identity and JSON-RPC parsing: token verification (good and bad
//! signature), credential extraction, and parsing a 10-call JSON-RPC batch.
//! Plain `fn main` (harness = false); each case runs for a fixed time budget, ~6 s in all.

use gateway::jsonrpc::Plan;
use gateway::token::{credential, sign, verify, Claims, KeySet, SigningKey};
use std::hint::black_box;
use std::time::{Duration, Instant};

const BUDGET: Duration = Duration::from_millis(1200);

/// Runs `f` in growing rounds until the budget is spent; returns ns per call.
fn measure(mut f: impl FnMut()) -> (f64, u64) {
    // Warm up caches and the branch predictor.
    for _ in 0..1_000 {
        f();
    }
    let start = Instant::now();
    let mut iters: u64 = 0;
    let mut round: u64 = 1_000;
    while start.elapsed() < BUDGET {
        for _ in 0..round {
            f();
        }
        iters += round;
        round = round.saturating_mul(2).min(1_000_000);
    }
    let ns = start.elapsed().as_nanos() as f64 / iters as f64;
    (ns, iters)
}

fn main() {
    let keys = KeySet {
        current: SigningKey {
            kid: "k2".into(),
            secret: vec![0x42; 32],
        },
        previous: Some(SigningKey {
            kid: "k1".into(),
            secret: vec![0x41; 32],
        }),
    };
    let now = 1_750_000_000;
    let claims = Claims {
        sub: "01JABCDEFGHJKMNPQRSTVWXYZ0".into(),
        sid: "01JABCDEFGHJKMNPQRSTVWXYZ1".into(),
        role: "user".into(),
        email: "someone@example.com".into(),
        iss: "https://api.do".into(),
        aud: "api.do".into(),
        iat: now - 60,
        exp: now + 900,
    };
    let good = sign(&claims, &keys.current);
    let bad = {
        // Same length, last signature character changed (keeping canonical base64url).
        let mut t = good.clone();
        let last = t.pop().unwrap_or('A');
        t.push(if last == 'A' { 'E' } else { 'A' });
        t
    };
    assert!(verify(&good, &keys, "https://api.do", "api.do", now).is_ok());
    assert!(verify(&bad, &keys, "https://api.do", "api.do", now).is_err());

    let authorization = format!("Bearer {good}");
    let cookie = "theme=dark; lang=en; session=01JABCDEFGHJKMNPQRSTVWXYZ1; _ga=GA1.2.3";

    let batch = {
        let calls: Vec<String> = (0..10)
            .map(|i| {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"db.put","params":{{"collection":"notes","id":"n{i}","data":{{"title":"note {i}","tags":["a","b"],"n":{i}}}}}}}"#
                )
            })
            .collect();
        format!("[{}]", calls.join(","))
    };
    assert_eq!(Plan::from_body(batch.as_bytes()).calls().count(), 10);

    type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);
    let cases: Vec<Case> = vec![
        (
            "token::verify (valid)",
            Box::new(|| {
                let r = verify(
                    black_box(&good),
                    &keys,
                    "https://api.do",
                    "api.do",
                    black_box(now),
                );
                black_box(r.is_ok());
            }),
        ),
        (
            "token::verify (bad signature)",
            Box::new(|| {
                let r = verify(
                    black_box(&bad),
                    &keys,
                    "https://api.do",
                    "api.do",
                    black_box(now),
                );
                black_box(r.is_err());
            }),
        ),
        (
            "token::sign",
            Box::new(|| {
                black_box(sign(black_box(&claims), &keys.current));
            }),
        ),
        (
            "credential (Bearer)",
            Box::new(|| {
                black_box(credential(black_box(Some(authorization.as_str())), None, None).is_ok());
            }),
        ),
        (
            "credential (session cookie)",
            Box::new(|| {
                black_box(credential(None, None, black_box(Some(cookie))).is_ok());
            }),
        ),
        (
            "jsonrpc Plan::from_body (10-call batch)",
            Box::new(|| {
                black_box(Plan::from_body(black_box(batch.as_bytes())));
            }),
        ),
    ];

    println!("{:<42} {:>12} {:>12}", "case", "ns/op", "iterations");
    println!("{}", "-".repeat(68));
    for (name, mut f) in cases {
        let (ns, iters) = measure(&mut f);
        println!("{name:<42} {ns:>12.1} {iters:>12}");
    }
    println!(
        "\n(token: {} bytes; batch: {} bytes)",
        good.len(),
        batch.len()
    );
}
