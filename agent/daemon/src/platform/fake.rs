//! Fakes of the platform for tests: frames from memory or a capture file,
//! owners from a table, a packet queue that records its verdicts, a firewall
//! that records its rules, and a clock moved by hand.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use vigie_core::event::Attribution;
use vigie_core::policy::FailureMode;
use vigie_core::sensor::frame::LinkType;
use vigie_core::sensor::Protocol;

use super::{
    Batch, Capture, Clock, FrameSource, PacketQueue, Platform, QueuedPacket, Received, Verdict, VerdictConfig,
};
use crate::attribution::{Owner, OwnerLookup};

/// A clock that moves only when told.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    wall_start: i64,
    elapsed_micros: AtomicU64,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self { start: Instant::now(), wall_start: 1_767_225_600_000_000, elapsed_micros: AtomicU64::new(0) }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        let micros = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.elapsed_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + Duration::from_micros(self.elapsed_micros.load(Ordering::Relaxed))
    }

    fn wall_micros(&self) -> i64 {
        let elapsed = i64::try_from(self.elapsed_micros.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        self.wall_start.saturating_add(elapsed)
    }

    fn since_boot_micros(&self) -> i64 {
        i64::try_from(self.elapsed_micros.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
    }
}

/// Frames held in memory, handed out one batch each, then `Ended` (or,
/// made with [`Frames::then_idle`], `Idle` until the capture is stopped, as
/// a live interface would).
#[derive(Debug, Default)]
pub struct Frames {
    batches: VecDeque<Vec<(i64, LinkType, Vec<u8>)>>,
    idle_at_end: bool,
}

impl Frames {
    /// One batch per frame.
    pub fn new(frames: impl IntoIterator<Item = (i64, LinkType, Vec<u8>)>) -> Self {
        Self { batches: frames.into_iter().map(|f| vec![f]).collect(), idle_at_end: false }
    }

    /// Once its frames are handed out, the source stays open and quiet.
    pub fn then_idle(mut self) -> Self {
        self.idle_at_end = true;
        self
    }

    /// Every frame of a pcap or pcapng file, in batches of 32.
    pub fn from_capture(path: &Path) -> Result<Self> {
        let mut frames = Vec::new();
        vigie_core::replay::for_each_frame(path, |ts, link, frame| frames.push((ts, link, frame.to_vec())))?;
        let mut batches = VecDeque::new();
        let mut rest = frames.into_iter().peekable();
        while rest.peek().is_some() {
            batches.push_back(rest.by_ref().take(32).collect());
        }
        Ok(Self { batches, idle_at_end: false })
    }
}

impl FrameSource for Frames {
    fn next_batch(&mut self, each: &mut dyn FnMut(i64, LinkType, &[u8])) -> std::io::Result<Batch> {
        let Some(batch) = self.batches.pop_front() else {
            if self.idle_at_end {
                // As a live capture's wait for frames that do not come.
                std::thread::park_timeout(Duration::from_millis(10));
                return Ok(Batch::Idle);
            }
            return Ok(Batch::Ended);
        };
        for (ts, link, frame) in &batch {
            each(*ts, *link, frame);
        }
        Ok(Batch::Frames(batch.len()))
    }
}

/// Captures that hand out prepared frames, once per interface.
#[derive(Debug, Default)]
pub struct FakeCapture {
    /// Interfaces up and not opened yet, with what they will carry.
    pub sources: Mutex<HashMap<String, Frames>>,
    /// Interfaces opened: still up.
    opened: Mutex<Vec<String>>,
}

impl Capture for FakeCapture {
    fn interfaces(&self, names: &[String]) -> Result<Vec<String>> {
        let sources = self.sources.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        if names.is_empty() {
            let opened = self.opened.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let mut all: Vec<String> = sources.keys().chain(opened.iter()).cloned().collect();
            all.sort();
            return Ok(all);
        }
        Ok(names.to_vec())
    }

    fn open(&self, interface: &str, _kernel_filter: bool) -> Result<Box<dyn FrameSource>> {
        let mut sources = self.sources.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        match sources.remove(interface) {
            Some(frames) => {
                if let Ok(mut opened) = self.opened.lock() {
                    opened.push(interface.to_owned());
                }
                Ok(Box::new(frames))
            }
            None => {
                Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no such fake interface")
                    .into())
            }
        }
    }
}

/// Owners from a table: sockets by (protocol, local, remote), users by uid.
#[derive(Debug, Default)]
pub struct FakeOwners {
    pub sockets: Mutex<HashMap<(Protocol, SocketAddr, SocketAddr), Owner>>,
    pub users: HashMap<u32, (String, Vec<String>)>,
    pub programs: HashMap<u32, (String, String)>,
}

impl FakeOwners {
    /// `user` (uid, name, groups) owns the local socket `local` talking to `remote`.
    pub fn own(&self, protocol: Protocol, local: SocketAddr, remote: SocketAddr, owner: Owner) {
        if let Ok(mut sockets) = self.sockets.lock() {
            sockets.insert((protocol, local, remote), owner);
        }
    }
}

impl OwnerLookup for FakeOwners {
    fn owner(&self, protocol: Protocol, local: SocketAddr, remote: SocketAddr) -> Owner {
        self.sockets
            .lock()
            .ok()
            .and_then(|sockets| sockets.get(&(protocol, local, remote)).cloned())
            .unwrap_or_default()
    }

    fn for_uid(&self, uid: u32) -> Owner {
        let (user, groups) = self.users.get(&uid).cloned().unzip();
        Owner {
            attribution: Attribution { uid: Some(uid), user, ..Attribution::default() },
            groups: groups.unwrap_or_default(),
        }
    }

    fn program(&self, pid: u32) -> (Option<String>, Option<String>) {
        self.programs.get(&pid).cloned().unzip()
    }
}

/// The verdicts a fake queue was given, shared with the test.
pub type Verdicts = Arc<Mutex<Vec<(u64, Verdict)>>>;

/// A packet queue fed from memory, recording the verdicts it is given.
#[derive(Debug, Default)]
pub struct FakeQueue {
    pub incoming: VecDeque<QueuedPacket>,
    pub verdicts: Verdicts,
    /// The reading thread dies (a bug, say) once `incoming` is empty.
    pub dies_when_empty: bool,
    /// Overflows reported before the first packet (a flood outran the reader).
    pub overflows: usize,
    /// What the kernel says it dropped.
    pub kernel_dropped: Option<u64>,
}

impl PacketQueue for FakeQueue {
    fn recv(&mut self, _wait: Duration) -> std::io::Result<Received> {
        if self.overflows > 0 {
            self.overflows -= 1;
            return Ok(Received::Overflow);
        }
        let next = self.incoming.pop_front();
        assert!(next.is_some() || !self.dies_when_empty, "the fake queue's thread dies as asked");
        Ok(next.map_or(Received::Nothing, Received::Packet))
    }

    fn kernel_dropped(&mut self) -> Option<u64> {
        self.kernel_dropped
    }

    fn verdict(&mut self, packet: QueuedPacket, verdict: Verdict) -> std::io::Result<()> {
        if let Ok(mut verdicts) = self.verdicts.lock() {
            verdicts.push((packet.token, verdict));
        }
        Ok(())
    }
}

/// A firewall that records what it was asked.
#[derive(Debug, Default)]
pub struct FakeFirewall {
    pub installed: Mutex<Vec<FailureMode>>,
    pub uninstalled: AtomicU64,
    pub blocked: Mutex<Vec<IpAddr>>,
    /// Handed out by the next `install`.
    pub queue: Mutex<Option<FakeQueue>>,
    /// Set by a test: someone deleted the rules.
    pub removed_by_hand: AtomicBool,
}

impl super::Firewall for FakeFirewall {
    fn install(&self, _config: &VerdictConfig, failure: FailureMode) -> Result<Box<dyn PacketQueue>> {
        if let Ok(mut installed) = self.installed.lock() {
            installed.push(failure);
        }
        let queue = self.queue.lock().ok().and_then(|mut q| q.take()).unwrap_or_default();
        Ok(Box::new(queue))
    }

    fn uninstall(&self) {
        self.uninstalled.fetch_add(1, Ordering::Relaxed);
    }

    fn intact(&self) -> Option<bool> {
        Some(!self.removed_by_hand.load(Ordering::Relaxed))
    }

    fn remaining(&self) -> bool {
        let installed = self.installed.lock().map_or(0, |i| i.len());
        u64::try_from(installed).unwrap_or(u64::MAX) > self.uninstalled.load(Ordering::Relaxed)
    }

    fn block_address(&self, address: IpAddr) -> Result<()> {
        if let Ok(mut blocked) = self.blocked.lock() {
            blocked.push(address);
        }
        Ok(())
    }
}

/// A platform made of fakes, each kept for the test to prepare and inspect.
#[derive(Debug, Default, Clone)]
pub struct Fakes {
    pub capture: Arc<FakeCapture>,
    pub owners: Arc<FakeOwners>,
    pub firewall: Arc<FakeFirewall>,
    pub clock: Arc<ManualClock>,
}

impl Fakes {
    pub fn platform(&self) -> Platform {
        Platform {
            capture: Arc::clone(&self.capture) as _,
            owners: Arc::clone(&self.owners) as _,
            firewall: Arc::clone(&self.firewall) as _,
            clock: Arc::clone(&self.clock) as _,
        }
    }
}

/// A machine the agent has no capture or verdicts for.
#[derive(Debug, Default)]
struct Unsupported;

impl Capture for Unsupported {
    fn interfaces(&self, _: &[String]) -> Result<Vec<String>> {
        bail!("live capture is implemented for Linux only so far")
    }

    fn open(&self, _: &str, _: bool) -> Result<Box<dyn FrameSource>> {
        bail!("live capture is implemented for Linux only so far")
    }
}

impl super::Firewall for Unsupported {
    fn install(&self, _: &VerdictConfig, _: FailureMode) -> Result<Box<dyn PacketQueue>> {
        bail!("packet verdicts are implemented for Linux only; set [verdicts] enabled = false")
    }

    fn uninstall(&self) {}

    fn intact(&self) -> Option<bool> {
        None
    }

    fn remaining(&self) -> bool {
        false
    }

    fn block_address(&self, _: IpAddr) -> Result<()> {
        bail!("packet verdicts are implemented for Linux only")
    }
}

#[allow(dead_code)] // Used on the platforms without an implementation.
pub(super) fn unsupported() -> Platform {
    Platform {
        capture: Arc::new(Unsupported),
        owners: Arc::new(FakeOwners::default()),
        firewall: Arc::new(Unsupported),
        clock: Arc::new(super::SystemClock),
    }
}
