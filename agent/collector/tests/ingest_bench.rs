//! How fast the collector stores events, against PostgreSQL's own floor in
//! the same run: `COPY` of the same rows by psql into the same partitioned
//! table (no TLS, no HTTP, no JSON, no idempotence check). Ignored by
//! default; run by `tests/bench/collector-ingest.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

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

struct Quiet;
impl AgentLink for Quiet {
    fn heartbeat(&self) -> Heartbeat {
        Heartbeat::default()
    }
    fn policy_refused(&self, _: &str) {}
}

fn event(i: usize, now: i64) -> Event {
    let services = ["chatgpt", "claude", "gemini", "mistral", "deepseek"];
    Event {
        id: Uuid::now_v7().to_string(),
        ts: now - i64::try_from(i).unwrap() * 10_000,
        source: "tls".into(),
        name: format!("{}.example", services[i % 5]),
        service_id: services[i % 5].into(),
        service_name: services[i % 5].into(),
        category: "chat".into(),
        vendor: "V".into(),
        action: if i % 3 == 0 { Action::Block } else { Action::Monitor },
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
            user: Some(format!("user{}", i % 50)),
        },
        repeats: 1,
        content_hash: None,
    }
}

#[test]
#[ignore = "benchmark: tests/bench/collector-ingest.sh"]
fn collector_ingest_against_copy() {
    let agents: usize = std::env::var("VIGIE_BENCH_AGENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let per_agent: usize =
        std::env::var("VIGIE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let pg = TempPostgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = PkiDir(dir.path().join("pki"));
    pki::init(&pki_dir, &["127.0.0.1".to_owned()]).unwrap();
    let config =
        Config::parse(&format!("database = \"{}\"\npki = \"{}\"\n", pg.connection(), pki_dir.0.display()))
            .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tls = pki::server_config(&pki_dir).unwrap();
    let issuer = Issuer::load(&pki_dir, config.certificate_days).unwrap();
    let (app, listener) = runtime.block_on(async {
        let pool = db::pool(&config.database, config.pool_size).unwrap();
        db::migrate(&pool).await.unwrap();
        let app = Arc::new(server::App::new(pool, issuer, config).unwrap());
        server::maintain(&app).await.unwrap();
        (app, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    });
    let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    runtime.spawn(server::serve(listener, tls, Arc::clone(&app), std::future::pending()));
    let ca_pem = std::fs::read(pki_dir.ca_cert()).unwrap();

    // Each agent enrolled, with its store filled beforehand.
    let now = i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros(),
    )
    .unwrap();
    let mut states = Vec::new();
    for _ in 0..agents {
        let state = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let secret: [u8; 16] = *Uuid::new_v4().as_bytes();
        let expires = std::time::SystemTime::now() + Duration::from_secs(600);
        runtime
            .block_on(db::create_token(&app.pool, id, Sha256::digest(secret).as_slice(), "bench", expires, 1))
            .unwrap();
        use base64::Engine as _;
        let token = format!("{id}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
        let options = EnrollOptions {
            url: url.clone(),
            token,
            ca_pem: ca_pem.clone(),
            policy_key_pem: None,
            hostname: "bench".into(),
            version: "bench".into(),
            force: false,
        };
        client::enroll(&FleetDir::new(state.path()), &options).unwrap();
        let mut store = Store::open(&state.path().join("events.db")).unwrap();
        let events: Vec<Event> = (0..per_agent).map(|i| event(i, now)).collect();
        for chunk in events.chunks(5_000) {
            store.insert(chunk).unwrap();
        }
        store.outbox_open(false).unwrap();
        states.push(state);
    }

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = states
        .iter()
        .map(|state| {
            let config = UploaderConfig {
                idle: Duration::from_millis(20),
                heartbeat_every: Duration::from_secs(3_600),
                policy_every: Duration::from_secs(3_600),
                ..UploaderConfig::default()
            };
            let uploader = Uploader::new(
                FleetDir::new(state.path()),
                state.path().join("events.db"),
                config,
                Box::new(Quiet),
            );
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || uploader.run(&stop))
        })
        .collect();
    let total = agents * per_agent;
    loop {
        let stored: usize = pg.psql("vigie", "SELECT count(*) FROM events").unwrap().parse().unwrap();
        if stored >= total {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "only {stored} of {total} after 10 min");
        std::thread::sleep(Duration::from_millis(200));
    }
    let vigie = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }

    // The peer: the same rows, COPY'd by psql into the same table.
    // The peer: the same rows, COPY'd by the server into the same table
    // (the file in the server's own folder: it runs as postgres).
    let csv = pg.dir().join("rows.csv");
    pg.psql("vigie", &format!(
        "COPY (SELECT gen_random_uuid(), event_id, ts, received_at, source, name, service_id, service_name, category, vendor, action, rule_id, policy_version, protocol, src, dst, ech, pid, program, program_path, uid, username, repeats, content_hash FROM events) TO '{}' WITH (FORMAT csv)",
        csv.display()
    )).unwrap();
    let start = Instant::now();
    pg.psql("vigie", &format!("COPY events FROM '{}' WITH (FORMAT csv)", csv.display())).unwrap();
    let floor = start.elapsed();
    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!(
        "collector-ingest: {agents} agents x {per_agent} events: vigie {:.0} events/s ({:.2} s), COPY {:.0} events/s ({:.2} s), vigie/COPY = {:.2}",
        rate(vigie),
        vigie.as_secs_f64(),
        rate(floor),
        floor.as_secs_f64(),
        floor.as_secs_f64() / vigie.as_secs_f64()
    );
}
