//! Benchmarks the exact limiter's hot path (`SlidingLog::check`) in steady state, and the
//! snapshot + restore a Durable Object does to persist it. Plain `fn main` (no criterion):
//! each case runs for a fixed time budget, or a fixed number of operations where its simulated
//! clock moves with the count (so no machine is fast enough to leave the measured state), and
//! reports ns per operation.

use std::hint::black_box;
use std::time::{Duration, Instant};

use gateway::ratelimit::{Policy, SlidingLog};

/// Per-case time budget; seven cases plus warm-up stay well under 15 s.
const BUDGET: Duration = Duration::from_millis(800);
/// Operations between clock reads, so timing overhead stays negligible.
const BATCH: u64 = 1_000;

/// A benchmark case: builds its state for `limit` and returns (ns per op, ops).
type Case = fn(u32) -> (f64, u64);

fn policy(limit: u32) -> Policy {
    Policy {
        name: "default".to_owned(),
        limit,
        window_ms: 60_000,
    }
}

/// Runs `op(i)` in batches until the budget is spent or `max_ops` operations have run,
/// whichever comes first, and at least one batch; returns (ns per op, ops). `i` counts from 0
/// through the warm-up, so a case's last `i` is below `BATCH + max_ops` on any machine.
fn measure(max_ops: u64, mut op: impl FnMut(u64)) -> (f64, u64) {
    // Warm-up: caches, branch predictors, allocator.
    for i in 0..BATCH {
        op(i);
    }
    let start = Instant::now();
    let mut ops = 0u64;
    loop {
        for _ in 0..BATCH {
            op(BATCH + ops);
            ops += 1;
        }
        if ops >= max_ops || start.elapsed() >= BUDGET {
            break;
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / ops as f64;
    (ns, ops)
}

/// Steady state accepting: one request every `window / limit` ms, so each check prunes
/// exactly one expired entry and appends one, with the window always full.
fn check_accepting(limit: u32) -> (f64, u64) {
    let p = policy(limit);
    let step = p.window_ms / u64::from(limit);
    let mut log = SlidingLog::new();
    for i in 0..u64::from(limit) {
        log.check(&p, i * step, 1);
    }
    let base = u64::from(limit) * step;
    let mut rejected = 0u64;
    // The clock moves one step per check, so the window stays full and accepting for ever.
    let result = measure(u64::MAX, |i| {
        let d = log.check(black_box(&p), black_box(base + i * step), black_box(1));
        rejected += u64::from(!d.allowed);
    });
    assert_eq!(rejected, 0, "accepting case must accept");
    result
}

/// Steady state rejecting: the window is full and the clock barely moves.
fn check_rejecting(limit: u32) -> (f64, u64) {
    let p = policy(limit);
    let mut log = SlidingLog::new();
    for _ in 0..limit {
        log.check(&p, 1_000, 1);
    }
    let mut accepted = 0u64;
    // The clock advances 1 ms per `BATCH` checks and the case stops after half a window of
    // simulated time, so it never reaches the window's end, however fast the machine runs
    // (a pure time budget did, on an idle machine, and the full window began accepting).
    let max_ops = p.window_ms / 2 * BATCH;
    let result = measure(max_ops, |i| {
        let d = log.check(black_box(&p), black_box(1_000 + i / BATCH), black_box(1));
        accepted += u64::from(d.allowed);
    });
    assert_eq!(accepted, 0, "rejecting case must reject");
    result
}

fn snapshot_restore(limit: u32) -> (f64, u64) {
    let p = policy(limit);
    let mut log = SlidingLog::new();
    for i in 0..u64::from(limit) {
        log.check(&p, i, 1);
    }
    measure(u64::MAX, |_| {
        let restored = SlidingLog::restore(black_box(log.snapshot()));
        black_box(restored);
    })
}

fn main() {
    let started = Instant::now();
    println!("{:<42} {:>12} {:>14}", "case", "ns/op", "ops");
    let cases: [(&str, Case, u32); 7] = [
        ("check, limit 100, accepting", check_accepting, 100),
        ("check, limit 100, rejecting (full)", check_rejecting, 100),
        ("check, limit 10000, accepting", check_accepting, 10_000),
        (
            "check, limit 10000, rejecting (full)",
            check_rejecting,
            10_000,
        ),
        ("snapshot+restore, 100 entries", snapshot_restore, 100),
        ("snapshot+restore, 10000 entries", snapshot_restore, 10_000),
        // The largest allowed limit: the worst case a Durable Object restores after eviction.
        (
            "snapshot+restore, 100000 entries",
            snapshot_restore,
            100_000,
        ),
    ];
    for (name, case, limit) in cases {
        let (ns, ops) = case(limit);
        println!("{name:<42} {ns:>12.1} {ops:>14}");
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}
