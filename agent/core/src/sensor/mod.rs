//! The sensor turns frames into observations: a DNS question, a TLS
//! ClientHello's server name, a QUIC Initial's server name. It keeps bounded
//! per-flow state for handshakes split across packets; everything else
//! passes with a header walk and one hash probe.

pub mod dns;
pub mod frame;
pub mod quic;
mod reader;
mod reassembly;
pub mod tls;

use std::net::{IpAddr, SocketAddr};

use ahash::RandomState;
use serde::Serialize;

use self::frame::{Frame, LinkType, TcpSegment, Transport};
use self::quic::InitialKeys;
use self::reassembly::Reassembler;
use self::tls::HelloProgress;

/// Why bytes could not be parsed. Small and `Copy`: parsers return it per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("unsupported {0}")]
    Unsupported(&'static str),
}

/// Microseconds since the Unix epoch.
pub type Micros = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A flow as the client sees it: `src` is the client, `dst` the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Flow {
    pub protocol: Protocol,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        write!(f, "{proto} {} -> {}", self.src, self.dst)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Dns,
    Tls,
    Quic,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Dns => "dns",
            Source::Tls => "tls",
            Source::Quic => "quic",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    DnsQuery {
        qtype: u16,
    },
    /// A response: `flow` is still oriented client → resolver.
    DnsAnswer {
        qtype: u16,
        rcode: u16,
        addresses: Vec<IpAddr>,
    },
    ClientHello {
        ech: bool,
    },
    QuicInitial {
        version: u32,
        ech: bool,
    },
}

/// One thing the workstation revealed about where it is going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observation {
    pub ts: Micros,
    pub flow: Flow,
    pub source: Source,
    /// Lowercase, no trailing dot, as sent (for ECH, the outer name).
    pub name: String,
    pub detail: Detail,
}

impl Observation {
    /// A DNS answer repeats what its question already reported.
    pub fn is_answer(&self) -> bool {
        matches!(self.detail, Detail::DnsAnswer { .. })
    }
}

/// Counters for what the sensor saw, skipped, or had to give up on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SensorStats {
    pub frames: u64,
    pub not_ip: u64,
    pub undecodable: u64,
    pub ip_fragments: u64,
    pub dns_messages: u64,
    pub dns_errors: u64,
    pub tls_client_hellos: u64,
    pub tls_errors: u64,
    pub tcp_streams_tracked: u64,
    /// Streams dropped because the table was full or their buffer overflowed.
    pub tcp_streams_dropped: u64,
    pub tcp_streams_expired: u64,
    pub quic_initials: u64,
    pub quic_undecryptable: u64,
    pub quic_errors: u64,
    pub quic_connections_dropped: u64,
    pub quic_connections_expired: u64,
}

/// Bounds on per-flow state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorLimits {
    pub max_tcp_streams: usize,
    pub max_quic_connections: usize,
    /// A handshake not complete after this long is abandoned.
    pub handshake_timeout: Micros,
    /// How long a finished flow is remembered, so retransmissions are not reported twice.
    pub done_timeout: Micros,
}

impl Default for SensorLimits {
    fn default() -> Self {
        Self {
            max_tcp_streams: 65_536,
            max_quic_connections: 16_384,
            handshake_timeout: 30_000_000,
            done_timeout: 120_000_000,
        }
    }
}

const DNS_PORT: u16 = 53;
/// DNS messages over one TCP connection we read before we stop looking.
const MAX_DNS_MESSAGES_PER_STREAM: u8 = 16;
const MAX_DNS_TCP_BUFFER: usize = 64 * 1024;

/// One direction of a TCP connection.
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

#[derive(Debug)]
struct TcpStream {
    /// Sequence number of stream offset 0.
    base: u32,
    dns: bool,
    dns_messages: u8,
    dns_consumed: usize,
    state: StreamState,
    last_seen: Micros,
}

#[derive(Debug)]
struct QuicConnection {
    dcid: Vec<u8>,
    keys: InitialKeys,
    crypto: Reassembler,
    done: bool,
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
    last_sweep: Micros,
}

impl Default for Sensor {
    fn default() -> Self {
        Self::new(SensorLimits::default())
    }
}

impl Sensor {
    pub fn new(limits: SensorLimits) -> Self {
        let hasher = RandomState::new();
        Self {
            limits,
            tcp: Map::with_hasher(hasher.clone()),
            quic: Map::with_hasher(hasher),
            stats: SensorStats::default(),
            last_sweep: i64::MIN,
        }
    }

    pub fn stats(&self) -> &SensorStats {
        &self.stats
    }

    /// Flows currently holding state (for tests and status).
    pub fn tracked_flows(&self) -> usize {
        self.tcp.len() + self.quic.len()
    }

    /// Feeds one captured frame; observations go to `out`.
    pub fn process(&mut self, ts: Micros, link: LinkType, frame: &[u8], out: &mut impl FnMut(Observation)) {
        self.stats.frames += 1;
        if ts.saturating_sub(self.last_sweep) >= 1_000_000 {
            self.sweep(ts);
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
                    self.dns_message(ts, Protocol::Udp, key, payload, out);
                } else if quic::looks_like_initial(payload) {
                    self.quic_datagram(ts, key, payload, out);
                }
            }
            Transport::Fragment => self.stats.ip_fragments += 1,
            Transport::Other(_) => {}
        }
    }

    /// Drops flows whose handshake stalled or that ended long ago.
    fn sweep(&mut self, now: Micros) {
        self.last_sweep = now;
        let SensorLimits { handshake_timeout, done_timeout, .. } = self.limits;
        let before = self.tcp.len();
        self.tcp.retain(|_, s| {
            let timeout = if matches!(s.state, StreamState::Done) { done_timeout } else { handshake_timeout };
            now.saturating_sub(s.last_seen) < timeout
        });
        self.stats.tcp_streams_expired += (before - self.tcp.len()) as u64;
        let before = self.quic.len();
        self.quic.retain(|_, c| {
            let timeout = if c.done { done_timeout } else { handshake_timeout };
            now.saturating_sub(c.last_seen) < timeout
        });
        self.stats.quic_connections_expired += (before - self.quic.len()) as u64;
    }

    fn dns_message(
        &mut self,
        ts: Micros,
        protocol: Protocol,
        key: StreamKey,
        payload: &[u8],
        out: &mut impl FnMut(Observation),
    ) {
        let Ok(message) = dns::parse_dns_message(payload) else {
            self.stats.dns_errors += 1;
            return;
        };
        self.stats.dns_messages += 1;
        let flow = if message.response {
            Flow { protocol, src: key.dst, dst: key.src }
        } else {
            Flow { protocol, src: key.src, dst: key.dst }
        };
        let dns::DnsMessage { response, rcode, questions, addresses } = message;
        for question in questions {
            let detail = if response {
                Detail::DnsAnswer { qtype: question.qtype, rcode, addresses: addresses.clone() }
            } else {
                Detail::DnsQuery { qtype: question.qtype }
            };
            out(Observation { ts, flow, source: Source::Dns, name: question.name, detail });
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
        if seg.has(TcpSegment::SYN) {
            // A new connection replaces any state left under the same ports.
            let base = seg.seq.wrapping_add(1);
            self.start_stream(ts, key, base, is_dns);
            if seg.payload.is_empty() {
                return;
            }
        }
        let closing = seg.has(TcpSegment::FIN) || seg.has(TcpSegment::RST);
        if seg.payload.is_empty() {
            if closing {
                // A stream that closes before its handshake completes is simply gone.
                self.tcp.remove(&key);
            }
            return;
        }
        if !self.tcp.contains_key(&key) {
            // Mid-connection start (the capture began after the SYN): only a
            // segment that starts a ClientHello or a DNS message opens a stream.
            if !(is_dns || tls::looks_like_client_hello_start(seg.payload)) {
                return;
            }
            if !self.start_stream(ts, key, seg.seq, is_dns) {
                return;
            }
        }
        let Some(stream) = self.tcp.get_mut(&key) else { return };
        stream.last_seen = ts;
        let StreamState::Reading(buffer) = &mut stream.state else {
            if closing {
                self.tcp.remove(&key);
            }
            return;
        };
        // Offsets more than 2^31 ahead are really behind the stream start.
        let offset = seg.seq.wrapping_sub(stream.base);
        let (offset, bytes) = if offset > i32::MAX as u32 {
            let behind = (offset.wrapping_neg()) as usize;
            (0, seg.payload.get(behind..).unwrap_or_default())
        } else {
            (u64::from(offset), seg.payload)
        };
        let limit = if stream.dns { MAX_DNS_TCP_BUFFER } else { tls::MAX_CLIENT_HELLO + 5 * 8 };
        if buffer.insert(offset, bytes, limit).is_err() {
            self.stats.tcp_streams_dropped += 1;
            stream.state = StreamState::Done;
            return;
        }
        let flow = Flow { protocol: Protocol::Tcp, src: key.src, dst: key.dst };
        if stream.dns {
            Self::dns_tcp_messages(stream, &mut self.stats, ts, flow, out);
        } else {
            match tls::parse_client_hello_records(buffer.contiguous()) {
                Ok(HelloProgress::NeedMore) => {}
                Ok(HelloProgress::Done(hello)) => {
                    stream.state = StreamState::Done;
                    self.stats.tls_client_hellos += 1;
                    if let Some(name) = hello.server_name {
                        out(Observation {
                            ts,
                            flow,
                            source: Source::Tls,
                            name: name.to_ascii_lowercase(),
                            detail: Detail::ClientHello { ech: hello.ech_offered },
                        });
                    }
                }
                Err(_) => {
                    // Not TLS, or not a ClientHello: this direction is of no interest.
                    if !buffer.contiguous().is_empty()
                        && tls::looks_like_client_hello_start(buffer.contiguous())
                    {
                        self.stats.tls_errors += 1;
                    }
                    stream.state = StreamState::Done;
                }
            }
        }
        if closing {
            self.tcp.remove(&key);
        }
    }

    /// Registers a stream; false when the table is full even after a sweep.
    fn start_stream(&mut self, ts: Micros, key: StreamKey, base: u32, dns: bool) -> bool {
        if self.tcp.len() >= self.limits.max_tcp_streams && !self.tcp.contains_key(&key) {
            self.sweep(ts);
            if self.tcp.len() >= self.limits.max_tcp_streams {
                self.stats.tcp_streams_dropped += 1;
                return false;
            }
        }
        self.stats.tcp_streams_tracked += 1;
        self.tcp.insert(
            key,
            TcpStream {
                base,
                dns,
                dns_messages: 0,
                dns_consumed: 0,
                state: StreamState::Reading(Reassembler::default()),
                last_seen: ts,
            },
        );
        true
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
        let mut messages = Vec::new();
        let mut consumed = stream.dns_consumed;
        let mut failed = false;
        while let Some([hi, lo, ..]) = buffer.contiguous().get(consumed..) {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let Some(message) = buffer.contiguous().get(consumed + 2..consumed + 2 + len) else { break };
            consumed += 2 + len;
            match dns::parse_dns_message(message) {
                Ok(m) => messages.push(m),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        stream.dns_consumed = consumed;
        for message in messages {
            stats.dns_messages += 1;
            stream.dns_messages = stream.dns_messages.saturating_add(1);
            // `flow` is this direction; answers are reported client → server.
            let flow = if message.response { Flow { src: flow.dst, dst: flow.src, ..flow } } else { flow };
            for question in message.questions {
                let detail = if message.response {
                    Detail::DnsAnswer {
                        qtype: question.qtype,
                        rcode: message.rcode,
                        addresses: message.addresses.clone(),
                    }
                } else {
                    Detail::DnsQuery { qtype: question.qtype }
                };
                out(Observation { ts, flow, source: Source::Dns, name: question.name, detail });
            }
        }
        if failed {
            stats.dns_errors += 1;
        }
        if failed || stream.dns_messages >= MAX_DNS_MESSAGES_PER_STREAM {
            stream.state = StreamState::Done;
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
        // Later client Initials of a connection keep the keys of its first DCID,
        // even after the server has picked a new connection ID.
        let known =
            self.quic.get(&key).and_then(|c| c.keys.decrypt(packet).ok().map(|p| (p, c.dcid == packet.dcid)));
        let plaintext = match known {
            Some((plaintext, _)) => plaintext,
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
                if self.quic.len() >= self.limits.max_quic_connections && !self.quic.contains_key(&key) {
                    self.sweep(ts);
                    if self.quic.len() >= self.limits.max_quic_connections {
                        self.stats.quic_connections_dropped += 1;
                        return;
                    }
                }
                let connection = QuicConnection {
                    dcid: packet.dcid.to_vec(),
                    keys,
                    crypto: Reassembler::default(),
                    done: false,
                    last_seen: ts,
                };
                self.quic.insert(key, connection);
                plaintext
            }
        };
        let Some(connection) = self.quic.get_mut(&key) else { return };
        connection.last_seen = ts;
        if connection.done {
            return;
        }
        let Ok(frames) = quic::crypto_frames(&plaintext) else {
            self.stats.quic_errors += 1;
            return;
        };
        for (offset, data) in frames {
            if connection.crypto.insert(offset, data, tls::MAX_CLIENT_HELLO + 4).is_err() {
                self.stats.quic_connections_dropped += 1;
                connection.done = true;
                return;
            }
        }
        let hello = match tls::handshake_message(connection.crypto.contiguous()) {
            Ok(None) => return,
            Ok(Some(body)) => tls::parse_client_hello_body(body).map(tls::OwnedClientHello::from),
            Err(e) => Err(e),
        };
        connection.done = true;
        connection.crypto = Reassembler::default();
        match hello {
            Ok(hello) => {
                self.stats.tls_client_hellos += 1;
                if let Some(name) = hello.server_name {
                    out(Observation {
                        ts,
                        flow: Flow { protocol: Protocol::Udp, src: key.src, dst: key.dst },
                        source: Source::Quic,
                        name: name.to_ascii_lowercase(),
                        detail: Detail::QuicInitial { version: packet.version, ech: hello.ech_offered },
                    });
                }
            }
            Err(_) => self.stats.quic_errors += 1,
        }
    }
}
