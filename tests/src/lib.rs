//! Support for Vigie's cross-component tests and benchmark tools: fixture
//! paths, capture loading, and frame builders for crafted edge cases.

pub mod agent;
pub mod bpf;
pub mod netns;
pub mod postgres;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use vigie_core::sensor::frame::LinkType;
use vigie_core::sensor::Micros;

/// The repository's `tests/` folder.
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    tests_dir().join("fixtures").join("pcap").join(name)
}

/// Every capture fixture with its `.expected` file.
pub fn capture_fixtures() -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(tests_dir().join("fixtures").join("pcap"))? {
        let path = entry?.path();
        let is_capture = matches!(path.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng"));
        if is_capture {
            let expected = path.with_extension("expected");
            if expected.exists() {
                out.push((path, expected));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A captured frame held in memory.
#[derive(Debug, Clone)]
pub struct OwnedFrame {
    pub ts: Micros,
    pub link: LinkType,
    pub data: Vec<u8>,
}

pub fn load_frames(path: &Path) -> Result<Vec<OwnedFrame>> {
    let mut frames = Vec::new();
    vigie_core::replay::for_each_frame(path, |ts, link, data| {
        frames.push(OwnedFrame { ts, link, data: data.to_vec() });
    })?;
    Ok(frames)
}

/// Ethernet and IPv4 headers for a `protocol` payload of `len` bytes
/// (checksums left at zero: nothing checks them).
fn ethernet_ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0];
    f.extend_from_slice(&u16::try_from(20 + len).unwrap_or(u16::MAX).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f
}

/// An Ethernet + IPv4 + TCP frame.
pub fn tcp_frame(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = ethernet_ipv4(src.0, dst.0, 6, 20 + payload.len());
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// An Ethernet + IPv4 + UDP frame.
pub fn udp_frame(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let mut f = ethernet_ipv4(src.0, dst.0, 17, 8 + payload.len());
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap_or(u16::MAX).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH_ACK: u8 = 0x18;

/// The client-to-server byte streams of the TCP connections to `port` in a
/// capture, each in sequence order (relative to its first segment, so
/// sequence numbers may wrap), retransmissions kept once.
pub fn client_tcp_streams(path: &Path, port: u16) -> Result<Vec<Vec<u8>>> {
    use std::collections::BTreeMap;
    use vigie_core::internal::decode_frame;
    use vigie_core::sensor::frame::{Frame, Transport};
    /// First sequence number, and segments by offset from it.
    type Segments = (u32, BTreeMap<u32, Vec<u8>>);
    let mut streams: BTreeMap<(std::net::IpAddr, u16), Segments> = BTreeMap::new();
    for f in load_frames(path)? {
        let Ok(Frame::Ip(ip)) = decode_frame(f.link, &f.data) else { continue };
        if let Transport::Tcp(seg) = ip.transport {
            if seg.dst_port == port && !seg.payload.is_empty() {
                let (base, segments) =
                    streams.entry((ip.src, seg.src_port)).or_insert((seg.seq, BTreeMap::new()));
                segments.entry(seg.seq.wrapping_sub(*base)).or_insert_with(|| seg.payload.to_vec());
            }
        }
    }
    Ok(streams.into_values().map(|(_, segments)| segments.into_values().flatten().collect()).collect())
}

/// The complete ClientHellos among a capture's TLS client streams, with their server names.
pub fn client_hellos(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    use vigie_core::internal::parse_client_hello_records;
    use vigie_core::sensor::tls::HelloProgress;
    let mut hellos = Vec::new();
    for bytes in client_tcp_streams(path, 443)? {
        if let Ok(HelloProgress::Done(hello)) = parse_client_hello_records(&bytes) {
            hellos.push((hello.server_name.unwrap_or_default(), bytes));
        }
    }
    Ok(hellos)
}
