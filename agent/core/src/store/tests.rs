use super::*;

fn event(id: &str, ts: Micros, service: &str, action: Action) -> Event {
    Event {
        id: id.to_owned(),
        ts,
        source: "tls".into(),
        name: format!("{service}.example"),
        service_id: service.into(),
        service_name: service.into(),
        category: "chat".into(),
        vendor: "V".into(),
        action,
        rule_id: "r".into(),
        policy_version: "1".into(),
        protocol: "tcp".into(),
        src: "10.0.0.1:1234".into(),
        dst: "10.0.0.2:443".into(),
        ech: false,
        attribution: Attribution { pid: Some(42), user: Some("alice".into()), ..Attribution::default() },
        repeats: 1,
    }
}

#[test]
fn round_trip_and_idempotent_ids() {
    let mut store = Store::open_in_memory().unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let a = event("a", 10, "chatgpt", Action::Block);
    let b = event("b", 20, "claude", Action::Warn);
    store.insert(&[a.clone(), b.clone()]).unwrap();
    store.insert(std::slice::from_ref(&a)).unwrap();
    assert_eq!(store.count().unwrap(), 2);
    assert_eq!(store.recent(10).unwrap(), vec![b, a]);
    let counts = store.counts_by_service().unwrap();
    assert_eq!(counts.len(), 2);
}

#[test]
fn retention_deletes_only_old_events() {
    let mut store = Store::open_in_memory().unwrap();
    let day = 86_400_000_000;
    store
        .insert(&[event("old", 0, "x", Action::Monitor), event("new", 40 * day, "x", Action::Monitor)])
        .unwrap();
    assert_eq!(store.apply_retention(41 * day, 30).unwrap(), 1);
    assert_eq!(store.recent(5).unwrap().len(), 1);
}

#[test]
fn reopening_a_file_keeps_events_and_schema() {
    let dir = std::env::temp_dir().join(format!("vigie-store-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.db");
    {
        let mut store = Store::open(&path).unwrap();
        store.insert(&[event("a", 1, "x", Action::Block)]).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.count().unwrap(), 1);
    drop(store);
    // A schema from a newer agent is refused, not modified.
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(Store::open(&path), Err(StoreError::TooNew { found: 99, .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn events_filter_by_user_and_page_back_in_time() {
    let mut store = Store::open_in_memory().unwrap();
    let mut mine = event("a", 10, "chatgpt", Action::Block);
    mine.attribution.uid = Some(1000);
    let mut theirs = event("b", 20, "claude", Action::Warn);
    theirs.attribution.uid = Some(1001);
    let mut later = event("c", 30, "claude", Action::Warn);
    later.attribution.uid = Some(1000);
    store.insert(&[mine.clone(), theirs.clone(), later.clone()]).unwrap();
    let filter = |uid, before| store.events(&EventFilter { uid, before, limit: 10 }).unwrap();
    assert_eq!(filter(Some(1000), None), vec![later.clone(), mine.clone()]);
    assert_eq!(filter(Some(1000), Some(30)), vec![mine]);
    assert_eq!(filter(None, None).len(), 3);
    assert_eq!(filter(Some(7), None), vec![]);
}

#[test]
fn journal_and_answers_round_trip() {
    let mut store = Store::open_in_memory().unwrap();
    let entry = |ts, kind: &str| JournalEntry { ts, kind: kind.into(), detail: "d".into() };
    store.append_journal(&[entry(1, "started"), entry(2, "stopped")]).unwrap();
    assert_eq!(store.journal(10).unwrap(), vec![entry(2, "stopped"), entry(1, "started")]);
    let answer = |uid, kind: &str| Answer {
        ts: 5,
        uid,
        user: None,
        service_id: "claude".into(),
        action: Action::Coach,
        event_id: "e".into(),
        kind: kind.into(),
        text: Some("Relecture d'un texte public".into()),
        bypass_until: Some(99),
    };
    store.insert_answers(&[answer(Some(1000), "justified"), answer(Some(1001), "acknowledged")]).unwrap();
    assert_eq!(store.answers(Some(1000), 10).unwrap(), vec![answer(Some(1000), "justified")]);
    assert_eq!(store.answers(None, 10).unwrap().len(), 2);
}

#[test]
fn a_version_1_store_is_migrated_in_place() {
    let dir = std::env::temp_dir().join(format!("vigie-migrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    {
        let conn = Connection::open(&path).unwrap();
        let old =
            "INSERT INTO events (id, ts, source, name, service_id, service_name, category, vendor, action,
            rule_id, policy_version, protocol, src, dst, ech) VALUES ('old', 1, 'dns', 'claude.ai', 'claude',
            'Claude', 'chat', 'Anthropic', 'block', 'r', '1', 'udp', 'a', 'b', 0)";
        conn.execute_batch(old).unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let mut repeated = event("a", 2, "chatgpt", Action::Block);
    repeated.repeats = 7;
    store.insert(&[repeated]).unwrap();
    let events = store.recent(10).unwrap();
    let repeats: Vec<(&str, u32)> = events.iter().map(|e| (e.id.as_str(), e.repeats)).collect();
    assert_eq!(repeats, vec![("a", 7), ("old", 1)], "an event stored before repeats counts once");
    std::fs::remove_dir_all(&dir).unwrap();
}
