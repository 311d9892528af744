//! The verdict path's reading of new flows. Packets queued by the kernel
//! come in one at a time; for each new TCP or UDP flow the gate reads the
//! first bytes until they name a host (a TLS ClientHello, a QUIC Initial, a
//! plaintext HTTP request or proxy `CONNECT`), prove there is no handshake
//! (other protocols), or use up a budget in bytes, packets and time — then
//! the handshake is *unreadable* and the caller applies its policy for those.
//!
//! What is held: a TCP flow's first data segment (and its retransmissions)
//! until the flow is decided. The server's TCP cannot hand any later byte to
//! its application before that one, so later segments pass unharmed and the
//! sender's window keeps moving. A QUIC flow's Initial datagrams are all
//! held: each can be read by the server on its own.
//!
//! State is bounded and opened only by data (never by a SYN): a table of
//! flows being read, with a quota per user and eviction oldest first; an
//! evicted or refused flow is reported unreadable, never let through unseen.
//! Pure: no clock, no I/O; the caller passes the time and keeps the packets.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use ahash::RandomState;

use super::frame::{decode_frame, Frame, LinkType, TcpSegment, Transport};
use super::quic::{self, InitialKeys};
use super::reassembly::Reassembler;
use super::tls::{self, HelloProgress};
use super::{http, Detail, Flow, Micros, Observation, Protocol, Source};

/// TCP's urgent flag: the byte it points at is taken out of the stream by
/// the receiver, so the server would read another stream than the gate.
const URG: u8 = 0x20;
/// Copies of a held segment kept (retransmissions); later ones are dropped.
const MAX_HELD_COPIES: u8 = 4;
/// Initials of one QUIC flow held at most: a hello needs one to three;
/// past this many the flow is unreadable (the kernel queue is shared).
const MAX_HELD_INITIALS: u32 = 64;
const MAX_PENDING_KEYS: usize = 1024;

/// Budgets of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    /// Stream bytes (TCP payload, QUIC CRYPTO data) read per flow.
    pub max_bytes: usize,
    /// Data packets read per flow: a hello cut into one-byte segments costs
    /// a queue round trip each.
    pub max_packets: u32,
    /// From the first data packet to a name.
    pub max_wait: Micros,
    /// Flows being read, all users together.
    pub max_flows: usize,
    /// Flows being read for one user (uid), so one user cannot fill the table.
    pub max_flows_per_user: usize,
    /// How long a decided flow's verdict is remembered, for its packets the
    /// kernel queued before it learnt the verdict.
    pub settled_for: Micros,
}

impl Default for GateLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024,
            max_packets: 4096,
            max_wait: 5_000_000,
            max_flows: 8192,
            max_flows_per_user: 1024,
            settled_for: 10_000_000,
        }
    }
}

/// Why a handshake could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// More bytes or packets than the budget before a name.
    TooLarge,
    /// No name within the time budget.
    TooSlow,
    /// Urgent data inside the handshake.
    UrgentData,
    /// Bytes that start like a handshake but do not parse.
    Malformed,
    /// A retransmission carrying other bytes than the first transmission.
    Rewritten,
    /// The table was full: this flow, the oldest, was given up.
    Evicted,
    /// Its user has too many flows being read.
    OverQuota,
}

impl Unreadable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unreadable::TooLarge => "too-large",
            Unreadable::TooSlow => "too-slow",
            Unreadable::UrgentData => "urgent-data",
            Unreadable::Malformed => "malformed",
            Unreadable::Rewritten => "rewritten",
            Unreadable::Evicted => "evicted",
            Unreadable::OverQuota => "over-quota",
        }
    }
}

/// What a flow's first bytes turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A name: the caller decides on it.
    Named(Observation),
    /// Not a handshake the gate reads (SSH, a database, a game...), or one
    /// that names no host (an IP literal): nothing to decide on.
    NoName { flow: Flow },
    /// Looked like a handshake but no name came within the budget. `source`
    /// says what it looked like.
    Unreadable { flow: Flow, source: Source, why: Unreadable },
}

impl Finding {
    /// The flow it is about.
    pub fn flow(&self) -> Flow {
        match self {
            Finding::Named(observation) => observation.flow,
            Finding::NoName { flow } | Finding::Unreadable { flow, .. } => *flow,
        }
    }
}

/// What the caller does with the packet it passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Let it go: it carries nothing to read (no payload, a SYN, a datagram
    /// that is no QUIC Initial), or later bytes of a handshake whose start
    /// is held.
    Pass,
    /// Keep it until its flow is decided.
    Hold(Flow),
    /// Drop it: one more copy of a held segment.
    Drop,
    /// The flow was decided earlier: give it the same verdict.
    Settled { flow: Flow, deny: bool },
    /// The flow is decided by this packet: the caller gives this packet and
    /// the flow's held ones one verdict, then calls [`Gate::settle`].
    Decided(Finding),
}

#[derive(Debug)]
enum Reading {
    Tcp {
        /// Sequence number of the first data byte seen.
        base: u32,
        stream: Reassembler,
        /// Stream length below which parsing cannot make progress.
        need: usize,
        /// Copies of the stream's first segment held.
        copies: u8,
    },
    Quic {
        keys: Box<InitialKeys>,
        version: u32,
        crypto: Reassembler,
    },
}

impl Reading {
    fn source(&self) -> Source {
        match self {
            Reading::Tcp { .. } => Source::Tls,
            Reading::Quic { .. } => Source::Quic,
        }
    }
}

#[derive(Debug)]
enum State {
    Reading {
        reading: Box<Reading>,
        user: Option<u32>,
        packets: u32,
    },
    /// Decided (`deny`). A QUIC flow keeps its connection's keys: an
    /// Initial they open belongs to the decided connection; one that opens
    /// with keys of its own is a new connection on the same ports, read afresh.
    Settled {
        deny: bool,
        keys: Option<Box<InitialKeys>>,
    },
}

#[derive(Debug)]
struct Tracked {
    /// When reading started, or when the flow was settled.
    since: Micros,
    state: State,
}

/// What reading one more TCP segment gave.
enum Progress {
    /// Not decided yet; whether this segment carries the stream's start,
    /// and how many copies of it were seen.
    More {
        holds_start: bool,
        copies: u8,
    },
    Hello(tls::OwnedClientHello),
    Http(http::HttpProgress),
    NotHandshake,
    Unreadable(Unreadable),
}

/// Counters for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateStats {
    pub named: u64,
    pub no_name: u64,
    pub unreadable: u64,
    /// Flows given up because the table was full or their user over quota.
    pub untracked: u64,
}

/// Flow tables hash with per-process random keys: crafted traffic cannot aim collisions.
type Map<K, V> = HashMap<K, V, RandomState>;

#[derive(Debug)]
pub struct Gate {
    limits: GateLimits,
    flows: Map<Flow, Tracked>,
    /// Flows being read, by user (few users: their sum is the total).
    per_user: HashMap<Option<u32>, usize>,
    /// Keys in the order they started reading, and in the order they were
    /// settled: expiry and eviction walk them from the front (an entry whose
    /// flow has moved on since is skipped).
    reading_order: VecDeque<(Micros, Flow)>,
    settled_order: VecDeque<(Micros, Flow)>,
    /// Flows given up outside a call about them (time, eviction), for the caller.
    abandoned: Vec<Finding>,
    /// The keys of QUIC flows just decided, until they are settled.
    pending_keys: HashMap<Flow, Box<InitialKeys>>,
    stats: GateStats,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new(GateLimits::default())
    }
}

/// Whether a TCP stream's first bytes may still be a ClientHello or an
/// HTTP request head.
fn could_be_handshake(bytes: &[u8]) -> bool {
    tls_shaped(bytes) || http::could_be_request(bytes)
}

/// Whether bytes start like a handshake record of a ClientHello, of any
/// minor version: servers check only the major version of a first record.
/// (Application data or an alert first is a connection joined mid-stream,
/// one that began before the agent: not a hello.)
fn tls_shaped(bytes: &[u8]) -> bool {
    match bytes {
        [] | [0x16] | [0x16, 3] | [0x16, 3, _] | [0x16, 3, _, _] | [0x16, 3, _, _, _] => true,
        [0x16, 3, _, _, _, kind, ..] => *kind == 1,
        _ => false,
    }
}

impl Gate {
    pub fn new(limits: GateLimits) -> Self {
        Self {
            limits,
            flows: Map::with_hasher(RandomState::new()),
            per_user: HashMap::new(),
            reading_order: VecDeque::new(),
            settled_order: VecDeque::new(),
            abandoned: Vec::new(),
            pending_keys: HashMap::new(),
            stats: GateStats::default(),
        }
    }

    pub fn stats(&self) -> GateStats {
        self.stats
    }

    /// Flows being read now.
    pub fn reading(&self) -> usize {
        self.per_user.values().sum()
    }

    /// Checks the running counts against the table (tests and fuzzing).
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut per_user: HashMap<Option<u32>, usize> = HashMap::new();
        for tracked in self.flows.values() {
            if let State::Reading { user, .. } = tracked.state {
                *per_user.entry(user).or_default() += 1;
            }
        }
        if per_user != self.per_user {
            return Err(format!("per user {per_user:?} vs {:?}", self.per_user));
        }
        if self.reading() > self.limits.max_flows {
            return Err(format!("{} flows read, over the cap {}", self.reading(), self.limits.max_flows));
        }
        if per_user.values().any(|&n| n > self.limits.max_flows_per_user) {
            return Err(format!("a user over quota: {per_user:?}"));
        }
        Ok(())
    }

    /// Reads one queued IP packet (from its IP header), sent by `user`.
    pub fn packet(&mut self, now: Micros, packet: &[u8], user: Option<u32>) -> Step {
        let Ok(Frame::Ip(ip)) = decode_frame(LinkType::RawIp, packet) else { return Step::Pass };
        match ip.transport {
            Transport::Tcp(segment) => {
                let src = SocketAddr::new(ip.src, segment.src_port);
                let dst = SocketAddr::new(ip.dst, segment.dst_port);
                self.tcp(now, Flow { protocol: Protocol::Tcp, src, dst }, &segment, user)
            }
            Transport::Udp { src_port, dst_port, payload } => {
                let (src, dst) = (SocketAddr::new(ip.src, src_port), SocketAddr::new(ip.dst, dst_port));
                self.udp(now, Flow { protocol: Protocol::Udp, src, dst }, payload, user)
            }
            Transport::Fragment | Transport::Other(_) => Step::Pass,
        }
    }

    /// Records the verdict given to a decided flow, for its later packets.
    pub fn settle(&mut self, now: Micros, key: Flow, deny: bool) {
        self.stop_reading(&key);
        let keys = self.pending_keys.remove(&key);
        self.flows.insert(key, Tracked { since: now, state: State::Settled { deny, keys } });
        self.settled_order.push_back((now, key));
        // Settled flows are bounded too: the oldest go first.
        while self.settled_order.len() > self.limits.max_flows.saturating_mul(2) {
            let Some((since, old)) = self.settled_order.pop_front() else { break };
            if self
                .flows
                .get(&old)
                .is_some_and(|t| t.since == since && matches!(t.state, State::Settled { .. }))
            {
                self.flows.remove(&old);
            }
        }
    }

    /// Gives up the flows whose time is up and forgets old verdicts.
    /// Returns them with the flows evicted since the last call.
    pub fn take_abandoned(&mut self, now: Micros) -> Vec<Finding> {
        while let Some(&(since, key)) = self.reading_order.front() {
            if now.saturating_sub(since) < self.limits.max_wait {
                break;
            }
            self.reading_order.pop_front();
            if self.is_reading_since(&key, since) {
                if let Some(finding) = self.remove(&key, Unreadable::TooSlow) {
                    self.abandoned.push(finding);
                }
            }
        }
        while let Some(&(since, key)) = self.settled_order.front() {
            if now.saturating_sub(since) < self.limits.settled_for {
                break;
            }
            self.settled_order.pop_front();
            if self
                .flows
                .get(&key)
                .is_some_and(|t| t.since == since && matches!(t.state, State::Settled { .. }))
            {
                self.flows.remove(&key);
            }
        }
        std::mem::take(&mut self.abandoned)
    }

    /// Gives up a flow being read (the caller has no room to hold its
    /// packets); `None` when it is not being read.
    pub fn abandon(&mut self, key: Flow, why: Unreadable) -> Option<Finding> {
        self.stats.untracked += 1;
        self.remove(&key, why)
    }

    fn is_reading_since(&self, key: &Flow, since: Micros) -> bool {
        self.flows.get(key).is_some_and(|t| t.since == since && matches!(t.state, State::Reading { .. }))
    }

    /// Removes a flow; a flow still being read becomes unreadable for `why`.
    fn remove(&mut self, key: &Flow, why: Unreadable) -> Option<Finding> {
        let reading = self.stop_reading(key);
        self.flows.remove(key);
        let source = reading?.source();
        self.stats.unreadable += 1;
        Some(Finding::Unreadable { flow: *key, source, why })
    }

    /// Takes a flow out of the reading counts (it stays in the table as
    /// settled, allowing), returning its reading state.
    fn stop_reading(&mut self, key: &Flow) -> Option<Reading> {
        let tracked = self.flows.get_mut(key)?;
        if !matches!(tracked.state, State::Reading { .. }) {
            return None;
        }
        let State::Reading { reading, user, .. } =
            std::mem::replace(&mut tracked.state, State::Settled { deny: false, keys: None })
        else {
            return None;
        };
        if let Some(count) = self.per_user.get_mut(&user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_user.remove(&user);
            }
        }
        let reading = *reading;
        if let Reading::Quic { keys, .. } = &reading {
            // Kept for `settle`, which the caller calls next for this flow.
            if self.pending_keys.len() >= MAX_PENDING_KEYS {
                self.pending_keys.clear();
            }
            self.pending_keys.insert(*key, keys.clone());
        }
        Some(reading)
    }

    /// Starts reading a flow, or says why it may not be tracked.
    fn start(
        &mut self,
        now: Micros,
        key: Flow,
        user: Option<u32>,
        reading: Reading,
    ) -> Result<(), Unreadable> {
        if self.per_user.get(&user).copied().unwrap_or(0) >= self.limits.max_flows_per_user {
            self.stats.untracked += 1;
            return Err(Unreadable::OverQuota);
        }
        // The table is full: the oldest flow being read is given up.
        while self.reading() >= self.limits.max_flows {
            let Some((since, old)) = self.reading_order.pop_front() else {
                self.stats.untracked += 1;
                return Err(Unreadable::Evicted);
            };
            if self.is_reading_since(&old, since) {
                if let Some(finding) = self.remove(&old, Unreadable::Evicted) {
                    self.stats.untracked += 1;
                    self.abandoned.push(finding);
                }
            }
        }
        self.stop_reading(&key);
        let state = State::Reading { reading: Box::new(reading), user, packets: 0 };
        self.flows.insert(key, Tracked { since: now, state });
        self.reading_order.push_back((now, key));
        *self.per_user.entry(user).or_default() += 1;
        Ok(())
    }

    fn refused(&mut self, key: Flow, source: Source, why: Unreadable) -> Step {
        self.stats.unreadable += 1;
        Step::Decided(Finding::Unreadable { flow: key, source, why })
    }

    fn give_up(&mut self, key: Flow, why: Unreadable) -> Step {
        match self.remove(&key, why) {
            Some(finding) => Step::Decided(finding),
            None => Step::Pass,
        }
    }

    /// The flow is read to its end and named.
    fn named(&mut self, now: Micros, flow: Flow, source: Source, name: String, detail: Detail) -> Step {
        self.stop_reading(&flow);
        self.flows.remove(&flow);
        self.stats.named += 1;
        Step::Decided(Finding::Named(Observation { ts: now, flow, source, name, detail }))
    }

    /// The flow is read to its end, or closed, and names no host.
    fn no_name(&mut self, flow: Flow) -> Step {
        self.stop_reading(&flow);
        self.flows.remove(&flow);
        self.stats.no_name += 1;
        Step::Decided(Finding::NoName { flow })
    }

    /// A ClientHello read to its end: named by its SNI, or by nothing (an
    /// IP literal).
    fn hello(
        &mut self,
        now: Micros,
        flow: Flow,
        hello: tls::OwnedClientHello,
        quic_version: Option<u32>,
    ) -> Step {
        match super::engine::hello_observation(now, flow, hello, quic_version) {
            Some(observation) => {
                self.stop_reading(&flow);
                self.flows.remove(&flow);
                self.stats.named += 1;
                Step::Decided(Finding::Named(observation))
            }
            None => self.no_name(flow),
        }
    }

    fn tcp(&mut self, now: Micros, key: Flow, segment: &TcpSegment<'_>, user: Option<u32>) -> Step {
        // Data in a SYN (TCP Fast Open) starts after the SYN's own sequence number.
        let data_seq = if segment.has(TcpSegment::SYN) { segment.seq.wrapping_add(1) } else { segment.seq };
        match self.flows.get(&key).map(|t| &t.state) {
            // A new connection on the ports of a decided one (a port reused
            // at once): forgotten, it is read like any other.
            Some(State::Settled { .. }) if segment.has(TcpSegment::SYN) && !segment.has(TcpSegment::ACK) => {
                self.flows.remove(&key);
                return Step::Pass;
            }
            Some(State::Settled { deny, .. }) => return Step::Settled { flow: key, deny: *deny },
            Some(State::Reading { .. }) => {}
            None => {
                // A flow opens on its first data segment: SYNs, ACKs and
                // closes of flows not being read cost no state.
                if segment.payload.is_empty() {
                    return Step::Pass;
                }
                if !could_be_handshake(segment.payload) {
                    return self.no_name(key);
                }
                let reading =
                    Reading::Tcp { base: data_seq, stream: Reassembler::default(), need: 0, copies: 0 };
                if let Err(why) = self.start(now, key, user, reading) {
                    return self.refused(key, Source::Tls, why);
                }
            }
        }
        if segment.payload.is_empty() {
            if segment.has(TcpSegment::FIN) || segment.has(TcpSegment::RST) {
                // Closed before a name: no more bytes can follow, so no name
                // ever will; what is held goes (the server got no whole hello).
                return self.no_name(key);
            }
            return Step::Pass;
        }
        match self.read_tcp(key, data_seq, segment) {
            Progress::More { holds_start: false, .. } => Step::Pass,
            Progress::More { holds_start: true, copies } if copies > MAX_HELD_COPIES => Step::Drop,
            Progress::More { holds_start: true, .. } => Step::Hold(key),
            Progress::Hello(hello) => self.hello(now, key, hello, None),
            Progress::Http(http::HttpProgress::Named { host, connect }) => {
                self.named(now, key, Source::Http, host, Detail::HttpRequest { connect })
            }
            Progress::Http(_) | Progress::NotHandshake => self.no_name(key),
            Progress::Unreadable(why) => self.give_up(key, why),
        }
    }

    /// Adds a segment to a flow being read and parses what is there.
    fn read_tcp(&mut self, key: Flow, data_seq: u32, segment: &TcpSegment<'_>) -> Progress {
        let limits = self.limits;
        let Some(State::Reading { reading, packets, .. }) = self.flows.get_mut(&key).map(|t| &mut t.state)
        else {
            return Progress::NotHandshake;
        };
        let Reading::Tcp { base, stream, need, copies } = reading.as_mut() else {
            return Progress::NotHandshake;
        };
        *packets += 1;
        if segment.flags & URG != 0 {
            return Progress::Unreadable(Unreadable::UrgentData);
        }
        let offset = data_seq.wrapping_sub(*base);
        if offset > i32::MAX as u32 {
            // Bytes before the first seen: what the server reads is unknown.
            return Progress::Unreadable(Unreadable::Malformed);
        }
        // Only the first `max_bytes` of the stream are read: a large first
        // write (an upload's GSO segment) is cut, not refused.
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start >= limits.max_bytes || *packets > limits.max_packets {
            return Progress::Unreadable(Unreadable::TooLarge);
        }
        let payload = segment.payload.get(..limits.max_bytes - start).unwrap_or(segment.payload);
        // A retransmission must carry the bytes first sent: a sender that
        // rewrites them (a decoy first, the real hello after) is not read.
        let seen = stream.contiguous().get(start..).unwrap_or_default();
        let overlap = seen.len().min(payload.len());
        if seen.get(..overlap) != payload.get(..overlap) {
            return Progress::Unreadable(Unreadable::Rewritten);
        }
        let had = stream.contiguous().len();
        if stream.insert(u64::from(offset), payload, limits.max_bytes).is_err() {
            return Progress::Unreadable(Unreadable::TooLarge);
        }
        let full = stream.contiguous().len() >= limits.max_bytes;
        let holds_start = offset == 0;
        if holds_start {
            *copies = copies.saturating_add(1);
        }
        let more = Progress::More { holds_start, copies: *copies };
        let bytes = stream.contiguous();
        if bytes.len() < *need {
            return more;
        }
        if tls_shaped(bytes) && !bytes.is_empty() {
            return match tls::parse_client_hello_records(bytes) {
                Ok(HelloProgress::NeedMore(at_least)) => {
                    *need = at_least;
                    more
                }
                Ok(HelloProgress::Done(hello)) => Progress::Hello(hello),
                Err(_) => Progress::Unreadable(Unreadable::Malformed),
            };
        }
        if http::could_be_request(bytes) {
            // A request head changes only at the end of a line: the bytes
            // this segment made contiguous are looked at, not the whole head.
            let new_line = bytes.get(had..).is_some_and(|new| new.contains(&b'\n'));
            if !new_line && !full {
                return more;
            }
            return match http::request_host(bytes) {
                Ok(http::HttpProgress::NeedMore) => more,
                Ok(done) => Progress::Http(done),
                Err(_) => Progress::Unreadable(Unreadable::Malformed),
            };
        }
        if could_be_handshake(bytes) {
            more
        } else {
            // Its first byte was only the prefix of a handshake.
            Progress::NotHandshake
        }
    }

    fn udp(&mut self, now: Micros, key: Flow, payload: &[u8], user: Option<u32>) -> Step {
        // Only a client Initial can start a flow or add to it: junk
        // datagrams, before or between, pass without using the budget.
        if !quic::looks_like_initial(payload) {
            return match self.flows.get(&key).map(|t| &t.state) {
                Some(State::Settled { deny, .. }) => Step::Settled { flow: key, deny: *deny },
                _ => Step::Pass,
            };
        }
        let (packets, damaged) = quic::initial_packets_prefix(payload);
        // Whose keys open this datagram's Initials: the flow's connection's,
        // or a connection's of its own.
        let theirs = |packet: &quic::InitialPacket<'_>| {
            let keys = InitialKeys::client(packet.version, packet.dcid).ok()?;
            let plaintext = keys.decrypt(packet).ok()?;
            Some((keys, packet.version, plaintext))
        };
        let ours: Option<&InitialKeys> = match self.flows.get(&key).map(|t| &t.state) {
            Some(State::Reading { reading, .. }) => match reading.as_ref() {
                Reading::Quic { keys, .. } => Some(keys),
                Reading::Tcp { .. } => None,
            },
            Some(State::Settled { deny, keys: None }) => return Step::Settled { flow: key, deny: *deny },
            Some(State::Settled { keys: Some(keys), .. }) => Some(keys),
            None => None,
        };
        let mut plaintexts = Vec::new();
        let mut fresh = None;
        for packet in &packets {
            if let Some(plaintext) = ours.and_then(|keys| keys.decrypt(packet).ok()) {
                plaintexts.push(plaintext);
            } else if let Some(opened) = theirs(packet) {
                fresh = fresh.or(Some(opened));
            }
        }
        let reading = matches!(self.flows.get(&key).map(|t| &t.state), Some(State::Reading { .. }));
        if let Some(State::Settled { deny, .. }) = self.flows.get(&key).map(|t| &t.state) {
            if !plaintexts.is_empty() {
                // The decided connection's own Initials.
                return Step::Settled { flow: key, deny: *deny };
            }
            if fresh.is_none() {
                return Step::Pass;
            }
            // A new connection on the same ports: read afresh.
            self.flows.remove(&key);
        }
        if let Some((keys, version, plaintext)) = fresh {
            if reading {
                // Two connections at once on one pair of ports: neither's
                // held Initials may take the other's verdict.
                return self.give_up(key, Unreadable::Malformed);
            }
            let reading = Reading::Quic { keys: Box::new(keys), version, crypto: Reassembler::default() };
            if let Err(why) = self.start(now, key, user, reading) {
                return self.refused(key, Source::Quic, why);
            }
            plaintexts.push(plaintext);
        }
        if plaintexts.is_empty() {
            // Undecryptable: a server's Initial, or noise shaped like one.
            return Step::Pass;
        }
        if damaged {
            // A damaged packet after readable ones: the server may still read those.
            return self.give_up(key, Unreadable::Malformed);
        }
        let limits = self.limits;
        let Some(State::Reading { reading, packets, .. }) = self.flows.get_mut(&key).map(|t| &mut t.state)
        else {
            return Step::Pass;
        };
        let Reading::Quic { crypto, version, .. } = reading.as_mut() else { return Step::Pass };
        let version = *version;
        *packets += 1;
        let mut why = None;
        if *packets > limits.max_packets.min(MAX_HELD_INITIALS) {
            why = Some(Unreadable::TooLarge);
        }
        for plaintext in &plaintexts {
            let Ok(frames) = quic::crypto_frames(plaintext) else {
                why = why.or(Some(Unreadable::Malformed));
                break;
            };
            for (offset, data) in frames {
                if crypto.insert(offset, data, limits.max_bytes).is_err() {
                    why = why.or(Some(Unreadable::TooLarge));
                }
            }
        }
        if let Some(why) = why {
            return self.give_up(key, why);
        }
        let hello = match tls::handshake_message(crypto.contiguous()) {
            Ok(None) => return Step::Hold(key),
            Ok(Some(body)) => tls::parse_client_hello_body(body).map(tls::OwnedClientHello::from),
            Err(e) => Err(e),
        };
        match hello {
            Ok(hello) => self.hello(now, key, hello, Some(version)),
            Err(_) => self.give_up(key, Unreadable::Malformed),
        }
    }
}

#[cfg(test)]
mod tests;
