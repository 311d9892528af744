//! What one user may take of the console socket: connections, requests,
//! clipboard reports. The socket is open to every local user, so each
//! budget is per uid: no user can starve another (administrators
//! included), or make the agent store without bound. Root is not limited:
//! it can stop the agent anyway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Connections one user may hold at once.
const MAX_CONNECTIONS_PER_USER: usize = 8;
/// Requests a user may make: a sustained rate and a burst (a console
/// starting up makes about ten at once).
const REQUESTS_PER_SECOND: f64 = 20.0;
const REQUEST_BURST: f64 = 100.0;
/// Clipboard reports a user may make a minute. Each may store one event:
/// a human copies far less; a script looping on the socket stores at most
/// this many events a minute (before: ~700 a second).
pub(super) const CLIPBOARD_REPORTS_PER_MINUTE: u32 = 30;

#[derive(Debug)]
struct Budget {
    connections: usize,
    tokens: f64,
    refilled: Instant,
    clipboard_minute: Instant,
    clipboard_reports: u32,
}

/// Counts of what was refused, for `status`.
#[derive(Debug, Default, Serialize)]
pub struct Refused {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub clipboard_reports: AtomicU64,
}

#[derive(Debug, Default)]
pub struct Budgets {
    users: Mutex<HashMap<u32, Budget>>,
    pub refused: Refused,
}

impl Budgets {
    fn with<T>(&self, uid: u32, now: Instant, f: impl FnOnce(&mut Budget) -> T) -> Option<T> {
        let mut users = self.users.lock().ok()?;
        let budget = users.entry(uid).or_insert_with(|| Budget {
            connections: 0,
            tokens: REQUEST_BURST,
            refilled: now,
            clipboard_minute: now,
            clipboard_reports: 0,
        });
        let value = f(budget);
        // A user with nothing open and a full bucket needs no entry.
        if budget.connections == 0 && budget.tokens >= REQUEST_BURST && budget.clipboard_reports == 0 {
            users.remove(&uid);
        }
        Some(value)
    }

    /// Takes a connection slot for `uid`; false when they hold too many.
    pub fn connect(&self, uid: u32, now: Instant) -> bool {
        let admitted = self
            .with(uid, now, |b| {
                let admitted = uid == 0 || b.connections < MAX_CONNECTIONS_PER_USER;
                if admitted {
                    b.connections += 1;
                }
                admitted
            })
            .unwrap_or(false);
        if !admitted {
            self.refused.connections.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    pub fn disconnect(&self, uid: u32, now: Instant) {
        self.with(uid, now, |b| b.connections = b.connections.saturating_sub(1));
    }

    /// Takes one request from `uid`'s bucket; false when it is empty.
    pub fn request(&self, uid: u32, now: Instant) -> bool {
        if uid == 0 {
            return true;
        }
        let allowed = self
            .with(uid, now, |b| {
                let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
                b.tokens = (b.tokens + elapsed * REQUESTS_PER_SECOND).min(REQUEST_BURST);
                b.refilled = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if !allowed {
            self.refused.requests.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Takes one clipboard report from `uid`'s minute; false when used up.
    pub fn clipboard_report(&self, uid: u32, now: Instant) -> bool {
        let allowed = self
            .with(uid, now, |b| {
                if now.saturating_duration_since(b.clipboard_minute) >= Duration::from_secs(60) {
                    b.clipboard_minute = now;
                    b.clipboard_reports = 0;
                }
                if b.clipboard_reports < CLIPBOARD_REPORTS_PER_MINUTE {
                    b.clipboard_reports += 1;
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if !allowed {
            self.refused.clipboard_reports.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_budget_is_per_user_and_refills() {
        let budgets = Budgets::default();
        let now = Instant::now();
        for _ in 0..MAX_CONNECTIONS_PER_USER {
            assert!(budgets.connect(1000, now));
        }
        assert!(!budgets.connect(1000, now));
        assert!(budgets.connect(1001, now), "another user still gets in");
        assert!(budgets.connect(0, now), "root is not limited");
        budgets.disconnect(1000, now);
        assert!(budgets.connect(1000, now));

        let burst = (0..1000).filter(|_| budgets.request(1000, now)).count();
        assert_eq!(burst, REQUEST_BURST as usize);
        assert!(budgets.request(1001, now), "another user's bucket is full");
        let later = now + Duration::from_millis(500);
        let refilled = (0..1000).filter(|_| budgets.request(1000, later)).count();
        assert_eq!(refilled, (REQUESTS_PER_SECOND / 2.0) as usize);

        let reports = (0..100).filter(|_| budgets.clipboard_report(1000, now)).count();
        assert_eq!(reports, CLIPBOARD_REPORTS_PER_MINUTE as usize);
        assert!(budgets.clipboard_report(1000, now + Duration::from_secs(60)), "a new minute");
        assert_eq!(budgets.refused.clipboard_reports.load(Ordering::Relaxed), 70);
    }
}
