//! Packet verdicts (enforcement point 2), for clients that bypass the
//! resolver (DNS over HTTPS, hard-coded resolvers, IP literals): the first
//! packets of every TCP and UDP connection to port 443 are held by the
//! platform's packet queue and go through the same sensor as the capture; a
//! ClientHello or QUIC Initial whose name the policy denies is rejected
//! (TCP reset, ICMP for QUIC, so browsers fall back or fail at once), and so
//! is the rest of its connection, by the platform's firewall.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use vigie_core::policy::Subject;
use vigie_core::sensor::frame::{decode_frame, Frame, LinkType, Transport};

use crate::decider::{Decider, Point};
use crate::platform::{Firewall, PacketQueue, QueuedPacket};
use crate::rules::{LivePipeline, Rules};

/// `[verdicts]` in the agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerdictConfig {
    /// With enforcement on, also judge packets (off: the resolver alone).
    pub enabled: bool,
    /// The NFQUEUE number the agent reads.
    pub queue: u16,
    /// How many packets of each connection (from its first) are queued: a
    /// ClientHello or QUIC Initial takes one to three.
    pub packets_per_connection: u32,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        Self { enabled: true, queue: 4242, packets_per_connection: 8 }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct VerdictStats {
    pub packets: AtomicU64,
    pub rejected: AtomicU64,
    pub accepted: AtomicU64,
    pub addresses_blocked: AtomicU64,
    /// Nanoseconds spent deciding, over `packets`.
    pub decision_nanos: AtomicU64,
    pub errors: AtomicU64,
}

/// Puts the addresses blocked names resolve to into the firewall's sets.
/// Each costs the firewall a few ms, so an address added recently is not
/// added again.
#[derive(Debug)]
pub struct AddressBlocker {
    firewall: Arc<dyn Firewall>,
    recent: Mutex<HashMap<IpAddr, Instant>>,
    /// Addresses never blocked: the resolver's upstreams.
    spared: Vec<IpAddr>,
    stats: Arc<VerdictStats>,
}

impl AddressBlocker {
    pub fn new(firewall: Arc<dyn Firewall>, spared: Vec<IpAddr>, stats: Arc<VerdictStats>) -> Self {
        Self { firewall, recent: Mutex::default(), spared, stats }
    }

    pub fn block(&self, address: IpAddr) {
        // Never this machine, its link or a broadcast: an answer anyone can
        // send must not cut the workstation off its own network.
        let local = match address {
            IpAddr::V4(v4) => {
                v4.is_unspecified()
                    || v4.is_loopback()
                    || v4.is_link_local()
                    || v4.is_multicast()
                    || v4.is_broadcast()
            }
            IpAddr::V6(v6) => {
                v6.is_unspecified() || v6.is_loopback() || v6.is_multicast() || v6.is_unicast_link_local()
            }
        };
        if local || self.spared.contains(&address) {
            return;
        }
        let Ok(mut recent) = self.recent.lock() else { return };
        let now = Instant::now();
        recent.retain(|_, added| now.duration_since(*added) < Duration::from_secs(60));
        if recent.contains_key(&address) || recent.len() >= 4096 {
            return;
        }
        recent.insert(address, now);
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

/// How long a connection's first data packet may wait for the next one
/// when it holds only part of a handshake (Chromium's ClientHello often
/// spans two segments, its QUIC Initial two datagrams). Held, the server
/// gets none of a denied handshake, and the socket is still open when the
/// second packet names the service and the agent looks up its owner.
const HOLD: Duration = Duration::from_millis(50);
const MAX_HELD: usize = 256;
const MAX_STARTED: usize = 8192;

/// A flow's direction, and whether it is TCP: what holding is keyed by.
type FlowKey = (SocketAddr, SocketAddr, bool);

/// The flow of a queued packet that carries handshake-capable data: TCP
/// payload, or a QUIC long-header datagram.
fn data_flow(packet: &[u8]) -> Option<FlowKey> {
    let Ok(Frame::Ip(ip)) = decode_frame(LinkType::RawIp, packet) else { return None };
    match ip.transport {
        Transport::Tcp(segment) if !segment.payload.is_empty() => {
            Some((SocketAddr::new(ip.src, segment.src_port), SocketAddr::new(ip.dst, segment.dst_port), true))
        }
        Transport::Udp { src_port, dst_port, payload } if payload.first().is_some_and(|b| b & 0x80 != 0) => {
            Some((SocketAddr::new(ip.src, src_port), SocketAddr::new(ip.dst, dst_port), false))
        }
        _ => None,
    }
}

/// Judges queued packets: the sensor reads each, the decider decides and
/// reports, and a partial handshake's first packet waits (bounded) for the
/// rest of it.
#[derive(Debug)]
pub struct Verdicter<'a> {
    decider: &'a Decider,
    rules: &'a Rules,
    stats: &'a VerdictStats,
    live: LivePipeline,
    /// First data packets waiting for the rest of their handshake.
    held: VecDeque<(QueuedPacket, FlowKey, Instant)>,
    /// Flows whose first data packet was seen, so later ones are not held.
    started: HashMap<FlowKey, Instant>,
}

impl<'a> Verdicter<'a> {
    pub fn new(decider: &'a Decider, rules: &'a Rules, stats: &'a VerdictStats) -> Self {
        Self {
            decider,
            rules,
            stats,
            live: LivePipeline::new(rules),
            held: VecDeque::new(),
            started: HashMap::new(),
        }
    }

    /// Whether packets are held (the caller then polls instead of blocking).
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    fn send(&self, queue: &mut dyn PacketQueue, packet: QueuedPacket, deny: bool) {
        let counter = if deny { &self.stats.rejected } else { &self.stats.accepted };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = queue.verdict(packet, deny) {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            debug!(error = %e, "packet verdict");
        }
    }

    /// Lets through the held packets whose time is up.
    pub fn release_due(&mut self, queue: &mut dyn PacketQueue) {
        let now = self.decider.clock().now();
        self.release(queue, |_, since| now.saturating_duration_since(since) >= HOLD, false);
    }

    fn release(&mut self, queue: &mut dyn PacketQueue, due: impl Fn(&FlowKey, Instant) -> bool, deny: bool) {
        let (released, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.held).into_iter().partition(|(_, key, since)| due(key, *since));
        self.held = kept.into();
        for (packet, _, _) in released {
            self.send(queue, packet, deny);
        }
    }

    /// Judges one queued packet.
    pub fn judge(&mut self, queue: &mut dyn PacketQueue, packet: QueuedPacket) {
        let started = Instant::now();
        let now = self.decider.clock().now();
        self.live.refresh(self.rules);
        let LivePipeline { pipeline, policy, .. } = &mut self.live;
        let decider = self.decider;
        let (mut deny, mut observed) = (false, false);
        let ts = decider.clock().wall_micros();
        pipeline.process(ts, LinkType::RawIp, &packet.payload, &Subject::default(), &mut |decided| {
            observed = true;
            let observation = &decided.observation;
            let Some((service, _)) = &decided.verdict else { return };
            let owner = decider.owner(&observation.flow, packet.uid);
            let outcome = decider.decide(policy, service, owner);
            deny |= outcome.denies;
            decider.report(Point::Verdict, policy, observation, service, outcome);
        });
        self.stats.packets.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stats.decision_nanos.fetch_add(nanos, Ordering::Relaxed);
        let Some(key) = data_flow(&packet.payload) else {
            self.send(queue, packet, deny);
            return;
        };
        let first = self.started.insert(key, now).is_none();
        if self.started.len() > MAX_STARTED {
            self.started.retain(|_, at| now.saturating_duration_since(*at) < Duration::from_secs(60));
            if self.started.len() > MAX_STARTED {
                // A burst of new flows: forget them all (a later packet is then
                // at worst held once more).
                self.started.clear();
            }
        }
        if !observed && first {
            if self.held.len() >= MAX_HELD {
                if let Some((oldest, _, _)) = self.held.pop_front() {
                    self.send(queue, oldest, false);
                }
            }
            self.held.push_back((packet, key, now));
            return;
        }
        // What was held for this flow shares the fate of what completed it.
        self.release(queue, |held, _| *held == key, deny);
        self.send(queue, packet, deny);
    }
}

/// Reads the queue until `stop` is set: blocks while nothing is held,
/// polls otherwise, so held packets go in time.
pub fn run(
    mut queue: Box<dyn PacketQueue>,
    decider: &Decider,
    rules: &Rules,
    stats: &VerdictStats,
    stop: &AtomicBool,
) {
    let mut verdicter = Verdicter::new(decider, rules, stats);
    while !stop.load(Ordering::Relaxed) {
        match queue.recv(!verdicter.holding()) {
            Ok(Some(packet)) => {
                verdicter.judge(queue.as_mut(), packet);
                // Under steady traffic too, a held packet waits no longer than HOLD.
                verdicter.release_due(queue.as_mut());
            }
            Ok(None) => {
                std::thread::sleep(Duration::from_millis(1));
                verdicter.release_due(queue.as_mut());
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "packet queue receive");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    // Nothing held is left without a verdict.
    verdicter.release(queue.as_mut(), |_, _| true, false);
}

#[cfg(test)]
mod tests;
