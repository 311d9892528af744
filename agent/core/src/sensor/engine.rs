//! The sensor's engine: bounded per-flow state from frames to observations.

use std::net::SocketAddr;

use ahash::RandomState;

use super::frame::{self, Frame, LinkType, TcpSegment, Transport};
use super::quic::InitialKeys;
use super::reassembly::Reassembler;
use super::tls::{self, HelloProgress};
use super::{dns, quic, Detail, Flow, Micros, Observation, Protocol, SensorLimits, SensorStats, Source};

const DNS_PORT: u16 = 53;
/// DNS messages over one TCP connection we read before we stop looking.
const MAX_DNS_MESSAGES_PER_STREAM: u8 = 16;
const MAX_DNS_TCP_BUFFER: usize = 64 * 1024;
/// Real queries carry one question; a message with many is reported by its first few.
pub(super) const MAX_DNS_QUESTIONS: usize = 4;
/// A ClientHello at its largest, plus the headers of the records it spans.
pub(crate) const MAX_HELLO_STREAM: usize = tls::MAX_CLIENT_HELLO + 1024;
/// RFC 9000 §14.1: a client pads every datagram carrying an Initial to 1200 bytes.
const MIN_CLIENT_INITIAL_DATAGRAM: usize = 1200;
pub(super) const SECOND: Micros = 1_000_000;
/// When a table is full, how many entries are looked at for a finished flow to evict.
const EVICTION_PROBE: usize = 64;

/// One direction of a TCP connection, or a QUIC client's 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StreamKey {
    src: SocketAddr,
    dst: SocketAddr,
}

#[derive(Debug)]
enum StreamState {
    /// Waiting for the first bytes of a ClientHello or of DNS messages.
    Reading(Reassembler),
    /// Nothing more to learn from this direction.
    Done,
}

impl StreamState {
    fn buffered(&self) -> usize {
        match self {
            StreamState::Reading(buffer) => buffer.buffered(),
            StreamState::Done => 0,
        }
    }
}

#[derive(Debug)]
struct TcpStream {
    /// Sequence number of stream offset 0.
    base: u32,
    dns: bool,
    dns_messages: u8,
    dns_consumed: usize,
    /// Stream length below which parsing cannot make progress.
    need: usize,
    state: StreamState,
    last_seen: Micros,
}

#[derive(Debug)]
struct QuicConnection {
    dcid: Vec<u8>,
    keys: InitialKeys,
    /// `Done` once the ClientHello has been read or given up on.
    crypto: StreamState,
    last_seen: Micros,
}

/// Flow tables hash with per-process random keys: crafted traffic cannot aim collisions.
type Map<K, V> = std::collections::HashMap<K, V, RandomState>;

/// The stateful part of the sensor; create one per capture or interface.
#[derive(Debug)]
pub struct Sensor {
    limits: SensorLimits,
    tcp: Map<StreamKey, TcpStream>,
    quic: Map<StreamKey, QuicConnection>,
    stats: SensorStats,
    /// The latest timestamp seen: state ages by it, so a frame stamped in the
    /// past (or a capture block without time) cannot stall expiry.
    now: Micros,
    last_sweep: Micros,
    last_forced_sweep: Micros,
    /// Bytes held in reassembly buffers, all flows together.
    buffered: usize,
    /// TCP streams still reading a handshake: while there are none, mid-stream
    /// segments need no flow lookup at all.
    reading_tcp: usize,
}

impl Default for Sensor {
    fn default() -> Self {
        Self::new(SensorLimits::default())
    }
}

/// Makes room for one more entry in a full table by evicting a finished flow;
/// false when the entries probed are all mid-handshake.
fn evict_finished<V>(map: &mut Map<StreamKey, V>, cap: usize, is_done: impl Fn(&V) -> bool) -> bool {
    if map.len() < cap {
        return true;
    }
    let victim = map.iter().take(EVICTION_PROBE).find(|(_, v)| is_done(v)).map(|(k, _)| *k);
    victim.is_some_and(|k| map.remove(&k).is_some())
}

impl Sensor {
    pub fn new(limits: SensorLimits) -> Self {
        let hasher = RandomState::new();
        Self {
            limits,
            tcp: Map::with_hasher(hasher.clone()),
            quic: Map::with_hasher(hasher),
            stats: SensorStats::default(),
            now: i64::MIN,
            last_sweep: i64::MIN,
            last_forced_sweep: i64::MIN,
            buffered: 0,
            reading_tcp: 0,
        }
    }

    pub fn stats(&self) -> &SensorStats {
        &self.stats
    }

    /// Flows currently holding state (for tests and status).
    pub fn tracked_flows(&self) -> usize {
        self.tcp.len() + self.quic.len()
    }

    /// Bytes currently held for unfinished handshakes.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Checks the running totals against the tables (tests and fuzzing).
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let reading = self.tcp.values().filter(|s| matches!(s.state, StreamState::Reading(_))).count();
        let buffered: usize = self.tcp.values().map(|s| s.state.buffered()).sum::<usize>()
            + self.quic.values().map(|c| c.crypto.buffered()).sum::<usize>();
        if reading != self.reading_tcp || buffered != self.buffered {
            return Err(format!(
                "reading {reading} vs {}, buffered {buffered} vs {}",
                self.reading_tcp, self.buffered
            ));
        }
        Ok(())
    }

    /// Feeds one captured frame; observations go to `out`.
    pub fn process(&mut self, ts: Micros, link: LinkType, frame: &[u8], out: &mut impl FnMut(Observation)) {
        self.stats.frames += 1;
        self.now = self.now.max(ts);
        if self.now.saturating_sub(self.last_sweep) >= SECOND {
            self.sweep();
        }
        let packet = match frame::decode_frame(link, frame) {
            Ok(Frame::Ip(packet)) => packet,
            Ok(Frame::NotIp) => {
                self.stats.not_ip += 1;
                return;
            }
            Err(_) => {
                self.stats.undecodable += 1;
                return;
            }
        };
        match packet.transport {
            Transport::Tcp(segment) => {
                let key = StreamKey {
                    src: SocketAddr::new(packet.src, segment.src_port),
                    dst: SocketAddr::new(packet.dst, segment.dst_port),
                };
                self.tcp_segment(ts, key, &segment, out);
            }
            Transport::Udp { src_port, dst_port, payload } => {
                let key = StreamKey {
                    src: SocketAddr::new(packet.src, src_port),
                    dst: SocketAddr::new(packet.dst, dst_port),
                };
                if src_port == DNS_PORT || dst_port == DNS_PORT {
                    let flow = Flow { protocol: Protocol::Udp, src: key.src, dst: key.dst };
                    match dns::parse_dns_message(payload) {
                        Ok(message) => emit_dns(&mut self.stats, ts, flow, message, out),
                        Err(_) => self.stats.dns_errors += 1,
                    }
                } else if payload.len() >= MIN_CLIENT_INITIAL_DATAGRAM && quic::looks_like_initial(payload) {
                    self.quic_datagram(ts, key, payload, out);
                }
            }
            Transport::Fragment => self.stats.ip_fragments += 1,
            Transport::Other(_) => {}
        }
    }

    /// Drops flows whose handshake stalled or that ended long ago.
    fn sweep(&mut self) {
        let now = self.now;
        self.last_sweep = now;
        let SensorLimits { handshake_timeout, done_timeout, .. } = self.limits;
        let expired = |state: &StreamState, last_seen: Micros| {
            let timeout = if matches!(state, StreamState::Done) { done_timeout } else { handshake_timeout };
            now.saturating_sub(last_seen) >= timeout
        };
        let (before, mut released, mut reading_released) = (self.tcp.len(), 0, 0);
        self.tcp.retain(|_, s| {
            let drop = expired(&s.state, s.last_seen);
            if drop && matches!(s.state, StreamState::Reading(_)) {
                released += s.state.buffered();
                reading_released += 1;
            }
            !drop
        });
        self.reading_tcp -= reading_released;
        self.stats.tcp_streams_expired += (before - self.tcp.len()) as u64;
        let before = self.quic.len();
        self.quic.retain(|_, c| {
            let drop = expired(&c.crypto, c.last_seen);
            if drop {
                released += c.crypto.buffered();
            }
            !drop
        });
        self.stats.quic_connections_expired += (before - self.quic.len()) as u64;
        self.buffered = self.buffered.saturating_sub(released);
    }

    /// A table is full: expire what can be (at most one forced sweep a
    /// second, so a flood cannot make every packet walk the tables).
    fn sweep_if_due(&mut self) {
        if self.now.saturating_sub(self.last_forced_sweep) >= SECOND {
            self.last_forced_sweep = self.now;
            self.sweep();
        }
    }

    fn tcp_segment(
        &mut self,
        ts: Micros,
        key: StreamKey,
        seg: &TcpSegment<'_>,
        out: &mut impl FnMut(Observation),
    ) {
        let is_dns = key.src.port() == DNS_PORT || key.dst.port() == DNS_PORT;
        // The common case, bulk data mid-stream: nothing is reading a handshake,
        // and this segment neither opens nor closes one.
        let control = TcpSegment::SYN | TcpSegment::FIN | TcpSegment::RST;
        if self.reading_tcp == 0
            && seg.flags & control == 0
            && !is_dns
            && !tls::looks_like_client_hello_start(seg.payload)
        {
            return;
        }
        // Data in a SYN (TCP Fast Open) starts after the SYN's own sequence number.
        let mut data_seq = seg.seq;
        if seg.has(TcpSegment::SYN) {
            data_seq = seg.seq.wrapping_add(1);
            // A client's SYN opens its direction; a SYN-ACK only matters for DNS answers.
            let opens = !seg.has(TcpSegment::ACK) || key.src.port() == DNS_PORT;
            let retransmitted = self.tcp.get(&key).is_some_and(|s| s.base == data_seq);
            if opens && !retransmitted {
                self.start_stream(key, data_seq, is_dns);
            }
        }
        let closing = seg.has(TcpSegment::FIN) || seg.has(TcpSegment::RST);
        if seg.payload.is_empty() {
            if closing {
                // A stream that closes before its handshake completes is simply gone.
                self.remove_stream(&key);
            }
            return;
        }
        if !self.tcp.contains_key(&key) {
            // Mid-connection start (the capture began after the SYN): only a
            // segment that starts a ClientHello or a DNS message opens a stream.
            if !(is_dns || tls::looks_like_client_hello_start(seg.payload)) {
                return;
            }
            if !self.start_stream(key, data_seq, is_dns) {
                return;
            }
        }
        self.tcp_payload(ts, key, data_seq, seg.payload, out);
        if closing {
            self.remove_stream(&key);
        }
    }

    fn tcp_payload(
        &mut self,
        ts: Micros,
        key: StreamKey,
        data_seq: u32,
        payload: &[u8],
        out: &mut impl FnMut(Observation),
    ) {
        let budget = self.limits.max_buffered_bytes.saturating_sub(self.buffered);
        let Some(stream) = self.tcp.get_mut(&key) else { return };
        stream.last_seen = self.now;
        let StreamState::Reading(buffer) = &mut stream.state else { return };
        // Offsets more than 2^31 ahead are really behind the stream start.
        let offset = data_seq.wrapping_sub(stream.base);
        let (offset, bytes) = if offset > i32::MAX as u32 {
            let behind = offset.wrapping_neg() as usize;
            (0, payload.get(behind..).unwrap_or_default())
        } else {
            (u64::from(offset), payload)
        };
        let limit = if stream.dns { MAX_DNS_TCP_BUFFER } else { MAX_HELLO_STREAM };
        let before = buffer.buffered();
        let inserted = buffer.insert(offset, bytes, limit);
        let grown = buffer.buffered() - before;
        if inserted.is_err() || grown > budget {
            self.stats.tcp_streams_dropped += 1;
            // The running total holds `before` only: `grown` was never added.
            self.buffered = self.buffered.saturating_sub(before);
            self.reading_tcp -= 1;
            stream.state = StreamState::Done;
            return;
        }
        self.buffered += grown;
        let flow = Flow { protocol: Protocol::Tcp, src: key.src, dst: key.dst };
        if stream.dns {
            dns_tcp_messages(stream, &mut self.stats, ts, flow, out);
        } else if buffer.contiguous().len() >= stream.need {
            match tls::parse_client_hello_records(buffer.contiguous()) {
                Ok(HelloProgress::NeedMore(need)) => stream.need = need,
                Ok(HelloProgress::Done(hello)) => {
                    self.stats.tls_client_hellos += 1;
                    if let Some(observation) = hello_observation(ts, flow, hello, None) {
                        out(observation);
                    }
                    stream.state = StreamState::Done;
                }
                Err(_) => {
                    // Not TLS, or not a ClientHello: this direction is of no interest.
                    if tls::looks_like_client_hello_start(buffer.contiguous()) {
                        self.stats.tls_errors += 1;
                    }
                    stream.state = StreamState::Done;
                }
            }
        }
        if matches!(stream.state, StreamState::Done) {
            self.buffered = self.buffered.saturating_sub(before + grown);
            self.reading_tcp -= 1;
        }
    }

    /// Registers a stream, replacing any left under the same ports; false
    /// when the table is full of unfinished handshakes.
    fn start_stream(&mut self, key: StreamKey, base: u32, dns: bool) -> bool {
        self.remove_stream(&key);
        if self.tcp.len() >= self.limits.max_tcp_streams {
            self.sweep_if_due();
        }
        let cap = self.limits.max_tcp_streams;
        if !evict_finished(&mut self.tcp, cap, |s| matches!(s.state, StreamState::Done)) {
            self.stats.tcp_streams_dropped += 1;
            return false;
        }
        self.stats.tcp_streams_tracked += 1;
        let state = StreamState::Reading(Reassembler::default());
        let stream =
            TcpStream { base, dns, dns_messages: 0, dns_consumed: 0, need: 0, state, last_seen: self.now };
        self.tcp.insert(key, stream);
        self.reading_tcp += 1;
        true
    }

    fn remove_stream(&mut self, key: &StreamKey) {
        if let Some(stream) = self.tcp.remove(key) {
            if matches!(stream.state, StreamState::Reading(_)) {
                self.buffered = self.buffered.saturating_sub(stream.state.buffered());
                self.reading_tcp -= 1;
            }
        }
    }

    fn quic_datagram(
        &mut self,
        ts: Micros,
        key: StreamKey,
        datagram: &[u8],
        out: &mut impl FnMut(Observation),
    ) {
        let Ok(packets) = quic::initial_packets(datagram) else {
            self.stats.quic_errors += 1;
            return;
        };
        for packet in packets {
            self.stats.quic_initials += 1;
            self.quic_initial(ts, key, &packet, out);
        }
    }

    fn quic_initial(
        &mut self,
        ts: Micros,
        key: StreamKey,
        packet: &quic::InitialPacket<'_>,
        out: &mut impl FnMut(Observation),
    ) {
        let now = self.now;
        if let Some(c) = self.quic.get_mut(&key) {
            if matches!(c.crypto, StreamState::Done) && c.dcid == packet.dcid {
                // A retransmission of a connection already reported.
                c.last_seen = now;
                return;
            }
        }
        // Later client Initials of a connection keep the keys of its first DCID,
        // even after the server has picked a new connection ID.
        let known = self.quic.get(&key).and_then(|c| c.keys.decrypt(packet).ok());
        let plaintext = match known {
            Some(plaintext) => plaintext,
            None => {
                let Ok(keys) = InitialKeys::client(packet.version, packet.dcid) else {
                    self.stats.quic_errors += 1;
                    return;
                };
                let Ok(plaintext) = keys.decrypt(packet) else {
                    // A server's Initial, or not QUIC at all.
                    self.stats.quic_undecryptable += 1;
                    return;
                };
                if let Some(old) = self.quic.remove(&key) {
                    self.buffered = self.buffered.saturating_sub(old.crypto.buffered());
                }
                if self.quic.len() >= self.limits.max_quic_connections {
                    self.sweep_if_due();
                }
                let cap = self.limits.max_quic_connections;
                if !evict_finished(&mut self.quic, cap, |c| matches!(c.crypto, StreamState::Done)) {
                    self.stats.quic_connections_dropped += 1;
                    return;
                }
                let crypto = StreamState::Reading(Reassembler::default());
                self.quic
                    .insert(key, QuicConnection { dcid: packet.dcid.to_vec(), keys, crypto, last_seen: now });
                plaintext
            }
        };
        let budget = self.limits.max_buffered_bytes.saturating_sub(self.buffered);
        let Some(connection) = self.quic.get_mut(&key) else { return };
        connection.last_seen = now;
        let StreamState::Reading(crypto) = &mut connection.crypto else { return };
        let Ok(frames) = quic::crypto_frames(&plaintext) else {
            self.stats.quic_errors += 1;
            return;
        };
        let before = crypto.buffered();
        let mut overflow = false;
        for (offset, data) in frames {
            overflow |= crypto.insert(offset, data, tls::MAX_CLIENT_HELLO + 4).is_err();
        }
        let grown = crypto.buffered() - before;
        if overflow || grown > budget {
            self.stats.quic_connections_dropped += 1;
            self.buffered = self.buffered.saturating_sub(before);
            connection.crypto = StreamState::Done;
            return;
        }
        self.buffered += grown;
        let hello = match tls::handshake_message(crypto.contiguous()) {
            Ok(None) => return,
            Ok(Some(body)) => tls::parse_client_hello_body(body).map(tls::OwnedClientHello::from),
            Err(e) => Err(e),
        };
        self.buffered = self.buffered.saturating_sub(before + grown);
        connection.crypto = StreamState::Done;
        match hello {
            Ok(hello) => {
                self.stats.tls_client_hellos += 1;
                let flow = Flow { protocol: Protocol::Udp, src: key.src, dst: key.dst };
                if let Some(observation) = hello_observation(ts, flow, hello, Some(packet.version)) {
                    out(observation);
                }
            }
            Err(_) => self.stats.quic_errors += 1,
        }
    }
}

/// The observation of a ClientHello's server name (none without SNI);
/// `quic_version` for one read from QUIC Initials. The capture and the
/// verdicts' gate both report hellos this way.
pub(super) fn hello_observation(
    ts: Micros,
    flow: Flow,
    hello: tls::OwnedClientHello,
    quic_version: Option<u32>,
) -> Option<Observation> {
    let mut name = hello.server_name?;
    name.make_ascii_lowercase();
    let ech = hello.ech_offered;
    let (source, detail) = match quic_version {
        Some(version) => (Source::Quic, Detail::QuicInitial { version, ech }),
        None => (Source::Tls, Detail::ClientHello { ech }),
    };
    Some(Observation { ts, flow, source, name, detail })
}

/// Reports a DNS message's questions. `flow` is the direction the message
/// travelled; answers are reported client → server like their questions.
fn emit_dns(
    stats: &mut SensorStats,
    ts: Micros,
    flow: Flow,
    message: dns::DnsMessage,
    out: &mut impl FnMut(Observation),
) {
    stats.dns_messages += 1;
    let dns::DnsMessage { id, response, rcode, questions, addresses } = message;
    let flow = if response { Flow { src: flow.dst, dst: flow.src, ..flow } } else { flow };
    for question in questions.into_iter().take(MAX_DNS_QUESTIONS) {
        let detail = if response {
            Detail::DnsAnswer { qtype: question.qtype, id, rcode, addresses: addresses.clone() }
        } else {
            Detail::DnsQuery { qtype: question.qtype, id }
        };
        out(Observation { ts, flow, source: Source::Dns, name: question.name, detail });
    }
}

/// Reads the length-prefixed DNS messages (RFC 1035 §4.2.2) now complete.
fn dns_tcp_messages(
    stream: &mut TcpStream,
    stats: &mut SensorStats,
    ts: Micros,
    flow: Flow,
    out: &mut impl FnMut(Observation),
) {
    let StreamState::Reading(buffer) = &stream.state else { return };
    let bytes = buffer.contiguous();
    let mut done = false;
    while let Some([hi, lo, ..]) = bytes.get(stream.dns_consumed..) {
        let start = stream.dns_consumed + 2;
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let Some(message) = bytes.get(start..start + len) else { break };
        stream.dns_consumed = start + len;
        stream.dns_messages = stream.dns_messages.saturating_add(1);
        match dns::parse_dns_message(message) {
            Ok(message) => emit_dns(stats, ts, flow, message, out),
            Err(_) => {
                stats.dns_errors += 1;
                done = true;
                break;
            }
        }
        if stream.dns_messages >= MAX_DNS_MESSAGES_PER_STREAM {
            done = true;
            break;
        }
    }
    if done {
        stream.state = StreamState::Done;
    }
}
