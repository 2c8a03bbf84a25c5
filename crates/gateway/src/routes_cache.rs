//! The clock of the api's domain-routes cache, as pure decisions: when a table is fresh, when a
//! stale one is served while a refresh runs (one at a time, and a refresh that passed its
//! deadline loses its claim), and when the shared KV copy may be written (only a changed
//! table, at most once per TTL per isolate). The worker owns the I/O (`api::routing`).

/// How long a refresh may take (ASSETS read, KV read and write) before it is abandoned and
/// another request may start one. `ROUTES_REFRESH_DEADLINE_MS` overrides it.
pub const REFRESH_DEADLINE_MS: f64 = 5_000.0;

/// What a request does with the cache.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// The table is younger than the TTL: use it.
    Fresh,
    /// The table is stale: use it; with `Some(claim)` this request also starts the refresh.
    Stale { refresh: Option<Claim> },
    /// No table in this isolate: load one before answering.
    Cold,
}

/// The right to run one refresh; [`CacheClock::finish`] releases it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim(u64);

#[derive(Debug, Clone, Default)]
pub struct CacheClock {
    /// When the table in force (or the last failed attempt, so a broken file is retried once
    /// per TTL, not on every request) was loaded.
    loaded_at_ms: Option<f64>,
    /// The refresh running now, and when it started.
    running: Option<(Claim, f64)>,
    claims: u64,
    last_kv_write_ms: Option<f64>,
}

impl CacheClock {
    /// Whether the table loaded last is younger than the TTL.
    pub fn fresh(&self, now_ms: f64, ttl_ms: f64) -> bool {
        self.loaded_at_ms.is_some_and(|at| now_ms - at < ttl_ms)
    }

    pub fn step(&mut self, has_table: bool, now_ms: f64, ttl_ms: f64, deadline_ms: f64) -> Step {
        if !has_table {
            return Step::Cold;
        }
        if self.fresh(now_ms, ttl_ms) {
            return Step::Fresh;
        }
        let free = match self.running {
            None => true,
            // A refresh that hung past its deadline (or whose future was dropped without
            // finishing) no longer blocks: the next stale request starts another.
            Some((_, started)) => now_ms - started >= deadline_ms,
        };
        if !free {
            return Step::Stale { refresh: None };
        }
        self.claims += 1;
        let claim = Claim(self.claims);
        self.running = Some((claim, now_ms));
        Step::Stale {
            refresh: Some(claim),
        }
    }

    /// A load ended (well or not) at `now_ms`: the table's age restarts, and `claim` (if it is
    /// still the running refresh) is released. Cold loads pass `None`.
    pub fn finish(&mut self, claim: Option<Claim>, now_ms: f64) {
        self.loaded_at_ms = Some(now_ms);
        if let (Some(claim), Some((running, _))) = (claim, self.running) {
            if claim == running {
                self.running = None;
            }
        }
    }

    /// A refresh abandoned without an answer (cancelled): release its claim only.
    pub fn release(&mut self, claim: Claim) {
        if self.running.is_some_and(|(running, _)| running == claim) {
            self.running = None;
        }
    }

    /// The table in force is stale from now on (a runtime route changed in this isolate), so
    /// the next request starts a refresh.
    pub fn expire(&mut self) {
        self.loaded_at_ms = None;
    }

    pub fn refreshing(&self) -> bool {
        self.running.is_some()
    }

    /// Whether this isolate writes the table it just read to KV: only when it differs from
    /// the KV copy, and at most once per TTL (KV takes one write per second per key, however
    /// many isolates there are). A `true` is counted as a write.
    pub fn may_write_kv(&mut self, changed: bool, now_ms: f64, ttl_ms: f64) -> bool {
        if !changed {
            return false;
        }
        if self
            .last_kv_write_ms
            .is_some_and(|at| now_ms - at < ttl_ms.max(1_000.0))
        {
            return false;
        }
        self.last_kv_write_ms = Some(now_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: f64 = 10_000.0;
    const DEADLINE: f64 = 5_000.0;

    #[test]
    fn cold_then_fresh_then_one_refresh_at_a_time() {
        let mut c = CacheClock::default();
        assert_eq!(c.step(false, 0.0, TTL, DEADLINE), Step::Cold);
        c.finish(None, 0.0);
        assert_eq!(c.step(true, 9_999.0, TTL, DEADLINE), Step::Fresh);
        let Step::Stale {
            refresh: Some(claim),
        } = c.step(true, 10_000.0, TTL, DEADLINE)
        else {
            panic!("the first stale request refreshes");
        };
        assert_eq!(
            c.step(true, 10_001.0, TTL, DEADLINE),
            Step::Stale { refresh: None }
        );
        c.finish(Some(claim), 10_050.0);
        assert!(!c.refreshing());
        assert_eq!(c.step(true, 10_060.0, TTL, DEADLINE), Step::Fresh);
    }

    #[test]
    fn a_hung_refresh_loses_its_claim_at_the_deadline() {
        let mut c = CacheClock::default();
        c.finish(None, 0.0);
        let Step::Stale {
            refresh: Some(hung),
        } = c.step(true, TTL, TTL, DEADLINE)
        else {
            panic!()
        };
        assert_eq!(
            c.step(true, TTL + DEADLINE - 1.0, TTL, DEADLINE),
            Step::Stale { refresh: None }
        );
        let Step::Stale {
            refresh: Some(next),
        } = c.step(true, TTL + DEADLINE, TTL, DEADLINE)
        else {
            panic!("past the deadline another request refreshes");
        };
        assert_ne!(hung, next);
        // the hung one finishing late does not release the new one's claim
        c.release(hung);
        assert!(c.refreshing());
        c.finish(Some(hung), TTL + DEADLINE + 1.0);
        assert!(c.refreshing());
        c.release(next);
        assert!(!c.refreshing());
    }

    #[test]
    fn a_failed_refresh_is_retried_after_a_ttl_not_on_every_request() {
        let mut c = CacheClock::default();
        c.finish(None, 0.0);
        let Step::Stale {
            refresh: Some(claim),
        } = c.step(true, TTL, TTL, DEADLINE)
        else {
            panic!()
        };
        c.finish(Some(claim), TTL + 5.0); // failed: the age restarts anyway
        assert_eq!(c.step(true, TTL + 10.0, TTL, DEADLINE), Step::Fresh);
    }

    #[test]
    fn kv_writes_only_changes_and_at_most_once_per_ttl() {
        let mut c = CacheClock::default();
        assert!(!c.may_write_kv(false, 0.0, TTL));
        assert!(c.may_write_kv(true, 0.0, TTL));
        assert!(!c.may_write_kv(true, TTL - 1.0, TTL));
        assert!(c.may_write_kv(true, TTL, TTL));
        // a tiny TTL still never writes more than once a second
        let mut c = CacheClock::default();
        assert!(c.may_write_kv(true, 0.0, 10.0));
        assert!(!c.may_write_kv(true, 500.0, 10.0));
        assert!(c.may_write_kv(true, 1_000.0, 10.0));
    }
}
