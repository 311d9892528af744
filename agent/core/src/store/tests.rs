use super::*;

pub(super) fn event(id: &str, ts: Micros, service: &str, action: Action) -> Event {
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
        content_hash: None,
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
    let entry = |ts, kind: &str| JournalEntry { ts, kind: kind.into(), detail: "d".into() };
    store.append_journal(&[entry(0, "started"), entry(40 * day, "started")]).unwrap();
    let answer = |ts| Answer {
        ts,
        uid: Some(1000),
        user: None,
        service_id: "claude".into(),
        action: Action::Coach,
        event_id: "e".into(),
        kind: crate::proto::AnswerKind::Justified,
        text: Some("Relecture d'un texte public".into()),
        bypass_until: None,
    };
    store.insert_answers(&[answer(0), answer(40 * day)]).unwrap();
    assert_eq!(store.apply_retention(41 * day, 30).unwrap(), 1);
    assert_eq!(store.recent(5).unwrap().len(), 1);
    assert_eq!(store.answers(None, 10).unwrap(), [answer(40 * day)], "justifications too");
    assert_eq!(store.journal(10).unwrap(), [entry(40 * day, "started")], "the journal too");
    let secure: i64 = store.conn.query_row("PRAGMA secure_delete", [], |row| row.get(0)).unwrap();
    assert_eq!(secure, 1, "deleted rows are overwritten");
}

#[test]
fn reopening_a_file_keeps_events_and_schema() {
    let dir = std::env::temp_dir().join(format!("vigie-store-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.db");
    {
        let mut store = Store::open(&path).unwrap();
        store.insert(&[event("a", 1, "x", Action::Block)]).unwrap();
        assert_eq!(store.count_start().unwrap(), 1);
        assert_eq!(store.count_start().unwrap(), 2);
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.count().unwrap(), 1);
    assert_eq!(store.count_start().unwrap(), 3, "the start count survives a reopen");
    drop(store);
    // A counter row someone deleted: the next start counts again, it is not refused.
    Connection::open(&path).unwrap().execute("DELETE FROM agent_starts", []).unwrap();
    assert_eq!(Store::open(&path).unwrap().count_start().unwrap(), 1);
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
        kind: crate::proto::AnswerKind::parse(kind).unwrap(),
        text: Some("Relecture d'un texte public".into()),
        bypass_until: Some(99),
    };
    store.insert_answers(&[answer(Some(1000), "justified"), answer(Some(1001), "acknowledged")]).unwrap();
    assert_eq!(store.answers(Some(1000), 10).unwrap(), vec![answer(Some(1000), "justified")]);
    assert_eq!(store.answers(None, 10).unwrap().len(), 2);
    // The outbox sends them in order once enrolled, from the first.
    store.outbox_open(false).unwrap();
    let pending = store.outbox_answers(1).unwrap();
    assert_eq!(pending.iter().map(|(_, a)| a.uid).collect::<Vec<_>>(), vec![Some(1000)]);
    store.outbox_answers_acked(pending[0].0).unwrap();
    let rest = store.outbox_answers(10).unwrap();
    assert_eq!(rest.iter().map(|(_, a)| a.uid).collect::<Vec<_>>(), vec![Some(1001)]);
    store.outbox_answers_acked(rest[0].0).unwrap();
    assert!(store.outbox_answers(10).unwrap().is_empty());
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

#[test]
fn a_failed_migration_leaves_the_store_as_it_was() {
    let dir = std::env::temp_dir().join(format!("vigie-failed-migration-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.db");
    let mut conn = Connection::open(&path).unwrap();
    Store::migrate_with(&mut conn, &MIGRATIONS[..2]).unwrap();
    conn.execute_batch("INSERT INTO journal (ts, kind, detail) VALUES (1, 'started', 'old agent')").unwrap();
    // The next agent's upgrade: a good step, then one that fails.
    let next =
        [MIGRATIONS[0], MIGRATIONS[1], MIGRATIONS[2], "ALTER TABLE no_such_table ADD COLUMN x INTEGER"];
    let error = Store::migrate_with(&mut conn, &next).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("migration 4 of 4 failed"), "{message}");
    assert!(message.contains("no_such_table") && message.contains("schema version 2"), "{message}");
    drop(conn);
    // Step 3 was rolled back with step 4: the old agent's store, untouched.
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, 2);
    let repeats_column: i64 = conn
        .query_row("SELECT count(*) FROM pragma_table_info('events') WHERE name = 'repeats'", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(repeats_column, 0, "migration 3 adds `repeats`: it must have been rolled back");
    let journal: i64 = conn.query_row("SELECT count(*) FROM journal", [], |row| row.get(0)).unwrap();
    assert_eq!(journal, 1);
    drop(conn);
    // The agent that fits it still opens it and migrates.
    assert_eq!(Store::open(&path).unwrap().schema_version().unwrap(), MIGRATIONS.len() as i64);
    std::fs::remove_dir_all(&dir).unwrap();
}

mod query {
    use super::*;
    use crate::proto::{EventQuery, MAX_FILTER_VALUES};

    fn sample() -> Store {
        let mut store = Store::open_in_memory().unwrap();
        let mut events = Vec::new();
        for i in 0..300i64 {
            let (service, action) = match i % 3 {
                0 => ("chatgpt", Action::Block),
                1 => ("claude", Action::Coach),
                _ => ("mistral", Action::Warn),
            };
            let mut e = event(&format!("e{i}"), 1_000_000 * i, service, action);
            e.service_name = format!("{service} name");
            e.vendor = if service == "chatgpt" { "OpenAI".into() } else { "Other".into() };
            e.attribution.user = Some(if i % 2 == 0 { "alice" } else { "bob" }.into());
            e.attribution.uid = Some(if i % 2 == 0 { 1000 } else { 1001 });
            e.attribution.program = Some(if i % 5 == 0 { "curl" } else { "firefox" }.into());
            e.rule_id = format!("rule-{}", i % 3);
            events.push(e);
        }
        store.insert(&events).unwrap();
        store
    }

    fn q() -> EventQuery {
        EventQuery { limit: 50, ..EventQuery::default() }
    }

    #[test]
    fn filters_narrow_and_pages_follow_the_newest_first_order() {
        let store = sample();
        let all = store.search(&q()).unwrap();
        assert_eq!((all.total, all.events.len()), (300, 50));
        assert_eq!(all.events[0].id, "e299");
        let page = store.search(&EventQuery { offset: 290, ..q() }).unwrap();
        assert_eq!(page.events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>().last(), Some(&"e0"));
        assert_eq!(page.events.len(), 10);

        let blocked_alice = store
            .search(&EventQuery { actions: vec![Action::Block], users: vec!["alice".into()], ..q() })
            .unwrap();
        // i % 3 == 0 and i even: i % 6 == 0.
        assert_eq!(blocked_alice.total, 50);
        assert!(blocked_alice
            .events
            .iter()
            .all(|e| e.action == Action::Block && e.attribution.uid == Some(1000)));

        let window =
            store.search(&EventQuery { from: Some(10_000_000), to: Some(20_000_000), ..q() }).unwrap();
        assert_eq!(window.total, 10);
        let curl_claude = store
            .search(&EventQuery { programs: vec!["curl".into()], services: vec!["claude".into()], ..q() })
            .unwrap();
        assert!(curl_claude
            .events
            .iter()
            .all(|e| e.service_id == "claude" && e.attribution.program.as_deref() == Some("curl")));
        assert_eq!(curl_claude.total, 20); // i % 15 == 10... i ≡ 1 (mod 3) and i ≡ 0 (mod 5)
        assert_eq!(store.search(&EventQuery { uid: Some(1001), limit: 0, ..q() }).unwrap().total, 150);
    }

    #[test]
    fn free_text_matches_names_services_vendors_programs_users_and_rules() {
        let store = sample();
        let count = |text: &str| store.search(&EventQuery { text: Some(text.into()), ..q() }).unwrap().total;
        assert_eq!(count("OPENAI"), 100, "vendor, case-insensitively");
        assert_eq!(count("claude.exa"), 100, "name");
        assert_eq!(count("curl"), 60, "program");
        assert_eq!(count("bob"), 150, "user");
        assert_eq!(count("rule-2"), 100, "rule");
        assert_eq!(count("nothing-like-this"), 0);
        assert_eq!(count("  "), 300, "blank text does not filter");
        // Text and filters combine.
        let both = store
            .search(&EventQuery { text: Some("mistral".into()), users: vec!["alice".into()], ..q() })
            .unwrap();
        assert_eq!(both.total, 50);
    }

    #[test]
    fn a_search_scoped_to_a_user_reads_only_their_rows() {
        let store = sample();
        let mine = |text: &str| {
            store.search(&EventQuery { text: Some(text.into()), uid: Some(1000), ..q() }).unwrap().total
        };
        assert_eq!(mine("alice"), 150, "their own name");
        assert_eq!(mine("bob"), 0, "another user's name matches nothing, by the same query");
        assert_eq!(mine("OPENAI"), 50);
        assert_eq!(mine("claude.exa"), 50);
        assert_eq!(mine("rule-2"), 50);
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        let store = sample();
        let too_many = EventQuery { services: vec!["x".into(); MAX_FILTER_VALUES + 1], ..q() };
        assert!(matches!(store.search(&too_many), Err(StoreError::Query(QueryError::TooManyValues))));
        let reversed = EventQuery { from: Some(10), to: Some(5), ..q() };
        assert!(matches!(store.search(&reversed), Err(StoreError::Query(QueryError::EmptyRange))));
        let long = EventQuery { text: Some("x".repeat(1000)), ..q() };
        assert!(matches!(store.search(&long), Err(StoreError::Query(QueryError::TextTooLong))));
        // Text that looks like SQL is only text.
        let sql = EventQuery { text: Some("') OR 1=1 --".into()), ..q() };
        assert_eq!(store.search(&sql).unwrap().total, 0);
    }

    #[test]
    fn stats_count_the_same_selection() {
        let store = sample();
        let stats = store.stats(&EventQuery { users: vec!["alice".into()], ..q() }).unwrap();
        assert_eq!(stats.total, 150);
        let in_buckets: u64 =
            stats.timeline.iter().map(|b| b.allow + b.monitor + b.warn + b.coach + b.block).sum();
        assert_eq!(in_buckets, 150);
        assert_eq!(stats.bucket_micros, 60_000_000, "300 s of events: one-minute buckets");
        assert_eq!(stats.timeline.len(), 5);
        assert_eq!(stats.top_users.len(), 1);
        assert_eq!(stats.top_services.iter().map(|r| r.count).sum::<u64>(), 150);
        assert_eq!(stats.top_services[0].label, "chatgpt name");
        assert_eq!(store.stats(&EventQuery { text: Some("zzz".into()), ..q() }).unwrap().total, 0);
    }

    #[test]
    fn facets_list_every_value_and_survive_retention() {
        let mut store = sample();
        let facets = store.facets().unwrap();
        assert_eq!(
            facets.services.iter().map(|f| f.value.as_str()).collect::<Vec<_>>(),
            ["chatgpt", "claude", "mistral"]
        );
        assert_eq!(facets.services[0].label, "chatgpt name");
        assert_eq!(facets.users.len(), 2);
        assert_eq!(facets.programs.len(), 2);
        assert_eq!(facets.rules.len(), 3);
        // Only chatgpt events are left after retention: the lists follow.
        store
            .conn
            .execute("UPDATE events SET ts = ts + 86400000000000 WHERE service_id = 'chatgpt'", [])
            .unwrap();
        store.apply_retention(86_400_000_000_000, 1).unwrap();
        let facets = store.facets().unwrap();
        assert_eq!(facets.services.iter().map(|f| f.value.as_str()).collect::<Vec<_>>(), ["chatgpt"]);
    }

    #[test]
    fn the_terms_migration_indexes_existing_events() {
        let conn = Connection::open_in_memory().unwrap();
        for sql in MIGRATIONS.iter().take(3) {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        let mut old = Store { conn };
        // Written as a version-3 agent did: no terms.
        old.conn
            .execute(
                "INSERT INTO events (id, ts, source, name, service_id, service_name, category, vendor, action,
                    rule_id, policy_version, protocol, src, dst, ech, program, user)
                 VALUES ('a', 1, 'dns', 'chatgpt.com', 'chatgpt', 'ChatGPT', 'chat', 'OpenAI', 'block', 'r', '1',
                    'udp', 's', 'd', 0, 'firefox', 'alice')",
                [],
            )
            .unwrap();
        old.migrate().unwrap();
        assert_eq!(old.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(old.search(&EventQuery { text: Some("openai".into()), ..q() }).unwrap().total, 1);
        assert_eq!(old.facets().unwrap().programs[0].value, "firefox");
    }
}

#[test]
fn stats_over_the_widest_range_are_an_answer_not_a_crash() {
    use crate::proto::EventQuery;
    let mut store = Store::open_in_memory().unwrap();
    store.insert(&[event("a", 5, "chatgpt", Action::Block)]).unwrap();
    let widest = EventQuery { from: Some(i64::MIN), to: Some(i64::MAX), ..EventQuery::default() };
    // Either figures or a clean error: never a panic.
    if let Ok(stats) = store.stats(&widest) {
        assert_eq!(stats.total, 1);
    }
    assert_eq!(store.search(&EventQuery { limit: 10, ..widest }).unwrap().total, 1);
}

#[test]
fn recent_flows_are_this_users_latest_per_service_and_program() {
    let mut store = Store::open_in_memory().unwrap();
    let flow = |id: &str, ts: Micros, service: &str, uid: u32, program: &str| {
        let mut e = event(id, ts, service, Action::Warn);
        e.attribution.uid = Some(uid);
        e.attribution.program = Some(program.into());
        e
    };
    let mut pasted = flow("c", 40, "claude", 1000, "firefox-esr");
    pasted.source = "clipboard".into();
    store
        .insert(&[
            flow("old", 5, "chatgpt", 1000, "firefox-esr"),
            flow("a", 20, "chatgpt", 1000, "firefox-esr"),
            flow("b", 30, "chatgpt", 1000, "firefox-esr"),
            flow("other-user", 30, "claude", 1001, "firefox-esr"),
            flow("app", 25, "claude", 1000, "claude-desktop"),
            pasted,
        ])
        .unwrap();
    let mut recent = store.recent_flows(1000, 10).unwrap();
    recent.sort_by_key(|f| f.ts);
    let seen: Vec<(&str, Option<&str>, Micros)> =
        recent.iter().map(|f| (f.service_id.as_str(), f.program.as_deref(), f.ts)).collect();
    assert_eq!(seen, vec![("claude", Some("claude-desktop"), 25), ("chatgpt", Some("firefox-esr"), 30)]);
}

#[test]
fn errors_say_their_cause_once() {
    let error = StoreError::from(rusqlite::Error::InvalidQuery);
    let line = crate::diag::chain(&error);
    assert_eq!(line, error.to_string());
    assert!(line.starts_with("event store: "), "{line}");
}

#[test]
fn the_inventory_is_sent_again_only_when_it_changed_or_to_a_new_collector() {
    use crate::inventory::{Item, Kind};
    let mut store = Store::open_in_memory().unwrap();
    assert!(store.outbox_inventory().unwrap().is_none(), "nothing found yet");
    let item = Item {
        kind: Kind::CliAgent,
        host: "codex".into(),
        key: "codex".into(),
        name: "Codex CLI".into(),
        version: None,
        uid: Some(1000),
        user: Some("alice".into()),
        path: "~/.codex".into(),
        service_id: Some("openai-api".into()),
        local: false,
        rights: vec!["sandbox:workspace-write".into()],
    };
    store.replace_inventory(std::slice::from_ref(&item), 10).unwrap();
    let (revision, items) = store.outbox_inventory().unwrap().unwrap();
    assert_eq!(items.as_slice(), std::slice::from_ref(&item));
    store.outbox_inventory_acked(revision).unwrap();
    assert!(store.outbox_inventory().unwrap().is_none());
    store.replace_inventory(&[], 20).unwrap();
    let (newer, items) = store.outbox_inventory().unwrap().unwrap();
    assert!(newer > revision && items.is_empty(), "an emptied inventory is sent too");
    // An old acknowledgement arriving late does not hide the newer scan.
    store.outbox_inventory_acked(revision).unwrap();
    assert!(store.outbox_inventory().unwrap().is_some());
    store.outbox_inventory_acked(newer).unwrap();
    store.outbox_open(true).unwrap();
    assert!(store.outbox_inventory().unwrap().is_some(), "a new identity has no inventory at its collector");
}
