//! `vigie-agent run` in monitor mode against real clients, in network
//! namespaces this test creates (needs root, as CI runs; skipped with a
//! message otherwise). Traffic stays on a veth pair between them.

// Test code: a panic here is a failed test, with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr
)]

use std::process::Stdio;
use std::time::Duration;

use vigie_tests::netns::{missing_prerequisites, sh, wait_for, Lab, SERVER_IP};

/// A TCP listener on 443 that accepts and stays silent (clients send their
/// ClientHello and wait), and a UDP socket on 53 that never answers (so dig
/// waits instead of failing at once on an ICMP error).
const SILENT_SERVER: &str = "import socket,sys\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.bind((sys.argv[1],53))\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind((sys.argv[1],443));s.listen(16)\nc=[]\nwhile True: c.append(s.accept()[0])";

#[test]
fn monitor_mode_sees_real_clients_and_stores_their_events() {
    if let Some(why) = missing_prerequisites(&["ip", "ss", "curl", "dig", "python3", "timeout"]) {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let mut lab = Lab::new("l");
    let mut server = lab.cmd(&lab.server, &["timeout", "120", "python3", "-c", SILENT_SERVER, SERVER_IP]);
    server.stdout(Stdio::null()).stderr(Stdio::null());
    lab.spawn(server);
    assert!(lab.wait_listening(&lab.server, "t", &format!("{SERVER_IP}:443")), "test server did not start");

    let db = lab.dir.join("events.db");
    let log_path = lab.dir.join("agent.log");
    let socket = lab.dir.join("agent.sock");
    let mut agent = lab.cmd(
        &lab.client,
        &[
            env!("CARGO_BIN_EXE_vigie-agent"),
            "run",
            "-i",
            &lab.client_if,
            "--db",
            db.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
        ],
    );
    agent.env("VIGIE_LOG", "info").stdout(Stdio::null()).stderr(std::fs::File::create(&log_path).unwrap());
    let agent_pid = lab.spawn(agent);
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(wait_for(Duration::from_secs(10), || read_log().contains("capturing")), "{}", read_log());

    let client = |args: &[&str]| {
        let _ = lab.client_output(args);
    };
    // curl sends its ClientHello to the silent listener, then gives up.
    let curl = |host: &str| {
        let resolve = format!("{host}:443:{SERVER_IP}");
        let url = format!("https://{host}/");
        client(&["timeout", "5", "curl", "-sk", "--max-time", "2", "--resolve", &resolve, &url]);
    };
    curl("chatgpt.com");
    curl("github.com");
    client(&["timeout", "5", "dig", "+tries=1", "+time=1", &format!("@{SERVER_IP}"), "claude.ai"]);
    let seen = wait_for(Duration::from_secs(10), || {
        let log = read_log();
        log.contains("chatgpt.com") && log.contains("claude.ai")
    });
    assert!(seen, "{}", read_log());

    // The link goes down and comes back: the capture reopens by itself.
    sh(&["ip", "-n", &lab.client, "link", "set", &lab.client_if, "down"]);
    assert!(
        wait_for(Duration::from_secs(10), || read_log().contains("capture interrupted")),
        "{}",
        read_log()
    );
    sh(&["ip", "-n", &lab.client, "link", "set", &lab.client_if, "up"]);
    let reopened = wait_for(Duration::from_secs(10), || read_log().matches("capturing").count() >= 2);
    assert!(reopened, "{}", read_log());
    // The veth's addresses went with the link: the route comes back with them.
    std::thread::sleep(Duration::from_millis(500));
    curl("copilot.microsoft.com");
    assert!(
        wait_for(Duration::from_secs(10), || read_log().contains("copilot.microsoft.com")),
        "{}",
        read_log()
    );

    sh(&["kill", "-TERM", &agent_pid.to_string()]);
    let status = lab.wait_exit(agent_pid, Duration::from_secs(10)).expect("agent did not stop");
    assert!(status.success(), "{}", read_log());
    assert!(!socket.exists(), "the console socket is removed on exit");

    let store = vigie_core::store::Store::open(&db).unwrap();
    let events = store.recent(100).unwrap();
    let find = |name: &str| events.iter().find(|e| e.name == name);
    let chatgpt = find("chatgpt.com").expect("chatgpt.com stored");
    assert_eq!(
        (chatgpt.source.as_str(), chatgpt.service_id.as_str(), chatgpt.action.as_str()),
        ("tls", "chatgpt", "block")
    );
    // Attributed to the socket's owner: curl, run by root.
    let who = &chatgpt.attribution;
    assert_eq!((who.program.as_deref(), who.uid, who.user.as_deref()), (Some("curl"), Some(0), Some("root")));
    assert!(
        who.pid.is_some() && who.program_path.as_deref().is_some_and(|p| p.ends_with("/curl")),
        "{who:?}"
    );
    let dig = find("claude.ai").expect("claude.ai stored");
    assert_eq!((dig.source.as_str(), dig.attribution.program.as_deref()), ("dns", Some("dig")));
    assert!(find("github.com").is_none());
    let journal: Vec<String> = store.journal(10).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        journal,
        ["stopped", "tamper:service-stopped", "started"],
        "a SIGTERM is a stop, and tamper evidence"
    );
    let dir = lab.dir.clone();
    drop(lab);
    assert!(!dir.exists());
}
