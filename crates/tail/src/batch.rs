//! Batching rules for the `LogBatcher` object: when a buffer is due (size or age), how it is
//! cut into objects (one hour partition each, each within the size bound), how failed writes
//! back off, and the settings that bound all of it.

use gateway::logs::{object_key, HOUR_MS};

/// Bounds of one buffer (one object per producer worker and shard), from the worker's vars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// An object holds at most this many bytes (`LOG_BATCH_MAX_BYTES`, default 1 MiB)...
    pub max_bytes: usize,
    /// ... and this many records (`LOG_BATCH_MAX_LINES`, default 10 000).
    pub max_lines: usize,
    /// A record waits at most this long before it is written (`LOG_BATCH_MAX_AGE_MS`, 60 s).
    pub max_age_ms: u64,
    /// While writes fail, a buffer keeps at most this much (`LOG_BUFFER_MAX_BYTES`, 32 MiB);
    /// the oldest records beyond it are dropped and counted.
    pub buffer_max_bytes: usize,
    /// Buffers per producer worker (`LOG_SHARDS`, default 4): spreads a busy worker's
    /// appends over several objects.
    pub shards: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_bytes: 1 << 20,
            max_lines: 10_000,
            max_age_ms: 60_000,
            buffer_max_bytes: 32 << 20,
            shards: 4,
        }
    }
}

impl BatchConfig {
    /// Reads the vars through `var`; a missing or malformed value keeps the default, and
    /// every value is clamped to a sane range.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> BatchConfig {
        let d = BatchConfig::default();
        let num = |name: &str, default: u64, min: u64, max: u64| {
            var(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
                .clamp(min, max)
        };
        let max_bytes = num("LOG_BATCH_MAX_BYTES", d.max_bytes as u64, 1024, 64 << 20) as usize;
        BatchConfig {
            max_bytes,
            max_lines: num("LOG_BATCH_MAX_LINES", d.max_lines as u64, 1, 1_000_000) as usize,
            max_age_ms: num("LOG_BATCH_MAX_AGE_MS", d.max_age_ms, 100, 15 * 60_000),
            buffer_max_bytes: (num(
                "LOG_BUFFER_MAX_BYTES",
                d.buffer_max_bytes as u64,
                1 << 20,
                1 << 30,
            ) as usize)
                .max(max_bytes),
            shards: num("LOG_SHARDS", u64::from(d.shards), 1, 64) as u32,
        }
    }
}

/// What a buffer holds, kept in memory by the object (and recounted from storage on start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub bytes: usize,
    pub lines: usize,
    /// When the oldest buffered record arrived (ms); `None` when empty.
    pub oldest_received_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Size,
    Age,
}

/// Whether the buffer must be written now.
pub fn due(totals: &Totals, now_ms: u64, cfg: &BatchConfig) -> Option<Due> {
    if totals.lines == 0 {
        return None;
    }
    if totals.bytes >= cfg.max_bytes || totals.lines >= cfg.max_lines {
        return Some(Due::Size);
    }
    match totals.oldest_received_ms {
        Some(at) if at.saturating_add(cfg.max_age_ms) <= now_ms => Some(Due::Age),
        _ => None,
    }
}

/// When the buffer's age bound falls due.
pub fn age_deadline(totals: &Totals, cfg: &BatchConfig) -> Option<u64> {
    totals
        .oldest_received_ms
        .filter(|_| totals.lines > 0)
        .map(|at| at.saturating_add(cfg.max_age_ms))
}

/// The wait before retrying after `failures` consecutive failed writes: 1 s doubling, ≤ 60 s.
pub fn retry_delay_ms(failures: u32) -> u64 {
    1000u64
        .saturating_mul(1u64 << failures.saturating_sub(1).min(6))
        .min(60_000)
}

/// One object to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub key: String,
    pub body: String,
    pub lines: usize,
    pub min_ts: u64,
    pub max_ts: u64,
}

/// Cuts buffered `(ts, line)` records into objects: in time order, one hour partition per
/// object, each within `max_bytes` and `max_lines` (a single record over the byte bound, which
/// `records::to_line` prevents, would still get an object of its own). `batch_id(min_ts, n)`
/// names the n-th object; the same buffer always yields the same keys, so a retried write
/// replaces what a failed attempt wrote instead of duplicating it.
pub fn plan(
    mut lines: Vec<(u64, String)>,
    worker: &str,
    cfg: &BatchConfig,
    batch_id: impl Fn(u64, usize) -> String,
) -> Vec<Planned> {
    lines.sort_by_key(|(ts, _)| *ts);
    let mut out: Vec<Planned> = Vec::new();
    let mut current: Option<(u64, Planned)> = None;
    for (ts, line) in lines {
        let hour = ts - ts % HOUR_MS;
        let fits = current.as_ref().is_some_and(|(h, p)| {
            *h == hour && p.lines < cfg.max_lines && p.body.len() + line.len() < cfg.max_bytes
        });
        if !fits {
            if let Some((_, p)) = current.take() {
                out.push(p);
            }
            current = Some((
                hour,
                Planned {
                    key: object_key(ts, worker, &batch_id(ts, out.len())),
                    body: String::new(),
                    lines: 0,
                    min_ts: ts,
                    max_ts: ts,
                },
            ));
        }
        if let Some((_, p)) = current.as_mut() {
            p.body.push_str(&line);
            p.body.push('\n');
            p.lines += 1;
            p.max_ts = ts;
        }
    }
    if let Some((_, p)) = current {
        out.push(p);
    }
    out
}

/// The shard a producer invocation's records go to (`hash % shards`), so one busy worker's
/// appends spread over several buffers while one invocation stays in one.
pub fn shard(seed: &str, shards: u32) -> u32 {
    // FNV-1a: stable across builds and platforms.
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % u64::from(shards.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_796_164_200_000; // 2026-12-01T22:30:00Z

    fn cfg(max_bytes: usize, max_lines: usize) -> BatchConfig {
        BatchConfig {
            max_bytes,
            max_lines,
            ..BatchConfig::default()
        }
    }

    #[test]
    fn config_from_vars_is_clamped() {
        let vars = |name: &str| match name {
            "LOG_BATCH_MAX_BYTES" => Some("10".to_string()),
            "LOG_BATCH_MAX_AGE_MS" => Some("1500".to_string()),
            "LOG_SHARDS" => Some("nope".to_string()),
            _ => None,
        };
        let c = BatchConfig::from_vars(vars);
        assert_eq!(c.max_bytes, 1024);
        assert_eq!(c.max_age_ms, 1500);
        assert_eq!(c.shards, 4);
        assert_eq!(BatchConfig::from_vars(|_| None), BatchConfig::default());
    }

    #[test]
    fn due_by_size_or_age() {
        let c = BatchConfig {
            max_age_ms: 1000,
            ..cfg(100, 5)
        };
        let t = |bytes, lines, at| Totals {
            bytes,
            lines,
            oldest_received_ms: Some(at),
        };
        assert_eq!(due(&Totals::default(), T, &c), None);
        assert_eq!(due(&t(10, 1, T), T + 999, &c), None);
        assert_eq!(due(&t(10, 1, T), T + 1000, &c), Some(Due::Age));
        assert_eq!(due(&t(100, 1, T), T, &c), Some(Due::Size));
        assert_eq!(due(&t(10, 5, T), T, &c), Some(Due::Size));
        assert_eq!(age_deadline(&t(10, 1, T), &c), Some(T + 1000));
        assert_eq!(age_deadline(&Totals::default(), &c), None);
    }

    #[test]
    fn retries_back_off() {
        let delays: Vec<u64> = (1..=9).map(retry_delay_ms).collect();
        assert_eq!(
            delays,
            [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]
        );
        assert_eq!(retry_delay_ms(0), 1000);
    }

    #[test]
    fn objects_stay_within_the_bounds_and_their_hour() {
        let line = |i: u64| {
            (
                T + i * 60_000,
                format!("{{\"ts\":{},\"i\":{i}}}", T + i * 60_000),
            )
        };
        // 40 lines one minute apart from 22:30: 30 in hour 22, 10 in hour 23.
        let lines: Vec<_> = (0..40).rev().map(line).collect();
        let c = cfg(200, 1000);
        let planned = plan(lines, "api", &c, |ts, n| format!("{ts}-{n}"));
        let mut seen = 0;
        for p in &planned {
            assert!(p.body.len() <= 200, "{}", p.body.len());
            assert_eq!(p.body.lines().count(), p.lines);
            assert_eq!(
                gateway::logs::partition_prefix(p.min_ts),
                gateway::logs::partition_prefix(p.max_ts)
            );
            assert!(p
                .key
                .starts_with(&gateway::logs::partition_prefix(p.min_ts)));
            assert!(p.key.contains("/api-"));
            seen += p.lines;
        }
        assert_eq!(seen, 40);
        assert!(planned.windows(2).all(|w| w[0].max_ts <= w[1].min_ts));
        assert!(planned.iter().any(|p| p.key.contains("hr=23")));
        // line bound
        let planned = plan(
            (0..10).map(line).collect(),
            "api",
            &cfg(1 << 20, 3),
            |ts, n| format!("{ts}-{n}"),
        );
        assert_eq!(
            planned.iter().map(|p| p.lines).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
    }

    #[test]
    fn the_same_buffer_plans_the_same_keys() {
        let lines: Vec<_> = (0..10u64).map(|i| (T + i, format!("line {i}"))).collect();
        let a = plan(lines.clone(), "db", &cfg(30, 100), |ts, n| {
            format!("{ts}-{n}")
        });
        let b = plan(
            lines.into_iter().rev().collect(),
            "db",
            &cfg(30, 100),
            |ts, n| format!("{ts}-{n}"),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(shard("abc", 4), shard("abc", 4));
        assert!((0..100).all(|i| shard(&i.to_string(), 4) < 4));
        assert_eq!(shard("anything", 1), 0);
        let used: std::collections::HashSet<u32> =
            (0..100).map(|i| shard(&i.to_string(), 4)).collect();
        assert_eq!(used.len(), 4);
    }
}
