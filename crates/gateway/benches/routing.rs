//! Routing benchmark: domain-route lookup (exact hit, wildcard hit, miss), the whole
//! `route()` decision, and the refresh cost at 10, 1 000 and 100 000 routes: the file parsed
//! and validated (`DomainRoutes::parse`, when the file changed), and the refresh an isolate
//! runs otherwise (`source_stamp` of the file, then `DomainRoutes::from_snapshot` of the
//! snapshot in KV). Plain `fn main` so it needs no bench framework; bounded to a few seconds.
//!
//! It fails (exit 1, `FAILED` on stderr) when the 100 000-route refresh misses its 100 ms
//! target. The target is for this machine at rest, where tokenising the 22 MiB file (the
//! floor: serde `IgnoredAny`, measured in the same run) takes `REFERENCE_FLOOR_MS`; a run on
//! a slower or busier machine is held to the same ratio to its own floor, so the check means
//! the same whatever the machine's speed.

use gateway::host::normalize_host;
use gateway::router::{route, RouterConfig};
use gateway::routes::{source_stamp, DomainRoutes};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The 100 000-route refresh target, and the floor it was set against (the tokenising floor
/// at 100 000 routes on the 2-vCPU development machine at rest, 2026-12-02).
const TARGET_MS: f64 = 100.0;
const REFERENCE_FLOOR_MS: f64 = 24.0;

/// Half exact (`app{i}.example.com`), half wildcard (`*.t{i}.com`), shaped like the seed.
fn routes_json(n: usize) -> String {
    let mut json = String::with_capacity(n * 220);
    json.push('[');
    for i in 0..n {
        if i > 0 {
            json.push(',');
        }
        let domain = if i % 2 == 0 {
            format!("app{i}.example.com")
        } else {
            format!("*.t{i}.com")
        };
        json.push_str(&format!(
            r#"{{"domain":"{domain}","service":"svc{i}","binding":"SVC{i}_SERVICE","requiresAuth":{},"requiresAdmin":false,"metadata":{{"description":"synthetic route {i}","category":"Bench"}},"updatedAt":"2025-10-04T19:27:39.451Z"}}"#,
            i % 3 == 0
        ));
    }
    json.push(']');
    json
}

/// ns per call of `f` over a fixed set of hosts: the best of five rounds of `budget / 5`,
/// since the best round is the one least disturbed by the rest of the machine.
fn ns_per_call(hosts: &[String], budget: Duration, mut f: impl FnMut(&str) -> bool) -> f64 {
    // Warm up.
    let mut hits = 0usize;
    for h in hosts {
        hits += usize::from(f(h));
    }
    black_box(hits);
    let round = budget / 5;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < round {
            for h in hosts {
                black_box(f(black_box(h)));
            }
            calls += hosts.len() as u64;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / calls as f64);
    }
    best
}

/// Best-of-`reps` wall time of `f`, in ms. As in the worker, the previous result stays
/// alive while the next one is built and is freed after the swap, outside the timing.
fn best_ms<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut previous = None;
    let mut best = f64::MAX;
    for _ in 0..reps {
        let start = Instant::now();
        let out = black_box(f());
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
        previous = Some(out);
    }
    drop(previous);
    best
}

fn main() {
    let budget = Duration::from_millis(300);
    let cfg = RouterConfig::default();
    println!(
        "{:>8} | {:>9} | {:>9} | {:>9} | {:>10} | {:>10} | {:>10} | {:>9} | {:>11} | {:>8} | {:>8}",
        "routes",
        "exact ns",
        "wild ns",
        "miss ns",
        "route() ns",
        "refresh ms",
        "parse ms",
        "write ms",
        "tokenize ms",
        "JSON KiB",
        "snap KiB"
    );
    println!("{}", "-".repeat(128));
    let mut failed = Vec::new();
    for n in [10usize, 1_000, 100_000] {
        let json = routes_json(n);
        let reps = if n >= 100_000 { 8 } else { 20 };
        // The file changed: parsed and validated.
        let parse_ms = best_ms(reps, || DomainRoutes::parse(black_box(json.as_bytes())));
        // The floor: only tokenising the same bytes, no routes built.
        let tokenize_ms = best_ms(reps, || {
            serde_json::from_str::<serde::de::IgnoredAny>(black_box(&json)).is_ok()
        });
        let table = match DomainRoutes::parse(json.as_bytes()) {
            Ok(t) => t,
            Err(e) => panic!("synthetic table rejected: {e}"),
        };
        assert_eq!(table.len(), n);
        // Writing the snapshot to KV (once per change), and the refresh every isolate runs.
        let write_ms = best_ms(reps, || table.snapshot());
        let snapshot = table.snapshot();
        let stamp = source_stamp(json.as_bytes());
        let refresh_ms = best_ms(reps, || {
            let same = source_stamp(black_box(json.as_bytes())) == stamp;
            (same, DomainRoutes::from_snapshot(black_box(&snapshot)))
        });
        match DomainRoutes::from_snapshot(&snapshot) {
            Ok(again) => assert!(again == table, "the snapshot does not load as the table"),
            Err(e) => panic!("snapshot refused: {e}"),
        }
        if n == 100_000 {
            let ratio = refresh_ms / tokenize_ms;
            let allowed = TARGET_MS / REFERENCE_FLOOR_MS;
            if ratio > allowed {
                failed.push(format!(
                    "the {n}-route refresh took {refresh_ms:.1} ms, {ratio:.2}x the tokenising floor \
                     ({tokenize_ms:.1} ms); the target ({TARGET_MS} ms at a {REFERENCE_FLOOR_MS} ms \
                     floor) allows {allowed:.2}x"
                ));
            }
            eprintln!(
                "refresh at {n}: {refresh_ms:.1} ms = {ratio:.2}x the floor (allowed {allowed:.2}x; \
                 {TARGET_MS} ms at a {REFERENCE_FLOOR_MS} ms floor, this run's floor {tokenize_ms:.1} ms)"
            );
        }

        // Up to 1 024 distinct hosts spread over the table, so lookups are not all one key.
        let sample = n.div_ceil(2).min(1024);
        let step = (n / 2 / sample).max(1);
        let exact: Vec<String> = (0..sample)
            .map(|k| format!("app{}.example.com", 2 * k * step))
            .collect();
        // Four labels under a two-label wildcard suffix: probes exact, `b.t{i}.com`, `t{i}.com`.
        let wild: Vec<String> = (0..sample)
            .map(|k| format!("a.b.t{}.com", 2 * k * step + 1))
            .collect();
        let miss: Vec<String> = (0..sample).map(|k| format!("a.b.nope{k}.net")).collect();
        let found = |t: &DomainRoutes, h: &str| t.lookup(h).is_some();
        assert!(exact.iter().chain(&wild).all(|h| found(&table, h)));
        assert!(!miss.iter().any(|h| found(&table, h)));

        let exact_ns = ns_per_call(&exact, budget, |h| found(&table, h));
        let wild_ns = ns_per_call(&wild, budget, |h| found(&table, h));
        let miss_ns = ns_per_call(&miss, budget, |h| found(&table, h));
        // The whole decision for a wildcard host, host already normalised.
        let parsed_hosts: Vec<_> = wild.iter().filter_map(|h| normalize_host(h).ok()).collect();
        let mut i = 0usize;
        let route_ns = ns_per_call(&wild, budget, |_| {
            i = (i + 1) % parsed_hosts.len();
            matches!(
                route(&parsed_hosts[i], "/x", &cfg, Some(&table)),
                gateway::router::Route::Service { .. }
            )
        });
        println!(
            "{:>8} | {:>9.1} | {:>9.1} | {:>9.1} | {:>10.1} | {:>10.3} | {:>10.3} | {:>9.3} | {:>11.3} | {:>8} | {:>8}",
            n,
            exact_ns,
            wild_ns,
            miss_ns,
            route_ns,
            refresh_ms,
            parse_ms,
            write_ms,
            tokenize_ms,
            json.len() / 1024,
            snapshot.len() / 1024
        );
    }
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}
