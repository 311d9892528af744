//! The whole daemon on the platform's fakes, without root: start, serve,
//! stop, in the documented order.

// Test code: a panic here is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use vigie_core::policy::FailureMode;
use vigie_core::store::Store;
use vigie_daemon::platform::fake::{FakeQueue, Fakes, Frames};
use vigie_daemon::Config;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pcap").join(name)
}

fn config(dir: &std::path::Path, extra: &str) -> Config {
    let text = format!(
        "database = {:?}\nsocket = {:?}\ninterfaces = [\"fake0\"]\n{extra}",
        dir.join("events.db"),
        dir.join("agent.sock")
    );
    Config::parse(&text, "agent.toml").unwrap()
}

/// No interface named: every one that is up, now and later.
fn every_interface(dir: &std::path::Path) -> Config {
    let text = format!("database = {:?}\nsocket = {:?}\n", dir.join("events.db"), dir.join("agent.sock"));
    Config::parse(&text, "agent.toml").unwrap()
}

/// Whether an event reaches the store within 10 s.
fn some_event_stored(db: &std::path::Path) -> bool {
    (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        Store::open_reader(db).is_ok_and(|store| store.recent(100).is_ok_and(|events| !events.is_empty()))
    })
}

/// A free local port for the resolver (UDP and TCP).
fn free_port() -> u16 {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.local_addr().unwrap().port()
}

#[test]
fn a_replayed_capture_is_stored_and_the_end_of_every_capture_stops_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::default();
    fakes
        .capture
        .sources
        .lock()
        .unwrap()
        .insert("fake0".into(), Frames::from_capture(&fixture("curl-tls.pcap")).unwrap());
    let daemon = vigie_daemon::start(config(dir.path(), ""), fakes.platform()).unwrap();
    let error = daemon.run().unwrap_err();
    assert_eq!(error.to_string(), "every capture stopped");
    // The writer stored what the capture reported before it closed.
    let store = Store::open(&dir.path().join("events.db")).unwrap();
    let services: Vec<String> = store.recent(100).unwrap().into_iter().map(|e| e.service_id).collect();
    assert!(
        services.contains(&"chatgpt".to_owned()) && services.contains(&"claude".to_owned()),
        "{services:?}"
    );
    let journal: Vec<String> = store.journal(10).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(journal, ["stopped", "started"]);
    assert!(!dir.path().join("agent.sock").exists(), "the socket is removed");
    assert!(fakes.firewall.installed.lock().unwrap().is_empty(), "monitor mode installs nothing");
}

#[test]
fn enforcement_installs_the_rules_and_removes_them_at_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::default();
    // A live interface where nothing happens: the agent runs until stopped.
    fakes.capture.sources.lock().unwrap().insert("fake0".into(), Frames::default().then_idle());
    let port = free_port();
    let extra = format!(
        "enforce = true\n[resolver]\nlisten = [\"127.0.0.1:{port}\"]\nupstreams = [\"127.0.0.1:9\"]\n"
    );
    let daemon = vigie_daemon::start(config(dir.path(), &extra), fakes.platform()).unwrap();
    assert_eq!(*fakes.firewall.installed.lock().unwrap(), [FailureMode::Open]);
    assert_eq!(fakes.firewall.uninstalled.load(Ordering::Relaxed), 0);
    let stop = daemon.stop_flag();
    let stopper = std::thread::spawn(move || {
        std::thread::park_timeout(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
    });
    daemon.run().unwrap();
    stopper.join().unwrap();
    assert_eq!(fakes.firewall.uninstalled.load(Ordering::Relaxed), 1);
    let store = Store::open(&dir.path().join("events.db")).unwrap();
    let journal: Vec<(String, String)> =
        store.journal(10).unwrap().into_iter().map(|e| (e.kind, e.detail)).collect();
    assert_eq!(journal[0], ("stopped".to_owned(), "clean stop".to_owned()), "{journal:?}");
    assert_eq!(journal[1].0, "tamper:service-stopped", "a stop is tamper evidence: {journal:?}");
    assert!(journal[2].1.starts_with("mode=enforce failure_mode=Open"), "{journal:?}");
    let events = store.recent(10).unwrap();
    assert!(
        events.iter().any(|e| e.service_id == "tamper" && e.rule_id == "tamper:service-stopped"),
        "and an event: {events:?}"
    );
}

#[test]
fn a_verdict_thread_that_dies_stops_the_agent_for_its_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::default();
    fakes.capture.sources.lock().unwrap().insert("fake0".into(), Frames::default().then_idle());
    let queue = FakeQueue { dies_when_empty: true, ..FakeQueue::default() };
    *fakes.firewall.queue.lock().unwrap() = Some(queue);
    let port = free_port();
    let extra = format!(
        "enforce = true\n[resolver]\nlisten = [\"127.0.0.1:{port}\"]\nupstreams = [\"127.0.0.1:9\"]\n"
    );
    let daemon = vigie_daemon::start(config(dir.path(), &extra), fakes.platform()).unwrap();
    // No stop asked: the watchdog stops it, with an error, rules removed.
    let error = daemon.run().unwrap_err();
    assert_eq!(error.to_string(), "the packet verdicts stopped");
    assert_eq!(fakes.firewall.uninstalled.load(Ordering::Relaxed), 1);
    let store = Store::open(&dir.path().join("events.db")).unwrap();
    let journal = store.journal(1).unwrap();
    assert_eq!(journal[0].detail, "stopped on failure: the packet verdicts stopped");
}

#[test]
fn a_start_that_fails_after_the_rules_went_in_takes_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::default();
    let port = free_port();
    // The console socket cannot be made: its folder is a file.
    std::fs::write(dir.path().join("not-a-folder"), "").unwrap();
    let error = vigie_daemon::start(failing_socket_config(dir.path(), port), fakes.platform()).unwrap_err();
    assert!(format!("{error:#}").contains("not-a-folder"), "{error:#}");
    assert_eq!(fakes.firewall.installed.lock().unwrap().len(), 1);
    assert_eq!(fakes.firewall.uninstalled.load(Ordering::Relaxed), 1, "no rule left behind");
    // Journaled as a failed start, not left for the next start to take for
    // an agent killed while it ran (systemd retries a failing start).
    let store = Store::open(&dir.path().join("events.db")).unwrap();
    let journal: Vec<String> = store.journal(10).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(journal, ["start-failed", "started"]);
    let again = vigie_daemon::start(failing_socket_config(dir.path(), port), fakes.platform());
    assert!(again.is_err());
    let store = Store::open(&dir.path().join("events.db")).unwrap();
    let journal: Vec<String> = store.journal(10).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        journal,
        ["start-failed", "started", "start-failed", "started"],
        "no unclean stop in a failing loop"
    );
    assert!(store.recent(10).unwrap().is_empty(), "and no agent-killed evidence");
}

/// Enforcement with a console socket that cannot be made: its folder is a file.
fn failing_socket_config(dir: &std::path::Path, port: u16) -> Config {
    let text = format!(
        "database = {:?}\nsocket = {:?}\nenforce = true\n[resolver]\nlisten = [\"127.0.0.1:{port}\"]\nupstreams = [\"127.0.0.1:9\"]\n",
        dir.join("events.db"),
        dir.join("not-a-folder/agent.sock")
    );
    Config::parse(&text, "agent.toml").unwrap()
}

#[test]
fn an_interface_that_appears_after_the_start_is_captured_too() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::default();
    fakes.capture.sources.lock().unwrap().insert("eth0".into(), Frames::default().then_idle());
    // No interface named: every one that is up, now and later.
    let daemon = vigie_daemon::start(every_interface(dir.path()), fakes.platform()).unwrap();
    let stop = daemon.stop_flag();
    let running = std::thread::spawn(move || daemon.run());
    // A VPN comes up, carrying a real client's traffic.
    let frames = Frames::from_capture(&fixture("curl-tls.pcap")).unwrap().then_idle();
    fakes.capture.sources.lock().unwrap().insert("tun0".into(), frames);
    let seen = some_event_stored(&dir.path().join("events.db"));
    stop.store(true, Ordering::Relaxed);
    running.join().unwrap().unwrap();
    assert!(seen, "the new interface's flows were recorded");
}

#[test]
fn an_agent_started_before_any_interface_is_up_waits_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::default();
    let daemon = vigie_daemon::start(every_interface(dir.path()), fakes.platform()).unwrap();
    let stop = daemon.stop_flag();
    let running = std::thread::spawn(move || daemon.run());
    // A laptop at boot: no network yet. The agent stays up (no restart loop).
    std::thread::sleep(Duration::from_millis(600));
    assert!(!running.is_finished(), "no interface up is not a failure");
    let frames = Frames::from_capture(&fixture("curl-tls.pcap")).unwrap().then_idle();
    fakes.capture.sources.lock().unwrap().insert("wlan0".into(), frames);
    let seen = some_event_stored(&dir.path().join("events.db"));
    stop.store(true, Ordering::Relaxed);
    running.join().unwrap().unwrap();
    assert!(seen, "the interface that came up was captured");
}

#[test]
fn rules_removed_by_hand_are_recorded_and_the_agent_restarts_to_put_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::default();
    fakes.capture.sources.lock().unwrap().insert("fake0".into(), Frames::default().then_idle());
    let port = free_port();
    let extra = format!(
        "enforce = true\n[resolver]\nlisten = [\"127.0.0.1:{port}\"]\nupstreams = [\"127.0.0.1:9\"]\n\
         [tamper]\ncheck_every_secs = 1\n"
    );
    let daemon = vigie_daemon::start(config(dir.path(), &extra), fakes.platform()).unwrap();
    let stop = daemon.stop_flag();
    let running = std::thread::spawn(move || daemon.run());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!running.is_finished());
    // `nft delete table inet vigie`, by a user with sudo.
    fakes.firewall.removed_by_hand.store(true, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !running.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Not stopped by then: stop it, so that the test fails instead of hanging.
    stop.store(true, Ordering::Relaxed);
    let error = running.join().unwrap().expect_err("the agent should have stopped on its own");
    assert!(error.to_string().contains("packet rules were removed"), "{error}");
    let store = Store::open(&dir.path().join("events.db")).unwrap();
    let events = store.recent(20).unwrap();
    assert!(events.iter().any(|e| e.rule_id == "tamper:firewall-rules-removed"), "{events:?}");
    assert!(
        !events.iter().any(|e| e.rule_id == "tamper:service-stopped"),
        "a failure is not a stop: {events:?}"
    );
}

#[test]
fn a_previous_run_that_ended_without_stopping_is_recorded_as_tamper_evidence() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What a `kill -9` leaves: a start with no stop after it.
        let mut store = Store::open(&dir.path().join("events.db")).unwrap();
        let ts = 1_767_225_600_000_000 - 60_000_000; // a minute before the fake clock
        let entry = vigie_core::store::JournalEntry { ts, kind: "started".into(), detail: "pid=1".into() };
        store.append_journal(&[entry]).unwrap();
    }
    let fakes = Fakes::default();
    fakes.capture.sources.lock().unwrap().insert("fake0".into(), Frames::default().then_idle());
    let daemon = vigie_daemon::start(config(dir.path(), ""), fakes.platform()).unwrap();
    let stop = daemon.stop_flag();
    stop.store(true, Ordering::Relaxed);
    daemon.run().unwrap();
    let store = Store::open(&dir.path().join("events.db")).unwrap();
    let rules: Vec<String> = store.recent(20).unwrap().into_iter().map(|e| e.rule_id).collect();
    assert!(rules.contains(&"tamper:agent-killed".to_owned()), "{rules:?}");
    assert!(rules.contains(&"tamper:service-stopped".to_owned()), "{rules:?}");
}
