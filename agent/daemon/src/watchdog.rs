//! Liveness of the threads that enforce and observe. Each marks when it
//! starts work on a packet or frame and when it is done; the daemon's main
//! loop checks them. A thread that died, or that has been inside one piece
//! of work too long (a parser or lookup stuck), makes the agent stop with
//! an error, so that its supervisor restarts it: `status` never says
//! "enforce" while nothing enforces, and the kernel rules follow
//! `failure_mode` meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One piece of work longer than this is a stall.
pub const STALL_AFTER: Duration = Duration::from_secs(10);

/// When the current piece of work started, in microseconds since `epoch`
/// plus one (0: idle).
#[derive(Debug)]
pub struct Heartbeat {
    epoch: Instant,
    busy_since: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self { epoch: Instant::now(), busy_since: AtomicU64::new(0) }
    }
}

impl Heartbeat {
    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Work starts; ends when the guard goes.
    pub fn busy(&self) -> Busy<'_> {
        self.busy_since.store(self.micros(Instant::now()), Ordering::Relaxed);
        Busy(self)
    }

    /// How long the current piece of work has lasted at `now`, if any.
    pub fn busy_for(&self, now: Instant) -> Option<Duration> {
        let since = self.busy_since.load(Ordering::Relaxed);
        (since != 0).then(|| Duration::from_micros(self.micros(now).saturating_sub(since)))
    }

    pub fn stalled(&self, now: Instant) -> bool {
        self.busy_for(now).is_some_and(|d| d >= STALL_AFTER)
    }
}

/// Marks the end of a piece of work when dropped.
#[derive(Debug)]
pub struct Busy<'a>(&'a Heartbeat);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy_since.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_that_lasts_too_long_is_a_stall() {
        let heartbeat = Heartbeat::default();
        let now = Instant::now();
        assert_eq!(heartbeat.busy_for(now), None);
        {
            let _busy = heartbeat.busy();
            assert!(!heartbeat.stalled(Instant::now()));
            assert!(heartbeat.stalled(Instant::now() + STALL_AFTER));
        }
        assert!(!heartbeat.stalled(Instant::now() + STALL_AFTER), "idle is not stalled");
    }
}
