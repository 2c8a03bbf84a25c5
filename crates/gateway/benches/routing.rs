//! Routing benchmark: domain-route lookup (exact hit, wildcard hit, miss), the whole
//! `route()` decision, and the refresh cost (JSON bytes → `DomainRoutes::parse`) at 10,
//! 1 000 and 100 000 routes. Plain `fn main` so it needs no bench framework; bounded to a
//! few seconds.

use gateway::host::normalize_host;
use gateway::router::{route, RouterConfig};
use gateway::routes::DomainRoutes;
use std::hint::black_box;
use std::time::{Duration, Instant};

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
        "{:>8} | {:>9} | {:>9} | {:>9} | {:>10} | {:>10} | {:>11} | {:>8}",
        "routes",
        "exact ns",
        "wild ns",
        "miss ns",
        "route() ns",
        "refresh ms",
        "tokenize ms",
        "JSON KiB"
    );
    println!("{}", "-".repeat(96));
    for n in [10usize, 1_000, 100_000] {
        let json = routes_json(n);
        let reps = if n >= 100_000 { 8 } else { 20 };
        let refresh_ms = best_ms(reps, || DomainRoutes::parse(black_box(json.as_bytes())));
        // The floor: only tokenising the same bytes, no routes built.
        let tokenize_ms = best_ms(reps, || {
            serde_json::from_slice::<serde::de::IgnoredAny>(black_box(json.as_bytes())).is_ok()
        });
        let table = match DomainRoutes::parse(json.as_bytes()) {
            Ok(t) => t,
            Err(e) => panic!("synthetic table rejected: {e}"),
        };
        assert_eq!(table.len(), n);

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
            "{:>8} | {:>9.1} | {:>9.1} | {:>9.1} | {:>10.1} | {:>10.3} | {:>11.3} | {:>8}",
            n,
            exact_ns,
            wild_ns,
            miss_ns,
            route_ns,
            refresh_ms,
            tokenize_ms,
            json.len() / 1024
        );
    }
}
