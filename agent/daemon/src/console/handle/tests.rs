use std::sync::Arc;

use vigie_core::clipboard::ActiveWindow;
use vigie_core::detect::DetectorId;
use vigie_core::proto::{
    AnswerParams, ClipboardReport, EventQuery, InventoryParams, JournalParams, ListParams,
};

use super::*;
use crate::decider::Mode;
use crate::testing::{event_for, rules, TestDecider};

fn peer(uid: u32, admin: bool) -> Peer {
    Peer { uid, pid: None, user: Some(format!("user{uid}")), admin }
}

/// One request of each method, asking about `uid`'s records where the
/// method takes a uid.
fn requests_about(uid: Option<u32>) -> Vec<Request> {
    let list = ListParams { uid, ..ListParams::default() };
    let query = EventQuery { uid, ..EventQuery::default() };
    let report = ClipboardReport {
        detectors: [(DetectorId::Nir, 1)].into_iter().collect(),
        window: ActiveWindow { title: "ChatGPT".into(), pid: None, program: None },
        content_hash: "0123456789abcdef".into(),
        display: "x11".into(),
    };
    let requests = vec![
        Request::Hello,
        Request::Status,
        Request::Subscribe,
        Request::Prompts,
        Request::Answer(AnswerParams { prompt: 1, ..AnswerParams::default() }),
        Request::Events(list.clone()),
        Request::Answers(list.clone()),
        Request::Aggregates,
        Request::Journal(JournalParams::default()),
        Request::Search(query.clone()),
        Request::Stats(query),
        Request::Facets,
        Request::Clipboard(report),
        Request::Policy,
        Request::Catalog,
        Request::Inventory(InventoryParams { uid }),
    ];
    let methods: Vec<&str> = requests.iter().map(Request::method).collect();
    assert_eq!(methods, Request::METHODS, "every method is in the table");
    requests
}

/// Who may call what, for every method: a user about themselves, a user
/// about another user, an administrator, root. `Ok(Some(uid))` is the
/// scope the request is narrowed to.
#[test]
fn authorisation_of_every_method_for_every_kind_of_caller() {
    let alice = peer(1000, false);
    let admin = peer(1002, true);
    let root = peer(0, true);
    let scope = |request: &Request| match request {
        Request::Events(p) | Request::Answers(p) => Some(p.uid),
        Request::Search(q) => Some(q.uid),
        Request::Inventory(p) => Some(p.uid),
        _ => None,
    };
    let admin_only = ["aggregates", "journal", "stats", "facets"];
    let scoped = ["events", "answers", "search", "inventory"];
    for request in requests_about(None) {
        let method = request.method();
        // A user asking without a uid: narrowed to themselves, or refused.
        match authorize(&alice, request.clone()) {
            Ok(narrowed) if scoped.contains(&method) => {
                assert_eq!(scope(&narrowed), Some(Some(1000)), "{method}");
            }
            Ok(_) => assert!(!admin_only.contains(&method), "{method} is the security team's"),
            Err(failure) => {
                assert!(admin_only.contains(&method), "{method}: {failure:?}");
                assert_eq!(failure.code, "forbidden");
            }
        }
        // Administrators and root: everything, every user's.
        for caller in [&admin, &root] {
            let narrowed = authorize(caller, request.clone()).unwrap();
            assert_eq!(scope(&narrowed).flatten(), None, "{method}: all users");
        }
    }
    for request in requests_about(Some(1000)) {
        let method = request.method();
        let own = authorize(&alice, request.clone());
        assert_eq!(own.is_ok(), !admin_only.contains(&method), "{method}: about herself");
        let other = authorize(&peer(1001, false), request.clone());
        let refused = scoped.contains(&method) || admin_only.contains(&method);
        assert_eq!(other.is_err(), refused, "{method}: about someone else");
        let narrowed = authorize(&admin, request).unwrap();
        if scoped.contains(&method) {
            assert_eq!(scope(&narrowed), Some(Some(1000)), "{method}: an administrator picks the user");
        }
    }
}

struct Console {
    state: ConsoleState,
    test: TestDecider,
    dir: tempfile::TempDir,
}

/// A console state over a real store holding a ChatGPT event of user 1000
/// and a Claude event of user 1001.
fn console() -> Console {
    let (catalog, policy) = rules();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let mut store = Store::open(&path).unwrap();
    let events = [
        event_for(&catalog, &policy, "chatgpt", Some(1000)),
        event_for(&catalog, &policy, "claude", Some(1001)),
    ];
    store.insert(&events).unwrap();
    let mut owners = crate::platform::fake::FakeOwners::default();
    owners.programs.insert(std::process::id(), ("vigie-test".into(), "/usr/bin/vigie-test".into()));
    let fakes = crate::platform::fake::Fakes { owners: Arc::new(owners), ..Default::default() };
    let test = TestDecider::with_fakes(Mode::Enforce, fakes);
    let rules = Arc::new(Rules::new(Arc::new(catalog), Arc::new(policy)));
    let state = ConsoleState::new(rules, Arc::clone(&test.decider), Readers::new(path), "vigie-admin".into());
    Console { state, test, dir }
}

#[test]
fn a_user_reads_only_their_own_events() {
    let console = console();
    let alice = peer(1000, false);
    let events = handle(&console.state, &alice, Request::Events(ListParams::default())).unwrap();
    let uids: Vec<_> = events.as_array().unwrap().iter().map(|e| e["uid"].clone()).collect();
    assert_eq!(uids, [json!(1000)]);
    let all = handle(&console.state, &peer(0, true), Request::Events(ListParams::default())).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let found = handle(&console.state, &alice, Request::Search(EventQuery::default())).unwrap();
    assert_eq!(found["total"], json!(1), "{found}");
    let refused = handle(&console.state, &alice, Request::Facets).unwrap_err();
    assert_eq!(refused.code, "forbidden");
}

#[test]
fn a_user_reads_only_their_own_ai_software() {
    let console = console();
    let item = |uid: Option<u32>, key: &str| vigie_core::inventory::Item {
        kind: vigie_core::inventory::Kind::BrowserExtension,
        host: "firefox".into(),
        key: key.into(),
        name: key.into(),
        version: None,
        uid,
        user: None,
        path: "~/.mozilla".into(),
        service_id: None,
        local: false,
        rights: vec!["all-sites".into()],
    };
    let mut store = Store::open(&console.dir.path().join("events.db")).unwrap();
    store
        .replace_inventory(&[item(Some(1000), "mine"), item(Some(1001), "theirs"), item(None, "system")], 1)
        .unwrap();
    let keys = |value: Value| -> Vec<String> {
        value.as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap().to_owned()).collect()
    };
    let alice = peer(1000, false);
    let own = handle(&console.state, &alice, Request::Inventory(InventoryParams::default())).unwrap();
    assert_eq!(own[0]["broad"], json!(["all-sites"]), "the agent says which rights are broad");
    assert_eq!(keys(own), ["mine"]);
    let other = handle(&console.state, &alice, Request::Inventory(InventoryParams { uid: Some(1001) }));
    assert_eq!(other.unwrap_err().code, "forbidden");
    let all = handle(&console.state, &peer(0, true), Request::Inventory(InventoryParams::default())).unwrap();
    assert_eq!(keys(all), ["system", "mine", "theirs"]);
    let status = handle(&console.state, &alice, Request::Status).unwrap();
    assert_eq!(status["inventory"]["finds"], json!(3));
    assert_eq!(status["inventory"]["kinds"], json!({ "browser-extension": 3 }));
}

#[test]
fn readers_are_opened_once_and_never_migrate() {
    let console = console();
    for _ in 0..10 {
        handle(&console.state, &peer(0, true), Request::Facets).unwrap();
    }
    assert_eq!(console.state.readers.idle.lock().unwrap().len(), 1, "one connection, reused");
    // A store no writer migrated is refused, not created.
    let missing = Readers::new(console.dir.path().join("none.db"));
    assert!(missing.with(Store::facets).is_err());
    assert!(!console.dir.path().join("none.db").exists());
}

#[test]
fn the_status_says_the_mode_and_the_policy() {
    let console = console();
    let status = handle(&console.state, &peer(1000, false), Request::Status).unwrap();
    assert_eq!(status["consoles"], json!(0));
    assert_eq!(status["mode"], json!("enforce"));
    assert_eq!(status["policy"]["name"], json!("Vigie R34 baseline"));
    assert_eq!(status["inventory"], json!({ "enabled": true, "finds": 0, "kinds": {}, "last_change": null }));
}

#[test]
fn a_wayland_window_names_its_destination_by_the_users_own_recent_flows() {
    let console = console();
    // A Wayland console knows the app id, not the pid; the user's own
    // recent flows (from the store) tie it to a service.
    let alice = peer(1000, false);
    let mut store = Store::open(&console.dir.path().join("events.db")).unwrap();
    let (catalog, policy) = rules();
    let mut recent = event_for(&catalog, &policy, "claude", Some(1000));
    recent.ts = console.state.decider.clock().wall_micros();
    recent.attribution.program = Some("firefox-esr".into());
    store.insert(&[recent]).unwrap();
    let report = ClipboardReport {
        detectors: [(DetectorId::Email, 1)].into_iter().collect(),
        window: ActiveWindow { title: "Résumé".into(), pid: None, program: Some("firefox-esr".into()) },
        content_hash: "0123456789abcdef".into(),
        display: "wayland".into(),
    };
    let outcome = handle(&console.state, &alice, Request::Clipboard(report.clone())).unwrap();
    assert_eq!(outcome["service_id"], json!("claude"), "{outcome}");
    let event = console.test.events().pop().unwrap();
    assert_eq!(event.attribution.program, None, "the console's word is not stored");
    // Another user's flows say nothing about this user's window.
    let bob = peer(1001, false);
    let outcome = handle(&console.state, &bob, Request::Clipboard(report)).unwrap();
    assert_eq!(outcome["service_id"], Value::Null, "{outcome}");
}

#[test]
fn the_clipboard_program_comes_from_the_agent_not_the_console() {
    use std::os::unix::fs::MetadataExt;
    let console = console();
    let me = std::process::id();
    let my_uid = std::fs::metadata(format!("/proc/{me}")).unwrap().uid();
    let report = ClipboardReport {
        detectors: [(DetectorId::AwsAccessKey, 1)].into_iter().collect(),
        window: ActiveWindow {
            title: "ChatGPT - Chromium".into(),
            pid: Some(me),
            program: Some("firefox".into()),
        },
        content_hash: "0123456789abcdef".into(),
        display: "x11".into(),
    };
    // Another user naming this test's process: neither its pid nor the
    // console's word for the program is kept.
    let stranger = peer(my_uid.wrapping_add(4242), false);
    let outcome = handle(&console.state, &stranger, Request::Clipboard(report.clone())).unwrap();
    assert_eq!(outcome["service_id"], json!("chatgpt"), "{outcome}");
    let event = console.test.events().pop().unwrap();
    assert_eq!((event.attribution.pid, event.attribution.program.as_deref()), (None, None));
    assert_eq!(event.attribution.uid, Some(my_uid.wrapping_add(4242)));
    // Its owner: the agent's own lookup names the program.
    handle(&console.state, &peer(my_uid, false), Request::Clipboard(report)).unwrap();
    let event = console.test.events().pop().unwrap();
    assert_eq!(event.attribution.pid, Some(me));
    assert_eq!(event.attribution.program.as_deref(), Some("vigie-test"), "never the console's claim");
}

/// The socket asks `ConsoleState::peer` again for every request: a change
/// of the admin group shows at once in what that peer may do (the accounts
/// themselves are re-read at most once a minute).
#[test]
fn leaving_the_admin_group_takes_effect_on_the_next_request() {
    let console = console();
    let passwd = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    console.state.set_accounts(crate::accounts::Accounts::parse(passwd, "vigie-admin:x:990:alice\n"));
    let before = console.state.peer(1000, None);
    assert!(before.admin);
    assert!(handle(&console.state, &before, Request::Journal(JournalParams::default())).is_ok());
    console.state.set_accounts(crate::accounts::Accounts::parse(passwd, "vigie-admin:x:990:\n"));
    let after = console.state.peer(1000, None);
    assert!(!after.admin);
    let refused = handle(&console.state, &after, Request::Journal(JournalParams::default())).unwrap_err();
    assert_eq!(refused.code, "forbidden");
}
