//! The live capture's kernel filter (cBPF), run over real-client captures
//! and crafted frames with an interpreter: it must keep every frame the
//! sensor needs on ports 53 and 443, and drop bulk data.

// Test code: a panic here is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use vigie_core::catalog::Catalog;
use vigie_core::pipeline::Pipeline;
use vigie_core::policy::{Policy, Subject};
use vigie_core::sensor::frame::LinkType;
use vigie_core::sensor::kernel_filter::{capture_filter, SNAP_LEN, TCP_SHORT_SNAP_LEN, TCP_SNAP_LEN};
use vigie_core::sensor::Sensor;
use vigie_tests::{bpf, capture_fixtures, load_frames, tcp_frame, udp_frame, OwnedFrame, ACK, PSH_ACK, SYN};

fn observations<'a>(frames: impl Iterator<Item = &'a OwnedFrame>) -> BTreeSet<String> {
    let catalog = Catalog::bundled().unwrap();
    let policy = Policy::bundled(&catalog).unwrap();
    let mut pipeline = Pipeline::new(Sensor::default(), Arc::new(catalog), Arc::new(policy));
    let mut seen = BTreeSet::new();
    for f in frames {
        pipeline.process(f.ts, f.link, &f.data, &Subject::default(), &mut |d| {
            let o = &d.observation;
            let ports = [o.flow.src.port(), o.flow.dst.port()];
            if ports.iter().any(|p| [53, 443].contains(p)) {
                seen.insert(format!("{} {} {}", o.source.as_str(), o.name, o.flow));
            }
        });
    }
    seen
}

/// The frame as the kernel would hand it over: cut to the snap length.
fn filtered(frame: &[u8]) -> Option<&[u8]> {
    match bpf::run(&capture_filter(), frame) {
        Some(0) => None,
        Some(len @ (SNAP_LEN | TCP_SNAP_LEN | TCP_SHORT_SNAP_LEN)) => {
            Some(&frame[..frame.len().min(len as usize)])
        }
        other => panic!("unexpected filter result {other:?}"),
    }
}

fn kept(frame: &[u8]) -> bool {
    filtered(frame).is_some()
}

#[test]
fn real_clients_lose_nothing_through_the_filter() {
    let mut checked = 0;
    for (capture, _) in capture_fixtures().unwrap() {
        let frames = load_frames(&capture).unwrap();
        // The live capture reads Ethernet frames (loopback included).
        if frames.iter().any(|f| f.link != LinkType::Ethernet) {
            continue;
        }
        let all = observations(frames.iter());
        let passed: Vec<OwnedFrame> = frames
            .iter()
            .filter_map(|f| Some(OwnedFrame { data: filtered(&f.data)?.to_vec(), ..f.clone() }))
            .collect();
        assert_eq!(observations(passed.iter()), all, "{}", capture.display());
        assert!(!all.is_empty(), "{}", capture.display());
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} Ethernet captures");
}

fn ipv6_frame(next_header: u8, transport: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0];
    f.extend_from_slice(&u16::try_from(transport.len()).unwrap().to_be_bytes());
    f.extend_from_slice(&[next_header, 64]);
    f.extend_from_slice(&[0xfd; 16]);
    f.extend_from_slice(&[0xfe; 16]);
    f.extend_from_slice(transport);
    f
}

fn tcp_header(src: u16, dst: u16, flags: u8) -> Vec<u8> {
    let mut t = src.to_be_bytes().to_vec();
    t.extend_from_slice(&dst.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

#[test]
fn bulk_traffic_is_dropped_in_the_kernel_and_handshakes_kept() {
    let c = (Ipv4Addr::new(10, 0, 0, 1), 40_000);
    let s443 = (Ipv4Addr::new(10, 0, 0, 2), 443);
    let s53 = (Ipv4Addr::new(10, 0, 0, 2), 53);
    let data = [0x17u8; 1400];
    // Kept: what opens, carries or closes a client's stream to 443; DNS both ways; QUIC long headers.
    assert!(kept(&tcp_frame(c, s443, 1, SYN, &[])));
    assert!(kept(&tcp_frame(c, s443, 1, PSH_ACK, &[0x16, 3, 1, 0, 5])));
    assert!(kept(&tcp_frame(c, s443, 1, ACK | 0x01, &[])));
    assert!(kept(&udp_frame(c, s53, &[0; 30])));
    assert!(kept(&udp_frame(s53, c, &[0; 30])));
    assert!(kept(&tcp_frame(s53, c, 1, PSH_ACK, &[0; 40])));
    assert!(kept(&udp_frame(c, s443, &[0xc3; 1200])));
    // Dropped: downloads, pure ACKs, QUIC short headers, other ports, later fragments.
    assert!(!kept(&tcp_frame(s443, c, 1, PSH_ACK, &data)));
    assert!(!kept(&tcp_frame(c, s443, 1, ACK, &[])));
    assert!(!kept(&udp_frame(c, s443, &[0x43; 1200])));
    assert!(!kept(&udp_frame(s443, c, &[0xc3; 1200])));
    assert!(!kept(&tcp_frame(c, (s443.0, 80), 1, SYN, &[])));
    let mut fragment = udp_frame(c, s53, &[0; 30]);
    fragment[20..22].copy_from_slice(&0x0010u16.to_be_bytes());
    assert!(!kept(&fragment));
    // TCP data is cut: after a ClientHello's worth when it starts a handshake
    // record, after 2 KiB otherwise; DNS and QUIC are kept whole.
    let upload = tcp_frame(c, s443, 1, PSH_ACK, &[0x17; 60_000]);
    assert_eq!(filtered(&upload).unwrap().len(), TCP_SHORT_SNAP_LEN as usize);
    let mut big_hello = vec![0x16, 3, 1];
    big_hello.resize(60_000, 0);
    assert_eq!(filtered(&tcp_frame(c, s443, 1, PSH_ACK, &big_hello)).unwrap().len(), TCP_SNAP_LEN as usize);
    assert_eq!(bpf::run(&capture_filter(), &udp_frame(c, s443, &[0xc3; 1200])), Some(SNAP_LEN));
    // A frame cut short is refused, as the kernel refuses an out-of-bounds load.
    assert!(!kept(&tcp_frame(c, s443, 1, PSH_ACK, &data)[..30]));

    // IPv6, same rules.
    let mut hello = tcp_header(40_000, 443, PSH_ACK);
    hello.extend_from_slice(&[0x16, 3, 1, 0, 5]);
    assert!(kept(&ipv6_frame(6, &hello)));
    assert!(kept(&ipv6_frame(6, &tcp_header(40_000, 443, SYN))));
    assert!(!kept(&ipv6_frame(6, &tcp_header(40_000, 443, ACK))));
    let mut upload6 = tcp_header(40_000, 443, PSH_ACK);
    upload6.extend_from_slice(&[0x17; 60_000]);
    assert_eq!(filtered(&ipv6_frame(6, &upload6)).unwrap().len(), TCP_SHORT_SNAP_LEN as usize);
    let mut download = tcp_header(443, 40_000, PSH_ACK);
    download.extend_from_slice(&data);
    assert!(!kept(&ipv6_frame(6, &download)));
    let mut quic = 40_000u16.to_be_bytes().to_vec();
    quic.extend_from_slice(&443u16.to_be_bytes());
    quic.extend_from_slice(&[0, 0, 0, 0, 0xc3]);
    assert!(kept(&ipv6_frame(17, &quic)));
    quic[8] = 0x43;
    assert!(!kept(&ipv6_frame(17, &quic)));
    // Extension headers: left to the sensor.
    assert!(kept(&ipv6_frame(0, &[0; 40])));
    // Neither IPv4 nor IPv6.
    let mut arp = tcp_frame(c, s443, 1, SYN, &[]);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert!(!kept(&arp));
}
