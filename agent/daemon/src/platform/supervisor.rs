//! The service manager that started the agent, told how it is doing: ready
//! once the rules are in and the sockets bound, alive while the threads that
//! enforce and observe are healthy (systemd's `WatchdogSec=`), stopping when
//! it shuts down. Outside systemd (no `NOTIFY_SOCKET`), each call does
//! nothing.

use std::time::Duration;

/// The agent is up: systemd starts the units ordered after it.
pub fn ready(status: &str) {
    #[cfg(target_os = "linux")]
    send(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(status)]);
    #[cfg(not(target_os = "linux"))]
    let _ = status;
}

/// Still healthy: resets systemd's watchdog timer.
pub fn alive() {
    #[cfg(target_os = "linux")]
    send(&[sd_notify::NotifyState::Watchdog]);
}

/// The agent is shutting down, and why.
pub fn stopping(status: &str) {
    #[cfg(target_os = "linux")]
    send(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status(status)]);
    #[cfg(not(target_os = "linux"))]
    let _ = status;
}

/// How often systemd expects [`alive`], if it watches at all: half its
/// `WatchdogSec=`, as sd_watchdog_enabled(3) advises.
pub fn alive_every() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    return sd_notify::watchdog_enabled().map(|timeout| timeout / 2);
    #[cfg(not(target_os = "linux"))]
    return None;
}

#[cfg(target_os = "linux")]
fn send(states: &[sd_notify::NotifyState]) {
    // A manager that went away cannot be told; the agent goes on.
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "service manager notification failed");
    }
}
