//! One limiter shard: the exact sliding logs of many limit keys, held by one Durable Object,
//! decided in memory and persisted write-behind. This module is the object's whole logic
//! (which shard a key lives in, the check protocol, what a flush writes and forgets, how a
//! log is stored), so the object itself only moves strings between storage and this state.
//!
//! Exactness: a key lives in exactly one shard and a shard decides one check at a time, so
//! of N simultaneous requests over a limit L exactly L pass, as with one object per key.
//! Persistence never holds an answer: accepted entries are marked dirty and written by a
//! flush at most `FLUSH_MS` later. A stored log is compacted into at most
//! `BUCKETS_PER_WINDOW` buckets, each restored at its *latest* entry's time, so a restored
//! log never expires an entry earlier than the original would have (restores only ever
//! under-admit, by at most one bucket's width of time).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::ratelimit::{ConfigError, Decision, Policy, SlidingLog, MAX_LIMIT, MAX_WINDOW_SECS};

/// Shards when `RATE_LIMIT_SHARDS` is unset. Each shard is one object (about 1 000 decisions
/// per second each in production), so this bounds exact limiting at ~32 000 req/s.
pub const DEFAULT_SHARDS: u32 = 32;
/// Largest configurable shard count.
pub const MAX_SHARDS: u32 = 4096;
/// How long an accepted entry may stay only in memory before a flush writes it. This is what
/// a crash can forget: the entries accepted in the last `FLUSH_MS` plus the write in flight.
pub const FLUSH_MS: u64 = 100;
/// A stored log has at most this many buckets per window, whatever the limit.
pub const BUCKETS_PER_WINDOW: u64 = 256;
/// Longest limit key accepted on the wire.
pub const MAX_KEY_LEN: usize = 512;
/// Keys kept in memory before a flush drops the clean ones (they are stored, and reload).
pub const MAX_KEYS_IN_MEMORY: usize = 50_000;

/// The shard (0-based) that owns `key`: FNV-1a 64, stable across builds and platforms, so
/// every isolate sends a key to the same object.
pub fn shard_index(key: &str, shards: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(shards.clamp(1, MAX_SHARDS))) as u32
}

/// The Durable Object name of shard `index`.
pub fn shard_name(index: u32) -> String {
    format!("shard:{index}")
}

/// One decision asked of a shard: `cost` units of `key` under `policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    pub key: String,
    pub cost: u32,
    pub policy: Policy,
}

impl CheckRequest {
    /// `key=…&cost=…&name=…&limit=…&windowMs=…`, a form (`form_urlencoded`, the key escaped).
    pub fn to_query(&self) -> String {
        let mut query =
            form_urlencoded::Serializer::new(String::with_capacity(self.key.len() + 64));
        query
            .append_pair("key", &self.key)
            .append_pair("cost", &self.cost.to_string());
        let mut out = query.finish();
        out.push('&');
        out.push_str(&self.policy.to_query());
        out
    }

    /// Parses [`to_query`](Self::to_query): the policy as `Policy::from_query` takes it, plus
    /// a key (1..=`MAX_KEY_LEN` bytes after decoding) and a cost (1..=`MAX_LIMIT`). The api is
    /// the only caller (the object is reached through its binding alone).
    pub fn from_query(query: &str) -> Result<CheckRequest, ConfigError> {
        let (mut key, mut cost) = (None, None);
        let mut rest = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "key" => &mut key,
                "cost" => &mut cost,
                _ => {
                    rest.append_pair(&name, &value);
                    continue;
                }
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(ConfigError::new(format!("repeated parameter {name:?}")));
            }
        }
        let policy = Policy::from_query(&rest.finish())?;
        let key = key
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
            .ok_or_else(|| ConfigError::new("missing or bad limit key"))?;
        let cost = cost.ok_or_else(|| ConfigError::new("missing query parameter \"cost\""))?;
        let cost = cost
            .parse::<u32>()
            .ok()
            .filter(|c| (1..=MAX_LIMIT).contains(c) && !cost.starts_with('+'))
            .ok_or_else(|| ConfigError::new(format!("cost must be 1..={MAX_LIMIT}")))?;
        Ok(CheckRequest { key, cost, policy })
    }
}

/// A key's log as stored: `1;{window_ms};{t}*{n},{dt}*{n},…` where each bucket of width
/// `window / BUCKETS_PER_WINDOW` keeps the time of its latest entry and how many entries it
/// holds, and `dt` is the difference to the previous bucket's time.
pub fn encode_log(log: &SlidingLog, window_ms: u64) -> String {
    let width = (window_ms / BUCKETS_PER_WINDOW).max(1);
    let mut out = format!("1;{window_ms};");
    let mut previous: Option<u64> = None;
    let mut bucket: Option<(u64, u64, u32)> = None; // (bucket number, latest time, count)
    let mut flush = |out: &mut String, (_, t, n): (u64, u64, u32)| {
        let shown = previous.map_or(t, |p| t - p);
        if previous.is_some() {
            out.push(',');
        }
        let _ = write!(out, "{shown}*{n}");
        previous = Some(t);
    };
    for t in log.snapshot() {
        let number = t / width;
        bucket = match bucket {
            Some((b, _, n)) if b == number => Some((b, t, n + 1)),
            Some(done) => {
                flush(&mut out, done);
                Some((number, t, 1))
            }
            None => Some((number, t, 1)),
        };
    }
    if let Some(done) = bucket {
        flush(&mut out, done);
    }
    out
}

/// Parses [`encode_log`]: the restored log (each bucket's entries at the bucket's latest
/// time) and the window it was stored under. `None` for anything else, including counts past
/// `MAX_LIMIT` in total and times that do not increase.
pub fn decode_log(stored: &str) -> Option<(SlidingLog, u64)> {
    let rest = stored.strip_prefix("1;")?;
    let (window, buckets) = rest.split_once(';')?;
    let window_ms = digits(window)?;
    if window_ms == 0 || window_ms > MAX_WINDOW_SECS * 1000 {
        return None;
    }
    let mut entries = Vec::new();
    let mut previous: Option<u64> = None;
    if !buckets.is_empty() {
        for bucket in buckets.split(',') {
            let (shown, count) = bucket.split_once('*')?;
            let shown = digits(shown)?;
            let count = u32::try_from(digits(count)?).ok().filter(|c| *c > 0)?;
            let t = match previous {
                None => shown,
                Some(p) if shown > 0 => p.checked_add(shown)?,
                Some(_) => return None,
            };
            if entries.len() + count as usize > MAX_LIMIT as usize {
                return None;
            }
            entries.extend(std::iter::repeat_n(t, count as usize));
            previous = Some(t);
        }
    }
    Some((SlidingLog::restore(entries), window_ms))
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

struct KeyState {
    log: SlidingLog,
    /// Window of the policy last checked (the log is idle once its newest entry is older).
    window_ms: u64,
    /// Holds accepted entries storage does not have yet.
    dirty: bool,
    /// Storage has a row for this key (so forgetting the key must delete it).
    stored: bool,
}

/// What a flush must write: rows to upsert (key, encoded log) and rows to delete.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flush {
    pub upserts: Vec<(String, String)>,
    pub deletes: Vec<String>,
}

impl Flush {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }
}

/// The shard's keys in memory. Memory is the truth while the object lives; storage catches
/// up at each flush.
#[derive(Default)]
pub struct ShardState {
    keys: HashMap<String, KeyState>,
    /// Keys with unflushed entries, in the order they became dirty.
    dirty: Vec<String>,
}

impl ShardState {
    pub fn new() -> ShardState {
        ShardState::default()
    }

    /// Whether `key` is in memory (else the caller loads its row first, see [`load`](Self::load)).
    pub fn knows(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// Adds `key` as storage has it (`stored`: its row, if any). An unreadable row is
    /// reported, and the key then starts from an empty log.
    pub fn load(&mut self, key: &str, stored: Option<&str>) -> Result<(), String> {
        let (log, window_ms, ok) = match stored.map(decode_log) {
            None => (SlidingLog::new(), 0, true),
            Some(Some((log, window))) => (log, window, true),
            Some(None) => (SlidingLog::new(), 0, false),
        };
        self.keys.insert(
            key.to_owned(),
            KeyState {
                log,
                window_ms,
                dirty: false,
                stored: stored.is_some(),
            },
        );
        if ok {
            Ok(())
        } else {
            Err(format!("unreadable stored log for {key:?}"))
        }
    }

    /// Decides `request` at `now_ms`. The key must be known ([`load`](Self::load) first);
    /// an unknown key is treated as freshly loaded with no row.
    pub fn check(&mut self, request: &CheckRequest, now_ms: u64) -> Decision {
        let state = self
            .keys
            .entry(request.key.clone())
            .or_insert_with(|| KeyState {
                log: SlidingLog::new(),
                window_ms: 0,
                dirty: false,
                stored: false,
            });
        let decision = state.log.check(&request.policy, now_ms, request.cost);
        state.window_ms = request.policy.window_ms.max(1);
        if decision.allowed && !state.dirty {
            state.dirty = true;
            self.dirty.push(request.key.clone());
        }
        decision
    }

    /// Marks `keys` dirty again (a flush that took them failed to write), so the next flush
    /// retries. Keys no longer in memory are skipped.
    pub fn mark_dirty(&mut self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            if let Some(state) = self.keys.get_mut(&key) {
                if !state.dirty {
                    state.dirty = true;
                    self.dirty.push(key);
                }
            }
        }
    }

    /// Keys with entries storage does not have yet.
    pub fn pending(&self) -> usize {
        self.dirty.len()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// What to write now: every dirty key's log (or, if it went idle meanwhile, the deletion
    /// of its row). With `sweep`, also forgets every idle key (deleting its row) and, past
    /// `MAX_KEYS_IN_MEMORY`, the clean keys (they are stored and load again on demand).
    /// The caller must write the result; until it has, a crash forgets these entries.
    pub fn take_flush(&mut self, now_ms: u64, sweep: bool) -> Flush {
        let mut flush = Flush::default();
        for key in std::mem::take(&mut self.dirty) {
            let Some(state) = self.keys.get_mut(&key) else {
                continue;
            };
            state.dirty = false;
            if is_idle(state, now_ms) {
                if state.stored {
                    flush.deletes.push(key.clone());
                }
                self.keys.remove(&key);
            } else {
                flush
                    .upserts
                    .push((key.clone(), encode_log(&state.log, state.window_ms)));
                state.stored = true;
            }
        }
        if sweep || self.keys.len() > MAX_KEYS_IN_MEMORY {
            let over = self.keys.len() > MAX_KEYS_IN_MEMORY;
            self.keys.retain(|key, state| {
                if state.dirty {
                    return true;
                }
                if is_idle(state, now_ms) {
                    if state.stored {
                        flush.deletes.push(key.clone());
                    }
                    return false;
                }
                !over
            });
        }
        flush
    }
}

fn is_idle(state: &KeyState, now_ms: u64) -> bool {
    state.window_ms == 0
        || state
            .log
            .is_idle_for(state.window_ms, now_ms.max(state.log.last_seen()))
}

/// Whether a stored row is idle at `now_ms` (its newest entry left its window): the alarm's
/// clean-up deletes such rows. An unreadable row counts as idle (it would be ignored anyway).
pub fn stored_is_idle(stored: &str, now_ms: u64) -> bool {
    match decode_log(stored) {
        Some((log, window)) => log.is_idle_for(window, now_ms),
        None => true,
    }
}

/// When a stored row goes idle (ms), if it is readable and holds entries.
pub fn stored_idle_at(stored: &str) -> Option<u64> {
    let (log, window) = decode_log(stored)?;
    log.newest().map(|t| t.saturating_add(window))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::tests::policy;
    use proptest::prelude::*;

    fn req(key: &str, cost: u32, p: &Policy) -> CheckRequest {
        CheckRequest {
            key: key.into(),
            cost,
            policy: p.clone(),
        }
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(
            shard_index("ip:192.0.2.1:default", 32),
            shard_index("ip:192.0.2.1:default", 32)
        );
        for n in [1, 2, 32, 4096] {
            for k in ["", "a", "user:01J:default", "ip:2001:db8::/64:default"] {
                assert!(shard_index(k, n) < n);
            }
        }
        // 0 and oversized counts are clamped, never a division by zero.
        assert_eq!(shard_index("x", 0), 0);
        assert!(shard_index("x", u32::MAX) < MAX_SHARDS);
        // Keys spread: 1 000 addresses over 32 shards leave no shard empty.
        let mut seen = [0u32; 32];
        for i in 0..1000 {
            seen[shard_index(&format!("ip:10.0.{}.{}:default", i / 256, i % 256), 32) as usize] +=
                1;
        }
        assert!(seen.iter().all(|n| *n > 5), "{seen:?}");
        // The hash is pinned: changing it would move every key to another shard on deploy.
        assert_eq!(shard_index("ip:192.0.2.1:default", 32), 18);
    }

    #[test]
    fn check_request_round_trips_and_refuses_bad_input() {
        let p = policy(100, 60_000);
        for key in [
            "ip:192.0.2.1:default",
            "ip:2001:db8::/64:default",
            "t:production/my app:ip:1.2.3.4:tenant",
            "ü",
        ] {
            let r = req(key, 3, &p);
            assert_eq!(
                CheckRequest::from_query(&r.to_query()),
                Ok(r.clone()),
                "{key}"
            );
        }
        assert_eq!(
            req("ip:2001:db8::/64:default", 1, &p).to_query(),
            "key=ip%3A2001%3Adb8%3A%3A%2F64%3Adefault&cost=1&name=default&limit=100&windowMs=60000"
        );
        for bad in [
            "",
            "cost=1&name=x&limit=1&windowMs=1000",
            "key=a&name=x&limit=1&windowMs=1000",
            "key=&cost=1&name=x&limit=1&windowMs=1000",
            "key=a&cost=0&name=x&limit=1&windowMs=1000",
            "key=a&cost=+1&name=x&limit=1&windowMs=1000",
            "key=a&cost=x&name=x&limit=1&windowMs=1000",
            "key=a&cost=100001&name=x&limit=1&windowMs=1000",
            "key=a&key=b&cost=1&name=x&limit=1&windowMs=1000",
            "key=a&cost=1&cost=1&name=x&limit=1&windowMs=1000",
            "key=a&cost=1&name=x&limit=0&windowMs=1000",
            "key=a&cost=1&name=x&limit=1&windowMs=1000&extra=1",
        ] {
            assert!(CheckRequest::from_query(bad).is_err(), "{bad:?}");
        }
        let long = format!(
            "key={}&cost=1&name=x&limit=1&windowMs=1000",
            "a".repeat(MAX_KEY_LEN + 1)
        );
        assert!(CheckRequest::from_query(&long).is_err());
    }

    #[test]
    fn encoding_compacts_into_buckets_at_their_latest_time() {
        let p = policy(1000, 60_000); // buckets of 234 ms
        let mut log = SlidingLog::new();
        for t in [1_000, 1_001, 1_100, 5_000, 5_000, 50_000] {
            assert!(log.check(&p, t, 1).allowed);
        }
        // 1_000 / 234 = 4, 1_100 / 234 = 4: one bucket at 1_100 holding 3.
        let encoded = encode_log(&log, 60_000);
        assert_eq!(encoded, "1;60000;1100*3,3900*2,45000*1");
        let (restored, window) = decode_log(&encoded).unwrap();
        assert_eq!(window, 60_000);
        assert_eq!(
            restored.snapshot(),
            vec![1_100, 1_100, 1_100, 5_000, 5_000, 50_000]
        );
        // Empty logs round-trip too.
        let (empty, _) = decode_log(&encode_log(&SlidingLog::new(), 1_000)).unwrap();
        assert!(empty.is_empty());
        for bad in [
            "",
            "1;",
            "2;1000;",
            "1;0;",
            "1;x;",
            "1;1000;5",
            "1;1000;5*0",
            "1;1000;5*1,0*1",
            "1;1000;5*1,",
            "1;1000;-5*1",
            "1;1000;5*100001",
            "1;86400001;",
            "1;1000;18446744073709551615*1,1*1",
        ] {
            assert!(decode_log(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_flush_writes_dirty_keys_once_and_forgets_idle_ones() {
        let p = policy(2, 1_000);
        let mut shard = ShardState::new();
        shard.load("a", None).unwrap();
        assert!(shard.check(&req("a", 1, &p), 10).allowed);
        assert!(shard.check(&req("a", 1, &p), 20).allowed);
        assert!(!shard.check(&req("a", 1, &p), 30).allowed);
        assert_eq!(shard.pending(), 1);
        let flush = shard.take_flush(40, false);
        assert_eq!(
            flush.upserts,
            vec![("a".to_owned(), "1;1000;10*1,10*1".to_owned())]
        );
        assert!(flush.deletes.is_empty());
        assert_eq!(shard.pending(), 0);
        // Nothing new: nothing to write. Rejections never dirty a key.
        assert!(!shard.check(&req("a", 1, &p), 50).allowed);
        assert!(shard.take_flush(60, false).is_empty());
        // Once idle, a sweep forgets the key and deletes its row.
        let flush = shard.take_flush(1_100, true);
        assert_eq!(flush.deletes, vec!["a".to_owned()]);
        assert!(!shard.knows("a"));
        // A key accepted and idle before its first flush never reaches storage at all.
        shard.load("b", None).unwrap();
        assert!(shard.check(&req("b", 1, &p), 2_000).allowed);
        assert!(shard.take_flush(3_500, false).is_empty());
        assert!(!shard.knows("b"));
    }

    #[test]
    fn an_unreadable_row_is_reported() {
        let mut shard = ShardState::new();
        assert!(shard.load("a", Some("garbage")).is_err());
        assert!(shard.knows("a"));
        assert!(stored_is_idle("garbage", 0));
        assert_eq!(stored_idle_at("1;1000;5*1"), Some(1_005));
        assert!(!stored_is_idle("1;1000;5*1", 1_004));
        assert!(stored_is_idle("1;1000;5*1", 1_005));
    }

    /// One operation of the property tests: check a key, flush (writing storage), or restart
    /// (rebuild the shard from storage, either after a flush or, for a crash, without one).
    #[derive(Debug, Clone)]
    enum Op {
        Check { key: u8, dt: u64, cost: u32 },
        Flush,
        CleanRestart,
        Crash,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0u8..3, 0u64..400, 1u32..3).prop_map(|(key, dt, cost)| Op::Check { key, dt, cost }),
            1 => Just(Op::Flush),
            1 => Just(Op::CleanRestart),
            1 => Just(Op::Crash),
        ]
    }

    /// Runs `ops`; returns, per key, the times of every accepted unit, and how many units were
    /// accepted but unflushed at each crash.
    fn run(ops: &[Op], p: &Policy) -> (HashMap<u8, Vec<u64>>, u64) {
        let mut storage: HashMap<String, String> = HashMap::new();
        let mut shard = ShardState::new();
        let mut unflushed: HashMap<String, u64> = HashMap::new();
        let mut forgotten = 0u64;
        let mut accepted: HashMap<u8, Vec<u64>> = HashMap::new();
        let mut now = 1_000u64;
        let write = |flush: Flush, storage: &mut HashMap<String, String>| {
            for (k, v) in flush.upserts {
                storage.insert(k, v);
            }
            for k in flush.deletes {
                storage.remove(&k);
            }
        };
        for op in ops {
            match op {
                Op::Check { key, dt, cost } => {
                    now += dt;
                    let name = format!("k{key}");
                    if !shard.knows(&name) {
                        shard
                            .load(&name, storage.get(&name).map(String::as_str))
                            .unwrap();
                    }
                    let d = shard.check(&req(&name, *cost, p), now);
                    if d.allowed {
                        accepted
                            .entry(*key)
                            .or_default()
                            .extend(std::iter::repeat_n(now, *cost as usize));
                        *unflushed.entry(name).or_default() += u64::from(*cost);
                    }
                }
                Op::Flush => {
                    write(shard.take_flush(now, true), &mut storage);
                    unflushed.clear();
                }
                Op::CleanRestart => {
                    write(shard.take_flush(now, false), &mut storage);
                    unflushed.clear();
                    shard = ShardState::new();
                }
                Op::Crash => {
                    forgotten += unflushed.values().copied().max().unwrap_or(0);
                    unflushed.clear();
                    shard = ShardState::new();
                }
            }
        }
        (accepted, forgotten)
    }

    fn max_in_any_window(times: &[u64], window: u64) -> u64 {
        let mut best = 0;
        for (i, &start) in times.iter().enumerate() {
            let n = times[i..]
                .iter()
                .take_while(|&&t| t < start + window)
                .count() as u64;
            best = best.max(n);
        }
        best
    }

    proptest! {
        /// Without crashes, whatever the interleaving of checks, flushes and clean restarts,
        /// no window of any key ever holds more than the limit.
        #[test]
        fn never_more_than_limit_with_clean_restarts(ops in proptest::collection::vec(op(), 1..300)) {
            let p = policy(5, 1_000);
            let ops: Vec<Op> = ops.into_iter().map(|o| if matches!(o, Op::Crash) { Op::CleanRestart } else { o }).collect();
            let (accepted, _) = run(&ops, &p);
            for (key, times) in accepted {
                prop_assert!(max_in_any_window(&times, p.window_ms) <= 5, "key {key}: {times:?}");
            }
        }

        /// With crashes, a window holds at most the limit plus what the crashes forgot (the
        /// entries accepted since the last flush).
        #[test]
        fn a_crash_forgets_at_most_the_unflushed_entries(ops in proptest::collection::vec(op(), 1..300)) {
            let p = policy(5, 1_000);
            let (accepted, forgotten) = run(&ops, &p);
            for (key, times) in accepted {
                prop_assert!(max_in_any_window(&times, p.window_ms) <= 5 + forgotten, "key {key}: {times:?}");
            }
        }

        #[test]
        fn decode_never_panics(s in "[0-9;*,]{0,40}") {
            let _ = decode_log(&s);
        }
    }
}
