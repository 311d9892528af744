//! The verdict path's gate on streams cut at arbitrary points. The first
//! byte picks the mode:
//! - even: a TCP byte stream (after a count and that many segment sizes),
//!   sent as segments of those sizes in turn; a size's top bit marks the
//!   segment urgent, its next bit makes it a retransmission of the last one;
//! - odd: raw IP packets, each prefixed by a 2-byte length.
//! Each decided flow is settled as the verdicter does; time moves on so
//! that budgets, expiry and eviction run too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_core::sensor::gate::{Gate, GateLimits, Step};

fn tcp(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(40 + payload.len()).unwrap_or(u16::MAX);
    let [hi, lo] = total.to_be_bytes();
    let mut p = vec![0x45, 0, hi, lo, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    p.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    p
}

fn feed(gate: &mut Gate, now: &mut i64, packet: &[u8], user: Option<u32>) {
    if let Step::Decided(finding) = gate.packet(*now, packet, user) {
        gate.settle(*now, finding.flow(), true);
    }
    *now += 50_000;
    let _ = gate.take_abandoned(*now);
    if let Err(e) = gate.check_invariants() {
        panic!("{e}");
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = GateLimits {
        max_bytes: 4096,
        max_packets: 64,
        max_wait: 1_000_000,
        max_flows: 3,
        max_flows_per_user: 2,
        settled_for: 2_000_000,
    };
    let mut gate = Gate::new(limits);
    let mut now = 0i64;
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let Some((&count, rest)) = rest.split_first() else { return };
        let (sizes, stream) = rest.split_at(usize::from(count).min(rest.len()));
        if sizes.is_empty() {
            feed(&mut gate, &mut now, &tcp(1, 0x18, stream), Some(1000));
            return;
        }
        let (mut offset, mut last) = (0usize, 0usize);
        for &size in sizes.iter().cycle().take(4096) {
            if offset >= stream.len() {
                break;
            }
            let flags = if size & 0x80 != 0 { 0x38 } else { 0x18 };
            let start = if size & 0x40 != 0 { last } else { offset };
            let end = (start + usize::from(size & 0x3f) + 1).min(stream.len());
            let seq = 1u32.wrapping_add(u32::try_from(start).unwrap_or(u32::MAX));
            feed(&mut gate, &mut now, &tcp(seq, flags, stream.get(start..end).unwrap_or_default()), Some(1000));
            last = start;
            offset = offset.max(end);
        }
    } else {
        let mut rest = rest;
        let mut user = 0u32;
        while let [hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let (packet, next) = tail.split_at(len.min(tail.len()));
            user = (user + 1) % 3;
            feed(&mut gate, &mut now, packet, Some(user));
            rest = next;
        }
    }
});
