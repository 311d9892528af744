//! The operating system, behind traits: where frames come from, who owns a
//! socket, the packet queue and the firewall rules that feed it, and the
//! clock. The daemon is handed one [`Platform`] value (as bandwhich hands
//! its `OsInputOutput` to `start`), so every loop also runs on the fakes of
//! [`fake`] in ordinary `cargo test`. This is the only module with
//! `cfg(target_os)`.

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Deserialize;
use vigie_core::policy::FailureMode;
use vigie_core::sensor::frame::LinkType;

use crate::attribution::OwnerLookup;

pub mod fake;
#[cfg(target_os = "linux")]
mod linux;
pub mod portable;
pub mod supervisor;

/// Time, for what ages (prompts, held packets, bypasses) and what is stamped
/// (events).
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> Instant;
    /// Microseconds since the Unix epoch.
    fn wall_micros(&self) -> i64;
    /// Microseconds since boot, suspended time included (`Instant` stops
    /// while the machine sleeps): what the wall clock is compared with.
    fn since_boot_micros(&self) -> i64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_micros(&self) -> i64 {
        now_micros()
    }

    fn since_boot_micros(&self) -> i64 {
        #[cfg(target_os = "linux")]
        {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
            t.tv_sec.saturating_mul(1_000_000).saturating_add(t.tv_nsec / 1_000)
        }
        #[cfg(not(target_os = "linux"))]
        {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            let start = *START.get_or_init(Instant::now);
            i64::try_from(start.elapsed().as_micros()).unwrap_or(i64::MAX)
        }
    }
}

/// The system's wall clock in microseconds since the Unix epoch (0 before it).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// What one read of a frame source gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// This many frames were handed over.
    Frames(usize),
    /// Nothing came for a while: time to look at the stop flag.
    Idle,
    /// The source has no more frames (the end of a file).
    Ended,
}

/// Frames from one place: a live capture on one interface, or a file.
pub trait FrameSource: Send {
    /// Hands the next batch of frames to `each`, with their time and link type.
    fn next_batch(&mut self, each: &mut dyn FnMut(i64, LinkType, &[u8])) -> std::io::Result<Batch>;
}

/// Opens live captures.
pub trait Capture: Send + Sync + Debug {
    /// The interfaces to capture on: those named, or every one that is up
    /// but loopback (possibly none yet).
    fn interfaces(&self, names: &[String]) -> Result<Vec<String>>;
    /// A capture on `interface`; with `kernel_filter`, bulk traffic is left
    /// in the kernel. A `PermissionDenied` error is final.
    fn open(&self, interface: &str, kernel_filter: bool) -> Result<Box<dyn FrameSource>>;
}

/// A packet the kernel holds until the agent gives its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPacket {
    /// The platform's handle on the held packet.
    pub token: u64,
    /// The IP packet, from its IP header.
    pub payload: Vec<u8>,
    /// The socket owner's uid as the kernel saw it when queueing.
    pub uid: Option<u32>,
}

/// What the packet queue had.
#[derive(Debug)]
pub enum Received {
    Packet(QueuedPacket),
    /// Nothing came in the time given.
    Nothing,
    /// The kernel had packets it could not hand over (the queue's socket
    /// full) and dropped them: their senders send them again.
    Overflow,
}

/// What becomes of a queued packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it go; its flow may still be judged.
    Accept,
    /// Let it go, and stop queueing its flow: it is decided.
    AcceptDecided,
    /// Reject it and the rest of its connection.
    Deny,
    /// Drop it silently (a spare copy of a held segment: the sender retransmits).
    Drop,
}

/// The packets of new connections, held for a verdict.
pub trait PacketQueue: Send {
    /// The next packet, waiting for one at most `wait`.
    fn recv(&mut self, wait: std::time::Duration) -> std::io::Result<Received>;
    /// Packets the kernel dropped since the queue opened because it had no
    /// room for them; `None` where the platform does not say. Read about
    /// once a second.
    fn kernel_dropped(&mut self) -> Option<u64> {
        None
    }
    /// Gives a held packet its verdict.
    fn verdict(&mut self, packet: QueuedPacket, verdict: Verdict) -> std::io::Result<()>;
}

/// `[verdicts]` in the agent configuration: what the firewall installs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerdictConfig {
    /// With enforcement on, also judge packets (off: the resolver alone).
    pub enabled: bool,
    /// The NFQUEUE number the agent reads.
    pub queue: u16,
    /// The packet-mark bits that say a connection was denied, or decided
    /// and let through (saved to conntrack). Move them if another tool of
    /// the machine uses these bits (Calico's default mask 0xffff0000 does).
    pub denied_mark: u32,
    pub decided_mark: u32,
    /// New TCP connections a user (a local socket's owner; a routed
    /// container or VM by its address) may open each second, in bursts of
    /// twice as many; past it their SYNs are dropped before the queue and
    /// sent again by their sender. So one user's flood cannot fill the
    /// queue that every user's connections wait in. 0: no limit.
    pub new_connections_per_second: u32,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue: 4242,
            denied_mark: 0x1000_0000,
            decided_mark: 0x0200_0000,
            new_connections_per_second: 1000,
        }
    }
}

/// The kernel rules that queue packets and reject denied connections.
pub trait Firewall: Send + Sync + Debug {
    /// Removes whatever an earlier run left, installs the rules and opens
    /// the queue they feed. Fail-open rules let packets through when nobody
    /// reads the queue; fail-closed ones drop them.
    fn install(&self, config: &VerdictConfig, failure: FailureMode) -> Result<Box<dyn PacketQueue>>;
    /// Removes every rule the agent installed.
    fn uninstall(&self);
    /// Whether the rules `install` put in are all still there, as they
    /// were (a user with root may delete or flush some); `None` when there
    /// are none or they cannot be listed.
    fn intact(&self) -> Option<bool>;
    /// Whether any rule of an agent (this one's or an earlier one's) is
    /// still installed.
    fn remaining(&self) -> bool;
    /// Rejects new connections to `address` for a while (a blocked name's address).
    fn block_address(&self, address: IpAddr) -> Result<()>;
}

/// Everything the daemon needs from the operating system.
#[derive(Debug, Clone)]
pub struct Platform {
    pub capture: Arc<dyn Capture>,
    pub owners: Arc<dyn OwnerLookup>,
    pub firewall: Arc<dyn Firewall>,
    pub clock: Arc<dyn Clock>,
}

impl Platform {
    /// The machine the agent runs on. Elsewhere than Linux: no capture, no
    /// verdicts, anonymous flows (the resolver and the console still work).
    pub fn this_machine() -> Self {
        #[cfg(target_os = "linux")]
        return linux::platform();
        #[cfg(not(target_os = "linux"))]
        return fake::unsupported();
    }
}

/// Whether a file under `/proc/<pid>` belongs to `uid`: the window's process
/// reported by a console is looked up only when it is the reporter's own.
pub fn process_belongs_to(pid: u32, uid: u32) -> bool {
    #[cfg(target_os = "linux")]
    return linux::process_belongs_to(pid, uid);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pid, uid);
        false
    }
}

/// Whether standard error goes to the systemd journal (systemd sets
/// `JOURNAL_STREAM` to its device and inode): then log lines are sent with
/// their fields, which `journalctl VIGIE_SERVICE=chatgpt` filters on.
pub fn stderr_is_journal() -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
        let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else { return false };
        stream.to_string_lossy() == format!("{}:{}", stderr.dev(), stderr.ino())
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// What changes when a file is written or replaced: its identity, size and
/// change time (which no user can set back), read without reading the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    id: u64,
    len: u64,
    changed: i128,
}

pub fn file_stamp(path: &std::path::Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        Some(FileStamp {
            id: meta.ino(),
            len: meta.len(),
            changed: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let changed = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_nanos();
        Some(FileStamp { id: 0, len: meta.len(), changed: i128::try_from(changed).unwrap_or(i128::MAX) })
    }
}
