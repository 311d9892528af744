//! Sensor state handling on crafted flows: SYN variants, limits, budgets.

use std::net::{IpAddr, Ipv4Addr};

use super::engine::{MAX_DNS_QUESTIONS, SECOND};
use super::frame::LinkType;
use super::tls::tests::{client_hello_message, records};
use super::*;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const SYN_ACK: u8 = 0x12;
const RST: u8 = 0x04;

fn tcp(src: (u8, u16), dst: (u8, u16), seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, src.0, 10, 0, 0, dst.0];
    let total = (40 + payload.len()) as u16;
    f[2..4].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fn run(sensor: &mut Sensor, frames: &[Vec<u8>]) -> Vec<Observation> {
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        sensor.process(i as i64, LinkType::RawIp, f, &mut |o| out.push(o));
        sensor.check_invariants().unwrap();
    }
    out
}

fn hello(name: &str) -> Vec<u8> {
    records(&client_hello_message(name, false, 600), 16384)
}

const C: (u8, u16) = (1, 40000);
const S: (u8, u16) = (2, 443);

#[test]
fn tcp_fast_open_data_in_the_syn() {
    let h = hello("claude.ai");
    let out =
        run(&mut Sensor::default(), &[tcp(C, S, 1000, SYN, &h[..100]), tcp(C, S, 1101, ACK, &h[100..])]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name, "claude.ai");
}

#[test]
fn a_retransmitted_syn_keeps_what_was_buffered() {
    let h = hello("claude.ai");
    let frames = [
        tcp(C, S, 1000, SYN, &[]),
        tcp(C, S, 1001, ACK, &h[..300]),
        tcp(C, S, 1000, SYN, &[]),
        tcp(C, S, 1301, ACK, &h[300..]),
    ];
    assert_eq!(run(&mut Sensor::default(), &frames).len(), 1);
}

#[test]
fn syn_acks_open_no_stream_except_for_dns() {
    let mut sensor = Sensor::default();
    run(&mut sensor, &[tcp(S, C, 5000, SYN_ACK, &[])]);
    assert_eq!(sensor.tracked_flows(), 0);
    run(&mut sensor, &[tcp((2, 53), (1, 40001), 5000, SYN_ACK, &[])]);
    assert_eq!(sensor.tracked_flows(), 1);
}

#[test]
fn reset_releases_state_and_buffer() {
    let h = hello("claude.ai");
    let mut sensor = Sensor::default();
    run(&mut sensor, &[tcp(C, S, 1000, SYN, &[]), tcp(C, S, 1001, ACK, &h[..300])]);
    assert_eq!(sensor.buffered_bytes(), 300);
    run(&mut sensor, &[tcp(C, S, 1301, RST, &[])]);
    assert_eq!((sensor.tracked_flows(), sensor.buffered_bytes()), (0, 0));
}

#[test]
fn the_buffer_budget_bounds_memory_across_flows() {
    let limits = SensorLimits { max_buffered_bytes: 1000, ..SensorLimits::default() };
    let mut sensor = Sensor::new(limits);
    let h = hello("claude.ai");
    let mut frames = Vec::new();
    for i in 0..10u16 {
        frames.push(tcp((1, 1000 + i), S, 0, SYN, &[]));
        frames.push(tcp((1, 1000 + i), S, 1, ACK, &h[..300]));
    }
    run(&mut sensor, &frames);
    assert!(sensor.buffered_bytes() <= 1000, "{}", sensor.buffered_bytes());
    assert_eq!(sensor.stats().tcp_streams_dropped, 7);
}

#[test]
fn a_full_table_evicts_finished_flows_first() {
    let limits = SensorLimits { max_tcp_streams: 4, ..SensorLimits::default() };
    let mut sensor = Sensor::new(limits);
    let mut frames = Vec::new();
    for i in 0..4u16 {
        let h = hello("chatgpt.com");
        frames.push(tcp((1, 1000 + i), S, 0, SYN, &[]));
        frames.push(tcp((1, 1000 + i), S, 1, ACK, &h));
    }
    assert_eq!(run(&mut sensor, &frames).len(), 4);
    // The table is full of finished flows: a new connection still gets in.
    let h = hello("claude.ai");
    let out = run(&mut sensor, &[tcp((1, 2000), S, 0, SYN, &[]), tcp((1, 2000), S, 1, ACK, &h)]);
    assert_eq!(out.len(), 1);
    assert_eq!(sensor.tracked_flows(), 4);
}

#[test]
fn timestamps_going_backwards_do_not_stall_expiry() {
    let mut sensor = Sensor::default();
    let h = hello("claude.ai");
    let syn = tcp(C, S, 0, SYN, &[]);
    let part = tcp(C, S, 1, ACK, &h[..100]);
    sensor.process(1_000 * SECOND, LinkType::RawIp, &syn, &mut |_| {});
    sensor.process(0, LinkType::RawIp, &part, &mut |_| {});
    let other = tcp((1, 9), (2, 9), 0, ACK, &[]);
    sensor.process(1_000 * SECOND + 31 * SECOND, LinkType::RawIp, &other, &mut |_| {});
    assert_eq!(sensor.tracked_flows(), 0);
}

#[test]
fn dns_answers_are_bounded() {
    use hickory_proto::op::{Message, MessageType, Query};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    let mut m = Message::new();
    m.set_message_type(MessageType::Response);
    for i in 0..50 {
        let name = Name::from_ascii(format!("q{i}.example.")).unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(name, 60, RData::A(Ipv4Addr::new(192, 0, 2, i).into())));
    }
    let bytes = m.to_vec().unwrap();
    let mut f = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1];
    let total = (28 + bytes.len()) as u16;
    f[2..4].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 53, 0x9c, 0x40]);
    f.extend_from_slice(&((8 + bytes.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&bytes);
    let out = run(&mut Sensor::default(), &[f]);
    assert_eq!(out.len(), MAX_DNS_QUESTIONS);
    let Detail::DnsAnswer { addresses, .. } = &out[0].detail else { panic!("{out:?}") };
    assert_eq!(addresses.len(), 32);
    assert_eq!(
        out[0].flow.src.ip(),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        "answers are oriented client → server"
    );
}
