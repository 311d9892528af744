use super::*;

fn facts(now: Instant) -> Facts {
    Facts {
        running_binary: Some([1; 32]),
        binary: Some([1; 32]),
        binary_packaged: false,
        rule_files: vec![(PathBuf::from("/etc/vigie/policy.toml"), Some([2; 32]))],
        unit: UnitState::Enabled,
        rules_intact: Some(true),
        dns: DnsState::PointedAtAgent,
        interfaces: Some(BTreeSet::from(["eth0".to_owned()])),
        configured_interfaces: Vec::new(),
        sessions: Vec::new(),
        consoles: HashSet::new(),
        now,
        wall_micros: 1_767_225_600_000_000,
        since_boot_micros: 3_600_000_000,
    }
}

fn checks(findings: &[Finding]) -> Vec<Check> {
    findings.iter().map(|f| f.check).collect()
}

/// The same facts, `by` later on both clocks.
fn later(f: &Facts, by: Duration) -> Facts {
    let mut next = f.clone();
    next.now = f.now + by;
    next.wall_micros = f.wall_micros + i64::try_from(by.as_micros()).unwrap();
    next.since_boot_micros = f.since_boot_micros + i64::try_from(by.as_micros()).unwrap();
    next
}

#[test]
fn a_machine_as_it_was_yields_nothing() {
    let first = facts(Instant::now());
    let mut integrity = Integrity::new(TamperConfig::default(), &first, None);
    assert_eq!(integrity.judge(&first), []);
    assert_eq!(integrity.judge(&later(&first, Duration::from_secs(30))), []);
}

#[test]
fn each_tampering_is_found_once_and_again_after_it_was_undone() {
    let first = facts(Instant::now());
    let mut integrity = Integrity::new(TamperConfig::default(), &first, None);
    assert_eq!(integrity.judge(&first), []);

    let mut tampered = later(&first, Duration::from_secs(30));
    tampered.unit = UnitState::Disabled;
    tampered.binary = Some([9; 32]);
    tampered.rules_intact = Some(false);
    tampered.dns = DnsState::MovedAway { first: Some("9.9.9.9".parse().unwrap()) };
    let found = integrity.judge(&tampered);
    assert_eq!(
        checks(&found),
        [Check::ServiceDisabled, Check::BinaryChanged, Check::FirewallRulesRemoved, Check::DnsMovedAway]
    );
    assert!(found.iter().any(|f| f.detail.contains("9.9.9.9")), "{found:?}");
    // Still so at the next look: not reported again.
    assert_eq!(integrity.judge(&later(&tampered, Duration::from_secs(30))), []);
    // Put back, then done again: reported again.
    assert_eq!(integrity.judge(&later(&first, Duration::from_secs(90))), []);
    let mut masked = later(&first, Duration::from_secs(120));
    masked.unit = UnitState::Masked;
    let found = integrity.judge(&masked);
    assert_eq!(checks(&found), [Check::ServiceDisabled]);
    assert!(found[0].detail.contains("masked"));
}

#[test]
fn every_change_of_a_policy_file_is_recorded_with_both_digests() {
    let first = facts(Instant::now());
    let mut integrity = Integrity::new(TamperConfig::default(), &first, None);
    let mut edited = later(&first, Duration::from_secs(30));
    edited.rule_files[0].1 = Some([3; 32]);
    let found = integrity.judge(&edited);
    assert_eq!(checks(&found), [Check::PolicyChanged]);
    assert!(found[0].detail.contains("020202020202 -> 030303030303"), "{}", found[0].detail);
    assert_eq!(integrity.judge(&later(&edited, Duration::from_secs(30))), [], "one change, one finding");
    let mut removed = later(&edited, Duration::from_secs(60));
    removed.rule_files[0].1 = None;
    assert_eq!(checks(&integrity.judge(&removed)), [Check::PolicyChanged]);
}

#[test]
fn interfaces_that_come_and_go_are_recorded_and_a_configured_one_missing_stands() {
    let first = facts(Instant::now());
    let mut integrity = Integrity::new(TamperConfig::default(), &first, None);
    let mut vpn = later(&first, Duration::from_secs(30));
    vpn.interfaces = Some(BTreeSet::from(["eth0".to_owned(), "tun0".to_owned()]));
    let found = integrity.judge(&vpn);
    assert_eq!(checks(&found), [Check::InterfacesChanged]);
    assert_eq!(found[0].subject, "tun0");
    // Containers come and go with their veths and bridges: not evidence,
    // neither those up at the start nor those after.
    let mut with_docker = facts(Instant::now());
    with_docker.interfaces = Some(BTreeSet::from(["eth0", "docker0"].map(str::to_owned)));
    let mut from_start = Integrity::new(TamperConfig::default(), &with_docker, None);
    assert_eq!(from_start.judge(&with_docker), [], "docker0 up at the start is not 'gone'");
    let mut containers = later(&vpn, Duration::from_secs(15));
    containers.interfaces =
        Some(BTreeSet::from(["eth0", "tun0", "docker0", "veth1a2b3c", "br-5f1e"].map(str::to_owned)));
    assert_eq!(integrity.judge(&containers), []);

    let mut configured = later(&vpn, Duration::from_secs(30));
    configured.configured_interfaces = vec!["eth0".to_owned()];
    configured.interfaces = Some(BTreeSet::from(["wlan0".to_owned()]));
    let found = integrity.judge(&configured);
    assert_eq!(checks(&found), [Check::InterfacesChanged]);
    assert!(found[0].detail.contains("configured capture interface"));
}

#[test]
fn a_suspend_is_not_a_clock_jump_but_setting_the_clock_is() {
    let first = facts(Instant::now());
    let mut integrity = Integrity::new(TamperConfig::default(), &first, None);
    assert_eq!(integrity.judge(&first), []);
    // Two hours asleep: the wall clock and the time since boot both moved,
    // the monotonic `Instant` did not.
    let mut woke = first.clone();
    woke.now = first.now + Duration::from_secs(1);
    woke.wall_micros += 7_200_000_000;
    woke.since_boot_micros += 7_200_000_000;
    assert_eq!(integrity.judge(&woke), []);
}

#[test]
fn an_upgrade_in_progress_is_not_a_replaced_program() {
    let first = facts(Instant::now());
    let mut integrity = Integrity::new(TamperConfig::default(), &first, None);
    let mut unpacked = later(&first, Duration::from_secs(30));
    unpacked.binary = Some([8; 32]);
    unpacked.binary_packaged = true;
    assert_eq!(integrity.judge(&unpacked), [], "dpkg's file: the restart follows");
    unpacked.binary_packaged = false;
    assert_eq!(checks(&integrity.judge(&unpacked)), [Check::BinaryChanged]);
}

#[test]
fn what_changed_while_the_agent_was_stopped_is_found_at_its_start_and_nothing_twice() {
    let first = facts(Instant::now());
    let mut before_stop = Integrity::new(TamperConfig::default(), &first, None);
    let mut moved = later(&first, Duration::from_secs(30));
    moved.dns = DnsState::MovedAway { first: None };
    assert_eq!(checks(&before_stop.judge(&moved)), [Check::DnsMovedAway]);
    let saved = before_stop.saved();
    // Stopped; the policy edited and the agent started again.
    let mut at_start = later(&moved, Duration::from_secs(600));
    at_start.rule_files[0].1 = Some([7; 32]);
    let mut after_start = Integrity::new(TamperConfig::default(), &at_start, Some(&saved));
    let found = after_start.judge(&at_start);
    assert_eq!(checks(&found), [Check::PolicyChanged], "DNS moved away was reported by the previous run");
    // The saved state survives its file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tamper.json");
    store_saved(&path, &after_start.saved()).unwrap();
    assert_eq!(load_saved(&path), Some(after_start.saved()));
    std::fs::write(&path, "not json").unwrap();
    assert_eq!(load_saved(&path), None, "a damaged file is a fresh start, not a crash");
}

#[test]
fn the_checks_cannot_be_configured_away() {
    let config =
        TamperConfig { check_every_secs: 4_000_000_000, console_grace_secs: u64::MAX, clock_jump_secs: 0 };
    let integrity = Integrity::new(config, &facts(Instant::now()), None);
    assert_eq!(integrity.every(), Duration::from_secs(300));
}

#[test]
fn a_clock_jump_beyond_the_threshold_is_recorded_and_drift_is_not() {
    let first = facts(Instant::now());
    let mut integrity = Integrity::new(TamperConfig::default(), &first, None);
    assert_eq!(integrity.judge(&first), []);
    let mut drift = later(&first, Duration::from_secs(30));
    drift.wall_micros += 2_000_000;
    assert_eq!(integrity.judge(&drift), [], "two seconds of NTP correction");
    let mut back = later(&drift, Duration::from_secs(30));
    back.wall_micros -= 3_600 * 1_000_000;
    let found = integrity.judge(&back);
    assert_eq!(checks(&found), [Check::ClockMoved]);
    assert!(found[0].detail.contains("-3600 s"), "{}", found[0].detail);
}

#[test]
fn a_graphical_session_without_its_console_past_the_grace_is_recorded_for_its_user() {
    let first = facts(Instant::now());
    let config = TamperConfig { console_grace_secs: 180, ..TamperConfig::default() };
    let mut integrity = Integrity::new(config, &first, None);
    let mut session = later(&first, Duration::from_secs(1));
    session.sessions = vec![GraphicalSession { id: "3".into(), uid: 1000 }];
    assert_eq!(integrity.judge(&session), [], "the console starts a little after login");
    let found = integrity.judge(&later(&session, Duration::from_secs(181)));
    assert_eq!(checks(&found), [Check::ConsoleAbsent]);
    assert_eq!(found[0].uid, Some(1000));
    // The console comes up: nothing; it goes again: a new grace period.
    let mut with_console = later(&session, Duration::from_secs(200));
    with_console.consoles.insert(1000);
    assert_eq!(integrity.judge(&with_console), []);
    assert_eq!(integrity.judge(&later(&session, Duration::from_secs(230))), []);
    assert_eq!(checks(&integrity.judge(&later(&session, Duration::from_secs(420)))), [Check::ConsoleAbsent]);
}

#[test]
fn the_unit_state_is_read_from_systemd_links_and_drop_ins() {
    let dir = tempfile::tempdir().unwrap();
    let (etc, run) = (dir.path().join("etc"), dir.path().join("run"));
    let folders = [etc.clone(), run.clone()];
    let wants = etc.join("multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    const UNIT: &str = "vigie-agent.service";
    assert_eq!(unit_state(&folders, UNIT), UnitState::Disabled);
    let unit_file = dir.path().join("vigie-agent.service.real");
    std::fs::write(&unit_file, "[Unit]\n").unwrap();
    std::os::unix::fs::symlink(&unit_file, wants.join(UNIT)).unwrap();
    assert_eq!(unit_state(&folders, UNIT), UnitState::Enabled);
    // `systemctl edit`: a drop-in, here one that would switch the watchdog off.
    std::fs::create_dir_all(etc.join("vigie-agent.service.d")).unwrap();
    std::fs::write(etc.join("vigie-agent.service.d/override.conf"), "[Service]\nWatchdogSec=0\n").unwrap();
    assert_eq!(unit_state(&folders, UNIT), UnitState::Overridden);
    // `systemctl mask --runtime`: a link to /dev/null under /run.
    std::os::unix::fs::symlink("/dev/null", run.join(UNIT)).unwrap();
    assert_eq!(unit_state(&folders, UNIT), UnitState::Masked);
}

#[test]
fn a_file_is_the_packaged_one_when_its_md5_is_dpkgs() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("vigie-agent");
    std::fs::write(&program, "abc").unwrap();
    let sums = dir.path().join("vigie-agent.md5sums");
    // md5("abc")
    std::fs::write(&sums, "900150983cd24fb0d6963f7d28e17f72  usr/bin/vigie-agent\n").unwrap();
    assert!(is_packaged(&program, &sums, "usr/bin/vigie-agent"));
    std::fs::write(&program, "abcd").unwrap();
    assert!(!is_packaged(&program, &sums, "usr/bin/vigie-agent"));
    assert!(!is_packaged(&program, &dir.path().join("absent"), "usr/bin/vigie-agent"));
}

#[test]
fn graphical_sessions_are_read_from_logind_files() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("2", "# This is private data. Do not parse.\nUID=1000\nUSER=alice\nACTIVE=1\nSTATE=active\nREMOTE=0\nTYPE=wayland\nCLASS=user\n");
    write("5", "UID=1001\nSTATE=online\nREMOTE=0\nTYPE=tty\nCLASS=user\n");
    write("7", "UID=1002\nSTATE=active\nREMOTE=1\nTYPE=x11\nCLASS=user\n");
    write("8", "UID=120\nSTATE=online\nTYPE=x11\nCLASS=greeter\n");
    write("9", "UID=not-a-number\nTYPE=x11\n");
    write("2.ref", "");
    assert_eq!(graphical_sessions(dir.path()), [GraphicalSession { id: "2".into(), uid: 1000 }]);
    assert_eq!(graphical_sessions(&dir.path().join("absent")), []);
}

#[test]
fn a_file_digest_changes_with_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, "a").unwrap();
    let before = digest_of(&path).unwrap();
    std::fs::write(&path, "b").unwrap();
    assert_ne!(digest_of(&path), Some(before));
    assert_eq!(digest_of(&dir.path().join("absent")), None);
}
