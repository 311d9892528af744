//! Packet verdicts (enforcement point 2), for clients that bypass the
//! resolver (DNS over HTTPS, hard-coded resolvers, IP literals, proxies):
//! the platform's packet queue holds the packets of every new TCP flow and
//! QUIC-shaped UDP flow, on every port, until the [`Gate`] has read its
//! handshake. A name the policy denies is rejected (TCP reset, ICMP for
//! QUIC, so browsers fall back or fail at once), and so is the rest of its
//! connection, by the platform's firewall; a handshake the gate cannot read
//! within its budget follows the policy's `unreadable_handshake` and is
//! recorded either way. Once a flow is decided the kernel stops queueing it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{debug, info, warn};
use vigie_core::sensor::gate::{Finding, Gate, GateLimits, Step, Unreadable};
use vigie_core::sensor::{Flow, Micros, Observation, Protocol};

use crate::decider::{Decider, Point};
use crate::platform::{Firewall, PacketQueue, QueuedPacket, Received, Verdict};
use crate::rules::{LivePipeline, Rules};
use crate::watchdog::Heartbeat;

#[derive(Debug, Default, Serialize)]
pub struct VerdictStats {
    pub packets: AtomicU64,
    pub rejected: AtomicU64,
    pub accepted: AtomicU64,
    pub addresses_blocked: AtomicU64,
    /// Nanoseconds spent deciding, over `packets`.
    pub decision_nanos: AtomicU64,
    pub errors: AtomicU64,
    /// Extra copies of a held segment, dropped (the sender retransmits).
    pub dropped: AtomicU64,
    /// Handshakes that could not be read (see `unreadable_handshake`).
    pub unreadable: AtomicU64,
    /// Flows the agent had no room to follow (table full, per-user quota,
    /// held bytes): each followed the policy for unreadable handshakes.
    pub untracked: AtomicU64,
    /// Flows being read now, and the packets held for them.
    pub flows_reading: AtomicU64,
    pub packets_held: AtomicU64,
    /// Packets the kernel dropped for want of room in the queue (a flood
    /// outran the agent): dropped, never let through unjudged; their
    /// senders send them again.
    pub kernel_dropped: AtomicU64,
}

/// Puts the addresses blocked names resolve to into the firewall's sets.
/// Each costs the firewall a few ms, so an address added recently is not
/// added again.
pub struct AddressBlocker {
    firewall: Arc<dyn Firewall>,
    recent: Mutex<HashMap<IpAddr, Instant>>,
    /// Addresses never blocked: the configured upstreams.
    spared: Vec<IpAddr>,
    /// The upstreams the resolver forwards to now, never blocked either:
    /// they follow the network (resolv.conf, resolved's servers), so they
    /// are asked for at each block rather than read once at the start.
    upstreams_now: UpstreamsNow,
    stats: Arc<VerdictStats>,
}

/// Where the resolver forwards at this moment.
pub type UpstreamsNow = Box<dyn Fn() -> Vec<IpAddr> + Send + Sync>;

impl std::fmt::Debug for AddressBlocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressBlocker").field("spared", &self.spared).finish_non_exhaustive()
    }
}

impl AddressBlocker {
    pub fn new(
        firewall: Arc<dyn Firewall>,
        spared: Vec<IpAddr>,
        upstreams_now: UpstreamsNow,
        stats: Arc<VerdictStats>,
    ) -> Self {
        Self { firewall, recent: Mutex::default(), spared, upstreams_now, stats }
    }

    pub fn block(&self, address: IpAddr) {
        // Never this machine, its link, a private network or a broadcast: an
        // answer must not cut the workstation off its own networks (an
        // internal service that shares an address with nothing public).
        let local = match address {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                let shared = a == 100 && (64..128).contains(&b); // RFC 6598
                v4.is_unspecified()
                    || v4.is_loopback()
                    || v4.is_private()
                    || shared
                    || v4.is_link_local()
                    || v4.is_multicast()
                    || v4.is_broadcast()
            }
            IpAddr::V6(v6) => {
                let [first, ..] = v6.segments();
                let unique_local = first & 0xfe00 == 0xfc00; // RFC 4193
                v6.is_unspecified()
                    || v6.is_loopback()
                    || v6.is_multicast()
                    || v6.is_unicast_link_local()
                    || unique_local
                    || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_private() || v4.is_loopback())
            }
        };
        if local || self.spared.contains(&address) {
            return;
        }
        let now = Instant::now();
        {
            let Ok(mut recent) = self.recent.lock() else { return };
            recent.retain(|_, added| now.duration_since(*added) < Duration::from_secs(60));
            if recent.contains_key(&address) || recent.len() >= 4096 {
                return;
            }
        }
        // Asked after the cheap checks and outside the lock: it builds a
        // list and may read the resolver's files.
        if (self.upstreams_now)().contains(&address) {
            return;
        }
        let Ok(mut recent) = self.recent.lock() else { return };
        // Another thread may have added it meanwhile: added once.
        if recent.insert(address, now).is_some() {
            return;
        }
        drop(recent);
        match self.firewall.block_address(address) {
            Ok(()) => {
                self.stats.addresses_blocked.fetch_add(1, Ordering::Relaxed);
                info!(%address, "address of a blocked name rejected");
            }
            Err(e) => warn!(error = %e, "adding a blocked address"),
        }
    }
}

/// Bytes of packets held for flows being read, all flows together: past
/// it, a new flow to hold is given up (and follows the policy for
/// unreadable handshakes) rather than let through unread.
const MAX_HELD_BYTES: usize = 32 << 20;
/// Packets held at once, in all and per user: well under the kernel
/// queue's length (16,384), so that no user can fill it (a full queue lets
/// packets through unjudged, or drops everyone's).
const MAX_HELD_PACKETS: usize = 8192;
const MAX_HELD_PACKETS_PER_USER: usize = 1024;

/// Judges queued packets: the gate reads each new flow's handshake, the
/// decider decides and reports, and the packets the gate holds wait for
/// their flow's verdict.
#[derive(Debug)]
pub struct Verdicter<'a> {
    decider: &'a Decider,
    rules: &'a Rules,
    stats: &'a VerdictStats,
    live: LivePipeline,
    gate: Gate,
    /// The gate's clock: microseconds since this verdicter started.
    epoch: Instant,
    /// Packets held until their flow is decided.
    held: HashMap<Flow, Vec<QueuedPacket>>,
    held_bytes: usize,
    held_packets: usize,
    held_per_user: HashMap<Option<u32>, usize>,
    /// Time spent handing verdicts to the kernel during the current packet.
    sending: Duration,
}

impl<'a> Verdicter<'a> {
    pub fn new(decider: &'a Decider, rules: &'a Rules, stats: &'a VerdictStats) -> Self {
        Self::with_limits(decider, rules, stats, GateLimits::default())
    }

    pub fn with_limits(
        decider: &'a Decider,
        rules: &'a Rules,
        stats: &'a VerdictStats,
        limits: GateLimits,
    ) -> Self {
        Self {
            decider,
            rules,
            stats,
            live: LivePipeline::new(rules),
            gate: Gate::new(limits),
            epoch: decider.clock().now(),
            held: HashMap::new(),
            held_bytes: 0,
            held_packets: 0,
            held_per_user: HashMap::new(),
            sending: Duration::ZERO,
        }
    }

    /// Whether packets are held (the caller then polls instead of blocking).
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    fn gate_time(&self) -> Micros {
        let elapsed = self.decider.clock().now().saturating_duration_since(self.epoch);
        i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
    }

    fn send(&mut self, queue: &mut dyn PacketQueue, packet: QueuedPacket, verdict: Verdict) {
        let counter = match verdict {
            Verdict::Deny => &self.stats.rejected,
            Verdict::Drop => &self.stats.dropped,
            Verdict::Accept | Verdict::AcceptDecided => &self.stats.accepted,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // The kernel sends the packet on inside this call (through the
        // stack, a veth, sometimes the peer's receive path): not decision time.
        let started = Instant::now();
        if let Err(e) = queue.verdict(packet, verdict) {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            debug!(error = %e, "packet verdict");
        }
        self.sending = self.sending.saturating_add(started.elapsed());
    }

    /// Gives up the flows whose time is up (their held packets follow the
    /// policy for unreadable handshakes).
    pub fn release_due(&mut self, queue: &mut dyn PacketQueue) {
        let now = self.gate_time();
        for finding in self.gate.take_abandoned(now) {
            self.conclude(queue, now, finding, None);
        }
        self.publish_gate_stats();
    }

    /// Lets every held packet go (the agent is stopping).
    pub fn release_all(&mut self, queue: &mut dyn PacketQueue) {
        let keys: Vec<Flow> = self.held.keys().copied().collect();
        for key in keys {
            for packet in self.unhold(&key) {
                self.send(queue, packet, Verdict::Accept);
            }
        }
    }

    /// Judges one queued packet.
    pub fn judge(&mut self, queue: &mut dyn PacketQueue, packet: QueuedPacket) {
        let started = Instant::now();
        self.sending = Duration::ZERO;
        self.live.refresh(self.rules);
        let now = self.gate_time();
        let step = self.gate.packet(now, &packet.payload, packet.uid);
        match step {
            Step::Pass => self.send(queue, packet, Verdict::Accept),
            Step::Drop => self.send(queue, packet, Verdict::Drop),
            Step::Settled { flow, deny } => self.send(queue, packet, allowed_or_denied(flow.protocol, deny)),
            Step::Hold(flow) => {
                let room = self.has_room(&packet);
                let uid = packet.uid;
                self.hold(flow, packet);
                if !room {
                    // No room left to hold: the flow is given up like an evicted one.
                    if let Some(finding) = self.gate.abandon(flow, Unreadable::Evicted) {
                        self.conclude(queue, now, finding, uid);
                    }
                }
            }
            Step::Decided(finding) => {
                // This packet shares the fate of its flow's held ones.
                let uid = packet.uid;
                self.hold(finding.flow(), packet);
                self.conclude(queue, now, finding, uid);
            }
        }
        // Flows evicted by this packet's arrival.
        for finding in self.gate.take_abandoned(now) {
            self.conclude(queue, now, finding, None);
        }
        self.stats.packets.fetch_add(1, Ordering::Relaxed);
        let deciding = started.elapsed().saturating_sub(std::mem::take(&mut self.sending));
        let nanos = u64::try_from(deciding.as_nanos()).unwrap_or(u64::MAX);
        self.stats.decision_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Whether one more packet of `packet`'s user may be held.
    fn has_room(&self, packet: &QueuedPacket) -> bool {
        self.held_bytes + packet.payload.len() <= MAX_HELD_BYTES
            && self.held_packets < MAX_HELD_PACKETS
            && self.held_per_user.get(&packet.uid).copied().unwrap_or(0) < MAX_HELD_PACKETS_PER_USER
    }

    fn hold(&mut self, key: Flow, packet: QueuedPacket) {
        self.held_bytes += packet.payload.len();
        self.held_packets += 1;
        *self.held_per_user.entry(packet.uid).or_default() += 1;
        self.held.entry(key).or_default().push(packet);
    }

    /// Takes a flow's held packets out of the counts.
    fn unhold(&mut self, key: &Flow) -> Vec<QueuedPacket> {
        let packets = self.held.remove(key).unwrap_or_default();
        for packet in &packets {
            self.held_bytes = self.held_bytes.saturating_sub(packet.payload.len());
            self.held_packets = self.held_packets.saturating_sub(1);
            if let Some(count) = self.held_per_user.get_mut(&packet.uid) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.held_per_user.remove(&packet.uid);
                }
            }
        }
        packets
    }

    /// The uid the kernel gave with a held packet of `flow`.
    fn held_uid(&self, flow: &Flow) -> Option<u32> {
        let packets = self.held.get(flow)?;
        packets.iter().find_map(|p| p.uid)
    }

    /// Decides a flow the gate is done with: reports it, settles it in the
    /// gate, and gives its held packets (the last one included) one verdict.
    fn conclude(&mut self, queue: &mut dyn PacketQueue, now: Micros, finding: Finding, uid: Option<u32>) {
        let (flow, deny) = match finding {
            Finding::Named(mut observation) => {
                // The gate's clock counts from its start; events carry the wall clock.
                observation.ts = self.decider.clock().wall_micros();
                let uid = uid.or_else(|| self.held_uid(&observation.flow));
                (observation.flow, self.decide_named(&observation, uid))
            }
            Finding::NoName { flow } => (flow, false),
            Finding::Unreadable { flow, source, why } => {
                let uid = uid.or_else(|| self.held_uid(&flow));
                let owner = self.decider.owner(&flow, uid);
                let deny = self.decider.report_unreadable(&self.live.policy, &flow, source, why, owner);
                (flow, deny)
            }
        };
        let verdict = allowed_or_denied(flow.protocol, deny);
        self.gate.settle(now, flow, deny);
        for packet in self.unhold(&flow) {
            self.send(queue, packet, verdict);
        }
    }

    /// The decider's verdict on a name: whether the flow is denied.
    fn decide_named(&self, observation: &Observation, uid: Option<u32>) -> bool {
        let Some(service) = self.live.catalog.lookup(&observation.name) else { return false };
        let policy = &self.live.policy;
        let owner = self.decider.owner(&observation.flow, uid);
        let outcome = self.decider.decide(policy, service, owner);
        let deny = outcome.denies;
        self.decider.report(Point::Verdict, policy, observation, service, outcome);
        deny
    }

    fn publish_gate_stats(&self) {
        let gate = self.gate.stats();
        self.stats.unreadable.store(gate.unreadable, Ordering::Relaxed);
        self.stats.untracked.store(gate.untracked, Ordering::Relaxed);
        self.stats.flows_reading.store(self.gate.reading() as u64, Ordering::Relaxed);
        self.stats.packets_held.store(self.held_packets as u64, Ordering::Relaxed);
    }
}

/// The verdict for a decided flow. An allowed UDP flow is not marked
/// decided: another QUIC connection may start on the same ports, and the
/// kernel queues only its long-header datagrams, which are few.
fn allowed_or_denied(protocol: Protocol, deny: bool) -> Verdict {
    match (deny, protocol) {
        (true, _) => Verdict::Deny,
        (false, Protocol::Tcp) => Verdict::AcceptDecided,
        (false, Protocol::Udp) => Verdict::Accept,
    }
}

/// Reads the queue until `stop` is set: waits a second at a time while
/// nothing is held, a millisecond otherwise, so held packets go in time.
pub fn run(
    mut queue: Box<dyn PacketQueue>,
    decider: &Decider,
    rules: &Rules,
    stats: &VerdictStats,
    stop: &AtomicBool,
    heartbeat: &Heartbeat,
) {
    let mut verdicter = Verdicter::new(decider, rules, stats);
    let mut drops = KernelDrops::default();
    while !stop.load(Ordering::Relaxed) {
        drops.check(queue.as_mut(), stats);
        let wait = if verdicter.holding() { HOLD_POLL } else { IDLE_WAKE };
        match queue.recv(wait) {
            Ok(Received::Packet(packet)) => {
                let _busy = heartbeat.busy();
                verdicter.judge(queue.as_mut(), packet);
                // Under steady traffic too, a held packet waits no longer than HOLD.
                verdicter.release_due(queue.as_mut());
            }
            Ok(Received::Nothing) => verdicter.release_due(queue.as_mut()),
            // A flood: read on at once, a pause would let it fill more (the
            // kernel counts what it dropped).
            Ok(Received::Overflow) => {}
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "packet queue receive");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    // Nothing held is left without a verdict.
    verdicter.release_all(queue.as_mut());
}

/// Follows the kernel's count of packets dropped from a full queue: read
/// each second, logged at most once a minute while it grows.
#[derive(Default)]
struct KernelDrops {
    read_at: Option<Instant>,
    logged_at: Option<Instant>,
    logged: u64,
}

impl KernelDrops {
    fn check(&mut self, queue: &mut dyn PacketQueue, stats: &VerdictStats) {
        if self.read_at.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.read_at = Some(Instant::now());
        let Some(dropped) = queue.kernel_dropped() else { return };
        stats.kernel_dropped.store(dropped, Ordering::Relaxed);
        if dropped > self.logged && self.logged_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            warn!(
                dropped,
                "packet queue full: the kernel dropped packets a flood brought (none went unjudged)"
            );
            self.logged = dropped;
            self.logged_at = Some(Instant::now());
        }
    }
}

/// How long the loop waits for a packet while others are held: the
/// granularity of their release when their time is up.
const HOLD_POLL: Duration = Duration::from_millis(1);
/// How long it waits with nothing held: often enough to follow the
/// kernel's drop count and a stop request, rarely enough to cost nothing.
const IDLE_WAKE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests;
