//! The adversarial suite: `vigie-agent run --enforce` with the bundled
//! policy, and an unprivileged user (uid 65534) who tries the evasions that
//! public DPI-evasion tools make from user space: a hello cut into hundreds
//! of TLS records or into many TCP segments, urgent data inside the hello,
//! HTTPS on another port, junk datagrams before a QUIC Initial, a proxy's
//! CONNECT, and a SYN flood while an ordinary curl runs. Each evasion is
//! first shown to reach the server with no agent running (so the test
//! proves something), then must fail **and** leave an event naming it.
//! Needs root and network namespaces, as CI runs; skipped otherwise.

// Test code: a panic here is a failed test, with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigie_core::sensor::frame::{decode_frame, Frame, Transport};
use vigie_core::sensor::{quic, Sensor, Source};
use vigie_tests::agent::{self, as_user, start_agent, start_https_servers};
use vigie_tests::netns::{missing_prerequisites, sh, wait_for, Lab, SERVER_IP};
use vigie_tests::{fixture, load_frames};

const AGENT: &str = env!("CARGO_BIN_EXE_vigie-agent");
const RESOLVER: &str = "127.0.0.153";
const NOBODY: &str = "65534";
const EVADE: &str = include_str!("../../../tests/clients/evade.py");
const PROXY_PORT: &str = "3128";
const DOH_PORT: &str = "8053";
/// A public address of the internet's server, serving an allowed site: a
/// forged DNS answer tries to get it blocked.
const ALLOWED_IP: &str = "198.18.0.4";

/// The client Initials Chromium sent for chatgpt.com, from a real capture.
fn chromium_initials_for_chatgpt() -> Vec<Vec<u8>> {
    let frames = load_frames(&fixture("chromium-quic.pcap")).unwrap();
    let mut sensor = Sensor::default();
    let mut port = None;
    for frame in &frames {
        sensor.process(frame.ts, frame.link, &frame.data, &mut |o| {
            if o.source == Source::Quic && o.name == "chatgpt.com" {
                port = port.or(Some(o.flow.src.port()));
            }
        });
    }
    let port = port.expect("the capture has Chromium's QUIC hello for chatgpt.com");
    let initials: Vec<Vec<u8>> = frames
        .iter()
        .filter_map(|f| match decode_frame(f.link, &f.data) {
            Ok(Frame::Ip(ip)) => match ip.transport {
                Transport::Udp { src_port, payload, .. } if src_port == port => Some(payload.to_vec()),
                _ => None,
            },
            _ => None,
        })
        .filter(|d| quic::initial_client_hello_fragments(d).is_ok_and(|f| !f.is_empty()))
        .take(3)
        .collect();
    assert!(!initials.is_empty());
    initials
}

struct Suite {
    lab: Lab,
    script: String,
    socket: std::path::PathBuf,
    /// Events already matched: each evasion must add its own.
    seen: HashSet<String>,
}

impl Suite {
    /// Runs an evasion client as the unprivileged user; its last line.
    fn evade(&self, args: &[&str]) -> String {
        let mut full = vec!["timeout", "20", "python3", self.script.as_str()];
        full.extend_from_slice(args);
        let full = as_user(NOBODY, &full);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = self.lab.client_output(&full);
        out.lines().last().unwrap_or_default().to_owned()
    }

    fn curl(&self, url: &str, resolve: &str, extra: &[&str]) -> String {
        let mut args = vec!["timeout", "10", "curl", "-sk", "--max-time", "4", "--resolve", resolve];
        args.extend_from_slice(extra);
        args.push(url);
        let args = as_user(NOBODY, &args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.lab.client_output(&args)
    }

    /// curl with no address given: it resolves the name itself (`extra`
    /// says how).
    fn curl_unresolved(&self, url: &str, extra: &[&str]) -> String {
        let mut args = vec!["timeout", "10", "curl", "-sk", "--max-time", "4"];
        args.extend_from_slice(extra);
        args.push(url);
        let args = as_user(NOBODY, &args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.lab.client_output(&args)
    }

    fn events(&self) -> Vec<Value> {
        let out = agent::request(&self.lab, AGENT, &self.socket, "0", "events", "{\"limit\":1000}").unwrap();
        serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().clone()
    }

    /// Waits for a new event of the unprivileged user that `matches`.
    fn recorded(&mut self, what: &str, matches: impl Fn(&Value) -> bool) {
        let mut found = None;
        let stored = wait_for(Duration::from_secs(5), || {
            found = self.events().into_iter().find(|e| {
                e["uid"] == 65534 && !self.seen.contains(e["id"].as_str().unwrap_or_default()) && matches(e)
            });
            found.is_some()
        });
        assert!(stored, "{what}: no event recorded; events: {:#?}", self.events());
        let event = found.unwrap();
        self.seen.insert(event["id"].as_str().unwrap().to_owned());
    }
}

fn is(event: &Value, source: &str, service: &str) -> bool {
    event["source"] == source && event["service_id"] == service && event["action"] == "block"
}

#[test]
fn evasions_from_an_unprivileged_user_are_blocked_and_recorded() {
    let tools =
        ["ip", "ss", "curl", "dnsmasq", "python3", "openssl", "setpriv", "timeout", "iptables", "nft"];
    if let Some(why) = missing_prerequisites(&tools) {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let mut lab = Lab::new("x");
    let dir = lab.dir.clone();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = dir.join("evade.py");
    std::fs::write(&script, EVADE).unwrap();
    let initials = chromium_initials_for_chatgpt();
    let initials_file = dir.join("initials.bin");
    let mut packed = Vec::new();
    for datagram in &initials {
        packed.extend_from_slice(&u16::try_from(datagram.len()).unwrap().to_be_bytes());
        packed.extend_from_slice(datagram);
    }
    std::fs::write(&initials_file, packed).unwrap();
    let initial_lengths: HashSet<usize> = initials.iter().map(Vec::len).collect();
    assert!(!initial_lengths.contains(&1201) && !initial_lengths.contains(&1205), "junk must be told apart");

    // The internet: HTTPS on 443 and 8443, a QUIC listener that logs what
    // reaches it, an HTTP CONNECT proxy, and a resolver.
    start_https_servers(&mut lab, &[443, 8443]);
    sh(&["ip", "-n", &lab.server, "addr", "add", &format!("{ALLOWED_IP}/32"), "dev", &lab.server_if]);
    sh(&["ip", "-n", &lab.client, "route", "add", &format!("{ALLOWED_IP}/32"), "via", SERVER_IP]);
    let udp_log = dir.join("udp.log");
    let script_path = script.to_str().unwrap();
    let udp_args =
        ["timeout", "300", "python3", script_path, "udpserver", "443", "290", udp_log.to_str().unwrap()];
    let udp = lab.cmd(&lab.server, &udp_args);
    lab.spawn(udp);
    let proxy = lab.cmd(&lab.server, &["timeout", "300", "python3", script_path, "proxy", PROXY_PORT, "290"]);
    lab.spawn(proxy);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let doh_args = [
        "timeout",
        "300",
        "python3",
        script_path,
        "dohserver",
        DOH_PORT,
        "290",
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        SERVER_IP,
    ];
    let doh = lab.cmd(&lab.server, &doh_args);
    lab.spawn(doh);
    assert!(lab.wait_listening(&lab.server, "t", &format!("0.0.0.0:{DOH_PORT}")));
    assert!(lab.wait_listening(&lab.server, "u", "0.0.0.0:443"));
    assert!(lab.wait_listening(&lab.server, "t", &format!("0.0.0.0:{PROXY_PORT}")));
    lab.start_internet_resolver(&[]);
    lab.set_resolv_conf(&format!(
        "nameserver {RESOLVER}\nnameserver {SERVER_IP}\noptions timeout:1 attempts:1\n"
    ));

    let socket = dir.join("agent.sock");
    let mut suite =
        Suite { lab, script: script_path.to_owned(), socket: socket.clone(), seen: HashSet::new() };
    let initials_arg = initials_file.to_str().unwrap();
    // Datagrams of the Initials' lengths that reached the internet's listener.
    let quic_reached = || -> usize {
        let log = std::fs::read_to_string(&udp_log).unwrap_or_default();
        let length = |line: &str| line.split(' ').next().and_then(|n| n.parse::<usize>().ok());
        log.lines().filter(|l| length(l).is_some_and(|n| initial_lengths.contains(&n))).count()
    };

    let tcp_evasions: Vec<(&str, Vec<&str>)> = vec![
        ("a hello in 1-byte TLS records", vec!["records", SERVER_IP, "443", "chatgpt.com", "1"]),
        ("a hello in 16 TCP segments", vec!["segments", SERVER_IP, "443", "chatgpt.com", "16"]),
        ("a hello in 300 TCP segments", vec!["segments", SERVER_IP, "443", "chatgpt.com", "300"]),
        ("an urgent byte inside the hello", vec!["urgent", SERVER_IP, "443", "chatgpt.com"]),
        ("HTTPS on port 8443", vec!["plain", SERVER_IP, "8443", "chatgpt.com"]),
    ];
    // With no agent, every evasion reaches the server: the test measures something.
    for (what, args) in &tcp_evasions {
        assert_eq!(suite.evade(args), "REACHED", "without the agent, {what}");
    }
    assert_eq!(suite.evade(&["quic", SERVER_IP, "443", initials_arg, "8"]), "SENT");
    assert!(wait_for(Duration::from_secs(3), || quic_reached() > 0), "without the agent, QUIC");
    let via_proxy = format!("chatgpt.com:443:{SERVER_IP}");
    let proxy_url = format!("http://{SERVER_IP}:{PROXY_PORT}");
    assert_eq!(suite.curl("https://chatgpt.com/", &via_proxy, &["-x", &proxy_url]), "internet ok");
    let doh_url = format!("https://{SERVER_IP}:{DOH_PORT}/dns-query");
    let doh = ["--doh-url", doh_url.as_str(), "--doh-insecure"];
    assert_eq!(suite.curl_unresolved("https://chatgpt.com/", &doh), "internet ok", "DNS over HTTPS");
    let allowed = format!("example.org:443:{ALLOWED_IP}");
    assert_eq!(suite.curl("https://example.org/", &allowed, &[]), "internet ok");

    // The workstation runs the agent, enforcing the bundled policy.
    // The bundled policy, with the addresses of blocked names blocked too.
    let policy = dir.join("policy.toml");
    let bundled = vigie_core::policy::BUNDLED_POLICY;
    assert!(bundled.contains("block_resolved_addresses = false"));
    std::fs::write(
        &policy,
        bundled.replace("block_resolved_addresses = false", "block_resolved_addresses = true"),
    )
    .unwrap();
    let db = dir.join("events.db");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "enforce = true\npolicy = {policy:?}\ndatabase = {db:?}\nsocket = {socket:?}\n\
             [resolver]\nlisten = [\"{RESOLVER}:53\"]\nupstreams = [\"{SERVER_IP}:53\"]\ntimeout_ms = 800\n"
        ),
    )
    .unwrap();
    let agent = start_agent(&mut suite.lab, AGENT, &config, "agent");

    let expected: [(&str, &str, &str); 5] = [
        ("tls", "chatgpt", ""),
        ("tls", "chatgpt", ""),
        ("tls", "chatgpt", ""),
        ("tls", "unreadable-handshake", "unreadable-handshake:urgent-data"),
        ("tls", "chatgpt", ""),
    ];
    for ((what, args), (source, service, rule)) in tcp_evasions.iter().zip(expected) {
        let outcome = suite.evade(args);
        assert!(outcome.starts_with("BLOCKED"), "{what}: {outcome}\n{}", agent.log());
        suite.recorded(what, |e| is(e, source, service) && (rule.is_empty() || e["rule_id"] == rule));
    }

    // QUIC: junk datagrams first do not use up the flow's budget.
    let before = quic_reached();
    let outcome = suite.evade(&["quic", SERVER_IP, "443", initials_arg, "8"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(quic_reached(), before, "the Initial reached the server: {outcome}");
    suite.recorded("a QUIC Initial after 8 junk datagrams", |e| is(e, "quic", "chatgpt"));

    // A proxy's CONNECT names the host in clear.
    let body = suite.curl("https://chatgpt.com/", &via_proxy, &["-x", &proxy_url]);
    assert!(body.is_empty(), "through the proxy: {body}");
    suite.recorded("CONNECT chatgpt.com:443 to a proxy", |e| is(e, "http", "chatgpt"));

    // DNS over HTTPS to a resolver no list knows, by its address: the
    // lookup is hidden, the handshake that follows is not.
    let body = suite.curl_unresolved("https://chatgpt.com/", &doh);
    assert!(body.is_empty(), "after a lookup over DNS over HTTPS: {body}");
    suite.recorded("chatgpt.com looked up over DNS over HTTPS", |e| is(e, "tls", "chatgpt"));

    // A DNS answer any user can send to port 53 blocks nothing.
    assert_eq!(suite.evade(&["forge", SERVER_IP, "chatgpt.com", ALLOWED_IP]), "SENT");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        suite.curl("https://example.org/", &allowed, &[]),
        "internet ok",
        "a forged answer blocked an address"
    );

    // A SYN flood at closed local and remote ports, while curl runs.
    let flood = |address: &str| {
        let args =
            ["timeout", "15", "python3", script_path, "synflood", address, "20000", "20999", "20000", "6"];
        let args = as_user(NOBODY, &args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut command = suite.lab.cmd(&suite.lab.client, &args);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        command
    };
    let floods = [flood("127.0.0.1"), flood(SERVER_IP)];
    let pids: Vec<u32> = floods.into_iter().map(|c| suite.lab.spawn(c)).collect();
    let started = Instant::now();
    let direct = format!("chatgpt.com:443:{SERVER_IP}");
    let mut tries = 0;
    while started.elapsed() < Duration::from_secs(5) && tries < 5 {
        let body = suite.curl("https://chatgpt.com/", &direct, &[]);
        assert!(body.is_empty(), "curl reached chatgpt.com during a SYN flood: {body}");
        suite.recorded("curl during a SYN flood", |e| is(e, "tls", "chatgpt"));
        tries += 1;
    }
    assert!(tries >= 2, "curl ran {tries} times during the flood");
    for pid in pids {
        suite.lab.wait_exit(pid, Duration::from_secs(15));
    }
    assert_eq!(
        suite.curl("https://example.org/", &format!("example.org:443:{SERVER_IP}"), &[]),
        "internet ok"
    );
    let status = agent::request(&suite.lab, AGENT, &socket, "0", "status", "null").unwrap();
    let status: Value = serde_json::from_str(&status).unwrap();
    eprintln!("verdicts after the suite: {}", status["verdicts"]);
    assert!(status["verdicts"]["unreadable"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["verdicts"]["addresses_blocked"], 0, "no answer to a query seen: {status}");
}
