//! The software inventory in the whole daemon: a profile of real manifests
//! and settings (tests/fixtures/inventory), a real HTTP listener answering
//! like Ollama under a process named `ollama`, installs and removals seen
//! through the folder watch, the rights review, prompts and the console
//! request; a restart announces nothing again.

// Test code: a panic here is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vigie_core::event::Event;
use vigie_core::store::Store;
use vigie_daemon::platform::fake::{Fakes, Frames};
use vigie_daemon::Config;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/inventory")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The Continue plugin as the IDE installs it: a jar with its plugin.xml,
/// the version added as the plugin's build adds it.
fn install_jetbrains_plugin(home: &Path) {
    let lib = home.join(".local/share/JetBrains/IntelliJIdea2025.2/continue-intellij-extension/lib");
    std::fs::create_dir_all(&lib).unwrap();
    let xml = std::fs::read_to_string(fixtures().join("continue.plugin.xml")).unwrap();
    let xml =
        xml.replacen("<name>Continue</name>", "<name>Continue</name>\n    <version>1.0.52</version>", 1);
    let file = std::fs::File::create(lib.join("continue-intellij-extension-1.0.52.jar")).unwrap();
    let mut jar = zip::ZipWriter::new(file);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    jar.start_file("META-INF/MANIFEST.MF", options).unwrap();
    jar.write_all(b"Manifest-Version: 1.0\n").unwrap();
    jar.start_file("META-INF/plugin.xml", options).unwrap();
    jar.write_all(xml.as_bytes()).unwrap();
    jar.finish().unwrap();
}

/// A process named `ollama` (argv[0]; Debian's python, whose argv[0] is
/// kept, not a pyenv shim's) that answers Ollama's API on `port`:
/// killed by PID when the test ends, failed or not.
struct FakeOllama(Child);

impl FakeOllama {
    fn start(port: u16) -> Self {
        let tags = std::fs::read_to_string(fixtures().join("replies/ollama-api-tags.json")).unwrap();
        let server = r#"
import http.server, sys
TAGS = sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {"/api/tags": TAGS, "/api/version": b'{"version":"0.12.6"}'}.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body or b"404 page not found")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
        let child = Command::new("bash")
            .arg("-c")
            .arg("exec -a ollama /usr/bin/python3 -c \"$0\" \"$1\" \"$2\"")
            .arg(server)
            .arg(port.to_string())
            .arg(tags)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the fake Ollama did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn config(dir: &Path, home: &Path, port: u16) -> Config {
    let text = format!(
        "database = {:?}\nsocket = {:?}\ninterfaces = [\"fake0\"]\n[inventory]\nhomes = [{:?}]\napplications = []\nprocess_seconds = 1\nmodel_ports = [{port}]\n",
        dir.join("events.db"),
        dir.join("agent.sock"),
        home,
    );
    Config::parse(&text, "agent.toml").unwrap()
}

fn inventory_events(db: &Path) -> Vec<Event> {
    Store::open_reader(db)
        .and_then(|store| store.recent(10_000))
        .map(|events| events.into_iter().filter(|e| e.source == "inventory").collect())
        .unwrap_or_default()
}

/// Waits up to `limit` for an inventory event `check` accepts; how long it took.
fn wait_for(db: &Path, limit: Duration, what: &str, check: impl Fn(&Event) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if inventory_events(db).iter().any(&check) {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}: {:#?}", inventory_events(db));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ask(socket: &Path, method: &str, params: Value) -> Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    writeln!(stream, "{}", json!({"id": 1, "method": method, "params": params})).unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    let reply: Value = serde_json::from_str(&line).unwrap();
    reply.get("result").cloned().unwrap_or_else(|| panic!("{method}: {reply}"))
}

fn has(rows: &Value, kind: &str, key: &str) -> Option<Value> {
    rows.as_array().unwrap().iter().find(|r| r["kind"] == kind && r["key"] == key).cloned()
}

#[test]
fn a_profile_is_inventoried_watched_and_reviewed() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    copy_tree(&fixtures().join("home"), &home);
    install_jetbrains_plugin(&home);
    let port = free_port();
    let _ollama = FakeOllama::start(port);
    let fakes = Fakes::default();
    fakes.capture.sources.lock().unwrap().insert("fake0".into(), Frames::default().then_idle());
    let db = dir.path().join("events.db");
    let socket = dir.path().join("agent.sock");
    let daemon = vigie_daemon::start(config(dir.path(), &home, port), fakes.platform()).unwrap();
    let stop = daemon.stop_flag();
    let running = std::thread::spawn(move || daemon.run());

    // The first look: everything in the profile, and what runs.
    wait_for(&db, Duration::from_secs(20), "the local server", |e| e.protocol == "local-server");
    let rows = ask(&socket, "inventory", Value::Null);
    let expected = [
        ("browser-extension", "jgjaeacdkonaoafenlfkkkmbaopkbilf", Some("chatgpt")),
        ("browser-extension", "ekkkmnbhbmbdkhmcbdkgbeikpgaknkkb", None),
        ("browser-extension", "ihmgiclibbndffejedjimfjmfoabpcke", None),
        ("browser-extension", "{b764208e-0a98-436d-a599-c1baa044f829}", None),
        ("browser-extension", "87677a2c52b84ad3a151a4a72f5bd3c4@jetpack", Some("grammarly")),
        ("editor-extension", "continue.continue", Some("continue")),
        ("editor-extension", "saoudrizwan.claude-dev", Some("cline")),
        ("editor-extension", "rooveterinaryinc.roo-cline", Some("roo-code")),
        ("jetbrains-plugin", "com.github.continuedev.continueintellijextension", Some("continue")),
        ("desktop-app", "cursor", Some("cursor")),
        ("desktop-app", "io.gpt4all.gpt4all", Some("gpt4all")),
        ("desktop-app", "lm-studio", Some("lm-studio")),
        ("cli-agent", "claude-code", Some("anthropic-api")),
        ("cli-agent", "codex", Some("openai-api")),
        ("cli-agent", "gemini-cli", Some("gemini-api")),
        ("mcp-server", "filesystem", Some("claude")),
        ("mcp-server", "Perplexity", Some("github-copilot")),
        ("mcp-server", "figma", Some("openai-api")),
        ("program", "ollama", Some("ollama")),
        ("local-server", &format!("127.0.0.1:{port}"), Some("ollama")),
    ];
    for (kind, key, service) in expected {
        let row = has(&rows, kind, key).unwrap_or_else(|| panic!("{kind} {key} not found in {rows:#}"));
        assert_eq!(row["service_id"].as_str(), service, "{row}");
    }
    // Not AI: left out.
    for key in ["cjpalhdlnbpafiamejdnhcphjbkeiagm", "ms-python.python", "sharpcuts@example.org"] {
        assert!(rows.as_array().unwrap().iter().all(|r| r["key"] != key), "{key} is not AI software");
    }
    let plugin = has(&rows, "jetbrains-plugin", "com.github.continuedev.continueintellijextension").unwrap();
    assert_eq!(plugin["version"], "1.0.52", "read from the jar");
    let server = has(&rows, "local-server", &format!("127.0.0.1:{port}")).unwrap();
    assert_eq!(server["local"], true);
    assert_eq!(server["version"], "0.12.6");
    let rights: Vec<&str> =
        server["rights"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(rights.contains(&"api:ollama") && rights.iter().any(|r| r.starts_with("model:")), "{rights:?}");
    let cline = has(&rows, "editor-extension", "saoudrizwan.claude-dev").unwrap();
    assert_eq!(
        cline["path"], "~/.vscode/extensions/saoudrizwan.claude-dev-3.37.1",
        "paths relative to the home"
    );
    assert!(cline["rights"].as_array().unwrap().contains(&json!("auto-approve:all-tools")), "{cline}");
    // Never a secret: the fixture's tokens, passwords and connection strings.
    let everything = format!("{rows}{:?}", inventory_events(&db));
    for secret in ["hunter2", "ghp_notarealtoken", "secret@db", "HEADER_VALUE", "your-api-token"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    // The first look is the workstation's baseline: recorded, no prompt.
    let prompts = ask(&socket, "prompts", Value::Null);
    assert_eq!(prompts, json!([]), "the baseline prompts nobody");

    // An extension installed while the agent runs is seen within seconds.
    let sider =
        home.join(".config/google-chrome/Default/Extensions/difoiogjjojoaoomphldepapgpbgkhkb/4.10.0_0");
    std::fs::create_dir_all(&sider).unwrap();
    std::fs::write(
        sider.join("manifest.json"),
        r#"{"manifest_version":3,"name":"Sider","version":"4.10.0","permissions":["clipboardRead","tabs"],"host_permissions":["<all_urls>"]}"#,
    )
    .unwrap();
    let installed = wait_for(&db, Duration::from_secs(10), "the new extension", |e| {
        e.name == "difoiogjjojoaoomphldepapgpbgkhkb"
            && e.rule_id == "inventory:installed"
            && e.service_id == "sider"
    });
    // The bundled policy warns about browser extensions: the user is told.
    let prompts = ask(&socket, "prompts", Value::Null);
    assert!(
        prompts.as_array().unwrap().iter().any(|p| p["software"]["kind"] == "browser-extension"
            && p["software"]["change"] == "installed"
            && p["service_id"] == "sider"
            && p["action"] == "warn"),
        "{prompts:#}"
    );
    // More rights given to an assistant is an event of its own.
    let settings = home.join(".config/Code/User/settings.json");
    let text = std::fs::read_to_string(&settings).unwrap().replace("\"rm\": false", "\"git push\": true");
    std::fs::write(&settings, text).unwrap();
    let widened = wait_for(&db, Duration::from_secs(10), "the rights change", |e| {
        e.rule_id == "inventory:rights-changed" && e.name == "saoudrizwan.claude-dev"
    });
    // And a removal.
    std::fs::remove_dir_all(sider.parent().unwrap()).unwrap();
    let removed = wait_for(&db, Duration::from_secs(10), "the removal", |e| {
        e.name == "difoiogjjojoaoomphldepapgpbgkhkb" && e.rule_id == "inventory:removed"
    });
    println!("seen after: install {installed:?}, rights {widened:?}, removal {removed:?}");
    assert!(installed < Duration::from_secs(5) && removed < Duration::from_secs(5), "within seconds");

    stop.store(true, Ordering::Relaxed);
    running.join().unwrap().unwrap();
    let before = inventory_events(&db).len();

    // A restart announces nothing that was already known.
    let fakes = Fakes::default();
    fakes.capture.sources.lock().unwrap().insert("fake0".into(), Frames::default().then_idle());
    let daemon = vigie_daemon::start(config(dir.path(), &home, port), fakes.platform()).unwrap();
    let stop = daemon.stop_flag();
    let running = std::thread::spawn(move || daemon.run());
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    running.join().unwrap().unwrap();
    let after = inventory_events(&db);
    assert_eq!(after.len(), before, "new events after a restart: {:#?}", &after[before..]);
}
