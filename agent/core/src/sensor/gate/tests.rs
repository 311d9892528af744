//! The gate on crafted flows: every evasion a user without root can make a
//! kernel TCP stack or a UDP socket send, and the budgets.

use super::*;
use crate::sensor::quic::tests::{hex, RFC9001_CLIENT_INITIAL};
use crate::sensor::quic::{self, InitialKeys};
use crate::sensor::tls::tests::{client_hello_message, records};

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN_ACK: u8 = 0x11;
const PSH_ACK: u8 = 0x18;
const URG_ACK: u8 = 0x30;

fn ipv4(src: u8, dst: u8, protocol: u8, transport: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0, 10, 0, 0, src, 10, 0, 0, dst];
    let total = u16::try_from(20 + transport.len()).unwrap();
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(transport);
    p
}

/// A TCP segment from 10.0.0.1:`port` to 10.0.0.2:443.
fn tcp(port: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&port.to_be_bytes());
    t.extend_from_slice(&443u16.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    ipv4(1, 2, 6, &t)
}

fn udp(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&port.to_be_bytes());
    t.extend_from_slice(&443u16.to_be_bytes());
    t.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(payload);
    ipv4(1, 2, 17, &t)
}

fn hello(name: &str) -> Vec<u8> {
    records(&client_hello_message(name, false, 400), 16384)
}

/// Sends `payload` as segments of `size` bytes from sequence number 1.
fn segments(port: u16, payload: &[u8], size: usize) -> Vec<Vec<u8>> {
    payload
        .chunks(size)
        .scan(1u32, |seq, chunk| {
            let segment = tcp(port, *seq, PSH_ACK, chunk);
            *seq += u32::try_from(chunk.len()).unwrap();
            Some(segment)
        })
        .collect()
}

fn steps(gate: &mut Gate, packets: &[Vec<u8>]) -> Vec<Step> {
    packets.iter().enumerate().map(|(i, p)| gate.packet(i64::try_from(i).unwrap(), p, Some(1000))).collect()
}

/// What a step says to do, without its flow.
fn kind(step: &Step) -> &'static str {
    match step {
        Step::Pass => "pass",
        Step::Hold(_) => "hold",
        Step::Drop => "drop",
        Step::Settled { deny: true, .. } => "settled-deny",
        Step::Settled { deny: false, .. } => "settled-allow",
        Step::Decided(_) => "decided",
    }
}

fn name_of(step: &Step) -> Option<&str> {
    match step {
        Step::Decided(Finding::Named(observation)) => Some(&observation.name),
        _ => None,
    }
}

fn unreadable(step: &Step) -> Option<Unreadable> {
    match step {
        Step::Decided(Finding::Unreadable { why, .. }) => Some(*why),
        _ => None,
    }
}

#[test]
fn a_syn_opens_nothing_and_the_first_segment_is_held_until_the_name() {
    let mut gate = Gate::default();
    let h = hello("chatgpt.com");
    let mut packets = vec![tcp(40000, 0, SYN, &[]), tcp(40000, 1, ACK, &[])];
    packets.extend(segments(40000, &h, 100));
    let out = steps(&mut gate, &packets);
    assert_eq!(kind(&out[0]), "pass");
    assert_eq!(kind(&out[1]), "pass");
    assert_eq!(kind(&out[2]), "hold", "the stream's first segment");
    assert!(out[3..out.len() - 1].iter().all(|s| *s == Step::Pass), "later segments are useless alone");
    assert_eq!(name_of(out.last().unwrap()), Some("chatgpt.com"));
    assert_eq!(gate.reading(), 0);
}

#[test]
fn a_hello_in_one_byte_records_and_tiny_segments_is_read() {
    // 400 bytes of padding: ~500 bytes of hello, ~2,500 in one-byte records.
    let stream = records(&client_hello_message("claude.ai", false, 400), 1);
    assert!(stream.len() < GateLimits::default().max_bytes);
    let mut gate = Gate::default();
    let out = steps(&mut gate, &segments(40001, &stream, 16));
    assert_eq!(name_of(out.last().unwrap()), Some("claude.ai"));
}

#[test]
fn budgets_in_bytes_packets_and_time_make_a_handshake_unreadable() {
    // Bytes: a hello padded past the budget.
    let big = records(&client_hello_message("claude.ai", false, 5_000), 100);
    let mut gate = Gate::new(GateLimits { max_bytes: 4096, ..GateLimits::default() });
    let out = steps(&mut gate, &segments(40002, &big, 1400));
    assert_eq!(out.iter().find_map(unreadable), Some(Unreadable::TooLarge));
    // Packets: one byte a segment.
    let mut gate = Gate::new(GateLimits { max_packets: 50, ..GateLimits::default() });
    let out = steps(&mut gate, &segments(40003, &hello("claude.ai"), 1));
    let given_up: Vec<_> = out.iter().filter_map(unreadable).collect();
    assert_eq!(given_up, [Unreadable::TooLarge]);
    assert_eq!(out.iter().position(|s| unreadable(s).is_some()), Some(50));
    // Time: half a hello, then nothing.
    let mut gate = Gate::default();
    let h = hello("claude.ai");
    assert_eq!(kind(&gate.packet(0, &tcp(40004, 1, PSH_ACK, &h[..50]), Some(1000))), "hold");
    assert!(gate.take_abandoned(4_999_999).is_empty());
    let abandoned = gate.take_abandoned(5_000_000);
    assert!(matches!(
        abandoned[..],
        [Finding::Unreadable { why: Unreadable::TooSlow, source: Source::Tls, .. }]
    ));
    assert_eq!(gate.reading(), 0);
}

#[test]
fn urgent_data_rewritten_retransmissions_and_bytes_before_the_start_are_unreadable() {
    let h = hello("chatgpt.com");
    let mut gate = Gate::default();
    gate.packet(0, &tcp(40010, 1, PSH_ACK, &h[..10]), None);
    assert_eq!(
        unreadable(&gate.packet(1, &tcp(40010, 11, URG_ACK, &h[10..11]), None)),
        Some(Unreadable::UrgentData)
    );
    // A decoy hello first, the real one in its retransmission.
    let decoy = hello("www.example.org");
    let mut gate = Gate::default();
    gate.packet(0, &tcp(40011, 1, PSH_ACK, &decoy[..100]), None);
    let rewritten = gate.packet(1, &tcp(40011, 1, PSH_ACK, &h[..100]), None);
    assert_eq!(unreadable(&rewritten), Some(Unreadable::Rewritten));
    // An honest retransmission of the held segment is held too, a few times.
    let mut gate = Gate::default();
    let out = steps(&mut gate, &vec![tcp(40012, 1, PSH_ACK, &h[..100]); 7]);
    let kinds: Vec<&str> = out.iter().map(kind).collect();
    assert_eq!(kinds, ["hold", "hold", "hold", "hold", "drop", "drop", "drop"]);
    // Data from before the first segment seen.
    let mut gate = Gate::default();
    gate.packet(0, &tcp(40013, 1000, PSH_ACK, &h[..100]), None);
    assert_eq!(
        unreadable(&gate.packet(1, &tcp(40013, 900, PSH_ACK, &h[..100]), None)),
        Some(Unreadable::Malformed)
    );
}

#[test]
fn other_protocols_are_let_go_at_their_first_bytes() {
    let mut gate = Gate::default();
    let ssh = tcp(40020, 1, PSH_ACK, b"SSH-2.0-OpenSSH_9.2p1\r\n");
    assert!(matches!(gate.packet(0, &ssh, None), Step::Decided(Finding::NoName { .. })));
    // A first byte shared with a handshake, then something else.
    let mut gate = Gate::default();
    assert_eq!(kind(&gate.packet(0, &tcp(40021, 1, PSH_ACK, b"G"), None)), "hold");
    assert!(matches!(
        gate.packet(1, &tcp(40021, 2, PSH_ACK, b"IT 1"), None),
        Step::Decided(Finding::NoName { .. })
    ));
}

#[test]
fn proxy_connect_and_plain_http_name_their_host() {
    let mut gate = Gate::default();
    let connect =
        tcp(40030, 1, PSH_ACK, b"CONNECT chatgpt.com:443 HTTP/1.1\r\nHost: chatgpt.com:443\r\n\r\n");
    let step = gate.packet(0, &connect, None);
    assert_eq!(name_of(&step), Some("chatgpt.com"));
    let Step::Decided(Finding::Named(observation)) = step else { unreachable!() };
    assert_eq!(
        (observation.source, observation.detail),
        (Source::Http, Detail::HttpRequest { connect: true })
    );
    // Cut in two segments: the first is held.
    let request = b"GET / HTTP/1.1\r\nHost: claude.ai\r\n\r\n";
    let mut gate = Gate::default();
    let out = steps(&mut gate, &segments(40031, request, 20));
    assert_eq!(kind(&out[0]), "hold");
    assert_eq!(name_of(&out[1]), Some("claude.ai"));
}

#[test]
fn settled_flows_keep_their_verdict_and_closed_ones_are_forgotten() {
    let mut gate = Gate::default();
    let h = hello("chatgpt.com");
    let step = gate.packet(0, &tcp(40040, 1, PSH_ACK, &h), Some(1000));
    let Step::Decided(Finding::Named(observation)) = step else { panic!("{step:?}") };
    let flow = observation.flow;
    gate.settle(1, flow, true);
    assert_eq!(kind(&gate.packet(2, &tcp(40040, 1, PSH_ACK, &h), Some(1000))), "settled-deny");
    assert_eq!(kind(&gate.packet(3, &tcp(40040, 600, FIN_ACK, &[]), Some(1000))), "settled-deny");
    gate.take_abandoned(1 + GateLimits::default().settled_for);
    assert_eq!(kind(&gate.packet(4, &tcp(40040, 0, SYN, &[]), Some(1000))), "pass", "forgotten");
    // A flow closed half way through its hello is forgotten at once.
    let mut gate = Gate::default();
    gate.packet(0, &tcp(40041, 1, PSH_ACK, &h[..10]), None);
    assert_eq!(gate.reading(), 1);
    gate.packet(1, &tcp(40041, 11, FIN_ACK, &[]), None);
    assert_eq!(gate.reading(), 0);
}

#[test]
fn one_user_cannot_fill_the_table_and_the_oldest_flow_is_given_up_first() {
    let limits = GateLimits { max_flows: 8, max_flows_per_user: 5, ..GateLimits::default() };
    let mut gate = Gate::new(limits);
    let start = &hello("chatgpt.com")[..10];
    for port in 0..5 {
        assert_eq!(
            kind(&gate.packet(port, &tcp(41000 + port as u16, 1, PSH_ACK, start), Some(1000))),
            "hold"
        );
    }
    let over = gate.packet(5, &tcp(41005, 1, PSH_ACK, start), Some(1000));
    assert_eq!(unreadable(&over), Some(Unreadable::OverQuota));
    // Another user still gets in; when the table is full the oldest goes.
    for port in 0..4 {
        let step = gate.packet(10 + port, &tcp(42000 + port as u16, 1, PSH_ACK, start), Some(1001));
        assert_eq!(kind(&step), "hold");
    }
    let abandoned = gate.take_abandoned(20);
    let evicted: Vec<u16> = abandoned
        .iter()
        .filter_map(|f| match f {
            Finding::Unreadable { flow, why: Unreadable::Evicted, .. } => Some(flow.src.port()),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, [41000], "the oldest flow, reported for its verdict");
    assert_eq!(gate.reading(), 8);
    assert_eq!(gate.stats().untracked, 2);
}

#[test]
fn junk_datagrams_before_a_quic_initial_use_no_budget() {
    let initial = hex(RFC9001_CLIENT_INITIAL);
    let mut gate = Gate::new(GateLimits { max_packets: 2, ..GateLimits::default() });
    // Junk: short headers, long headers that do not decrypt.
    let mut junk = initial.clone();
    junk[700] ^= 0xff;
    for (i, datagram) in [vec![0x40; 1200], junk.clone(), junk.clone(), vec![0xc0; 1300]].iter().enumerate() {
        assert_eq!(kind(&gate.packet(i64::try_from(i).unwrap(), &udp(50000, datagram), Some(1000))), "pass");
    }
    let step = gate.packet(10, &udp(50000, &initial), Some(1000));
    assert_eq!(name_of(&step), Some("example.com"));
}

#[test]
fn a_hello_cut_over_many_quic_initials_is_read_and_each_is_held() {
    let message = client_hello_message("chatgpt.com", false, 400);
    let dcid = [0x42; 8];
    let keys = InitialKeys::client(quic::VERSION_1, &dcid).unwrap();
    let datagrams: Vec<Vec<u8>> = message
        .chunks(30)
        .enumerate()
        .map(|(i, chunk)| {
            let frame = quic::crypto_frame(30 * i as u64, chunk);
            keys.seal_client_initial(quic::VERSION_1, &dcid, u32::try_from(i).unwrap(), &frame).unwrap()
        })
        .collect();
    assert!(datagrams.len() > 10);
    let mut gate = Gate::default();
    let out: Vec<Step> = datagrams.iter().map(|d| gate.packet(0, &udp(50001, d), Some(1000))).collect();
    let (last, held) = out.split_last().unwrap();
    assert!(held.iter().all(|s| kind(s) == "hold"), "{held:?}");
    assert_eq!(name_of(last), Some("chatgpt.com"));
}

#[test]
fn every_cut_of_a_stream_is_read_without_panic() {
    let h = hello("chatgpt.com");
    for size in [1, 2, 3, 7, 64, 517, 4096] {
        let mut gate = Gate::default();
        let out = steps(&mut gate, &segments(40050, &h, size));
        assert_eq!(name_of(out.last().unwrap()), Some("chatgpt.com"), "segments of {size}");
        let held = usize::from(size < h.len());
        assert_eq!(out.iter().filter(|s| kind(s) == "hold").count(), held, "segments of {size}");
    }
}

#[test]
fn a_close_before_the_name_releases_what_is_held_and_a_new_syn_forgets_a_verdict() {
    let h = hello("chatgpt.com");
    for close in [FIN_ACK, 0x14 /* RST ACK */] {
        let mut gate = Gate::default();
        assert_eq!(kind(&gate.packet(0, &tcp(40060, 1, PSH_ACK, &h[..10]), None)), "hold");
        let step = gate.packet(1, &tcp(40060, 11, close, &[]), None);
        assert!(matches!(step, Step::Decided(Finding::NoName { .. })), "{step:?}");
        assert_eq!(gate.reading(), 0);
    }
    // A port reused at once: the new connection's SYN clears the old verdict.
    let mut gate = Gate::default();
    let step = gate.packet(0, &tcp(40061, 1, PSH_ACK, b"x"), None);
    let Step::Decided(Finding::NoName { flow }) = step else { panic!("{step:?}") };
    gate.settle(0, flow, false);
    assert_eq!(kind(&gate.packet(1, &tcp(40061, 5000, SYN, &[]), None)), "pass");
    assert_eq!(kind(&gate.packet(2, &tcp(40061, 5001, PSH_ACK, &h[..10]), None)), "hold", "read afresh");
}

#[test]
fn odd_record_versions_and_large_first_writes_are_read() {
    // Servers check only the major version of a first record.
    let mut odd = hello("chatgpt.com");
    odd[2] = 0x09;
    assert_eq!(name_of(&Gate::default().packet(0, &tcp(40070, 1, PSH_ACK, &odd), None)), Some("chatgpt.com"));
    // An upload whose first write is larger than the budget: its head is read.
    let mut post =
        b"POST /v1/chat HTTP/1.1\r\nHost: api.openai.com\r\nContent-Length: 40000\r\n\r\n".to_vec();
    post.resize(40_000, b'a');
    let step = Gate::default().packet(0, &tcp(40071, 1, PSH_ACK, &post), None);
    assert_eq!(name_of(&step), Some("api.openai.com"));
    // Application data first is a connection that began before the agent.
    let mid_stream = tcp(40072, 1, PSH_ACK, &[0x17, 3, 3, 0, 40, 1, 2, 3]);
    assert!(matches!(Gate::default().packet(0, &mid_stream, None), Step::Decided(Finding::NoName { .. })));
}

#[test]
fn quic_connections_on_the_same_ports_are_told_apart() {
    let initial = |dcid: &[u8], name: &str| {
        let keys = InitialKeys::client(quic::VERSION_1, dcid).unwrap();
        let frame = quic::crypto_frame(0, &client_hello_message(name, false, 200));
        keys.seal_client_initial(quic::VERSION_1, dcid, 0, &frame).unwrap()
    };
    let mut gate = Gate::default();
    let first = gate.packet(0, &udp(50010, &initial(&[1; 8], "www.example.org")), Some(1000));
    let Step::Decided(Finding::Named(observation)) = first else { panic!("{first:?}") };
    gate.settle(0, observation.flow, false);
    // The same connection again (a retransmission): its verdict.
    let again = gate.packet(1, &udp(50010, &initial(&[1; 8], "www.example.org")), Some(1000));
    assert_eq!(kind(&again), "settled-allow");
    // A new connection on the same socket is read afresh.
    let second = gate.packet(2, &udp(50010, &initial(&[2; 8], "chatgpt.com")), Some(1000));
    assert_eq!(name_of(&second), Some("chatgpt.com"));
    // Two connections at once while one is being read: neither is let through.
    let mut gate = Gate::default();
    let keys = InitialKeys::client(quic::VERSION_1, &[3; 8]).unwrap();
    let part = quic::crypto_frame(0, &client_hello_message("chatgpt.com", false, 200)[..50]);
    let half = keys.seal_client_initial(quic::VERSION_1, &[3; 8], 0, &part).unwrap();
    assert_eq!(kind(&gate.packet(0, &udp(50011, &half), Some(1000))), "hold");
    let other = gate.packet(1, &udp(50011, &initial(&[4; 8], "www.example.org")), Some(1000));
    assert_eq!(unreadable(&other), Some(Unreadable::Malformed));
    // A readable Initial followed by a damaged packet is not passed unread.
    let mut damaged = initial(&[5; 8], "chatgpt.com");
    damaged.extend_from_slice(&[0xc3, 0xff]);
    assert_eq!(
        unreadable(&Gate::default().packet(0, &udp(50012, &damaged), None)),
        Some(Unreadable::Malformed)
    );
}
