//! A sequence of Ethernet frames (each prefixed by a 2-byte length) through
//! one stateful sensor: TCP reassembly, QUIC CRYPTO reassembly, flow tables.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_core::internal::LinkType;
use vigie_core::sensor::{Sensor, SensorLimits};

fuzz_target!(|data: &[u8]| {
    // Small tables, so eviction paths run too.
    let limits = SensorLimits {
        max_tcp_streams: 4,
        max_quic_connections: 4,
        max_buffered_bytes: 1 << 16,
        handshake_timeout: 3,
        done_timeout: 5,
    };
    let mut sensor = Sensor::new(limits);
    let mut rest = data;
    let mut ts = 0i64;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let (frame, next) = tail.split_at(len.min(tail.len()));
        sensor.process(ts, LinkType::Ethernet, frame, &mut |_| {});
        if let Err(e) = sensor.check_invariants() {
            panic!("{e}");
        }
        ts += 1_000_000;
        rest = next;
    }
});
