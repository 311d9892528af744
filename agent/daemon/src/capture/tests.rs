use std::sync::atomic::AtomicBool;

use vigie_core::sensor::{Detail, Observation};

use super::*;
use crate::decider::Mode;
use crate::platform::fake::Frames;
use crate::rules::Rules;
use crate::testing::{rules, TestDecider};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pcap").join(name)
}

/// Real clients' captures through the capture loop on fakes: every
/// catalogued name they reveal ends in one event per flow.
#[test]
fn a_capture_file_replays_through_the_live_path() {
    let (catalog, policy) = rules();
    let rules = Rules::new(std::sync::Arc::new(catalog), std::sync::Arc::new(policy));
    let test = TestDecider::new(Mode::Monitor);
    let context = CaptureContext { decider: &test.decider, blocker: None, heartbeat: &Heartbeat::default() };
    let mut replayed = 0;
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        if !path.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
            continue;
        }
        let mut frames = Frames::from_capture(&path).unwrap();
        run_source(&mut frames, &rules, &AtomicBool::new(false), context).unwrap();
        replayed += 1;
    }
    assert!(replayed >= 3, "the fixtures are there");
    let events = test.events();
    let services: std::collections::BTreeSet<&str> = events.iter().map(|e| e.service_id.as_str()).collect();
    assert!(services.contains("chatgpt") && services.contains("claude"), "{services:?}");
}

/// One event per catalogued handshake a real client made (the fixture's
/// oracle, tshark's list of names), none for the others.
#[test]
fn one_event_per_catalogued_handshake() {
    let (catalog, policy) = rules();
    let expected: Vec<String> = std::fs::read_to_string(fixture("curl-tls.expected"))
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("tls "))
        .filter(|name| catalog.lookup(name).is_some())
        .map(str::to_owned)
        .collect();
    assert!(expected.len() >= 4, "{expected:?}");
    let rules = Rules::new(std::sync::Arc::new(catalog), std::sync::Arc::new(policy));
    let test = TestDecider::new(Mode::Monitor);
    let context = CaptureContext { decider: &test.decider, blocker: None, heartbeat: &Heartbeat::default() };
    let mut frames = Frames::from_capture(&fixture("curl-tls.pcap")).unwrap();
    run_source(&mut frames, &rules, &AtomicBool::new(false), context).unwrap();
    let mut names: Vec<String> = test.events().into_iter().map(|e| e.name).collect();
    names.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn the_stop_flag_ends_the_loop_before_the_next_batch() {
    let (catalog, policy) = rules();
    let rules = Rules::new(std::sync::Arc::new(catalog), std::sync::Arc::new(policy));
    let test = TestDecider::new(Mode::Monitor);
    let context = CaptureContext { decider: &test.decider, blocker: None, heartbeat: &Heartbeat::default() };
    let mut frames = Frames::from_capture(&fixture("chromium-quic.pcap")).unwrap();
    run_source(&mut frames, &rules, &AtomicBool::new(true), context).unwrap();
    assert!(test.events().is_empty());
}

fn dns(detail: Detail, src: &str, dst: &str, ts: i64) -> Observation {
    let flow = vigie_core::sensor::Flow {
        protocol: vigie_core::sensor::Protocol::Udp,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
    };
    Observation { ts, flow, source: vigie_core::sensor::Source::Dns, name: "chatgpt.com".into(), detail }
}

#[test]
fn only_an_answer_to_a_query_sent_feeds_the_address_sets() {
    let answer =
        |id| Detail::DnsAnswer { qtype: 1, id, rcode: 0, addresses: vec!["198.18.0.3".parse().unwrap()] };
    let (client, server) = ("10.0.0.2:40000", "192.0.2.53:53");
    let mut queries = QueriesSent::default();
    // No query: an answer any user sent, or one forged from afar.
    assert!(!queries.answers(&dns(answer(7), client, server, 1)));
    queries.sent(&dns(Detail::DnsQuery { qtype: 1, id: 7 }, client, server, 2));
    assert!(!queries.answers(&dns(answer(8), client, server, 3)), "another id");
    assert!(!queries.answers(&dns(answer(7), "10.0.0.2:40001", server, 3)), "another port");
    assert!(!queries.answers(&dns(answer(7), server, client, 3)), "sent to port 53, not from it");
    assert!(!queries.answers(&dns(answer(7), client, server, 2 + ANSWER_WITHIN)), "too late");
    queries.sent(&dns(Detail::DnsQuery { qtype: 1, id: 7 }, client, server, 10));
    assert!(queries.answers(&dns(answer(7), client, server, 11)));
    assert!(!queries.answers(&dns(answer(7), client, server, 12)), "one answer per query");
}
