//! `vigie-agent run` against real clients, in network namespaces this test
//! creates (needs root, as CI runs; skipped with a message otherwise).
//! Traffic stays on a veth pair between the two namespaces.

// Test code: a panic here is a failed test, with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Everything the test made, removed on drop whether it passed or not.
struct Namespaces {
    client: String,
    server: String,
    dir: std::path::PathBuf,
    children: Vec<Child>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for child in &mut self.children {
            // SIGTERM first: `timeout` passes it on to the process it runs,
            // which SIGKILL would orphan.
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            if !wait_for(Duration::from_secs(3), || child.try_wait().ok().flatten().is_some()) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sh(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?}");
}

fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// Polls `check` until it holds or `limit` passes.
fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
    check()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn monitor_mode_sees_real_clients_and_stores_their_events() {
    let tools = ["ip", "ss", "curl", "dig", "python3", "timeout"];
    let on_path = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<_> = tools.into_iter().filter(|t| !on_path(t)).collect();
    if !is_root() || !missing.is_empty() {
        eprintln!("SKIPPED: needs root and {missing:?} (tests/run.sh installs them)");
        return;
    }
    let id = std::process::id() % 100_000;
    let dir = std::env::temp_dir().join(format!("vigie-live-{id}"));
    let mut ns = Namespaces {
        client: format!("vgl-c-{id}"),
        server: format!("vgl-s-{id}"),
        dir: dir.clone(),
        children: Vec::new(),
    };
    // Leftovers of an earlier run that was killed: start clean.
    for n in [&ns.client, &ns.server] {
        let _ = Command::new("ip").args(["netns", "del", n]).stderr(Stdio::null()).status();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (vc, vs) = (format!("vglc{id}"), format!("vgls{id}"));
    sh(&["ip", "netns", "add", &ns.client]);
    sh(&["ip", "netns", "add", &ns.server]);
    sh(&[
        "ip", "link", "add", &vc, "netns", &ns.client, "type", "veth", "peer", "name", &vs, "netns",
        &ns.server,
    ]);
    sh(&["ip", "-n", &ns.client, "addr", "add", "10.204.0.1/24", "dev", &vc]);
    sh(&["ip", "-n", &ns.server, "addr", "add", "10.204.0.2/24", "dev", &vs]);
    for (n, dev) in [(&ns.client, &vc), (&ns.server, &vs)] {
        sh(&["ip", "-n", n, "link", "set", dev, "up"]);
        sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
    }
    // A TCP listener that accepts and stays silent: clients send their ClientHello.
    let server = in_ns(
        &ns.server,
        &["timeout", "120", "python3", "-c", "import socket,time\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('10.204.0.2',443));s.listen(16)\nc=[]\nwhile True: c.append(s.accept()[0])"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    ns.children.push(server);
    let listening = wait_for(Duration::from_secs(10), || {
        in_ns(&ns.server, &["ss", "-Hltn", "sport = :443"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("10.204.0.2:443"))
    });
    assert!(listening, "test server did not start");

    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("events.db");
    let log_path = dir.join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let agent = in_ns(
        &ns.client,
        &[env!("CARGO_BIN_EXE_vigie-agent"), "run", "-i", &vc, "--db", db.to_str().unwrap()],
    )
    .env("VIGIE_LOG", "info")
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .unwrap();
    let agent_pid = agent.id().to_string();
    ns.children.push(agent);
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(wait_for(Duration::from_secs(10), || read_log().contains("capturing")), "{}", read_log());

    let client = |args: &[&str]| {
        let _ = in_ns(&ns.client, args).stdout(Stdio::null()).stderr(Stdio::null()).status();
    };
    // curl sends its ClientHello to the silent listener, then gives up.
    let curl = |host: &str| {
        let resolve = format!("{host}:443:10.204.0.2");
        let url = format!("https://{host}/");
        client(&["timeout", "5", "curl", "-sk", "--max-time", "2", "--resolve", &resolve, &url]);
    };
    curl("chatgpt.com");
    curl("github.com");
    client(&["timeout", "5", "dig", "+tries=1", "+time=1", "@10.204.0.2", "claude.ai"]);
    let seen = wait_for(Duration::from_secs(10), || {
        let log = read_log();
        log.contains("chatgpt.com") && log.contains("claude.ai")
    });
    assert!(seen, "{}", read_log());

    sh(&["kill", "-TERM", &agent_pid]);
    // The agent stays in `ns.children`, so a failed assertion still stops it.
    let agent = ns.children.last_mut().unwrap();
    assert!(wait_for(Duration::from_secs(10), || agent.try_wait().unwrap().is_some()), "agent did not stop");
    assert!(agent.wait().unwrap().success(), "{}", read_log());

    let store = vigie_core::store::Store::open(Path::new(&db)).unwrap();
    let events = store.recent(100).unwrap();
    let find = |name: &str| events.iter().find(|e| e.name == name);
    let chatgpt = find("chatgpt.com").expect("chatgpt.com stored");
    assert_eq!(
        (chatgpt.source.as_str(), chatgpt.service_id.as_str(), chatgpt.action.as_str()),
        ("tls", "chatgpt", "block")
    );
    assert_eq!(find("claude.ai").map(|e| e.source.as_str()), Some("dns"));
    assert!(find("github.com").is_none());
    drop(ns);
    assert!(!dir.exists());
}
