//! The sensor turns frames into observations: a DNS question, a TLS
//! ClientHello's server name, a QUIC Initial's server name. It keeps bounded
//! per-flow state for handshakes split across packets; everything else
//! passes with a header walk and one hash probe.

// The parsers and the stateful engine (`sensor` feature); the types below
// are shared with builds that only read events (the console).
#[cfg(feature = "sensor")]
pub mod dns;
#[cfg(feature = "sensor")]
mod engine;
#[cfg(feature = "sensor")]
pub mod frame;
#[cfg(feature = "sensor")]
pub mod gate;
#[cfg(feature = "sensor")]
pub mod http;
#[cfg(feature = "sensor")]
pub mod kernel_filter;
#[cfg(feature = "sensor")]
pub mod quic;
#[cfg(feature = "sensor")]
mod reader;
#[cfg(feature = "sensor")]
mod reassembly;
#[cfg(feature = "sensor")]
pub mod tls;

#[cfg(feature = "sensor")]
pub use engine::Sensor;
#[cfg(feature = "sensor")]
pub(crate) use engine::MAX_HELLO_STREAM;

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

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

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} -> {}", self.protocol.as_str(), self.src, self.dst)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Dns,
    Tls,
    Quic,
    /// A query to the agent's own resolver (not seen on the wire).
    Resolver,
    /// A plaintext HTTP request: a proxy's `CONNECT`, or `http://`.
    Http,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Dns => "dns",
            Source::Tls => "tls",
            Source::Quic => "quic",
            Source::Resolver => "resolver",
            Source::Http => "http",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    DnsQuery {
        qtype: u16,
        id: u16,
    },
    /// A response: `flow` is still oriented client → resolver.
    DnsAnswer {
        qtype: u16,
        id: u16,
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
    /// `connect`: a proxy tunnel (`CONNECT host:port`).
    HttpRequest {
        connect: bool,
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
    /// Bytes held for unfinished handshakes, all flows together.
    pub max_buffered_bytes: usize,
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
            max_buffered_bytes: 64 << 20,
            handshake_timeout: 30_000_000,
            done_timeout: 120_000_000,
        }
    }
}

// Two attributes: clippy knows a test module by a plain `cfg(test)`.
#[cfg(test)]
#[cfg(feature = "sensor")]
mod tests;
