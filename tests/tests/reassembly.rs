//! Real ClientHellos (Chromium's ~2 KB post-quantum hello, from the fixture
//! capture) re-segmented the ways networks and evasive clients deliver them:
//! out of order, retransmitted, overlapping, one byte at a time.

// Test code: a panic here is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::Ipv4Addr;

use vigie_core::sensor::frame::LinkType;
use vigie_core::sensor::{Observation, Sensor};
use vigie_tests::{client_hellos, fixture, tcp_frame, ACK, PSH_ACK, SYN};

/// Chromium's ClientHellos from the fixture, with their server names.
fn chromium_hellos() -> Vec<(String, Vec<u8>)> {
    let hellos = client_hellos(&fixture("chromium-tcp-split.pcap")).unwrap();
    assert!(hellos.len() >= 4, "{}", hellos.len());
    assert!(hellos.iter().any(|(_, b)| b.len() > 1500), "no large hello");
    hellos
}

const CLIENT: (Ipv4Addr, u16) = (Ipv4Addr::new(192, 0, 2, 1), 50000);
const SERVER: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 51, 100, 7), 443);
const ISN: u32 = 0xffff_ff00; // The stream's sequence numbers wrap around 2^32.

/// Delivers `pieces` (offset, len) of `bytes` after a SYN and returns what the sensor saw.
fn deliver(bytes: &[u8], pieces: &[(usize, usize)], with_syn: bool) -> Vec<Observation> {
    let mut sensor = Sensor::default();
    let mut out = Vec::new();
    let mut frames = Vec::new();
    if with_syn {
        frames.push(tcp_frame(CLIENT, SERVER, ISN, SYN, &[]));
    }
    for &(offset, len) in pieces {
        let end = (offset + len).min(bytes.len());
        let seq = ISN.wrapping_add(1).wrapping_add(offset as u32);
        frames.push(tcp_frame(CLIENT, SERVER, seq, PSH_ACK, &bytes[offset..end]));
    }
    for (i, f) in frames.iter().enumerate() {
        sensor.process(i as i64, LinkType::Ethernet, f, &mut |o| out.push(o));
        sensor.check_invariants().unwrap();
    }
    out
}

fn names(observations: &[Observation]) -> Vec<&str> {
    observations.iter().map(|o| o.name.as_str()).collect()
}

#[test]
fn in_order_and_swapped_segments() {
    for (name, bytes) in chromium_hellos() {
        let mid = bytes.len() / 2;
        let in_order = [(0, mid), (mid, bytes.len())];
        let swapped = [(mid, bytes.len()), (0, mid)];
        assert_eq!(names(&deliver(&bytes, &in_order, true)), [name.as_str()]);
        assert_eq!(names(&deliver(&bytes, &swapped, true)), [name.as_str()], "swapped");
    }
}

#[test]
fn retransmitted_and_overlapping_segments_report_once() {
    for (name, bytes) in chromium_hellos() {
        let n = bytes.len();
        let pieces = [(0, 700), (500, 900), (0, 700), (1400, n), (300, 1500), (1400, n)];
        assert_eq!(names(&deliver(&bytes, &pieces, true)), [name.as_str()]);
    }
}

#[test]
fn one_byte_segments_in_reverse_order() {
    let (name, bytes) = chromium_hellos().remove(0);
    // Past the reassembler's 64-segment hole limit, the stream is abandoned,
    // not buffered without bound; within it, the name is found.
    let short: Vec<(usize, usize)> = (0..bytes.len()).map(|i| (i, 1)).collect();
    assert_eq!(names(&deliver(&bytes, &short, true)), [name.as_str()]);
    let mut reversed_tail: Vec<(usize, usize)> =
        (bytes.len() - 60..bytes.len()).rev().map(|i| (i, 1)).collect();
    reversed_tail.insert(0, (0, bytes.len() - 60));
    reversed_tail.swap(0, 30);
    assert_eq!(names(&deliver(&bytes, &reversed_tail, true)), [name.as_str()]);
    let all_reversed: Vec<(usize, usize)> = (0..bytes.len()).rev().map(|i| (i, 1)).collect();
    assert!(deliver(&bytes, &all_reversed, true).is_empty());
}

#[test]
fn capture_started_mid_connection() {
    // No SYN seen: the first segment that starts a ClientHello opens the stream.
    for (name, bytes) in chromium_hellos() {
        let mid = bytes.len() / 3;
        assert_eq!(names(&deliver(&bytes, &[(0, mid), (mid, bytes.len())], false)), [name.as_str()]);
    }
}

#[test]
fn bulk_data_after_the_handshake_creates_no_state() {
    let (_, bytes) = chromium_hellos().remove(0);
    let mut sensor = Sensor::default();
    let mut frames = vec![
        tcp_frame(CLIENT, SERVER, ISN, SYN, &[]),
        tcp_frame(CLIENT, SERVER, ISN.wrapping_add(1), PSH_ACK, &bytes),
    ];
    let mut seq = ISN.wrapping_add(1).wrapping_add(bytes.len() as u32);
    for i in 0..10_000u32 {
        // Application data records from many other connections, mid-stream.
        let other = (Ipv4Addr::new(192, 0, 2, 2), 40000 + (i % 20_000) as u16);
        frames.push(tcp_frame(other, SERVER, i, ACK, &[23, 3, 3, 0, 4, 1, 2, 3, 4]));
        frames.push(tcp_frame(CLIENT, SERVER, seq, ACK, &[0x17; 1200]));
        seq = seq.wrapping_add(1200);
    }
    let mut count = 0;
    for f in &frames {
        sensor.process(0, LinkType::Ethernet, f, &mut |_| count += 1);
    }
    assert_eq!(count, 1);
    assert_eq!(sensor.tracked_flows(), 1, "only the finished flow is remembered");
}
