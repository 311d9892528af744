//! Writes the fuzz seed corpus (agent/fuzz/corpus/<target>/) from the
//! real-client capture fixtures and the bundled policies, so the fuzzers
//! start from what real clients send. Run from the repository root:
//! `cargo run -p vigie-tests --bin fuzz-corpus`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use vigie_core::internal::{decode_frame, LinkType};
use vigie_core::sensor::frame::{Frame, Transport};
use vigie_tests::{capture_fixtures, client_tcp_streams, load_frames, tests_dir};

fn link_index(link: LinkType) -> u8 {
    match link {
        LinkType::Ethernet => 0,
        LinkType::RawIp => 1,
        LinkType::Null => 2,
        LinkType::Loop => 3,
        LinkType::LinuxSll => 4,
        _ => 5,
    }
}

fn main() -> Result<()> {
    let root = tests_dir().join("..").join("agent").join("fuzz").join("corpus");
    let mut corpus: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    for (capture, _) in capture_fixtures()? {
        let frames = load_frames(&capture)?;
        let mut sensor_input = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if i < 12 {
                let mut seed = vec![link_index(f.link)];
                seed.extend_from_slice(&f.data);
                corpus.entry("frame").or_default().push(seed);
            }
            if f.link == LinkType::Ethernet && i < 60 {
                let len = u16::try_from(f.data.len()).unwrap_or(u16::MAX);
                sensor_input.extend_from_slice(&len.to_be_bytes());
                sensor_input.extend_from_slice(f.data.get(..usize::from(len)).unwrap_or(&f.data));
            }
            let Ok(Frame::Ip(ip)) = decode_frame(f.link, &f.data) else { continue };
            match ip.transport {
                Transport::Udp { src_port, dst_port, payload } if src_port == 53 || dst_port == 53 => {
                    corpus.entry("dns_message").or_default().push(payload.to_vec());
                    corpus.entry("dns_resolver").or_default().push(payload.to_vec());
                }
                Transport::Udp { dst_port: 443, payload, .. } => {
                    corpus.entry("quic_initial").or_default().push(payload.to_vec());
                }
                _ => {}
            }
        }
        for bytes in client_tcp_streams(&capture, 443)?.into_iter().take(3) {
            let hello: Vec<u8> = bytes.into_iter().take(4096).collect();
            // The gate's stream mode: cut in segments of 1, 6 and 100 bytes.
            let mut gate_seed = vec![0, 3, 0, 5, 99];
            gate_seed.extend_from_slice(&hello);
            corpus.entry("verdict_gate").or_default().push(gate_seed);
            corpus.entry("tls_client_hello").or_default().push(hello);
        }
        // The gate's packet mode: the capture's first IP packets, link header off.
        let mut gate_packets = vec![1];
        for f in frames.iter().filter(|f| f.link == LinkType::Ethernet).take(30) {
            let ip = f.data.get(14..).unwrap_or_default();
            let len = u16::try_from(ip.len()).unwrap_or(u16::MAX);
            gate_packets.extend_from_slice(&len.to_be_bytes());
            gate_packets.extend_from_slice(ip.get(..usize::from(len)).unwrap_or(ip));
        }
        if gate_packets.len() > 1 {
            corpus.entry("verdict_gate").or_default().push(gate_packets);
        }
        if !sensor_input.is_empty() {
            corpus.entry("sensor_stream").or_default().push(sensor_input);
        }
    }
    let connect = b"\x00\x02\x07\x40CONNECT chatgpt.com:443 HTTP/1.1\r\nHost: chatgpt.com:443\r\n\r\n";
    corpus.entry("verdict_gate").or_default().push(connect.to_vec());
    for entry in std::fs::read_dir(tests_dir().join("..").join("policies"))? {
        let path = entry?.path();
        corpus.entry("policy_file").or_default().push(std::fs::read(&path)?);
    }
    for (target, mut seeds) in corpus {
        seeds.sort();
        seeds.dedup();
        seeds.truncate(40);
        let dir = root.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in seeds.iter().enumerate() {
            write(&dir.join(format!("seed-{i:03}")), seed)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| path.display().to_string())
}
