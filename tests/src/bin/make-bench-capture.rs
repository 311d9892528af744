//! Builds the benchmark capture: real handshakes (Chromium and curl TLS
//! ClientHellos, Chromium QUIC Initials, dig queries, all taken from the
//! fixtures) scattered among bulk mid-stream TCP traffic, as a workstation
//! downloading and uploading sees it. Prints how many names a complete
//! detector must find.
//!
//! `make-bench-capture OUT.pcap [TOTAL_PACKETS]` (default 1,200,000).

// Indices below are taken modulo the length of the vector they index.
#![allow(clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use vigie_core::internal::decode_frame;
use vigie_core::sensor::frame::{Frame, Transport};
use vigie_tests::{client_hellos, fixture, load_frames, tcp_frame, udp_frame, ACK, PSH_ACK, SYN};

struct PcapOut<W: Write> {
    out: W,
    packets: u64,
}

impl<W: Write> PcapOut<W> {
    fn new(mut out: W) -> Result<Self> {
        // Classic pcap, microsecond timestamps, Ethernet.
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?;
        Ok(Self { out, packets: 0 })
    }

    fn frame(&mut self, ts_micros: u64, data: &[u8]) -> Result<()> {
        let len = u32::try_from(data.len())?;
        self.out.write_all(&u32::try_from(ts_micros / 1_000_000)?.to_le_bytes())?;
        self.out.write_all(&u32::try_from(ts_micros % 1_000_000)?.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(data)?;
        self.packets += 1;
        Ok(())
    }
}

/// Real client payloads lifted from the fixture captures.
struct Samples {
    hellos: Vec<Vec<u8>>,
    quic_connections: Vec<Vec<Vec<u8>>>,
    dns_queries: Vec<Vec<u8>>,
}

fn samples() -> Result<Samples> {
    let mut hellos = Vec::new();
    for name in ["chromium-tcp-split.pcap", "curl-tls.pcap"] {
        hellos.extend(client_hellos(&fixture(name))?.into_iter().map(|(_, bytes)| bytes));
    }
    let mut quic: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    let mut dns_queries = Vec::new();
    for name in ["chromium-quic.pcap", "dns-udp-tcp.pcap"] {
        for f in load_frames(&fixture(name))? {
            let Ok(Frame::Ip(ip)) = decode_frame(f.link, &f.data) else { continue };
            match ip.transport {
                Transport::Udp { src_port, dst_port: 443, payload } => {
                    let conn = quic.entry(src_port).or_default();
                    // The first two client datagrams carry the whole ClientHello.
                    if conn.len() < 2 {
                        conn.push(payload.to_vec());
                    }
                }
                Transport::Udp { dst_port: 53, payload, .. } => dns_queries.push(payload.to_vec()),
                _ => {}
            }
        }
    }
    let quic_connections: Vec<_> = quic.into_values().filter(|c| c.len() == 2).collect();
    if hellos.is_empty() || quic_connections.is_empty() || dns_queries.is_empty() {
        bail!(
            "fixtures lack handshakes: {} hellos, {} quic, {} dns",
            hellos.len(),
            quic_connections.len(),
            dns_queries.len()
        );
    }
    Ok(Samples { hellos, quic_connections, dns_queries })
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let out_path = args.next().context("usage: make-bench-capture OUT.pcap [TOTAL_PACKETS]")?;
    let total: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1_200_000);
    let s = samples()?;
    let file = std::fs::File::create(&out_path).with_context(|| out_path.clone())?;
    let mut pcap = PcapOut::new(BufWriter::with_capacity(1 << 20, file))?;

    let server = Ipv4Addr::new(10, 99, 0, 1);
    let bulk_payload = vec![0x17u8; 1448];
    // 64 long-lived bulk flows, each side: data one way, ACKs the other.
    let bulk_flows: Vec<(Ipv4Addr, u16)> =
        (0..64u16).map(|i| (Ipv4Addr::new(10, 98, 0, 2), 30000 + i)).collect();
    let mut bulk_seq = vec![1_000u32; bulk_flows.len()];
    let (mut tls, mut quic, mut dns) = (0u64, 0u64, 0u64);
    let mut ts = 1_790_000_000_000_000u64;
    let mut port = 1024u16;
    let mut client = 0u32;
    let mut i = 0u64;
    while pcap.packets < total {
        ts += 8;
        // One handshake event per 50 packets: ~2% of packets, like browsing during a download.
        if i % 50 == 0 {
            port = if port == u16::MAX { 1024 } else { port + 1 };
            client = client.wrapping_add(1);
            let src = (Ipv4Addr::from(0x0a00_0000 | (client & 0x00ff_ffff)), port);
            match (i / 50) % 4 {
                0 | 1 => {
                    let hello = &s.hellos[(tls as usize) % s.hellos.len()];
                    let isn = client.wrapping_mul(2_654_435_761);
                    pcap.frame(ts, &tcp_frame(src, (server, 443), isn, SYN, &[]))?;
                    let mut seq = isn.wrapping_add(1);
                    for chunk in hello.chunks(1448) {
                        pcap.frame(ts, &tcp_frame(src, (server, 443), seq, PSH_ACK, chunk))?;
                        seq = seq.wrapping_add(chunk.len() as u32);
                    }
                    tls += 1;
                }
                2 => {
                    for datagram in &s.quic_connections[(quic as usize) % s.quic_connections.len()] {
                        pcap.frame(ts, &udp_frame(src, (server, 443), datagram))?;
                    }
                    quic += 1;
                }
                _ => {
                    let query = &s.dns_queries[(dns as usize) % s.dns_queries.len()];
                    pcap.frame(ts, &udp_frame(src, (server, 53), query))?;
                    dns += 1;
                }
            }
        }
        let flow = (i as usize) % bulk_flows.len();
        let (peer, peer_port) = bulk_flows[flow];
        if i % 3 == 2 {
            pcap.frame(ts, &tcp_frame((peer, peer_port), (server, 443), 7, ACK, &[]))?;
        } else {
            pcap.frame(ts, &tcp_frame((server, 443), (peer, peer_port), bulk_seq[flow], ACK, &bulk_payload))?;
            bulk_seq[flow] = bulk_seq[flow].wrapping_add(1448);
        }
        i += 1;
    }
    pcap.out.flush()?;
    println!(
        "{{\"packets\": {}, \"tls_handshakes\": {tls}, \"quic_handshakes\": {quic}, \"dns_queries\": {dns}}}",
        pcap.packets
    );
    Ok(())
}
