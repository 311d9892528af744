//! What the hourly counts buy: a 30-day chart (events per day, service and
//! decision) over millions of events, read from the events themselves and
//! from `event_rollup_hourly`, in the same database; and the periodic
//! review of those 30 days (`vigie-collector report`), timed from its
//! queries to its HTML. Ignored by default; run by
//! `tests/bench/collector-charts.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::time::Instant;

use vigie_collector::db;
use vigie_tests::postgres::TempPostgres;

#[test]
#[ignore = "benchmark: tests/bench/collector-charts.sh"]
fn charts_from_the_rollup_against_the_events() {
    let events: u64 =
        std::env::var("VIGIE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000_000);
    let pg = TempPostgres::start().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let pool = db::pool(&pg.connection(), 2).unwrap();
        db::migrate(&pool).await.unwrap();
        let today = time::OffsetDateTime::now_utc().date();
        let days: Vec<_> = (0..31).map(|n| today - time::Duration::days(n)).collect();
        db::ensure_partitions(&pool, &days).await.unwrap();
    });
    // Events spread over 30 days, 40 services, 5 decisions, 2,000 agents.
    let fill = format!(
        "INSERT INTO events (agent_id, event_id, ts, source, name, service_id, service_name, category, vendor, action,
            rule_id, policy_version, protocol, src, dst, ech, pid, program, program_path, uid, username, repeats)
         SELECT md5((i % 2000)::text)::uuid, gen_random_uuid(), now() - (i % 2592000) * interval '1 second',
            'tls', 's' || (i % 40) || '.example', 's' || (i % 40), 'S', 'chat', 'V',
            (ARRAY['allow','monitor','warn','coach','block'])[1 + i % 5], 'r', '1', 'tcp', '', '', false, 1,
            'firefox', '/usr/bin/firefox', 1000, 'u' || (i % 500), 1 + i % 3
         FROM generate_series(1, {events}) AS i"
    );
    let started = Instant::now();
    pg.psql("vigie", &fill).unwrap();
    pg.psql(
        "vigie",
        "INSERT INTO event_rollup_hourly (hour, service_id, category, action, events, occurrences)
         SELECT date_trunc('hour', ts, 'UTC'), service_id, category, action, count(*), sum(repeats)
         FROM events GROUP BY 1, 2, 3, 4",
    )
    .unwrap();
    pg.psql("vigie", "VACUUM ANALYZE").unwrap();
    let filled = started.elapsed();
    let chart = |table_sql: &str| {
        // Best of three, each a fresh psql: what a console's chart costs.
        (0..3)
            .map(|_| {
                let start = Instant::now();
                let rows = pg.psql("vigie", table_sql).unwrap();
                (start.elapsed(), rows.lines().count())
            })
            .min()
            .unwrap()
    };
    let (raw, raw_rows) = chart(
        "SELECT date_trunc('day', ts, 'UTC'), service_id, action, count(*) FROM events
         WHERE ts > now() - interval '30 days' GROUP BY 1, 2, 3",
    );
    let (rolled, rolled_rows) = chart(
        "SELECT date_trunc('day', hour, 'UTC'), service_id, action, sum(events) FROM event_rollup_hourly
         WHERE hour > now() - interval '30 days' GROUP BY 1, 2, 3",
    );
    assert!(raw_rows > 0 && rolled_rows > 0);
    let rollup_rows = pg.psql("vigie", "SELECT count(*) FROM event_rollup_hourly").unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    let period = vigie_collector::report::Period::new(today - time::Duration::days(29), today).unwrap();
    let started = Instant::now();
    let html = runtime.block_on(async {
        let pool = db::pool(&pg.connection(), 2).unwrap();
        let data =
            vigie_collector::report::gather(&pool, period, &vigie_core::siem::Pseudonyms::new(vec![1; 32]))
                .await
                .unwrap();
        vigie_collector::report::render_html(&data, period, vigie_collector::report::Lang::Fr, "bench")
    });
    let report = started.elapsed();
    assert!(html.contains("Revue périodique"));
    println!(
        "collector-report: the 30-day periodic review over {events} events built in {:.1} s (HTML, {} KB)",
        report.as_secs_f64(),
        html.len() / 1024
    );
    println!(
        "collector-charts: {events} events ({rollup_rows} hourly rows, filled in {:.0} s): 30-day chart from the events {:.0} ms, from the hourly counts {:.0} ms ({:.0}x)",
        filled.as_secs_f64(),
        raw.as_secs_f64() * 1e3,
        rolled.as_secs_f64() * 1e3,
        raw.as_secs_f64() / rolled.as_secs_f64()
    );
}
