//! The real-client captures in `tests/fixtures/pcap`, replayed through the
//! same pipeline as `vigie-agent scan`, checked against what tshark (an
//! independent dissector) found in them.

// Test code: a panic here is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use vigie_core::catalog::Catalog;
use vigie_core::pipeline::Pipeline;
use vigie_core::policy::{Policy, Subject};
use vigie_core::sensor::{Observation, Sensor};
use vigie_tests::{capture_fixtures, fixture, load_frames};

fn pipeline() -> Pipeline {
    let catalog = Catalog::bundled().unwrap();
    let policy = Policy::bundled(&catalog).unwrap();
    Pipeline::new(Sensor::default(), Arc::new(catalog), Arc::new(policy))
}

/// (source, name, service id) for every observation that is not a DNS answer.
fn scan(path: &std::path::Path) -> Vec<(String, String, Option<String>)> {
    let mut p = pipeline();
    let mut seen = Vec::new();
    vigie_core::replay::for_each_frame(path, |ts, link, frame| {
        p.process(ts, link, frame, &Subject::default(), &mut |d| {
            if !d.observation.is_answer() {
                seen.push((
                    d.observation.source.as_str().to_owned(),
                    d.observation.name.clone(),
                    d.verdict.map(|(s, _)| s.id.clone()),
                ));
            }
        });
    })
    .unwrap();
    let stats = p.stats();
    assert_eq!(stats.undecodable, 0, "{}: {stats:?}", path.display());
    seen
}

#[test]
fn every_name_the_clients_sent_is_found() {
    let fixtures = capture_fixtures().unwrap();
    assert!(fixtures.len() >= 8, "fixtures: {fixtures:?}");
    for (capture, expected) in fixtures {
        let expected: BTreeSet<String> = std::fs::read_to_string(&expected)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let found: BTreeSet<String> =
            scan(&capture).into_iter().map(|(s, n, _)| format!("{s} {n}")).collect();
        assert_eq!(found, expected, "{}", capture.display());
    }
}

const GENAI: &[(&str, &str)] = &[
    ("chatgpt.com", "chatgpt"),
    ("claude.ai", "claude"),
    ("gemini.google.com", "gemini"),
    ("chat.mistral.ai", "le-chat"),
    ("chat.deepseek.com", "deepseek"),
];
const DECOYS: &[&str] = &[
    "www.google.com",
    "github.com",
    "gemini.com",
    "notclaude.ai",
    "chatgpt.com.evil.example",
    "example.org",
];

#[test]
fn genai_names_map_to_their_services_and_decoys_to_nothing() {
    let mut checked = BTreeSet::new();
    for (capture, _) in capture_fixtures().unwrap() {
        for (source, name, service) in scan(&capture) {
            if let Some((_, id)) = GENAI.iter().find(|(n, _)| *n == name) {
                assert_eq!(service.as_deref(), Some(*id), "{source} {name} in {}", capture.display());
                checked.insert(name.clone());
            }
            if DECOYS.contains(&name.as_str()) {
                assert_eq!(service, None, "decoy {name} matched in {}", capture.display());
                checked.insert(name.clone());
            }
        }
    }
    assert!(checked.len() >= 9, "only checked {checked:?}");
}

/// Feeds frames and returns the observations.
fn observe(frames: impl IntoIterator<Item = vigie_tests::OwnedFrame>) -> Vec<Observation> {
    let mut sensor = Sensor::default();
    let mut out = Vec::new();
    for f in frames {
        sensor.process(f.ts, f.link, &f.data, &mut |o| out.push(o));
    }
    out
}

#[test]
fn chromium_quic_initials_in_any_order() {
    let frames = load_frames(&fixture("chromium-quic.pcap")).unwrap();
    let forward: Vec<_> =
        observe(frames.clone()).into_iter().filter(|o| o.source.as_str() == "quic").collect();
    assert!(forward.iter().any(|o| o.name == "chatgpt.com"), "{forward:?}");
    // Every datagram reversed: the second half of each ClientHello comes first.
    let mut reversed = frames;
    reversed.reverse();
    let backward: BTreeSet<_> =
        observe(reversed).into_iter().filter(|o| o.source.as_str() == "quic").map(|o| o.name).collect();
    let forward: BTreeSet<_> = forward.into_iter().map(|o| o.name).collect();
    assert_eq!(backward, forward);
}

#[test]
fn every_prefix_of_every_real_frame_is_safe() {
    for (capture, _) in capture_fixtures().unwrap() {
        let frames = load_frames(&capture).unwrap();
        let mut sensor = Sensor::default();
        for f in &frames {
            for len in 0..=f.data.len() {
                sensor.process(f.ts, f.link, &f.data[..len], &mut |_| {});
            }
        }
    }
}

/// Offsets where a record or block ends: cutting a file there leaves a
/// shorter but valid capture.
fn record_boundaries(bytes: &[u8]) -> Vec<usize> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let mut ends = Vec::new();
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut at = 0;
        while at + 8 <= bytes.len() {
            at += u32_at(at + 4);
            ends.push(at);
        }
    } else {
        let mut at = 24;
        ends.push(at);
        while at + 16 <= bytes.len() {
            at += 16 + u32_at(at + 8);
            ends.push(at);
        }
    }
    ends
}

#[test]
fn truncated_capture_files_are_errors_not_panics() {
    let dir = std::env::temp_dir().join(format!("vigie-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["curl-tls.pcap", "openssl-gnutls-python.pcapng"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let boundaries = record_boundaries(&bytes);
        assert_eq!(boundaries.last(), Some(&bytes.len()), "{name}");
        let path = dir.join(name);
        let mut cuts: Vec<usize> = (0..bytes.len()).step_by(97).collect();
        cuts.extend(bytes.len().saturating_sub(64)..bytes.len());
        for cut in cuts {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let result = vigie_core::replay::for_each_frame(&path, |_, _, _| {});
            if boundaries.contains(&cut) {
                assert!(result.is_ok(), "{name} cut at record boundary {cut}: {result:?}");
            } else {
                assert!(result.is_err(), "{name} cut at {cut} read as complete");
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        assert!(vigie_core::replay::for_each_frame(&path, |_, _, _| {}).is_ok());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn records_larger_than_the_read_buffer_are_read_whole() {
    let dir = std::env::temp_dir().join(format!("vigie-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.pcap");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    bytes.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 1, 0, 0, 0]);
    for size in [60usize, 3_000_000, 70] {
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&(size as u32).to_le_bytes());
        bytes.extend_from_slice(&(size as u32).to_le_bytes());
        bytes.extend(std::iter::repeat_n(0xab, size));
    }
    std::fs::write(&path, &bytes).unwrap();
    let mut sizes = Vec::new();
    let frames = vigie_core::replay::for_each_frame(&path, |_, _, data| sizes.push(data.len())).unwrap();
    assert_eq!((frames, sizes), (3, vec![60, 3_000_000, 70]));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Rewrites a little-endian microsecond pcap as big-endian and/or nanosecond.
fn rewrite_pcap(bytes: &[u8], big_endian: bool, nanos: bool) -> Vec<u8> {
    let le = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let put = |out: &mut Vec<u8>, v: u32| {
        out.extend_from_slice(&if big_endian { v.to_be_bytes() } else { v.to_le_bytes() });
    };
    let mut out = Vec::new();
    put(&mut out, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    let (major, minor) = (u16::from_le_bytes([bytes[4], bytes[5]]), u16::from_le_bytes([bytes[6], bytes[7]]));
    for v in [major, minor] {
        out.extend_from_slice(&if big_endian { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    for at in [8, 12, 16, 20] {
        put(&mut out, le(at));
    }
    let mut at = 24;
    while at < bytes.len() {
        let caplen = le(at + 8) as usize;
        put(&mut out, le(at));
        put(&mut out, if nanos { le(at + 4) * 1000 } else { le(at + 4) });
        put(&mut out, le(at + 8));
        put(&mut out, le(at + 12));
        out.extend_from_slice(&bytes[at + 16..at + 16 + caplen]);
        at += 16 + caplen;
    }
    out
}

#[test]
fn big_endian_and_nanosecond_pcaps_read_the_same() {
    let original = fixture("curl-tls.pcap");
    let frames = |path: &std::path::Path| {
        let mut out = Vec::new();
        vigie_core::replay::for_each_frame(path, |ts, _, data| out.push((ts, data.to_vec()))).unwrap();
        out
    };
    let expected = frames(&original);
    assert!(expected[0].0 > 1_790_000_000_000_000, "timestamp {}", expected[0].0);
    let bytes = std::fs::read(&original).unwrap();
    let dir = std::env::temp_dir().join(format!("vigie-endian-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (big_endian, nanos) in [(true, false), (false, true), (true, true)] {
        let path = dir.join(format!("{big_endian}-{nanos}.pcap"));
        std::fs::write(&path, rewrite_pcap(&bytes, big_endian, nanos)).unwrap();
        assert_eq!(frames(&path), expected, "big endian {big_endian}, nanos {nanos}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pcapng_timestamps_are_in_microseconds() {
    let mut first = None;
    vigie_core::replay::for_each_frame(&fixture("openssl-gnutls-python.pcapng"), |ts, _, _| {
        first.get_or_insert(ts);
    })
    .unwrap();
    // Captured on 2026-11-27.
    let ts = first.unwrap();
    assert!((1_795_795_200_000_000..1_795_881_600_000_000).contains(&ts), "{ts}");
}
