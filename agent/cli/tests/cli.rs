//! `vigie-agent` as a user runs it.

// Test code: a panic here is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/pcap").join(name)
}

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigie-agent")).args(args).output().unwrap()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigie-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn scan_prints_decisions_and_a_summary() {
    let out = agent(&["scan", fixture("curl-tls.pcap").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.contains(" chatgpt.com ")).unwrap();
    for field in ["tls", "chatgpt", "block", "block-trains-on-inputs", "tcp 10.203.0.1:"] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    let decoy = text.lines().find(|l| l.contains(" notclaude.ai ")).unwrap();
    assert!(decoy.contains(" - "), "{decoy}");
    assert!(text.contains("frames, 8 observations"), "{text}");
}

/// The keys of a JSON object, in order, repeats included (a map type
/// would keep only one of them).
fn top_level_keys(line: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            deserializer.deserialize_map(Visitor)
        }
    }
    serde_json::from_str::<Keys>(line).unwrap().0
}

#[test]
fn scan_json_lines_and_store() {
    let dir = temp_dir("json");
    let db = dir.join("events.db");
    let out = agent(&[
        "scan",
        fixture("chromium-quic.pcap").to_str().unwrap(),
        "--json",
        "--db",
        db.to_str().unwrap(),
        "--retention-days",
        "36500",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines() {
        let keys = top_level_keys(line);
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(keys.len(), unique.len(), "duplicate keys in {line}");
    }
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let first = &lines[0];
    assert!(first["time"].as_str().unwrap().ends_with('Z'), "{first}");
    let micros = first["ts"].as_i64().unwrap();
    assert!(first["time"].as_str().unwrap().contains(&format!(".{:06}Z", micros % 1_000_000)), "{first}");
    let quic: Vec<_> = lines.iter().filter(|l| l["source"] == "quic").collect();
    assert!(quic
        .iter()
        .any(|l| l["name"] == "chatgpt.com" && l["service"]["id"] == "chatgpt" && l["action"] == "block"));
    assert!(quic.iter().any(|l| l["name"] == "gemini.com" && l["service"].is_null()));
    let summary = &lines.last().unwrap()["summary"];
    let genai = summary["genai_observations"].as_u64().unwrap();
    assert_eq!(summary["stored_events"].as_u64(), Some(genai));
    let store = vigie_core::store::Store::open(&db).unwrap();
    assert_eq!(store.count().unwrap(), genai);
    let events = store.recent(100).unwrap();
    assert!(events.iter().all(|e| !e.id.is_empty() && e.rule_id == "block-trains-on-inputs"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = temp_dir("bad");
    let missing = agent(&["scan", "/nonexistent/x.pcap"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/x.pcap: No such file"));

    let text = dir.join("notes.txt");
    std::fs::write(&text, "this is not a capture at all").unwrap();
    let out = agent(&["scan", text.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pcap or pcapng capture"), "{out:?}");

    let bytes = std::fs::read(fixture("curl-tls.pcap")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let out = agent(&["scan", cut.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("capture truncated after"), "{out:?}");
    // What was read before the damage is still reported.
    assert!(String::from_utf8_lossy(&out.stdout).contains("chatgpt.com"));

    let mut wifi = bytes[..24].to_vec();
    wifi[20..24].copy_from_slice(&105u32.to_le_bytes()); // IEEE 802.11
    let wifi_path = dir.join("wifi.pcap");
    std::fs::write(&wifi_path, &wifi).unwrap();
    let out = agent(&["scan", wifi_path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported link type 105"), "{out:?}");

    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "format = 1\nname = \"x\"\n[[rule]]\nid = 3\n").unwrap();
    let out =
        agent(&["scan", fixture("curl-tls.pcap").to_str().unwrap(), "--policy", policy.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("policy rejected") && err.contains("policy.toml:4:6"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_policy_and_lookup() {
    for file in ["default.toml", "monitor-only.toml", "strict.toml"] {
        let out = agent(&["check-policy", repo().join("policies").join(file).to_str().unwrap()]);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = agent(&["lookup", "CHATGPT.COM.", "gemini.com"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("CHATGPT.COM.: ChatGPT (OpenAI"), "{text}");
    assert!(text.contains("gemini.com: not a catalogued GenAI service"), "{text}");
}

#[test]
fn log_lines_have_no_colours_off_a_terminal() {
    let dir = temp_dir("log");
    let config = dir.join("agent.toml");
    std::fs::write(&config, "").unwrap();
    // Logs that the rules loaded, then stops: the database cannot be created.
    let out = Command::new(env!("CARGO_BIN_EXE_vigie-agent"))
        .args(["run", "--config", config.to_str().unwrap(), "--db", "/dev/null/events.db"])
        .env("VIGIE_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("INFO") && err.contains("rules loaded"), "nothing logged: {err}");
    assert!(!err.contains("\x1b["), "colour codes in a pipe: {err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scan_stops_quietly_when_its_reader_goes_away() {
    // Far more output (about 0.5 MB) than a pipe holds, so the scan still
    // has lines to write when the reader leaves, as with `scan … | head -n 1`.
    let dir = temp_dir("pipe");
    let bytes = std::fs::read(fixture("chromium-quic.pcap")).unwrap();
    let mut capture = bytes.clone();
    for _ in 0..50 {
        capture.extend_from_slice(&bytes[24..]); // the records again, after the file header
    }
    let path = dir.join("long.pcap");
    std::fs::write(&path, &capture).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigie-agent"))
        .args(["scan", path.to_str().unwrap(), "--answers"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.contains(" dns "), "{line}");
    drop(stdout);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(10) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the scan went on after its reader left");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.is_empty(), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_policy_says_each_cause_once_and_every_mistake() {
    let dir = temp_dir("check");
    let missing = dir.join("missing.toml");
    let out = agent(&["check-policy", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    let path = dir.join("bad.toml");
    let bundled = std::fs::read_to_string(repo().join("policies/default.toml")).unwrap();
    std::fs::write(&path, bundled.replacen("[[rule]]", "[[rule]]\nservice = [\"x\"]", 1)).unwrap();
    let out = agent(&["check-policy", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("unknown field `service`").count(), 1, "{err}");

    // Two mistakes of different kinds, both reported in one run.
    let policy = format!(
        "{bundled}\n[[rule]]\nid = \"extra\"\naction = \"block\"\ncategories = [\"chatbot\"]\nservices = [\"no-such-service\"]\n"
    );
    std::fs::write(&path, &policy).unwrap();
    let line = policy.lines().position(|l| l.starts_with("categories = [\"chatbot\"]")).unwrap() + 1;
    let out = agent(&["check-policy", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let path = path.display();
    for mistake in [
        format!("{path}:{line}:15: unknown variant `chatbot`"),
        format!("{path}:{}:13: unknown service `no-such-service`", line + 1),
    ] {
        assert_eq!(err.matches(&mistake).count(), 1, "{mistake}\n{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
