use std::os::unix::net::UnixDatagram;

use serde_json::Value;
use vigie_core::event::Event;

use super::*;
use crate::testing::{event_for, rules, wait_for};

fn events(n: usize) -> Vec<Event> {
    let (catalog, policy) = rules();
    let services = ["chatgpt", "claude", "mistral-api", "deepseek"];
    (0..n)
        .map(|i| {
            let mut event = event_for(
                &catalog,
                &policy,
                services.get(i % services.len()).copied().unwrap_or("chatgpt"),
                Some(1000),
            );
            event.attribution.user = Some("alice".into());
            event.attribution.program = Some("firefox-esr".into());
            event.attribution.program_path = Some("/home/alice/.local/firefox/firefox-esr".into());
            event.attribution.pid = Some(4242 + i as u32);
            event
        })
        .collect()
}

struct Setup {
    dir: tempfile::TempDir,
    database: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("events.db");
        Store::open(&database).unwrap();
        Setup { dir, database }
    }

    fn config(&self, export: &str) -> crate::Config {
        let text = format!("database = {:?}\n[export]\n{export}\n", self.database.display().to_string());
        crate::Config::parse(&text, "agent.toml").unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn store(&self, events: &[Event]) {
        Store::open(&self.database).unwrap().insert(events).unwrap();
    }

    fn states(&self) -> Vec<vigie_core::store::LocalExportState> {
        Store::open(&self.database).unwrap().local_export_states().unwrap()
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// With `VIGIE_SIEM_SAMPLES=<dir>`, what the agent wrote is kept for
/// `tests/siem/validate.sh`.
fn keep_sample(name: &str, lines: &[String]) {
    if let Some(dir) = std::env::var_os("VIGIE_SIEM_SAMPLES") {
        let path = Path::new(&dir).join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn a_file_gets_every_event_once_and_resumes_after_a_failure() {
    let setup = Setup::new();
    let out = setup.dir.path().join("siem/events.ecs.jsonl");
    let config = setup.config(&format!("format = \"ecs\"\nfile = {:?}", out.display().to_string()));
    let mut export = LocalExport::new(config.export.clone(), &config.database, config.state_dir());
    let first = events(3);
    setup.store(&first);
    // Its folder does not exist yet: nothing is lost, the error is kept.
    export.poll();
    assert!(wait_for(|| setup
        .states()
        .iter()
        .any(|s| s.last_error.as_deref().is_some_and(|e| e.contains("siem")))));
    // A write cut short before (a full disk) left half a line.
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, "{\"half\":").unwrap();
    assert!(wait_for(|| lines(&out).len() == 4));
    let written = lines(&out);
    assert_eq!(written.first().map(String::as_str), Some("{\"half\":"), "the fragment ends its own line");
    let ids: Vec<String> = written
        .iter()
        .skip(1)
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, first.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
    let doc: Value = serde_json::from_str(&written[1]).unwrap();
    assert_eq!(doc["user"]["name"], "alice");
    assert_eq!(doc["host"]["name"], crate::fleet::hostname());
    assert_eq!(doc["ecs"]["version"], siem::ECS_VERSION);
    // More events: appended after, none twice, the cursor and count kept.
    let second = events(600);
    setup.store(&second);
    assert!(wait_for(|| lines(&out).len() == 604));
    // The cursor moves right after the write.
    let file_state = || setup.states().into_iter().find(|s| s.name == "file").unwrap();
    assert!(wait_for(|| file_state().written == 603));
    assert_eq!(file_state().last_error, None);
    export.stop();
    keep_sample("agent-ecs.jsonl", &lines(&out)[1..]);
    // Started again (the agent restarted): nothing written twice.
    let mut again = LocalExport::new(config.export.clone(), &config.database, config.state_dir());
    setup.store(&events(1));
    again.poll();
    assert!(wait_for(|| lines(&out).len() == 605));
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(lines(&out).len(), 605);
    again.stop();
}

#[test]
fn the_journal_gets_each_document_with_its_fields() {
    let setup = Setup::new();
    let socket = setup.dir.path().join("journal.socket");
    let journal = UnixDatagram::bind(&socket).unwrap();
    journal.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let config = setup.config("format = \"ocsf\"\njournald = true\npseudonymise = true");
    let mut export =
        LocalExport::with_journal(config.export.clone(), &config.database, config.state_dir(), &socket);
    let sent = events(4);
    setup.store(&sent);
    export.poll();
    let mut entries = Vec::new();
    let mut buffer = vec![0u8; 65_536];
    for _ in 0..sent.len() {
        let n = journal.recv(&mut buffer).unwrap();
        entries.push(String::from_utf8(buffer[..n].to_vec()).unwrap());
    }
    export.stop();
    let mut documents = Vec::new();
    for (entry, event) in entries.iter().zip(&sent) {
        let field = |key: &str| {
            entry
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} in {entry}"))
        };
        assert_eq!(field("SYSLOG_IDENTIFIER"), JOURNAL_IDENTIFIER);
        assert_eq!(field("VIGIE_FORMAT"), "ocsf");
        assert_eq!(field("VIGIE_EVENT_ID"), event.id);
        assert_eq!(field("VIGIE_SERVICE"), event.service_id);
        assert_eq!(field("VIGIE_ACTION"), event.action.as_str());
        let document: Value = serde_json::from_str(field("MESSAGE")).unwrap();
        assert_eq!(document["metadata"]["uid"], event.id.as_str());
        // Pseudonymised: neither the name nor the home folder, nor the uid.
        let text = document.to_string();
        assert!(!text.contains("alice") && !text.contains("\"1000\""), "{text}");
        assert!(document["actor"]["user"]["name"].as_str().is_some_and(|n| n.starts_with("p-")));
        documents.push(field("MESSAGE").to_owned());
    }
    keep_sample("agent-ocsf.jsonl", &documents);
}

#[test]
fn a_journal_field_with_a_newline_is_sent_in_the_binary_form() {
    let row = Row { action: "block".into(), rule_id: "a\nb".into(), ..Row::default() };
    let entry = journal_entry("{}", &row, LineFormat::Ecs);
    let mut expected = b"VIGIE_RULE\n".to_vec();
    expected.extend_from_slice(&3u64.to_le_bytes());
    expected.extend_from_slice(b"a\nb\n");
    assert!(entry.windows(expected.len()).any(|w| w == expected.as_slice()));
    assert!(entry.starts_with(b"MESSAGE={}\n"));
    assert!(entry.windows(11).any(|w| w == b"PRIORITY=4\n"));
}

#[test]
fn sections_that_write_nowhere_or_to_a_relative_path_are_refused() {
    for (section, why) in [
        ("format = \"ecs\"", "writes nowhere"),
        ("format = \"ocsf\"\nfile = \"events.jsonl\"", "absolute path"),
        ("format = \"cef\"\njournald = true", "unknown variant"),
        ("format = \"ecs\"\njournald = true\ncolour = 1", "unknown field"),
    ] {
        let err = crate::Config::parse(&format!("[export]\n{section}\n"), "agent.toml").unwrap_err();
        assert!(format!("{err:#}").contains(why), "{section}: {err:#}");
    }
}

#[test]
fn the_workstation_id_is_derived_from_the_machine_id_not_equal_to_it() {
    let machine = "4f0e5b2b8a6a4d6f9a3c1e2d3c4b5a69";
    let a = app_specific(machine).unwrap();
    assert_eq!(app_specific(machine), Some(a), "stable");
    assert_ne!(a.simple().to_string(), machine);
    assert_eq!(a.get_version_num(), 4);
    assert_eq!(app_specific("not hex"), None);
}
