//! The fleet end to end against a real PostgreSQL (Debian's, started by the
//! test): enrolment with tokens, mutual TLS, the uploader draining a real
//! store at least once and without duplicates, an outage of the database,
//! hostile bodies, revocation, renewal, policy bundles and retention.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use uuid::Uuid;
use vigie_collector::config::Config;
use vigie_collector::pki::{self, Issuer, PkiDir};
use vigie_collector::{db, server};
use vigie_core::event::{Attribution, Event};
use vigie_core::policy::Action;
use vigie_core::store::Store;
use vigie_fleet::client::{self, AgentLink, EnrollOptions, FleetDir, Uploader, UploaderConfig};
use vigie_fleet::proto::Heartbeat;
use vigie_tests::postgres::TempPostgres;

struct Collector {
    pg: TempPostgres,
    runtime: tokio::runtime::Runtime,
    app: Arc<server::App>,
    url: String,
    ca_pem: Vec<u8>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn collector() -> Collector {
    collector_with("")
}

fn collector_with(extra: &str) -> Collector {
    let pg = TempPostgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = PkiDir(dir.path().join("pki"));
    pki::init(&pki_dir, &["127.0.0.1".to_owned()]).unwrap();
    let config = Config::parse(&format!(
        "database = \"{}\"\npki = \"{}\"\nretention_days = 30\nmax_concurrent_batches = 4\npool_size = 4\n{extra}",
        pg.connection(),
        pki_dir.0.display()
    ))
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tls = pki::server_config(&pki_dir).unwrap();
    let issuer = Issuer::load(&pki_dir, config.certificate_days).unwrap();
    let (app, listener) = runtime.block_on(async {
        let pool = db::pool(&config.database, config.pool_size).unwrap();
        assert_eq!(db::migrate(&pool).await.unwrap(), 8);
        assert_eq!(db::migrate(&pool).await.unwrap(), 0, "migrations run once");
        let app = Arc::new(server::App::new(pool, issuer, config).unwrap());
        server::maintain(&app).await.unwrap();
        server::spawn_maintenance(&app);
        (app, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    });
    let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(server::serve(listener, tls, Arc::clone(&app), async {
        let _ = stopped.await;
    }));
    let ca_pem = std::fs::read(pki_dir.ca_cert()).unwrap();
    Collector { pg, runtime, app, url, ca_pem, stop: Some(stop), _dir: dir }
}

impl Collector {
    fn token(&self, group: &str, uses: i32, expires_in: Duration) -> String {
        let id = Uuid::new_v4();
        let secret = random_secret();
        let expires = std::time::SystemTime::now() + expires_in;
        self.runtime
            .block_on(db::create_token(
                &self.app.pool,
                id,
                Sha256::digest(secret).as_slice(),
                group,
                expires,
                uses,
            ))
            .unwrap();
        use base64::Engine as _;
        format!("{id}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret))
    }

    fn sql(&self, sql: &str) -> String {
        self.pg.psql("vigie", sql).unwrap()
    }

    fn enroll(&self, state: &Path, token: &str) -> anyhow::Result<client::Enrolment> {
        client::enroll(
            &FleetDir::new(state),
            &EnrollOptions {
                url: self.url.clone(),
                token: token.to_owned(),
                ca_pem: self.ca_pem.clone(),
                policy_key_pem: None,
                hostname: "poste-42".into(),
                version: "0.1.0-test".into(),
                force: false,
            },
        )
    }
}

fn random_secret() -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    out[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    out
}

fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn event(ts: i64, service: &str, action: Action, repeats: u32) -> Event {
    Event {
        id: Uuid::now_v7().to_string(),
        ts,
        source: "tls".into(),
        name: format!("{service}.example"),
        service_id: service.into(),
        service_name: service.into(),
        category: "chat".into(),
        vendor: "V".into(),
        action,
        rule_id: "r34".into(),
        policy_version: "2026.12".into(),
        protocol: "tcp".into(),
        src: "10.0.0.1:50000".into(),
        dst: "192.0.2.1:443".into(),
        ech: false,
        attribution: Attribution {
            pid: Some(4242),
            program: Some("firefox".into()),
            program_path: Some("/usr/lib/firefox/firefox".into()),
            uid: Some(1000),
            user: Some("alice".into()),
        },
        repeats,
        content_hash: None,
    }
}

struct Beats;
impl AgentLink for Beats {
    fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            version: "0.1.0-test".into(),
            hostname: "poste-42".into(),
            mode: "monitor".into(),
            policy: "r34 2026.12".into(),
            bundle_version: None,
            health: "ok".into(),
            outbox: Default::default(),
            counters: [("events.stored".to_owned(), 7)].into(),
        }
    }

    fn policy_refused(&self, _reason: &str) {}
}

/// Runs an uploader on its own thread until dropped.
struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn upload(state: &Path) -> Running {
    let config = UploaderConfig {
        batch_events: 500,
        idle: Duration::from_millis(100),
        heartbeat_every: Duration::from_secs(1),
        policy_every: Duration::from_secs(1),
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
    };
    let uploader = Uploader::new(FleetDir::new(state), state.join("events.db"), config, Box::new(Beats));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::spawn(move || uploader.run(&flag));
    Running { stop, thread: Some(thread) }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn outbox(state: &Path) -> vigie_core::store::OutboxState {
    Store::open(&state.join("events.db")).unwrap().outbox_state().unwrap().expect("the outbox is open")
}

#[test]
fn fleet_end_to_end_on_postgresql() {
    let c = collector();
    let agent_dir = tempfile::tempdir().unwrap();
    let state = agent_dir.path();

    // Enrolment: a wrong token, then a one-use token used twice.
    let bogus = format!("{}.AAAA", Uuid::new_v4());
    let refused = c.enroll(state, &bogus).unwrap_err();
    assert!(format!("{refused:#}").contains("403"), "{refused:#}");
    let token = c.token("compta", 1, Duration::from_secs(3_600));
    let enrolment = c.enroll(state, &token).unwrap();
    assert_eq!(enrolment.group, "compta");
    let other = tempfile::tempdir().unwrap();
    let used_up = c.enroll(other.path(), &token).unwrap_err();
    assert!(format!("{used_up:#}").contains("used up"), "{used_up:#}");
    let expired = c.token("compta", 5, Duration::ZERO);
    assert!(c.enroll(other.path(), &expired).is_err(), "an expired token enrols nobody");
    let again = c.enroll(state, &c.token("compta", 1, Duration::from_secs(60))).unwrap_err();
    assert!(format!("{again:#}").contains("already enrolled"), "{again:#}");
    // The key is the agent's own, readable by root alone.
    let fleet = FleetDir::new(state);
    let meta = std::fs::metadata(fleet.identity_path()).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    assert_eq!(
        c.sql(&format!("SELECT grp || ' ' || hostname FROM agents WHERE id = '{}'", enrolment.agent_id)),
        "compta poste-42"
    );

    // 1,200 events and one from a clock far off, drained in batches.
    let mut store = Store::open(&state.join("events.db")).unwrap();
    let now = now_micros();
    let mut events: Vec<Event> = (0..1_200)
        .map(|i| {
            let service = if i % 3 == 0 { "chatgpt" } else { "claude" };
            event(now - i * 1_000_000, service, Action::Block, 1 + (i % 2) as u32)
        })
        .collect();
    events.push(event(946_684_800_000_000, "chatgpt", Action::Warn, 1)); // 2000-01-01
    store.insert(&events).unwrap();
    // Two answers to prompts, one with an event id that is not a UUID and
    // a NUL in its text: stored cleaned, never refused.
    let answer = |event_id: &str, text: &str| vigie_core::proto::Answer {
        ts: now,
        uid: Some(1000),
        user: Some("alice".into()),
        service_id: "claude".into(),
        action: Action::Coach,
        event_id: event_id.into(),
        kind: vigie_core::proto::AnswerKind::Justified,
        text: Some(text.into()),
        bypass_until: Some(now + 3_600_000_000),
    };
    store
        .insert_answers(&[answer(&Uuid::now_v7().to_string(), "Relecture"), answer("e-1", "texte\0public")])
        .unwrap();
    // The workstation's AI software, with a control character in a name.
    let software = |key: &str, rights: &[&str]| vigie_core::inventory::Item {
        kind: vigie_core::inventory::Kind::BrowserExtension,
        host: "firefox".into(),
        key: key.into(),
        name: format!("{key}\u{7}"),
        version: Some("1.0".into()),
        uid: Some(1000),
        user: Some("alice".into()),
        path: "~/.mozilla/firefox/x.default".into(),
        service_id: Some("chatgpt".into()),
        local: false,
        rights: rights.iter().map(|r| (*r).to_owned()).collect(),
    };
    store
        .replace_inventory(&[software("a@x", &["all-sites", "tabs"]), software("b@x", &["storage"])], now)
        .unwrap();
    store.outbox_open(false).unwrap();
    let running = upload(state);
    wait_until("the outbox to drain", Duration::from_secs(60), || outbox(state).backlog == 0);
    wait_until("the answers after the events", Duration::from_secs(30), || {
        c.sql("SELECT count(*) FROM answers") == "2"
    });
    wait_until("the inventory after the answers", Duration::from_secs(30), || {
        c.sql("SELECT count(*) FROM inventory") == "2"
    });
    assert_eq!(
        c.sql("SELECT name || ' ' || array_to_string(rights, ',') FROM inventory WHERE key = 'a@x'"),
        "a@x all-sites,tabs"
    );
    // A new scan replaces the collector's copy whole.
    store.replace_inventory(&[software("c@x", &["cookies"])], now).unwrap();
    wait_until("the new inventory", Duration::from_secs(30), || {
        c.sql("SELECT string_agg(key, ',') FROM inventory") == "c@x"
    });
    wait_until("the new inventory acknowledged", Duration::from_secs(10), || {
        store.outbox_inventory().unwrap().is_none()
    });
    assert_eq!(c.sql("SELECT count(*) FROM answers WHERE event_id IS NULL AND text = 'textepublic'"), "1");
    assert_eq!(c.sql("SELECT count(*) FROM events"), "1200");
    assert_eq!(
        c.sql("SELECT count(*) FROM events_quarantine"),
        "1",
        "the far-off event is kept apart, not lost"
    );
    assert_eq!(c.sql("SELECT sum(events) || ' ' || sum(occurrences) FROM event_rollup_hourly"), "1200 1800");
    assert_eq!(
        c.sql("SELECT count(DISTINCT agent_id) || ' ' || min(agent_id::text) FROM events"),
        format!("1 {}", enrolment.agent_id),
        "the agent is the certificate's subject"
    );
    assert_eq!(c.sql("SELECT DISTINCT program_path FROM events"), "/usr/lib/firefox/firefox");
    // Heartbeats land in batches (every 5 s).
    wait_until("a heartbeat to be written", Duration::from_secs(15), || {
        c.sql("SELECT coalesce(health, '') || ' ' || coalesce(outbox->>'backlog', '') FROM agents") == "ok 0"
    });
    assert_eq!(c.sql("SELECT counters->>'events.stored' FROM agents"), "7");
    drop(running);

    // At least once, never twice: everything sent again stores nothing new.
    store.outbox_open(true).unwrap();
    let running = upload(state);
    wait_until("the resend to drain", Duration::from_secs(60), || outbox(state).backlog == 0);
    drop(running);
    assert_eq!(c.sql("SELECT count(*) FROM events"), "1200");
    assert_eq!(c.sql("SELECT sum(events) FROM event_rollup_hourly"), "1200", "duplicates are not counted");

    // The database goes away: the collector says 503 with Retry-After, the
    // uploader waits, records why, and delivers everything once it is back.
    c.pg.stop().unwrap();
    store.insert(&(0..300).map(|i| event(now + i, "gemini", Action::Warn, 1)).collect::<Vec<_>>()).unwrap();
    let running = upload(state);
    wait_until("the outage to be recorded", Duration::from_secs(20), || {
        outbox(state).last_error.is_some_and(|e| e.contains("503"))
    });
    assert_eq!(outbox(state).backlog, 300);
    c.pg.restart().unwrap();
    wait_until("the backlog to drain after the outage", Duration::from_secs(60), || {
        outbox(state).backlog == 0
    });
    drop(running);
    assert_eq!(c.sql("SELECT count(*) FROM events"), "1500");
    let status = outbox(state);
    assert!(status.last_success.is_some() && status.last_error.is_none(), "{status:?}");

    // Hostile or broken requests.
    let http = fleet.client().unwrap();
    let anonymous = client::https_client(&c.ca_pem, None).unwrap();
    let post = |client: &reqwest::blocking::Client, path: &str, gzip: bool, body: Vec<u8>| {
        let mut request = client.post(format!("{}{path}", c.url)).body(body);
        if gzip {
            request = request.header("content-encoding", "gzip");
        }
        request.send().unwrap().status().as_u16()
    };
    assert_eq!(post(&anonymous, "/v1/events", false, b"{\"events\":[]}".to_vec()), 401, "no certificate");
    assert_eq!(post(&http, "/v1/events", true, b"not gzip".to_vec()), 400);
    assert_eq!(post(&http, "/v1/events", false, b"{\"events\":[{\"id\":1}]}".to_vec()), 400);
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![b' '; 20 << 20]).unwrap();
    assert_eq!(post(&http, "/v1/events", true, bomb.finish().unwrap()), 413, "a gzip bomb stops at 8 MiB");
    // Past 2 MiB on the wire the collector answers 413 and closes without
    // reading the rest: the client sees the answer or the connection end.
    // (Its own client: the closed connection must not be reused below.)
    let huge = fleet.client().unwrap().post(format!("{}/v1/events", c.url)).body(vec![b' '; 3 << 20]).send();
    assert!(huge.as_ref().map_or(true, |r| r.status().as_u16() == 413), "{huge:?}");
    let mut bad_id = event(now, "chatgpt", Action::Block, 1);
    bad_id.id = "not-a-uuid".into();
    let body = serde_json::to_vec(&serde_json::json!({ "events": [bad_id] })).unwrap();
    assert_eq!(post(&http, "/v1/events", false, body), 400);
    assert_eq!(c.sql("SELECT count(*) FROM events"), "1500", "nothing of a refused batch is stored");

    // Policy bundles: served with an ETag, 304 when unchanged.
    assert_eq!(http.get(format!("{}/v1/policy", c.url)).send().unwrap().status().as_u16(), 404);
    let key = vigie_fleet::bundle::generate_key([3; 32]);
    let body = vigie_fleet::bundle::BundleBody {
        format: 1,
        version: 7,
        issued_at: 0,
        expires_at: i64::MAX,
        policy: "x".into(),
        catalog: None,
    };
    let signed = vigie_fleet::bundle::sign(&body, &key).unwrap();
    let bytes = serde_json::to_vec(&signed).unwrap();
    let far = std::time::SystemTime::now() + Duration::from_secs(86_400);
    c.runtime.block_on(db::publish_bundle(&c.app.pool, 7, &bytes, &signed.etag(), far)).unwrap().unwrap();
    let again = c.runtime.block_on(db::publish_bundle(&c.app.pool, 7, &bytes, &signed.etag(), far)).unwrap();
    assert_eq!(again, Err(7), "a version not above the latest is refused");
    let got = http.get(format!("{}/v1/policy", c.url)).send().unwrap();
    assert_eq!(got.status().as_u16(), 200);
    let etag = got.headers().get("etag").unwrap().to_str().unwrap().to_owned();
    assert_eq!(got.bytes().unwrap().to_vec(), bytes);
    let unchanged = http.get(format!("{}/v1/policy", c.url)).header("if-none-match", &etag).send().unwrap();
    assert_eq!(unchanged.status().as_u16(), 304);

    // Renewal: a new key and certificate for the same agent id.
    let serial_before = c.sql("SELECT cert_serial FROM agents");
    let later = now / 1_000_000 + 31 * 86_400;
    let renewed = client::renew_if_due(&fleet, &enrolment, later).unwrap().unwrap();
    assert_eq!(renewed.agent_id, enrolment.agent_id);
    assert_ne!(c.sql("SELECT cert_serial FROM agents"), serial_before);
    let http = fleet.client().unwrap();
    assert_eq!(post(&http, "/v1/heartbeat", false, serde_json::to_vec(&Beats.heartbeat()).unwrap()), 204);

    // Revocation applies within a second, on an open connection too.
    c.runtime.block_on(db::revoke_agent(&c.app.pool, enrolment.agent_id.parse().unwrap())).unwrap();
    wait_until("the revocation to apply", Duration::from_secs(3), || {
        post(&http, "/v1/heartbeat", false, serde_json::to_vec(&Beats.heartbeat()).unwrap()) == 403
    });
    store.insert(&[event(now, "chatgpt", Action::Block, 1)]).unwrap();
    let running = upload(state);
    wait_until("the refusal to be recorded", Duration::from_secs(10), || {
        outbox(state).last_error.is_some_and(|e| e.contains("revoked"))
    });
    drop(running);
    assert_eq!(outbox(state).backlog, 1, "a revoked agent keeps its events");

    // Retention drops whole day partitions.
    let old = time::OffsetDateTime::now_utc().date() - time::Duration::days(40);
    c.runtime.block_on(db::ensure_partitions(&c.app.pool, &[old])).unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    let dropped = c.runtime.block_on(db::apply_retention(&c.app.pool, today, 30, 730)).unwrap();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(c.sql("SELECT count(*) FROM events"), "1500", "today's events stay");
}

/// The live daemon (on the platform's fakes) enrolled in a collector: its
/// events arrive, it takes the signed bundle the security team published,
/// and refuses a bundle edited on disk or an expired one, as evidence.
#[test]
fn an_enrolled_daemon_uploads_and_takes_only_signed_fresh_bundles() {
    use vigie_daemon::platform::fake::{Fakes, Frames};
    use vigie_fleet::bundle::{self, BundleBody, FORMAT};

    let c = collector();
    let dir = tempfile::tempdir().unwrap();
    let key = bundle::generate_key([11; 32]);
    let fleet = FleetDir::new(dir.path());
    client::enroll(
        &fleet,
        &EnrollOptions {
            url: c.url.clone(),
            token: c.token("rh", 1, Duration::from_secs(600)),
            ca_pem: c.ca_pem.clone(),
            policy_key_pem: Some(bundle::public_key_pem(&key.verifying_key()).unwrap()),
            hostname: "poste-7".into(),
            version: "test".into(),
            force: false,
        },
    )
    .unwrap();
    Store::open(&dir.path().join("events.db")).unwrap().outbox_open(false).unwrap();

    let fakes = Fakes::default();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pcap/curl-tls.pcap");
    fakes
        .capture
        .sources
        .lock()
        .unwrap()
        .insert("fake0".into(), Frames::from_capture(&capture).unwrap().then_idle());
    let text = format!(
        "database = {:?}\nsocket = {:?}\ninterfaces = [\"fake0\"]\n[fleet]\nheartbeat_seconds = 1\npolicy_seconds = 1\n",
        dir.path().join("events.db"),
        dir.path().join("agent.sock")
    );
    let config = vigie_daemon::Config::parse(&text, "agent.toml").unwrap();
    let daemon = vigie_daemon::start(config, fakes.platform()).unwrap();
    let stop = daemon.stop_flag();
    let running = std::thread::spawn(move || daemon.run());

    let stored = || c.sql("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM events_quarantine)");
    wait_until("the daemon's events at the collector", Duration::from_secs(30), || stored() != "0");
    let services = c.sql(
        "SELECT string_agg(DISTINCT service_id, ',' ORDER BY service_id) FROM \
         (SELECT service_id FROM events UNION ALL SELECT service_id FROM events_quarantine) s",
    );
    assert!(services.contains("chatgpt"), "{services}");

    // The security team publishes bundle 1: a renamed baseline.
    let policy =
        vigie_core::policy::BUNDLED_POLICY.replace("name = \"Vigie R34 baseline\"", "name = \"Flotte RH\"");
    let publish = |version: u64, expires_at: i64| {
        let body = BundleBody {
            format: FORMAT,
            version,
            issued_at: 0,
            expires_at,
            policy: policy.clone(),
            catalog: None,
        };
        let signed = bundle::sign(&body, &key).unwrap();
        let bytes = serde_json::to_vec(&signed).unwrap();
        let far = std::time::SystemTime::now() + Duration::from_secs(86_400);
        c.runtime
            .block_on(db::publish_bundle(&c.app.pool, version as i64, &bytes, &signed.etag(), far))
            .unwrap()
            .unwrap();
    };
    publish(1, i64::MAX);
    wait_until("the daemon's counters in a heartbeat", Duration::from_secs(30), || {
        c.sql("SELECT coalesce((counters->>'events.stored')::int, 0) > 0 FROM agents") == "t"
    });
    wait_until("bundle 1 in force, as the heartbeat says", Duration::from_secs(30), || {
        c.sql("SELECT coalesce(bundle_version, 0) || ' ' || coalesce(policy, '') FROM agents")
            .starts_with("1 Flotte RH")
    });

    // An expired bundle 2 is refused, and the refusal reaches the collector.
    publish(2, 1);
    // The fake clock says 2026-01-01: outside the collector's 30 days, its
    // events are kept in quarantine; look at both.
    let all = "(SELECT rule_id, name FROM events UNION ALL SELECT rule_id, name FROM events_quarantine) e";
    let refusals = || c.sql(&format!("SELECT count(*) FROM {all} WHERE rule_id = 'tamper:policy-refused'"));
    wait_until("the expired bundle's refusal", Duration::from_secs(30), || refusals() != "0");
    let subjects =
        c.sql(&format!("SELECT string_agg(name, ',') FROM {all} WHERE rule_id = 'tamper:policy-refused'"));
    assert!(subjects.contains("bundle.json"), "{subjects}");
    assert_eq!(c.sql("SELECT bundle_version FROM agents"), "1", "bundle 1 stays in force");

    // Someone with root edits the bundle on disk: refused at the reload.
    let on_disk = std::fs::read_to_string(fleet.bundle_path()).unwrap();
    let mut signed: vigie_fleet::bundle::SignedBundle = serde_json::from_str(&on_disk).unwrap();
    let forged = BundleBody {
        format: FORMAT,
        version: 1,
        issued_at: 0,
        expires_at: i64::MAX,
        policy: "name = \"x\"".into(),
        catalog: None,
    };
    use base64::Engine as _;
    signed.body = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&forged).unwrap());
    std::fs::write(fleet.bundle_path(), serde_json::to_vec(&signed).unwrap()).unwrap();
    wait_until("the forged bundle's refusal", Duration::from_secs(30), || {
        refusals().parse::<u32>().unwrap() >= 2
    });
    assert!(c.sql("SELECT policy FROM agents").starts_with("Flotte RH"), "the rules in force stay");
    let journal = Store::open(&dir.path().join("events.db")).unwrap().journal(100).unwrap();
    let said: Vec<&str> =
        journal.iter().filter(|e| e.kind == "tamper:policy-refused").map(|e| e.detail.as_str()).collect();
    assert!(said.iter().any(|d| d.contains("expired")), "{said:?}");
    assert!(said.iter().any(|d| d.contains("on disk was refused") && d.contains("signature")), "{said:?}");

    // Deleted, so that the local policy would take over: refused too, the
    // fleet's rules stay in force.
    std::fs::remove_file(fleet.bundle_path()).unwrap();
    let journal = || Store::open(&dir.path().join("events.db")).unwrap().journal(200).unwrap();
    wait_until("the deleted bundle's refusal", Duration::from_secs(30), || {
        journal().iter().any(|e| e.kind == "tamper:policy-refused" && e.detail.contains("was deleted"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let reloads: Vec<String> =
        journal().into_iter().filter(|e| e.kind == "reloaded").map(|e| e.detail).collect();
    assert!(
        reloads.first().is_some_and(|last| last.contains("Flotte RH")),
        "the fleet's rules stay: {reloads:?}"
    );

    stop.store(true, Ordering::Relaxed);
    let _ = running.join().unwrap();
}

/// What a hostile workstation user holding an agent's key (sudo) can try
/// against the collector: nothing of it blocks other agents, and what a
/// batch carries that PostgreSQL cannot hold is stored cleaned, not refused.
#[test]
fn a_hostile_agent_cannot_block_the_fleet() {
    let c = collector_with("request_seconds = 2\n");
    let alice = tempfile::tempdir().unwrap();
    let bob = tempfile::tempdir().unwrap();
    let alice_enrolment = c.enroll(alice.path(), &c.token("compta", 1, Duration::from_secs(600))).unwrap();
    let bob_enrolment = c.enroll(bob.path(), &c.token("compta", 1, Duration::from_secs(600))).unwrap();
    let alice_http = FleetDir::new(alice.path()).client().unwrap();
    let post = |client: &reqwest::blocking::Client, path: &str, body: Vec<u8>| {
        client.post(format!("{}{path}", c.url)).body(body).send().unwrap().status().as_u16()
    };

    // A heartbeat PostgreSQL would refuse (NUL, a bundle version past
    // bigint) is refused alone; Bob's, flushed with it, lands.
    let poisoned = serde_json::json!({"version": "1\0", "hostname": "bob-s-pc", "mode": "x", "policy": "p",
        "bundle_version": u64::MAX, "health": "ok", "outbox": {"backlog": 0, "sent": 0, "dropped": 0}});
    assert_eq!(post(&alice_http, "/v1/heartbeat", serde_json::to_vec(&poisoned).unwrap()), 400);
    let nul = serde_json::json!({"version": "1\0", "hostname": "bob-s-pc", "mode": "x", "policy": "p",
        "health": "ok\0", "outbox": {"backlog": 0, "sent": 0, "dropped": 0}});
    assert_eq!(post(&alice_http, "/v1/heartbeat", serde_json::to_vec(&nul).unwrap()), 204);
    let bob_http = FleetDir::new(bob.path()).client().unwrap();
    assert_eq!(post(&bob_http, "/v1/heartbeat", serde_json::to_vec(&Beats.heartbeat()).unwrap()), 204);
    wait_until("both heartbeats written", Duration::from_secs(15), || {
        c.sql(
            "SELECT string_agg(hostname || ':' || coalesce(health, '-'), ',' ORDER BY hostname) FROM agents",
        ) == "poste-42:ok,poste-42:ok"
    });
    assert_eq!(
        c.sql(&format!("SELECT hostname FROM agents WHERE id = '{}'", alice_enrolment.agent_id)),
        "poste-42",
        "a heartbeat cannot rename the workstation"
    );

    // A batch with a time PostgreSQL cannot hold and NULs in its text:
    // stored (quarantined, cleaned), so the agent's next events still go.
    let now = now_micros();
    let mut far = event(i64::MAX, "chatgpt", Action::Block, 1);
    far.attribution.program = Some("fire\0fox".into());
    let mut nul_name = event(now, "claude\0", Action::Block, 1);
    nul_name.name = "claude.ai\0.evil".into();
    let body = serde_json::to_vec(&serde_json::json!({ "events": [far, nul_name] })).unwrap();
    assert_eq!(post(&alice_http, "/v1/events", body), 200);
    assert_eq!(c.sql("SELECT claimed_ts_us = 9223372036854775807 AND program = 'fire\u{fffd}fox' FROM events_quarantine"), "t");
    assert_eq!(c.sql("SELECT name FROM events"), "claude.ai\u{fffd}.evil");

    // A body trickled byte by byte is cut at request_seconds.
    struct Trickle(usize);
    impl std::io::Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 || buf.is_empty() {
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(500));
            self.0 -= 1;
            buf[0] = b' ';
            Ok(1)
        }
    }
    let started = Instant::now();
    let slow = alice_http
        .post(format!("{}/v1/heartbeat", c.url))
        .body(reqwest::blocking::Body::new(Trickle(40)))
        .send();
    assert!(slow.map_or(true, |r| r.status().as_u16() == 408), "a slow body is not waited for");
    assert!(started.elapsed() < Duration::from_secs(10), "cut after {:?}", started.elapsed());

    // A key copied before two renewals: its certificate is refused.
    let stolen = std::fs::read(FleetDir::new(alice.path()).identity_path()).unwrap();
    let stolen_http = client::https_client(&c.ca_pem, Some(&stolen)).unwrap();
    assert_eq!(post(&stolen_http, "/v1/heartbeat", serde_json::to_vec(&Beats.heartbeat()).unwrap()), 204);
    let fleet = FleetDir::new(alice.path());
    let later = now / 1_000_000 + 31 * 86_400;
    let once = client::renew_if_due(&fleet, &alice_enrolment, later).unwrap().unwrap();
    assert_eq!(
        post(&stolen_http, "/v1/heartbeat", serde_json::to_vec(&Beats.heartbeat()).unwrap()),
        204,
        "the replaced certificate is still accepted for a few minutes (requests in flight)"
    );
    client::renew_if_due(&fleet, &once, later + 31 * 86_400).unwrap().unwrap();
    let stolen_http = client::https_client(&c.ca_pem, Some(&stolen)).unwrap();
    assert_eq!(post(&stolen_http, "/v1/heartbeat", serde_json::to_vec(&Beats.heartbeat()).unwrap()), 403);
    let current = FleetDir::new(alice.path()).client().unwrap();
    assert_eq!(post(&current, "/v1/heartbeat", serde_json::to_vec(&Beats.heartbeat()).unwrap()), 204);

    // Revoked: no renewal either.
    c.runtime.block_on(db::revoke_agent(&c.app.pool, bob_enrolment.agent_id.parse().unwrap())).unwrap();
    let bob_fleet = FleetDir::new(bob.path());
    wait_until("Bob's revocation", Duration::from_secs(3), || {
        post(&bob_http, "/v1/heartbeat", serde_json::to_vec(&Beats.heartbeat()).unwrap()) == 403
    });
    let renewal = client::renew_if_due(&bob_fleet, &bob_enrolment, later).unwrap_err();
    assert!(format!("{renewal:#}").contains("403"), "{renewal:#}");

    // Enrolled again while the uploader runs: the old upload ends by itself.
    Store::open(&bob.path().join("events.db")).unwrap().outbox_open(false).unwrap();
    let running = upload(bob.path());
    let mut moved = bob_enrolment.clone();
    moved.agent_id = Uuid::new_v4().to_string();
    vigie_fleet::write_private(&bob_fleet.enrolment_path(), &serde_json::to_vec(&moved).unwrap(), 0o644)
        .unwrap();
    wait_until("the old upload to end", Duration::from_secs(10), || {
        running.thread.as_ref().is_some_and(std::thread::JoinHandle::is_finished)
    });
}

/// rsyslog (Debian's), started by the test on a loopback port, writing
/// every message it receives to a file; stopped by its pid.
struct Rsyslog {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl Rsyslog {
    fn start(dir: tempfile::TempDir, port: u16) -> Self {
        Self::start_with(dir, port, None)
    }

    /// With `tls`, a folder holding `ca.pem`, `server.pem` and `server.key`:
    /// syslog over TLS (RFC 5425) through rsyslog's GnuTLS driver.
    fn start_with(dir: tempfile::TempDir, port: u16, tls: Option<&Path>) -> Self {
        let (global, module) = match tls {
            Some(pki) => (
                format!(
                    "global(workDirectory=\"{}\" defaultNetstreamDriver=\"gtls\" \
                     defaultNetstreamDriverCAFile=\"{p}/ca.pem\" defaultNetstreamDriverCertFile=\"{p}/server.pem\" \
                     defaultNetstreamDriverKeyFile=\"{p}/server.key\")\n",
                    dir.path().display(),
                    p = pki.display()
                ),
                "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n",
            ),
            None => (format!("global(workDirectory=\"{}\")\n", dir.path().display()), "module(load=\"imtcp\")\n"),
        };
        let config = format!(
            "{global}{module}\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             ruleset(name=\"soc\") {{ action(type=\"omfile\" file=\"{dir}/received.log\" template=\"raw\") }}\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"soc\")\n",
            dir = dir.path().display()
        );
        std::fs::write(dir.path().join("rsyslog.conf"), config).unwrap();
        let child = std::process::Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(dir.path().join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.path().join("rsyslog.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rsyslogd (apt-get install rsyslog; tests/run.sh does it)");
        wait_until("rsyslog listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self { dir, port, child: Some(child) }
    }

    fn stop(mut self) -> (tempfile::TempDir, u16) {
        self.kill();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The distinct event ids received, and the lines.
    fn received(&self) -> (std::collections::HashSet<String>, Vec<String>) {
        let text = std::fs::read_to_string(self.dir.path().join("received.log")).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        // CEF's externalId, or OCSF's metadata.uid.
        let ids = lines
            .iter()
            .filter_map(|l| match l.split(" externalId=").nth(1) {
                Some(rest) => rest.split(' ').next().map(str::to_owned),
                None if l.contains(" event=\"") => {
                    l.split(" event=\"").nth(1).and_then(|rest| rest.split('"').next()).map(str::to_owned)
                }
                None => {
                    let json: serde_json::Value = serde_json::from_str(&l[l.find('{')?..]).ok()?;
                    json["metadata"]["uid"].as_str().map(str::to_owned)
                }
            })
            .collect();
        (ids, lines)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The SOC's syslog receiver gets every event as CEF over TCP, in commit
/// order, at least once, and what it missed while down once it is back.
#[test]
fn events_reach_a_real_syslog_receiver_and_survive_its_outage() {
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port, ocsf_port, tls_port) = (free_port(), free_port(), free_port());
    // The TLS receiver's certificate, from a CA of its own.
    let receiver_pki = tempfile::tempdir().unwrap();
    pki::init(&PkiDir(receiver_pki.path().to_owned()), &["127.0.0.1".to_owned()]).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("pseudonyms.key");
    std::fs::write(&key, random_secret()).unwrap();
    let c = collector_with(&format!(
        "[[export]]\nname = \"soc\"\naddress = \"127.0.0.1:{port}\"\n\
         [[export]]\nname = \"lake\"\naddress = \"127.0.0.1:{ocsf_port}\"\nformat = \"ocsf-json\"\npseudonym_key = {key:?}\n\
         [[export]]\nname = \"vault\"\naddress = \"127.0.0.1:{tls_port}\"\nformat = \"rfc5424\"\ntls_ca = {ca:?}\n",
        ca = receiver_pki.path().join("ca.pem")
    ));
    let syslog = Rsyslog::start(tempfile::tempdir().unwrap(), port);
    let lake = Rsyslog::start(tempfile::tempdir().unwrap(), ocsf_port);
    let vault = Rsyslog::start_with(tempfile::tempdir().unwrap(), tls_port, Some(receiver_pki.path()));
    // A second collector's export of `soc` on the same database: it stands
    // by (the counts below are exact: nothing is sent twice).
    let soc = c.app.config.exports.iter().find(|e| e.name == "soc").cloned().unwrap();
    c.runtime.spawn(vigie_collector::export::run(c.app.pool.clone(), soc));
    let (_agent, http) = exporting_agent(&c);
    let send = |events: Vec<Event>| post_events(&c, &http, events);
    let now = now_micros();
    let mut odd = event(now, "chatgpt", Action::Block, 3);
    odd.attribution.program_path = Some("/opt/a|b=c\\d".into());
    let odd_id = odd.id.clone();
    send(vec![odd]);
    for chunk in 0..3 {
        send((0..100).map(|i| event(now + chunk * 1_000 + i, "claude", Action::Warn, 1)).collect());
    }
    wait_until("301 events at the receiver", Duration::from_secs(30), || syslog.received().0.len() == 301);
    let (_, lines) = syslog.received();
    let line = lines.iter().find(|l| l.contains(&odd_id)).unwrap();
    assert!(line.contains("CEF:0|Vigie|Vigie|"), "{line}");
    assert!(line.contains("cs3=/opt/a|b\\=c\\\\d"), "{line}");
    assert!(
        line.contains(" suser=alice ") && line.contains(" act=block ") && line.contains(" cnt=3"),
        "{line}"
    );
    assert!(line.contains(" dvchost=poste-42 "), "{line}");
    // The other destination: OCSF, pseudonymised, on its own cursor.
    wait_until("301 OCSF events at the lake", Duration::from_secs(30), || lake.received().0.len() == 301);
    let (_, ocsf_lines) = lake.received();
    let ocsf_line = ocsf_lines.iter().find(|l| l.contains(&odd_id)).unwrap();
    let ocsf: serde_json::Value = serde_json::from_str(&ocsf_line[ocsf_line.find('{').unwrap()..]).unwrap();
    assert_eq!((ocsf["class_uid"].as_u64(), ocsf["disposition_id"].as_u64()), (Some(4001), Some(2)));
    assert!(ocsf["actor"]["user"]["name"].as_str().unwrap().starts_with("p-"), "{ocsf}");
    assert!(
        ocsf_lines.iter().all(|l| !l.contains("alice")),
        "no user name reaches a pseudonymised destination"
    );
    // And over TLS, as RFC 5424 structured data.
    wait_until("301 events over TLS", Duration::from_secs(30), || vault.received().0.len() == 301);
    let (_, sd_lines) = vault.received();
    let sd_line = sd_lines.iter().find(|l| l.contains(&odd_id)).unwrap();
    assert!(
        sd_line.contains("[vigie@32473 ") && sd_line.contains(" exePath=\"/opt/a|b=c\\\\d\""),
        "{sd_line}"
    );

    // The receiver goes away; events keep arriving; the export records why,
    // and sends what it missed once the receiver is back.
    let (dir, port) = syslog.stop();
    send((0..200).map(|i| event(now + 10_000 + i, "gemini", Action::Block, 1)).collect());
    let status = || c.runtime.block_on(vigie_collector::export::status(&c.app.pool)).unwrap();
    wait_until("the outage recorded", Duration::from_secs(30), || {
        status().iter().any(|s| s["destination"] == "soc" && !s["last_error"].is_null())
    });
    let soc = status().into_iter().find(|s| s["destination"] == "soc").unwrap();
    assert!(soc["waiting"].as_u64().unwrap() >= 200, "{soc}");
    let syslog = Rsyslog::start(dir, port);
    wait_until("all 501 events after the outage", Duration::from_secs(90), || {
        syslog.received().0.len() == 501
    });
    wait_until("both exports caught up", Duration::from_secs(10), || {
        status().iter().all(|s| s["waiting"] == 0 && s["last_error"].is_null())
    });
    assert_eq!(lake.received().0.len(), 501, "the lake was never down");
    assert_eq!(vault.received().0.len(), 501, "nor the vault");
}

/// The periodic review over a real fleet's data: two weeks compared, the
/// figures, the new service, hostile names kept as text, French and
/// English, then the PDF printed by Chromium and each page rendered as a
/// PNG (`target/report-pages/`) to be looked at.
#[test]
fn the_periodic_review_reads_the_fleet_and_prints_on_a4() {
    use vigie_collector::report::{self, Lang, Period};
    let c = collector();
    let (_agent, http) = exporting_agent(&c);
    let day = 86_400_000_000i64;
    let today = time::OffsetDateTime::now_utc().date();
    let period = Period::new(today - time::Duration::days(6), today).unwrap();
    let now = now_micros();
    let mut events = Vec::new();
    // The week before: 10 chatgpt blocks. This week: 30, a new service
    // (mistral), a program with markup in its name, clipboard blocks.
    events.extend((0..10).map(|i| event(now - 8 * day - i * 1_000_000, "chatgpt", Action::Block, 1)));
    events.extend((0..30).map(|i| event(now - day - i * 1_000_000, "chatgpt", Action::Block, 1)));
    events.extend((0..5).map(|i| event(now - 2 * day - i * 1_000_000, "claude", Action::Warn, 2)));
    let mut odd = event(now - 3 * day, "mistral", Action::Coach, 1);
    odd.attribution.program = Some("<img src=x onerror=alert(1)>".into());
    events.push(odd);
    for i in 0..3 {
        let mut copy = event(now - day - i * 1_000_000, "chatgpt", Action::Block, 1);
        (copy.source, copy.name) = ("clipboard".into(), "nir:1 email:2".into());
        events.push(copy);
    }
    // The AI software that changed: Sider installed, then its rights widened.
    for (change, at) in [("installed", 4 * day), ("rights-changed", 2 * day)] {
        let mut software = event(now - at, "sider", Action::Monitor, 1);
        (software.source, software.rule_id, software.name, software.protocol) = (
            "inventory".into(),
            format!("inventory:{change}"),
            "difoiogjjojoaoomphldepapgpbgkhkb".into(),
            "browser-extension".into(),
        );
        events.push(software);
    }
    post_events(&c, &http, events);
    // Answers to prompts, as the uploader sends them once the events are.
    let answer = |kind: &str, text: &str, ts: i64| vigie_core::proto::Answer {
        ts,
        uid: Some(1000),
        user: Some("alice".into()),
        service_id: "chatgpt".into(),
        action: Action::Block,
        event_id: Uuid::now_v7().to_string(),
        kind: vigie_core::proto::AnswerKind::parse(kind).unwrap(),
        text: Some(text.into()),
        bypass_until: (kind == "justified").then_some(ts + 3_600_000_000),
    };
    let answers = vec![
        answer("exception-requested", "Traduction d'un <b>communiqué</b> public", now - day),
        answer("justified", "Relecture d'un texte public", now - 2 * day),
        answer("acknowledged", "", now - 2 * day),
    ];
    let body = serde_json::to_vec(&serde_json::json!({ "events": [], "answers": answers })).unwrap();
    assert!(http
        .post(format!("{}/v1/events", c.url))
        .body(body.clone())
        .send()
        .unwrap()
        .status()
        .is_success());
    assert!(http.post(format!("{}/v1/events", c.url)).body(body).send().unwrap().status().is_success());
    assert_eq!(c.sql("SELECT count(*) FROM answers"), "3", "sent twice, stored once");
    // The workstation's AI software: a Cline with broad rights, a local runtime, a plain one.
    let item = |kind: &str, key: &str, name: &str, service: Option<&str>, rights: &[&str]| {
        serde_json::json!({
            "kind": kind, "host": "vscode", "key": key, "name": name, "version": "1.0", "uid": 1000,
            "user": "alice", "path": "~/x", "service_id": service, "local": service.is_none(), "rights": rights
        })
    };
    let inventory = serde_json::json!({ "events": [], "inventory": [
        item("editor-extension", "saoudrizwan.claude-dev", "Cline <script>", Some("cline"), &["auto-approve:all-tools", "agent-mode"]),
        item("local-server", "127.0.0.1:11434", "Ollama", None, &["api:ollama", "listen:network"]),
        item("editor-extension", "continue.continue", "Continue", Some("continue"), &[]),
    ]});
    let sent = http
        .post(format!("{}/v1/events", c.url))
        .body(serde_json::to_vec(&inventory).unwrap())
        .send()
        .unwrap();
    assert!(sent.status().is_success());
    let too_many: Vec<_> = (0..=vigie_fleet::proto::MAX_INVENTORY_ITEMS)
        .map(|i| item("program", &i.to_string(), "x", None, &[]))
        .collect();
    let refused = http
        .post(format!("{}/v1/events", c.url))
        .body(serde_json::to_vec(&serde_json::json!({ "events": [], "inventory": too_many })).unwrap())
        .send()
        .unwrap();
    assert_eq!(refused.status(), 413);
    assert_eq!(c.sql("SELECT count(*) FROM inventory"), "3", "the refused inventory replaced nothing");
    // `vigie-collector inventory`: the fleet-wide list, users as pseudonyms.
    let pseudonyms = vigie_core::siem::Pseudonyms::new(vec![9; 32]);
    let list = |filter| c.runtime.block_on(db::list_inventory(&c.app.pool, &pseudonyms, filter)).unwrap();
    let all = list(db::InventoryFilter::All);
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|r| r["user"].as_str().is_some_and(|u| u.starts_with("p-"))), "{all:?}");
    let broad = list(db::InventoryFilter::Broad);
    let keys: Vec<&str> = broad.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["saoudrizwan.claude-dev", "127.0.0.1:11434"], "to recertify, by kind");
    assert_eq!(broad[0]["broad"], serde_json::json!(["auto-approve:all-tools"]));
    assert_eq!(broad[0]["pending"], serde_json::json!(["auto-approve:all-tools"]));
    assert_eq!(list(db::InventoryFilter::Pending).len(), 2);
    // `vigie-collector recertify`: the review decides on Cline's auto-approval.
    let find = broad[0]["find"].as_str().unwrap().to_owned();
    assert_eq!(find.len(), 16, "a handle, not the agent id or the uid");
    let recertify = |find: &str, right: &str, decision: &str| {
        c.runtime.block_on(db::recertify(&c.app.pool, find, right, decision, "rssi\n", "à revoir en juin"))
    };
    assert!(recertify(&find, "listen:network", "keep").unwrap().is_none(), "a right this find does not hold");
    assert!(
        recertify("0123456789abcdef", "auto-approve:all-tools", "keep").unwrap().is_none(),
        "no such find"
    );
    assert!(recertify(&find, "auto-approve:all-tools", "maybe").is_err(), "keep or remove only");
    assert_eq!(c.sql("SELECT count(*) FROM recertifications"), "0", "nothing recorded by the refusals");
    let decided = recertify(&find, "auto-approve:all-tools", "remove").unwrap().unwrap();
    assert_eq!(
        (decided.decision.as_str(), decided.by.as_str()),
        ("remove", "rssi"),
        "control characters out"
    );
    let pending: Vec<String> =
        list(db::InventoryFilter::Pending).iter().map(|r| r["key"].as_str().unwrap().to_owned()).collect();
    assert_eq!(pending, ["127.0.0.1:11434"], "decided, so no longer pending");
    let listed = &list(db::InventoryFilter::Broad)[0];
    assert_eq!(listed["decisions"][0]["decision"], "remove");
    assert_eq!(listed["decisions"][0]["note"], "à revoir en juin");
    // The decision is an event of that workstation, which the exports carry.
    assert_eq!(
        c.sql("SELECT action || ' ' || rule_id || ' ' || protocol || ' ' || dst || ' ' || src || ' ' || username FROM events WHERE category = 'review'"),
        "remove recertification:remove editor-extension auto-approve:all-tools rssi alice"
    );
    c.sql("UPDATE agents SET version = '0.1.0', mode = 'enforce', last_seen = now()");
    c.sql("INSERT INTO policy_bundles (version, bundle, etag, expires_at, published_at) VALUES (7, '', 'e', now() + interval '30 days', now() - interval '2 days')");
    let data = c
        .runtime
        .block_on(report::gather(&c.app.pool, period, &vigie_core::siem::Pseudonyms::new(vec![9; 32])))
        .unwrap();
    assert_eq!(data.decisions.get("block"), Some(&(33, 10)), "{:?}", data.decisions);
    assert_eq!(data.decisions.get("warn"), Some(&(10, 0)), "5 events of 2 repeats");
    assert_eq!(data.services.first().map(|s| (s.0.as_str(), s.1, s.2, s.3)), Some(("chatgpt", 33, 10, 33)));
    assert!(data.new_services.iter().any(|(s, _)| s == "mistral"), "{:?}", data.new_services);
    assert_eq!(data.clipboard.get("personal-data"), Some(&(3, 3)));
    assert_eq!((data.enrolled, data.reporting), (1, 1));
    assert_eq!(data.top_groups, vec![("compta".to_owned(), 44)], "30 + 3 + 5 × 2 + 1");
    assert!(data.top_users.iter().all(|(u, _)| u.starts_with("p-")), "{:?}", data.top_users);
    assert_eq!(data.policy_changes.first().map(|p| p.0), Some(7));
    assert_eq!(data.answers.len(), 3);
    assert_eq!(data.recent_answers.len(), 2, "justifications and exception requests");
    assert!(data.recent_answers.iter().all(|a| a.pseudonym.starts_with("p-")), "{:?}", data.recent_answers);
    assert_eq!(data.software.len(), 3);
    assert_eq!(
        data.software_changes_count.iter().map(|(k, n)| (k.as_str(), *n)).collect::<Vec<_>>(),
        [("installed", 1), ("rights-changed", 1)]
    );
    assert_eq!(data.software_changes[0].change, "rights-changed", "latest first");
    assert!(data.software_changes.iter().all(|c| c.pseudonym.starts_with("p-") && c.host == "poste-42"));
    assert_eq!(data.recertify_total, 2, "Cline and the server open to the network");
    assert!(data.recertify.iter().all(|r| r.pseudonym.starts_with("p-")), "{:?}", data.recertify);
    let cline = data.recertify.iter().find(|r| r.kind == "editor-extension").unwrap();
    assert_eq!(cline.rights[0].1.as_ref().map(|d| d.decision.as_str()), Some("remove"));

    let fr = report::render_html(&data, period, Lang::Fr, "2026-12-05");
    assert!(fr.contains("Revue périodique") && fr.contains("+230 %"), "33 against 10");
    assert!(!fr.contains("<img") && fr.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(
        fr.contains("&lt;b&gt;communiqué&lt;/b&gt;") && fr.contains("à examiner") && !fr.contains("alice")
    );
    assert!(
        fr.contains("Logiciels d'IA sur les postes et leurs droits (R35)") && fr.contains("À recertifier")
    );
    assert!(
        fr.contains("Cline &lt;script&gt;")
            && fr.contains("auto-approve:all-tools")
            && fr.contains("listen:network")
    );
    assert!(
        fr.contains("auto-approve:all-tools : à retirer (rssi, ")
            && fr.contains("listen:network : à décider")
    );
    assert!(
        fr.contains("Ce qui a changé pendant la période")
            && fr.contains("installé : 1 · droits modifiés : 1"),
        "the period's software changes"
    );
    let en = report::render_html(&data, period, Lang::En, "2026-12-05");
    assert!(en.contains("Periodic review") && en.contains("+230%"));

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report");
    let pages = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/report-pages");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&pages);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&pages).unwrap();
    for (lang, html) in [("fr", &fr), ("en", &en)] {
        let pdf = out.join(format!("report-{lang}.pdf"));
        std::fs::write(&pdf, "stale").unwrap();
        report::print_pdf(html, &pdf).unwrap();
        assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
        let rendered = std::process::Command::new("pdftoppm")
            .args(["-png", "-r", "60"])
            .arg(&pdf)
            .arg(pages.join(format!("report-{lang}")))
            .status()
            .unwrap();
        assert!(rendered.success());
    }
    let pngs = std::fs::read_dir(&pages).unwrap().count();
    assert!(pngs >= 4, "two languages, two A4 pages or more each: {pngs}");
}

/// One event the collector refuses (400: an id that is not a UUID) sits in
/// the middle of the backlog: the uploader halves its batches down to it,
/// sets it aside (counted, kept locally), and every other event arrives.
#[test]
fn a_refused_event_is_set_aside_and_the_rest_arrives() {
    let c = collector();
    let agent = tempfile::tempdir().unwrap();
    let state = agent.path();
    c.enroll(state, &c.token("compta", 1, Duration::from_secs(600))).unwrap();
    let now = now_micros();
    let mut events: Vec<Event> =
        (0..700).map(|i| event(now - i * 1_000, "claude", Action::Warn, 1)).collect();
    events.insert(300, Event { id: "not-a-uuid".into(), ..event(now, "chatgpt", Action::Block, 1) });
    let mut store = Store::open(&state.join("events.db")).unwrap();
    store.insert(&events).unwrap();
    store.outbox_open(false).unwrap();
    let running = upload(state);
    wait_until("the backlog to drain around the refused event", Duration::from_secs(60), || {
        let o = outbox(state);
        o.backlog == 0 && o.set_aside == 1
    });
    drop(running);
    let o = outbox(state);
    assert_eq!((o.sent, o.set_aside), (700, 1), "{o:?}");
    assert_eq!(c.sql("SELECT count(*) FROM events"), "700");
}

/// An HTTPS log sink (the shape Elasticsearch's bulk API takes): every
/// event arrives once as an ECS document after its `create` action, over
/// TLS with the sink's CA pinned and the Authorization header sent; the
/// sink goes away and comes back, nothing is lost.
#[test]
fn events_reach_an_https_bulk_sink_and_survive_its_outage() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sink_pki = tempfile::tempdir().unwrap();
    pki::init(&PkiDir(sink_pki.path().to_owned()), &["127.0.0.1".to_owned()]).unwrap();
    let authorization = sink_pki.path().join("authorization");
    std::fs::write(&authorization, "ApiKey dmlnaWU6c2VjcmV0\n").unwrap();
    let c = collector_with(&format!(
        "[[export]]\nname = \"es\"\nurl = \"https://127.0.0.1:{port}/logs-vigie-default/_bulk\"\n\
         format = \"ecs-json\"\ntls_ca = {ca:?}\nauthorization_file = {authorization:?}\n",
        ca = sink_pki.path().join("ca.pem")
    ));
    let received = sink_pki.path().join("received.ndjson");
    let sink = || {
        let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/https_server.py");
        let child = KillOnDrop(
            std::process::Command::new("python3")
                .arg(server)
                .arg("127.0.0.1")
                .arg(sink_pki.path().join("server.pem"))
                .arg(sink_pki.path().join("server.key"))
                .arg(port.to_string())
                .arg(&received)
                .arg("raw")
                .env("EXPECT_AUTHORIZATION", "ApiKey dmlnaWU6c2VjcmV0")
                .spawn()
                .unwrap(),
        );
        wait_until("the HTTPS sink", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        child
    };
    let running = sink();
    let (_agent, http) = exporting_agent(&c);
    let send = |events: Vec<Event>| post_events(&c, &http, events);
    // (action, document) pairs, as the sink received them.
    let documents = || -> Vec<(serde_json::Value, serde_json::Value)> {
        let text = std::fs::read_to_string(&received).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        lines.chunks(2).map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default())).collect()
    };
    let now = now_micros();
    let mut sent_ids = std::collections::BTreeSet::new();
    let first: Vec<Event> = (0..300).map(|i| event(now + i, "claude", Action::Warn, 1)).collect();
    sent_ids.extend(first.iter().map(|e| e.id.clone()));
    send(first);
    wait_until("300 documents at the sink", Duration::from_secs(30), || documents().len() == 300);
    for (action, document) in documents() {
        assert_eq!(action["create"]["_id"], document["event"]["id"], "{action} {document}");
        assert_eq!(document["ecs"]["version"], vigie_core::siem::ECS_VERSION);
        assert_eq!(document["user"]["name"], "alice");
    }
    // The sink goes away; events keep coming; the export says why and
    // sends them once the sink is back.
    drop(running);
    let second: Vec<Event> = (0..200).map(|i| event(now + 1_000 + i, "gemini", Action::Block, 1)).collect();
    sent_ids.extend(second.iter().map(|e| e.id.clone()));
    send(second);
    let status = || c.runtime.block_on(vigie_collector::export::status(&c.app.pool)).unwrap();
    wait_until("the outage recorded", Duration::from_secs(30), || {
        status().iter().any(|s| s["destination"] == "es" && !s["last_error"].is_null())
    });
    let _back = sink();
    wait_until("every event after the outage", Duration::from_secs(90), || {
        let ids: std::collections::BTreeSet<String> =
            documents().iter().filter_map(|(_, d)| d["event"]["id"].as_str().map(str::to_owned)).collect();
        ids == sent_ids
    });
    wait_until("the export caught up", Duration::from_secs(10), || {
        status().iter().all(|s| s["waiting"] == 0 && s["last_error"].is_null())
    });
    // At least once: a batch whose answer was lost may come twice; its
    // `create` with the same `_id` stores it once in Elasticsearch.
    assert!(documents().len() >= 500);
}

/// The fleet's alerts, each raised once, as events every export carries.
#[test]
fn fleet_alerts_are_raised_once_each() {
    let c = collector_with("[alerts]\nevasion_threshold = 3\nclipboard_threshold = 2\nsilent_minutes = 1\n");
    let agent = tempfile::tempdir().unwrap();
    let enrolment = c.enroll(agent.path(), &c.token("compta", 1, Duration::from_secs(600))).unwrap();
    let http = FleetDir::new(agent.path()).client().unwrap();
    let now = now_micros();
    let mut events = vec![event(now, "chatgpt", Action::Warn, 1)];
    for i in 0..3 {
        let mut unreadable = event(now + i, "unreadable-handshake", Action::Block, 1);
        unreadable.category = "unreadable-handshake".into();
        events.push(unreadable);
    }
    for i in 0..2 {
        let mut paste = event(now + 10 + i, "claude", Action::Block, 1);
        paste.source = "clipboard".into();
        paste.name = "iban:1".into();
        events.push(paste);
    }
    let mut tamper = event(now + 20, "tamper", Action::Monitor, 1);
    tamper.category = "tamper".into();
    tamper.rule_id = "tamper:policy-refused".into();
    events.push(tamper);
    // Tamper evidence from a workstation whose clock is years off: kept in
    // quarantine, neither exported nor seen by the tamper alert.
    let mut off_clock = event(now - 3 * 365 * 86_400_000_000, "tamper", Action::Monitor, 1);
    off_clock.category = "tamper".into();
    off_clock.rule_id = "tamper:clock-moved".into();
    events.push(off_clock);
    let body = serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap();
    assert!(http.post(format!("{}/v1/events", c.url)).body(body).send().unwrap().status().is_success());
    // Its last contact is written within 5 s; then it goes silent.
    std::thread::sleep(Duration::from_secs(6));
    c.sql(&format!(
        "UPDATE agents SET last_seen = now() - interval '2 minutes' WHERE id = '{}'",
        enrolment.agent_id
    ));

    let config = c.app.config.alerts.clone();
    let raised = c.runtime.block_on(vigie_collector::alerts::evaluate(&c.app.pool, &config)).unwrap();
    let mut kinds: Vec<&str> = raised.iter().map(|a| a.kind).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "clipboard-blocks",
            "evasion-burst",
            "new-service",
            "new-service",
            "quarantined-events",
            "silent-workstation",
            "tampering"
        ],
        "{raised:#?}"
    );
    let quarantined = raised.iter().find(|a| a.kind == "quarantined-events").unwrap();
    assert!(
        quarantined.detail.starts_with("poste-42: 1 event(s) set aside")
            && quarantined.detail.contains("1 of them tamper"),
        "{quarantined:?}"
    );
    let clipboard = raised.iter().find(|a| a.kind == "clipboard-blocks").unwrap();
    assert_eq!(clipboard.user.as_deref(), Some("alice"));
    let again = c.runtime.block_on(vigie_collector::alerts::evaluate(&c.app.pool, &config)).unwrap();
    assert!(again.is_empty(), "raised once: {again:#?}");
    assert_eq!(c.sql("SELECT count(*) FROM events WHERE category = 'alert' AND action = 'alert'"), "7");
    assert_eq!(
        c.sql("SELECT string_agg(DISTINCT rule_id, ',' ORDER BY rule_id) FROM events WHERE category = 'alert'"),
        "alert:clipboard-blocks,alert:evasion-burst,alert:new-service,alert:quarantined-events,alert:silent-workstation,alert:tampering"
    );
    // The webhook: each alert POSTed, over TLS with the receiver's CA pinned.
    let hook = tempfile::tempdir().unwrap();
    pki::init(&PkiDir(hook.path().to_owned()), &["127.0.0.1".to_owned()]).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let received = hook.path().join("received.jsonl");
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/https_server.py");
    let _receiver = KillOnDrop(
        std::process::Command::new("python3")
            .arg(server)
            .arg("127.0.0.1")
            .arg(hook.path().join("server.pem"))
            .arg(hook.path().join("server.key"))
            .arg(port.to_string())
            .arg(&received)
            .spawn()
            .unwrap(),
    );
    wait_until("the webhook receiver", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let with_hook = vigie_collector::alerts::AlertsConfig {
        webhook: Some(format!("https://127.0.0.1:{port}/hook")),
        webhook_ca: Some(hook.path().join("ca.pem")),
        ..config.clone()
    };
    let webhook = vigie_collector::alerts::Webhook::new(&with_hook).unwrap().unwrap();
    for alert in &raised {
        c.runtime.block_on(webhook.deliver(alert)).unwrap();
    }
    let posted: Vec<serde_json::Value> = std::fs::read_to_string(&received)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(posted.len(), 7);
    assert!(posted.iter().any(|p| p["kind"] == "clipboard-blocks" && p["user"] == "alice"), "{posted:?}");
    // Another CA: the receiver is not trusted, nothing is sent.
    let other = tempfile::tempdir().unwrap();
    pki::init(&PkiDir(other.path().to_owned()), &["127.0.0.1".to_owned()]).unwrap();
    let wrong =
        vigie_collector::alerts::AlertsConfig { webhook_ca: Some(other.path().join("ca.pem")), ..with_hook };
    let untrusted = vigie_collector::alerts::Webhook::new(&wrong).unwrap().unwrap();
    assert!(c.runtime.block_on(untrusted.deliver(&raised[0])).is_err());

    // Switched off, a kind raises nothing.
    drop(hook);
    let mistral =
        serde_json::to_vec(&serde_json::json!({ "events": [event(now + 30, "mistral", Action::Warn, 1)] }));
    assert!(http
        .post(format!("{}/v1/events", c.url))
        .body(mistral.unwrap())
        .send()
        .unwrap()
        .status()
        .is_success());
    let quiet = vigie_collector::alerts::AlertsConfig { new_service: false, ..config.clone() };
    let none = c.runtime.block_on(vigie_collector::alerts::evaluate(&c.app.pool, &quiet)).unwrap();
    assert!(none.iter().all(|a| a.kind != "new-service"), "{none:#?}");
    let later = c.runtime.block_on(vigie_collector::alerts::evaluate(&c.app.pool, &config)).unwrap();
    assert_eq!(
        later.iter().filter(|a| a.kind == "new-service").map(|a| a.subject.as_str()).collect::<Vec<_>>(),
        ["mistral"],
        "switched on again, the service new meanwhile is alerted"
    );
}

/// Starts every configured export and enrols an agent: its folder (kept
/// for the test's length) and its client.
fn exporting_agent(c: &Collector) -> (tempfile::TempDir, reqwest::blocking::Client) {
    for export in c.app.config.exports.clone() {
        c.runtime.spawn(vigie_collector::export::run(c.app.pool.clone(), export));
    }
    let agent = tempfile::tempdir().unwrap();
    c.enroll(agent.path(), &c.token("compta", 1, Duration::from_secs(600))).unwrap();
    let http = FleetDir::new(agent.path()).client().unwrap();
    (agent, http)
}

/// Uploads `events` as the agent would.
fn post_events(c: &Collector, http: &reqwest::blocking::Client, events: Vec<Event>) {
    let body = serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap();
    let status = http.post(format!("{}/v1/events", c.url)).body(body).send().unwrap().status();
    assert!(status.is_success(), "{status}");
}

/// A child process stopped (by its pid) when the test ends, failed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The security team's side of the API: only an administrator's certificate
/// the collector issued and did not revoke opens `/v1/admin/`, an agent's
/// never does (nor does an administrator's open the agents' routes); who
/// decides a recertification is the certificate's holder; every request is
/// logged, refused ones too.
#[test]
fn administrators_reach_the_fleet_view_with_their_certificate_alone() {
    let c = collector();
    let (_agent, agent_http) = exporting_agent(&c);
    let inventory = serde_json::json!({ "events": [], "inventory": [{
        "kind": "browser-extension", "host": "chrome", "key": "difoiogjjojoaoomphldepapgpbgkhkb", "name": "Sider",
        "version": "4.10.0", "uid": 1000, "user": "alice", "path": "~/x", "service_id": "sider", "local": false,
        "rights": ["all-sites", "clipboard-read<script>", "storage"]
    }]});
    let sent =
        agent_http.post(format!("{}/v1/events", c.url)).body(serde_json::to_vec(&inventory).unwrap()).send();
    assert!(sent.unwrap().status().is_success());
    let issue = |name: &str| {
        let identity = c.app.issuer.issue_admin(name, 30).unwrap();
        c.runtime
            .block_on(db::store_admin_cert(&c.app.pool, name, &identity.serial, identity.not_after))
            .unwrap();
        vigie_fleet::https::https_client(&c.ca_pem, Some(identity.pem.as_bytes())).unwrap()
    };
    let rssi = issue("rssi@example.org");
    let anonymous = vigie_fleet::https::https_client(&c.ca_pem, None).unwrap();
    // A 503 (the database slow under the other tests' load) is asked again,
    // as the console does.
    let get = |http: &reqwest::blocking::Client, path: &str| {
        for _ in 0..5 {
            let response = http.get(format!("{}{path}", c.url)).send().unwrap();
            if response.status() != 503 {
                return response;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        panic!("{path}: the collector stayed busy");
    };
    let json = |response: reqwest::blocking::Response| -> serde_json::Value {
        serde_json::from_slice(&response.bytes().unwrap()).unwrap()
    };

    // Who may come in.
    assert_eq!(get(&anonymous, "/v1/admin/overview").status(), 401);
    assert_eq!(get(&agent_http, "/v1/admin/overview").status(), 401, "an agent is no administrator");
    assert_eq!(get(&rssi, "/v1/policy").status(), 401, "an administrator is no agent");
    // A certificate the fleet CA signed but this collector never recorded
    // (made with the CA key elsewhere): refused.
    let unrecorded = vigie_fleet::https::https_client(
        &c.ca_pem,
        Some(c.app.issuer.issue_admin("ghost", 30).unwrap().pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(get(&unrecorded, "/v1/admin/overview").status(), 403);

    // The overview: workstations and export destinations.
    let overview = json(get(&rssi, "/v1/admin/overview"));
    assert_eq!(overview["agents"][0]["hostname"], "poste-42", "{overview}");
    assert!(overview["exports"].is_array());

    // The inventory, users as pseudonyms; then a decision.
    assert_eq!(get(&rssi, "/v1/admin/inventory?filter=everything").status(), 400);
    assert_eq!(get(&rssi, "/v1/admin/inventory?filter=%27or%271").status(), 400);
    let pending = json(get(&rssi, "/v1/admin/inventory?filter=pending"));
    let pending = pending.as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0]["user"].as_str().unwrap().starts_with("p-"), "{pending:?}");
    assert!(!serde_json::to_string(&pending).unwrap().contains("alice"));
    let find = pending[0]["find"].as_str().unwrap();
    let decide = |body: serde_json::Value| {
        rssi.post(format!("{}/v1/admin/recertify", c.url))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .unwrap()
    };
    assert_eq!(
        decide(serde_json::json!({ "find": find, "right": "all-sites", "decision": "maybe" })).status(),
        400
    );
    assert_eq!(
        decide(serde_json::json!({ "find": find, "right": "tabs", "decision": "keep" })).status(),
        404
    );
    // A `by` in the body is ignored: the certificate says who decides.
    let decided = decide(serde_json::json!({
        "find": find, "right": "all-sites", "decision": "remove", "note": "sidebar only", "by": "someone-else"
    }));
    assert_eq!(decided.status(), 200);
    let decided = json(decided);
    assert_eq!(
        (decided["by"].as_str(), decided["decision"].as_str()),
        (Some("rssi@example.org"), Some("remove"))
    );
    let pending = json(get(&rssi, "/v1/admin/inventory?filter=pending"));
    assert_eq!(pending, serde_json::json!([]));
    assert_eq!(
        c.sql("SELECT src || ' ' || action FROM events WHERE category = 'review'"),
        "rssi@example.org remove",
        "the decision is an exported event naming who took it"
    );

    // An exception request, then the security team's decision on it.
    let asked = serde_json::json!({ "events": [], "answers": [{
        "ts": now_micros() - 60_000_000, "uid": 1000, "user": "alice", "service_id": "chatgpt", "action": "block",
        "event_id": Uuid::now_v7().to_string(), "kind": "exception-requested",
        "text": "Traduire un communiqué public", "bypass_until": null
    }]});
    let sent =
        agent_http.post(format!("{}/v1/events", c.url)).body(serde_json::to_vec(&asked).unwrap()).send();
    assert!(sent.unwrap().status().is_success());
    let requests = json(get(&rssi, "/v1/admin/exceptions?filter=pending"));
    let requests = requests.as_array().unwrap();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        (requests[0]["service_id"].as_str(), requests[0]["hostname"].as_str()),
        (Some("chatgpt"), Some("poste-42"))
    );
    assert!(requests[0]["user"].as_str().unwrap().starts_with("p-"));
    let request = requests[0]["request"].as_str().unwrap().to_owned();
    let post = |path: &str, body: serde_json::Value| {
        rssi.post(format!("{}{path}", c.url))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .unwrap()
    };
    let decide_path = "/v1/admin/exceptions/decide";
    assert_eq!(
        post(decide_path, serde_json::json!({ "request": request, "decision": "maybe" })).status(),
        400
    );
    assert_eq!(
        post(decide_path, serde_json::json!({ "request": "0123456789abcdef", "decision": "grant" })).status(),
        404
    );
    let refused = post(
        decide_path,
        serde_json::json!({ "request": request, "decision": "refuse", "note": "Utiliser l'outil interne" }),
    );
    assert_eq!(refused.status(), 200);
    assert_eq!(json(refused)["by"], "rssi@example.org");
    assert_eq!(json(get(&rssi, "/v1/admin/exceptions?filter=pending")), serde_json::json!([]));
    let all = json(get(&rssi, "/v1/admin/exceptions?filter=all"));
    assert_eq!(all[0]["decision"]["decision"], "refuse");
    assert_eq!(
        c.sql("SELECT action || ' ' || rule_id || ' ' || src || ' ' || username FROM events WHERE rule_id LIKE 'exception:%'"),
        "refuse exception:refuse rssi@example.org alice"
    );

    // The periodic review, as the console's button asks for it.
    assert_eq!(get(&rssi, "/v1/admin/report?from=2026-12-01").status(), 400);
    let today = time::OffsetDateTime::now_utc().date();
    let report =
        get(&rssi, &format!("/v1/admin/report?from={}&to={today}&lang=fr", today - time::Duration::days(7)));
    assert_eq!(report.status(), 200);
    assert!(report.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = report.text().unwrap();
    assert!(html.contains("Revue périodique") && html.contains("all-sites : à retirer (rssi@example.org, "));
    assert!(html.contains("refusée (rssi@example.org, "), "the exception request's outcome");

    // Revoked: refused at once.
    assert_eq!(c.runtime.block_on(db::revoke_admin(&c.app.pool, "rssi@example.org")).unwrap(), 1);
    assert_eq!(get(&rssi, "/v1/admin/overview").status(), 403);
    // Every request of an administrator's certificate is in the access log.
    let logged = c.sql(
        "SELECT string_agg(name || ' ' || method || ' ' || path || ' ' || status, ',' ORDER BY id) FROM admin_access",
    );
    for line in [
        "ghost GET /v1/admin/overview 403",
        "rssi@example.org GET /v1/admin/overview 200",
        "rssi@example.org POST /v1/admin/recertify 404",
        "rssi@example.org POST /v1/admin/recertify 200",
        "rssi@example.org POST /v1/admin/exceptions/decide 404",
        "rssi@example.org GET /v1/admin/report 200",
        "rssi@example.org GET /v1/admin/overview 403",
    ] {
        assert!(logged.contains(line), "{line} not in {logged}");
    }
}
