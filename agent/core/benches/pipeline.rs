//! Per-packet cost of the detection pipeline, on frames from the real-client
//! fixtures: the common case (bulk data mid-stream), and each handshake kind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)] // Bench harness.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use vigie_core::catalog::Catalog;
use vigie_core::internal::{decode_frame, LinkType};
use vigie_core::pipeline::Pipeline;
use vigie_core::policy::{Policy, Subject};
use vigie_core::sensor::frame::{Frame, Transport};
use vigie_core::sensor::Sensor;

type Frames = Vec<(i64, LinkType, Vec<u8>)>;

fn load(name: &str) -> Frames {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pcap").join(name);
    let mut frames = Vec::new();
    vigie_core::replay::for_each_frame(&path, |ts, link, data| frames.push((ts, link, data.to_vec())))
        .unwrap();
    frames
}

fn pipeline() -> Pipeline {
    let catalog = Catalog::bundled().unwrap();
    let policy = Policy::bundled(&catalog).unwrap();
    Pipeline::new(Sensor::default(), Arc::new(catalog), Arc::new(policy))
}

/// The frames of `capture` that satisfy `keep`, fed in order through a fresh pipeline per iteration.
fn bench_frames(c: &mut Criterion, label: &str, frames: Frames) {
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function(label, |b| {
        b.iter_batched(
            pipeline,
            |mut p| {
                let mut n = 0usize;
                for (ts, link, data) in &frames {
                    p.process(*ts, *link, data, &Subject::default(), &mut |_| n += 1);
                }
                n
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    // Bulk: server-to-client TLS application data of an established flow.
    let tcp = load("gso-large-frames.pcap");
    let bulk: Frames = tcp
        .iter()
        .filter(|(_, link, data)| {
            matches!(decode_frame(*link, data), Ok(Frame::Ip(ip)) if matches!(ip.transport,
                Transport::Tcp(s) if s.src_port == 443 && s.payload.first() == Some(&23)))
        })
        .cloned()
        .collect();
    assert!(!bulk.is_empty());
    bench_frames(c, "bulk_tcp_data", bulk.iter().cycle().take(1000).cloned().collect());
    bench_frames(c, "chromium_tcp_handshakes", load("chromium-tcp-split.pcap"));
    bench_frames(c, "chromium_quic_initials", load("chromium-quic.pcap"));
    bench_frames(c, "dns_udp_tcp", load("dns-udp-tcp.pcap"));
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);
