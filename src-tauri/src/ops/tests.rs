//! The commands' logic against a fake agent that answers from a real
//! in-memory store, and refuses what the real agent refuses a non-admin.

use std::sync::Mutex;

use serde_json::{json, Value};
use vigie_core::event::{Attribution, Event};
use vigie_core::policy::Action;
use vigie_core::proto::{AnswerParams, EventQuery};
use vigie_core::store::Store;

use super::*;
use crate::client::AgentClient;

struct FakeAgent {
    store: Mutex<Store>,
    admin: bool,
    calls: Mutex<Vec<(String, Value)>>,
}

impl FakeAgent {
    fn new(events: usize, admin: bool) -> Self {
        let mut store = Store::open_in_memory().unwrap();
        let events: Vec<Event> = (0..events).map(event).collect();
        store.insert(&events).unwrap();
        Self { store: Mutex::new(store), admin, calls: Mutex::default() }
    }
}

fn event(i: usize) -> Event {
    Event {
        id: format!("e{i:06}"),
        ts: 1_795_814_867_000_000 + i as i64,
        source: "dns".into(),
        name: if i == 0 { "=cmd|' /C calc'!A0".into() } else { "chatgpt.com".into() },
        service_id: "chatgpt".into(),
        service_name: "ChatGPT".into(),
        category: "chat".into(),
        vendor: "OpenAI".into(),
        action: Action::Block,
        rule_id: "block-chat".into(),
        policy_version: "1".into(),
        protocol: "udp".into(),
        src: "127.0.0.1:5353".into(),
        dst: "127.0.0.153:53".into(),
        ech: false,
        attribution: Attribution {
            pid: Some(7),
            program: Some("fire,fox".into()),
            program_path: None,
            uid: Some(if i % 2 == 0 { 1000 } else { 1001 }),
            user: Some("alice".into()),
        },
        repeats: 1,
        content_hash: None,
    }
}

fn failure(code: &str, message: &str) -> CommandError {
    let kind = match code {
        "forbidden" => ErrorKind::Forbidden,
        _ => ErrorKind::BadRequest,
    };
    CommandError { kind, message: message.into() }
}

impl AgentClient for FakeAgent {
    async fn request(&self, method: &str, params: Value) -> Result<Value, CommandError> {
        self.calls.lock().unwrap().push((method.to_owned(), params.clone()));
        let store = self.store.lock().unwrap();
        match method {
            "search" => {
                let mut query: EventQuery = serde_json::from_value(params).unwrap();
                if !self.admin {
                    query.uid = Some(1000);
                }
                Ok(json!(store.search(&query).map_err(|e| failure("bad-request", &e.to_string()))?))
            }
            "stats" if !self.admin => Err(failure("forbidden", "admins only")),
            "answer" => {
                let answer: AnswerParams = serde_json::from_value(params).unwrap();
                if answer.justification.as_deref().is_some_and(|j| j.len() < 20) {
                    return Err(failure(
                        "bad-request",
                        "a justification of at least 20 characters is required",
                    ));
                }
                Err(failure("bad-request", "no open prompt"))
            }
            _ => Err(failure("unknown-method", method)),
        }
    }
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vigie-export-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

#[tokio::test]
async fn my_events_asks_for_my_uid_only() {
    let agent = FakeAgent::new(10, true);
    let page = my_events(&agent, 1001, 0, 100).await.unwrap();
    assert_eq!(page.total, 5);
    assert!(page.events.iter().all(|e| e.attribution.uid == Some(1001)));
    assert_eq!(agent.calls.lock().unwrap()[0].1["uid"], 1001);
}

#[tokio::test]
async fn agent_refusals_reach_the_ui_as_kinds() {
    let agent = FakeAgent::new(10, false);
    let error = event_stats(&agent, &EventQuery::default()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Forbidden);
    let short = AnswerParams { prompt: 1, justification: Some("because".into()), exception: None };
    let error = answer_prompt(&agent, &short).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadRequest);
    assert!(error.message.contains("20 characters"));
}

#[tokio::test]
async fn csv_export_pages_through_every_matching_event() {
    let agent = FakeAgent::new(25_001, true);
    let dir = temp_dir();
    let now = 1_795_814_867_000_000 + 6_000_000;
    let result = export_events(&agent, &EventQuery::default(), ExportFormat::Csv, &dir, now).await.unwrap();
    assert_eq!(result.count, 25_001);
    let text = std::fs::read_to_string(&result.path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 25_002);
    assert!(lines[0].starts_with("id,time,ts_us,"));
    // Newest first, quoted where needed, formulas defused.
    assert!(lines[1].starts_with("e025000,2026-11-27T21:27:"), "{}", lines[1]);
    assert!(lines[1].contains(",\"fire,fox\","));
    assert!(lines[25_001].contains(",'=cmd|' /C calc'!A0,"), "{}", lines[25_001]);
    // Three pages of at most 10,000, with the time range frozen.
    let calls = agent.calls.lock().unwrap();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|(_, params)| params["to"] == now - 5_000_000 && params["limit"] == 10_000));
    assert!(!std::path::Path::new(&format!("{}.part", result.path)).exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn json_export_is_an_array_of_events_and_names_do_not_collide() {
    let agent = FakeAgent::new(12, false);
    let dir = temp_dir();
    let now = 1_795_814_867_000_000 + 6_000_000;
    let first = export_events(&agent, &EventQuery::default(), ExportFormat::Json, &dir, now).await.unwrap();
    let second = export_events(&agent, &EventQuery::default(), ExportFormat::Json, &dir, now).await.unwrap();
    assert_ne!(first.path, second.path);
    let events: Vec<Event> = serde_json::from_str(&std::fs::read_to_string(&first.path).unwrap()).unwrap();
    assert_eq!(events.len(), 6, "a user exports only what the agent lets them read");
    assert_eq!(first.count, 6);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_failed_export_leaves_no_file() {
    let agent = FakeAgent::new(3, true);
    let dir = temp_dir();
    let bad = EventQuery { from: Some(10), to: Some(5), ..EventQuery::default() };
    let error = export_events(&agent, &bad, ExportFormat::Csv, &dir, 100).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadRequest);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(dir);
}
