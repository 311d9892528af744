//! The socket itself: framing, subscriptions, pushes, what `status` counts.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream as StdStream;

use super::*;
use crate::decider::{Decider, Mode, Point};
use crate::platform::fake::Fakes;
use crate::prompts::Prompts;
use crate::rules::Rules;
use crate::sink::{EventSink, Writer};
use crate::testing::{observation, rules};

struct Served {
    runtime: tokio::runtime::Runtime,
    path: std::path::PathBuf,
    decider: Arc<Decider>,
    _writer: Writer,
    policy: Arc<vigie_core::policy::Policy>,
    catalog: Arc<vigie_core::catalog::Catalog>,
    _dir: tempfile::TempDir,
}

fn served() -> Served {
    let (catalog, policy) = rules();
    let (catalog, policy) = (Arc::new(catalog), Arc::new(policy));
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("events.db");
    let store = vigie_core::store::Store::open(&database).unwrap();
    // A real writer: activity is pushed once the rows are stored.
    let fakes = Fakes::default();
    let (sink, writer) = EventSink::start(store, 90, Arc::clone(&fakes.clock) as _).unwrap();
    let prompts = Arc::new(Prompts::new(Arc::clone(&fakes.clock) as _, 1));
    let decider = Arc::new(Decider::new(
        Mode::Enforce,
        prompts,
        sink,
        Arc::clone(&fakes.owners) as _,
        Arc::clone(&fakes.clock) as _,
    ));
    let rules = Arc::new(Rules::new(Arc::clone(&catalog), Arc::clone(&policy)));
    let state = Arc::new(ConsoleState::new(
        rules,
        Arc::clone(&decider),
        Readers::new(database),
        "vigie-admin".into(),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = {
        let _guard = runtime.enter();
        bind(&path).unwrap()
    };
    runtime.spawn(serve(listener, state));
    Served { runtime, path, decider, _writer: writer, policy, catalog, _dir: dir }
}

fn connect(path: &std::path::Path) -> (StdStream, BufReader<StdStream>) {
    let stream = StdStream::connect(path).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn ask(stream: &mut StdStream, reader: &mut BufReader<StdStream>, line: &str) -> Value {
    stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    reader.read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).unwrap()
}

#[test]
fn status_counts_subscribed_consoles_not_itself() {
    let served = served();
    let (mut console, mut console_reader) = connect(&served.path);
    let (mut cli, mut cli_reader) = connect(&served.path);
    let status = ask(&mut cli, &mut cli_reader, r#"{"id":1,"method":"status"}"#);
    assert_eq!(status["result"]["consoles"], json!(0), "{status}");
    let subscribed = ask(&mut console, &mut console_reader, r#"{"id":1,"method":"subscribe"}"#);
    assert_eq!(subscribed["result"]["subscribed"], json!(true));
    let status = ask(&mut cli, &mut cli_reader, r#"{"id":2,"method":"status"}"#);
    assert_eq!(status["result"]["consoles"], json!(1), "{status}");
    drop((console, console_reader));
    let gone = crate::testing::wait_for(|| {
        ask(&mut cli, &mut cli_reader, r#"{"id":3,"method":"status"}"#)["result"]["consoles"] == json!(0)
    });
    assert!(gone, "a console that left is not counted");
    drop(served.runtime);
}

#[test]
fn a_subscribed_console_is_pushed_its_prompts_and_its_activity() {
    let served = served();
    let (mut console, mut reader) = connect(&served.path);
    ask(&mut console, &mut reader, r#"{"id":1,"method":"subscribe"}"#);
    // A block at the verdicts for this test's user: a prompt, then activity.
    let me = rustix_uid();
    let chatgpt = served.catalog.get("chatgpt").unwrap();
    let seen = observation(vigie_core::sensor::Source::Tls, "chatgpt.com");
    let decider = &served.decider;
    let outcome = decider.decide(&served.policy, chatgpt, decider.owners().for_uid(me));
    decider.report(Point::Verdict, &served.policy, &seen, chatgpt, outcome);
    let mut pushes = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let push: Value = serde_json::from_str(&line).unwrap();
        pushes.push(push["push"].as_str().unwrap().to_owned());
    }
    pushes.sort();
    assert_eq!(pushes, ["activity", "prompt"]);
    // Bad lines get an error each and the connection stays.
    let reply = ask(&mut console, &mut reader, r#"{"id":2,"method":"drop-tables"}"#);
    assert_eq!(reply["error"]["code"], json!("unknown-method"));
    let reply = ask(&mut console, &mut reader, r#"{"id":3,"method":"status","params":{"x":1}}"#);
    assert_eq!(reply["error"]["code"], json!("bad-request"));
    let reply = ask(&mut console, &mut reader, "not json");
    assert_eq!(reply["error"]["code"], json!("bad-request"));
    let reply = ask(&mut console, &mut reader, r#"{"id":4,"method":"hello"}"#);
    assert_eq!(reply["result"]["uid"], json!(me));
    drop(served.runtime);
}

/// This process's uid, as the socket will see it.
fn rustix_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{}", std::process::id())).unwrap().uid()
}
