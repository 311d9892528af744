//! PostgreSQL: the collector's migrations, and every statement it runs.

use std::collections::HashSet;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use time::{Date, OffsetDateTime};
use tokio_postgres::NoTls;
use uuid::Uuid;
use vigie_core::event::Event;
use vigie_fleet::proto::{BatchAck, Heartbeat};

/// Ordered; `vigie_schema` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_exports.sql"),
    include_str!("../migrations/0003_alerts.sql"),
    include_str!("../migrations/0004_answers.sql"),
    include_str!("../migrations/0005_inventory.sql"),
    include_str!("../migrations/0006_recertifications.sql"),
    include_str!("../migrations/0007_admins.sql"),
    include_str!("../migrations/0008_exception_decisions.sql"),
];

/// Any number above this sits in one advisory lock shared by every
/// collector on the database: migrations and partition changes.
const SCHEMA_LOCK: i64 = 0x5649_4749_4501;

/// The pool, with every wait bounded: a database that stops answering
/// makes requests fail (503) within seconds instead of holding them.
pub fn pool(connection: &str, size: usize) -> Result<Pool> {
    let mut config = tokio_postgres::Config::from_str(connection).context("database connection string")?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_options().is_none() {
        config.options("-c statement_timeout=60000");
    }
    let manager =
        Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("database pool")
}

pub async fn migrate(pool: &Pool) -> Result<usize> {
    let mut client = pool.get().await.context("connecting to the database")?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS vigie_schema (version integer NOT NULL)").await?;
    let row = tx.query_opt("SELECT version FROM vigie_schema", &[]).await?;
    let applied = match row {
        Some(row) => usize::try_from(row.get::<_, i32>(0)).unwrap_or(usize::MAX),
        None => {
            tx.execute("INSERT INTO vigie_schema VALUES (0)", &[]).await?;
            0
        }
    };
    if applied > MIGRATIONS.len() {
        anyhow::bail!(
            "the database schema ({applied}) is newer than this collector ({}); refusing to touch it",
            MIGRATIONS.len()
        );
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await.with_context(|| format!("migration {}", index + 1))?;
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        tx.execute("UPDATE vigie_schema SET version = $1", &[&version]).await?;
    }
    tx.commit().await?;
    Ok(MIGRATIONS.len() - applied)
}

fn partition_name(day: Date) -> String {
    format!("events_{:04}{:02}{:02}", day.year(), u8::from(day.month()), day.day())
}

/// Creates the daily partitions of `days` that do not exist yet.
pub async fn ensure_partitions(pool: &Pool, days: &[Date]) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
    for day in days {
        let next = day.next_day().context("date out of range")?;
        // Names and bounds come from a `Date`, never from a request.
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ('{} 00:00:00+00') TO ('{} 00:00:00+00')",
            partition_name(*day),
            day,
            next
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Drops the partitions older than `keep_days` and the hourly counts older
/// than `rollup_days`; returns the partitions dropped.
pub async fn apply_retention(
    pool: &Pool,
    today: Date,
    keep_days: u32,
    rollup_days: u32,
) -> Result<Vec<String>> {
    let oldest_kept = today.checked_sub(time::Duration::days(i64::from(keep_days) - 1)).unwrap_or(Date::MIN);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
    let rows = tx
        .query("SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass", &[])
        .await?;
    let mut dropped = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        // Only the partitions this collector made (`events_YYYYMMDD`): the
        // name goes into SQL, so it is checked to be exactly that.
        let ours = name
            .strip_prefix("events_")
            .is_some_and(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()));
        if ours && name < partition_name(oldest_kept) {
            tx.batch_execute(&format!("DROP TABLE {name}")).await?;
            dropped.push(name);
        }
    }
    tx.commit().await?;
    // Apart, so that ingest does not wait on the drops' locks for these.
    let client = pool.get().await?;
    let now = OffsetDateTime::now_utc();
    let cutoff =
        |days: u32| to_pg_time(now.checked_sub(time::Duration::days(i64::from(days))).unwrap_or(now));
    client.execute("DELETE FROM event_rollup_hourly WHERE hour < $1", &[&cutoff(rollup_days)]).await?;
    client.execute("DELETE FROM events_quarantine WHERE received_at < $1", &[&cutoff(keep_days)]).await?;
    client.execute("DELETE FROM alerts_raised WHERE raised_at < $1", &[&cutoff(keep_days)]).await?;
    Ok(dropped)
}

fn to_pg_time(t: OffsetDateTime) -> std::time::SystemTime {
    std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::from_micros(u64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(0))
}

/// The columns of a batch, as arrays for one `unnest` insert.
#[derive(Default)]
struct Columns {
    event_id: Vec<Uuid>,
    ts: Vec<i64>,
    source: Vec<String>,
    name: Vec<String>,
    service_id: Vec<String>,
    service_name: Vec<String>,
    category: Vec<String>,
    vendor: Vec<String>,
    action: Vec<String>,
    rule_id: Vec<String>,
    policy_version: Vec<String>,
    protocol: Vec<String>,
    src: Vec<String>,
    dst: Vec<String>,
    ech: Vec<bool>,
    pid: Vec<Option<i64>>,
    program: Vec<Option<String>>,
    program_path: Vec<Option<String>>,
    uid: Vec<Option<i64>>,
    username: Vec<Option<String>>,
    repeats: Vec<i32>,
    content_hash: Vec<Option<String>>,
}

/// Text as PostgreSQL can store it: no NUL (refused by `text`), at most
/// `MAX_TEXT` characters (a row stays small whatever an agent sends).
pub fn storable(text: String) -> String {
    if !text.contains('\0') && text.len() <= MAX_TEXT {
        return text;
    }
    text.chars().map(|c| if c == '\0' { '\u{fffd}' } else { c }).take(MAX_TEXT).collect()
}

const MAX_TEXT: usize = 4_096;

/// Microseconds from 1970 to 2200: what PostgreSQL's time stamps can hold
/// with room; an event claiming another time is quarantined as received.
const SANE_TS: std::ops::RangeInclusive<i64> = 0..=7_258_118_400_000_000;

impl Columns {
    fn push(&mut self, id: Uuid, e: Event) {
        let text = storable;
        self.event_id.push(id);
        self.ts.push(e.ts);
        self.source.push(text(e.source));
        self.name.push(text(e.name));
        self.service_id.push(text(e.service_id));
        self.service_name.push(text(e.service_name));
        self.category.push(text(e.category));
        self.vendor.push(text(e.vendor));
        self.action.push(e.action.as_str().to_owned());
        self.rule_id.push(text(e.rule_id));
        self.policy_version.push(text(e.policy_version));
        self.protocol.push(text(e.protocol));
        self.src.push(text(e.src));
        self.dst.push(text(e.dst));
        self.ech.push(e.ech);
        self.pid.push(e.attribution.pid.map(i64::from));
        self.program.push(e.attribution.program.map(text));
        self.program_path.push(e.attribution.program_path.map(text));
        self.uid.push(e.attribution.uid.map(i64::from));
        self.username.push(e.attribution.user.map(text));
        self.repeats.push(i32::try_from(e.repeats).unwrap_or(i32::MAX));
        self.content_hash.push(e.content_hash.map(text));
    }

    fn is_empty(&self) -> bool {
        self.event_id.is_empty()
    }
}

const UNNEST: &str = "unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::bool[],
        $17::bigint[], $18::text[], $19::text[], $20::bigint[], $21::text[], $22::int[], $23::text[])
    AS b(event_id, ts_us, source, name, service_id, service_name, category, vendor, action, rule_id,
        policy_version, protocol, src, dst, ech, pid, program, program_path, uid, username, repeats, content_hash)";

const INSERT_COLUMNS: &str = "agent_id, event_id, ts, source, name, service_id, service_name, category, vendor,
    action, rule_id, policy_version, protocol, src, dst, ech, pid, program, program_path, uid, username, repeats,
    content_hash";

const SELECT_COLUMNS: &str =
    "$1, event_id, timestamptz 'epoch' + ts_us * interval '1 microsecond', source, name,
    service_id, service_name, category, vendor, action, rule_id, policy_version, protocol, src, dst, ech, pid,
    program, program_path, uid, username, repeats, content_hash";

/// The quarantine keeps the claimed time apart; its `ts` is the time
/// claimed when PostgreSQL can hold it, else the time received.
const QUARANTINE_COLUMNS: &str = "$1, event_id, CASE WHEN ts_us BETWEEN 0 AND 7258118400000000
    THEN timestamptz 'epoch' + ts_us * interval '1 microsecond' ELSE now() END, source, name,
    service_id, service_name, category, vendor, action, rule_id, policy_version, protocol, src, dst, ech, pid,
    program, program_path, uid, username, repeats, content_hash";

/// Replaces a workstation's AI software with what its agent sent, in one
/// transaction. Text is cleaned as answers are (control characters out,
/// lengths bounded); a find sent twice is kept once.
pub async fn store_inventory(pool: &Pool, agent: Uuid, items: &[vigie_core::inventory::Item]) -> Result<u64> {
    let clean =
        |text: &str, max: usize| -> String { text.chars().filter(|c| !c.is_control()).take(max).collect() };
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("DELETE FROM inventory WHERE agent_id = $1", &[&agent]).await?;
    let statement = tx
        .prepare(
            "INSERT INTO inventory (agent_id, uid, kind, host, key, username, name, version, path, service_id, local, rights)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let mut stored = 0;
    for item in items {
        let rights: Vec<String> = item.rights.iter().take(64).map(|r| clean(r, 200)).collect();
        stored += tx
            .execute(
                &statement,
                &[
                    &agent,
                    &item.uid.map_or(-1, i64::from),
                    &item.kind.as_str(),
                    &clean(&item.host, 128),
                    &clean(&item.key, 256),
                    &item.user.as_deref().map(|u| clean(u, 256)),
                    &clean(&item.name, 256),
                    &item.version.as_deref().map(|v| clean(v, 128)),
                    &clean(&item.path, 1024),
                    &item.service_id.as_deref().map(|s| clean(s, 128)),
                    &item.local,
                    &rights,
                ],
            )
            .await?;
    }
    tx.commit().await?;
    Ok(stored)
}

/// The longest answer text kept (the console asks for a sentence or two).
const ANSWER_TEXT_MAX: usize = 2_000;

/// Stores users' answers to prompts; those already stored by an earlier
/// attempt are ignored. Everything an agent sends is stored, cleaned:
/// control characters out, text cut at [`ANSWER_TEXT_MAX`] chars, an event
/// id that is not a UUID kept as null, a time PostgreSQL cannot hold as
/// the time it arrived.
pub async fn store_answers(pool: &Pool, agent: Uuid, answers: &[vigie_core::proto::Answer]) -> Result<u64> {
    let clean = |text: &str, max: usize| -> String {
        text.chars().filter(|c| !c.is_control() || *c == '\n').take(max).collect()
    };
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let statement = tx
        .prepare(
            "INSERT INTO answers (agent_id, ts, event_id, uid, username, service_id, action, kind, text, bypass_until)
             VALUES ($1, coalesce(to_timestamp($2::double precision / 1e6), now()), $3, $4, $5, $6, $7, $8, $9,
                     to_timestamp($10::double precision / 1e6))
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let mut stored = 0;
    for a in answers {
        // Outside PostgreSQL's range (or the agent's clock far off): now.
        let ts = (a.ts > 0 && a.ts < 253_402_300_800_000_000).then_some(a.ts as f64);
        let until = a.bypass_until.filter(|t| *t > 0 && *t < 253_402_300_800_000_000).map(|t| t as f64);
        stored += tx
            .execute(
                &statement,
                &[
                    &agent,
                    &ts,
                    &Uuid::parse_str(&a.event_id).ok(),
                    &a.uid.map(i64::from),
                    &a.user.as_deref().map(|u| clean(u, 256)),
                    &clean(&a.service_id, 128),
                    &a.action.as_str(),
                    &a.kind.as_str(),
                    &a.text.as_deref().map(|t| clean(t, ANSWER_TEXT_MAX)),
                    &until,
                ],
            )
            .await?;
    }
    tx.commit().await?;
    Ok(stored)
}

/// A malformed batch: refused whole, with the reason (nothing stored).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadBatch(pub String);

/// Stores a batch from `agent` in one transaction: events in the daily
/// partitions (those with a time outside them in quarantine), duplicates of
/// earlier attempts ignored, and the hourly counts of what was new.
pub async fn store_batch(
    pool: &Pool,
    agent: Uuid,
    events: Vec<Event>,
    window: (Date, Date),
    known_partitions: &tokio::sync::Mutex<HashSet<Date>>,
) -> Result<Result<BatchAck, BadBatch>> {
    let mut inside = Columns::default();
    let mut outside = Columns::default();
    let mut days = HashSet::new();
    for event in events {
        let Ok(id) = Uuid::parse_str(&event.id) else {
            return Ok(Err(BadBatch(format!("event id `{}` is not a UUID", event.id.escape_debug()))));
        };
        let day = Some(event.ts)
            .filter(|ts| SANE_TS.contains(ts))
            .and_then(|ts| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts) * 1_000).ok())
            .map(|t| t.date());
        match day {
            Some(day) if day >= window.0 && day <= window.1 => {
                days.insert(day);
                inside.push(id, event);
            }
            _ => outside.push(id, event),
        }
    }
    {
        let mut known = known_partitions.lock().await;
        let missing: Vec<Date> = days.iter().filter(|d| !known.contains(d)).copied().collect();
        if !missing.is_empty() {
            ensure_partitions(pool, &missing).await?;
            known.extend(missing);
        }
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut ack = BatchAck::default();
    if !inside.is_empty() {
        let sql = format!(
            "WITH ins AS (
                INSERT INTO events ({INSERT_COLUMNS}) SELECT {SELECT_COLUMNS} FROM {UNNEST}
                ON CONFLICT DO NOTHING
                RETURNING ts, service_id, category, action, repeats
            ), roll AS (
                INSERT INTO event_rollup_hourly AS r (hour, service_id, category, action, events, occurrences)
                SELECT date_trunc('hour', ts, 'UTC'), service_id, category, action, count(*), sum(repeats)
                FROM ins GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
                ON CONFLICT (hour, service_id, category, action) DO UPDATE
                                SET events = r.events + excluded.events, occurrences = r.occurrences + excluded.occurrences
                RETURNING 1
            ), seen AS (
                -- A service new to the fleet, for the alerts.
                INSERT INTO services_seen (service_id, first_hour)
                SELECT service_id, min(date_trunc('hour', ts, 'UTC')) FROM ins
                WHERE category NOT IN ('tamper', 'alert') AND service_id <> 'unreadable-handshake'
                GROUP BY service_id ORDER BY service_id
                ON CONFLICT DO NOTHING
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM roll)"
        );
        let row = tx.query_one(&sql, &params(&agent, &inside)).await?;
        let stored = u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX);
        ack.stored = stored;
        ack.duplicates = u32::try_from(inside.event_id.len()).unwrap_or(u32::MAX).saturating_sub(stored);
    }
    if !outside.is_empty() {
        let sql = format!(
                        "INSERT INTO events_quarantine ({INSERT_COLUMNS}, claimed_ts_us) SELECT {QUARANTINE_COLUMNS}, ts_us
             FROM {UNNEST} ON CONFLICT DO NOTHING"
        );
        let stored = tx.execute(&sql, &params(&agent, &outside)).await?;
        ack.quarantined = u32::try_from(stored).unwrap_or(u32::MAX);
        ack.duplicates = ack
            .duplicates
            .saturating_add(u32::try_from(outside.event_id.len() as u64 - stored).unwrap_or(u32::MAX));
    }
    tx.commit().await?;
    Ok(Ok(ack))
}

fn params<'a>(agent: &'a Uuid, c: &'a Columns) -> Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)> {
    vec![
        agent,
        &c.event_id,
        &c.ts,
        &c.source,
        &c.name,
        &c.service_id,
        &c.service_name,
        &c.category,
        &c.vendor,
        &c.action,
        &c.rule_id,
        &c.policy_version,
        &c.protocol,
        &c.src,
        &c.dst,
        &c.ech,
        &c.pid,
        &c.program,
        &c.program_path,
        &c.uid,
        &c.username,
        &c.repeats,
        &c.content_hash,
    ]
}

/// Writes what agents said since the last flush, in one statement.
pub async fn flush_seen(
    pool: &Pool,
    seen: Vec<(Uuid, std::time::SystemTime, Option<Heartbeat>)>,
) -> Result<()> {
    if seen.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::new();
    let mut times = Vec::new();
    let mut beats: Vec<Option<serde_json::Value>> = Vec::new();
    for (id, at, beat) in seen {
        ids.push(id);
        times.push(at);
        beats.push(beat.map(|b| serde_json::to_value(b).unwrap_or_default()));
    }
    let client = pool.get().await?;
    let all = client
        .execute(
            "UPDATE agents a SET last_seen = greatest(a.last_seen, s.at),
                version = coalesce(s.beat->>'version', a.version),
                mode = coalesce(s.beat->>'mode', a.mode),
                policy = coalesce(s.beat->>'policy', a.policy),
                bundle_version = CASE WHEN s.beat IS NULL THEN a.bundle_version
                                      ELSE (s.beat->>'bundle_version')::bigint END,
                health = coalesce(s.beat->>'health', a.health),
                
                outbox = coalesce(s.beat->'outbox', a.outbox),
                counters = coalesce(s.beat->'counters', a.counters)
                          FROM unnest($1::uuid[], $2::timestamptz[], $3::jsonb[]) AS s(id, at, beat)
             WHERE a.id = s.id",
            &[&ids, &times, &beats],
        )
        .await;
    if all.is_ok() {
        return Ok(());
    }
    // One row the database refuses must not cost every agent its last
    // contact: row by row, what can be written is.
    let mut failed = 0_usize;
    for ((id, at), beat) in ids.iter().zip(&times).zip(&beats) {
        let one = client
            .execute(
                "UPDATE agents SET last_seen = greatest(last_seen, $2),
                    version = coalesce($3::jsonb->>'version', version),
                    mode = coalesce($3::jsonb->>'mode', mode),
                    policy = coalesce($3::jsonb->>'policy', policy),
                    health = coalesce($3::jsonb->>'health', health)
                 WHERE id = $1",
                &[id, at, beat],
            )
            .await;
        if one.is_err() {
            // At least the contact itself.
            failed += 1;
            let _ = client
                .execute("UPDATE agents SET last_seen = greatest(last_seen, $2) WHERE id = $1", &[id, at])
                .await;
        }
    }
    anyhow::bail!("{failed} heartbeat(s) refused by the database, kept as contacts only")
}

pub async fn create_token(
    pool: &Pool,
    id: Uuid,
    secret_sha256: &[u8],
    group: &str,
    expires_at: std::time::SystemTime,
    uses: i32,
) -> Result<()> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO enrol_tokens (id, secret_sha256, grp, expires_at, uses_left) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &secret_sha256, &group, &expires_at, &uses],
        )
        .await?;
    Ok(())
}

pub async fn revoke_token(pool: &Pool, id: Uuid) -> Result<bool> {
    let client = pool.get().await?;
    let n = client
        .execute("UPDATE enrol_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", &[&id])
        .await?;
    Ok(n == 1)
}

/// What a new agent gives at enrolment.
#[derive(Debug)]
pub struct NewAgent<'a> {
    pub id: Uuid,
    pub hostname: &'a str,
    pub version: &'a str,
}

/// A certificate the collector issued.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub pem: String,
    pub serial: String,
    pub not_after: std::time::SystemTime,
}

/// Why an enrolment did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("enrolment token unknown, expired, used up or revoked")]
    Token,
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

impl From<tokio_postgres::Error> for EnrollError {
    fn from(e: tokio_postgres::Error) -> Self {
        EnrollError::Database(e.into())
    }
}

/// Takes one use of the token, issues the certificate and records the
/// agent in one transaction: a bad request or a failure on the way leaves
/// the token's use untaken. Two agents racing for the last use cannot
/// both win (the row is locked by the first `UPDATE`).
pub async fn enroll(
    pool: &Pool,
    token: Uuid,
    secret_sha256: &[u8],
    agent: &NewAgent<'_>,
    issue: impl FnOnce() -> Result<IssuedCert, String>,
) -> Result<(String, IssuedCert), EnrollError> {
    let mut client = pool.get().await.map_err(anyhow::Error::from)?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE enrol_tokens SET uses_left = uses_left - 1
             WHERE id = $1 AND secret_sha256 = $2 AND uses_left > 0 AND expires_at > now() AND revoked_at IS NULL
             RETURNING grp",
            &[&token, &secret_sha256],
        )
        .await?;
    let Some(row) = row else {
        return Err(EnrollError::Token);
    };
    let group: String = row.get(0);
    let issued = issue().map_err(EnrollError::Request)?;
    tx.execute(
        "INSERT INTO agents (id, grp, hostname, token_id, cert_serial, cert_not_after, version, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now())",
        &[&agent.id, &group, &agent.hostname, &token, &issued.serial, &issued.not_after, &agent.version],
    )
    .await?;
    tx.commit().await?;
    Ok((group, issued))
}

/// The certificates an enrolled, unrevoked agent may present: the current
/// one, and the one its last renewal replaced until that grace ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCerts {
    pub group: String,
    pub serial: String,
    pub previous: Option<(String, std::time::SystemTime)>,
}

impl AgentCerts {
    pub fn accepts(&self, serial: &str, now: std::time::SystemTime) -> bool {
        same_serial(&self.serial, serial)
            || self.previous.as_ref().is_some_and(|(old, until)| now < *until && same_serial(old, serial))
    }
}

/// Serials compared as numbers written in hex: DER drops leading zero bytes.
pub fn same_serial(a: &str, b: &str) -> bool {
    let bare = |s: &str| s.trim_start_matches('0').to_ascii_lowercase();
    bare(a) == bare(b)
}

pub async fn agent_certs(pool: &Pool, id: Uuid) -> Result<Option<AgentCerts>> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT grp, cert_serial, prev_cert_serial, prev_serial_until FROM agents
             WHERE id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| {
        let previous: Option<String> = r.get(2);
        let until: Option<std::time::SystemTime> = r.get(3);
        AgentCerts { group: r.get(0), serial: r.get(1), previous: previous.zip(until) }
    }))
}

/// How long the certificate a renewal replaced is still accepted.
pub const RENEWAL_GRACE: Duration = Duration::from_secs(600);

/// Records a renewal; returns what the agent may now present.
pub async fn renewed(pool: &Pool, id: Uuid, issued: &IssuedCert) -> Result<Option<AgentCerts>> {
    let client = pool.get().await?;
    let until = std::time::SystemTime::now() + RENEWAL_GRACE;
    let row = client
        .query_opt(
            "UPDATE agents SET prev_cert_serial = cert_serial, prev_serial_until = $4,
                cert_serial = $2, cert_not_after = $3
             WHERE id = $1 AND revoked_at IS NULL
             RETURNING grp, prev_cert_serial",
            &[&id, &issued.serial, &issued.not_after, &until],
        )
        .await?;
    Ok(row.map(|r| AgentCerts {
        group: r.get(0),
        serial: issued.serial.clone(),
        previous: Some((r.get(1), until)),
    }))
}

pub async fn revoke_agent(pool: &Pool, id: Uuid) -> Result<bool> {
    let client = pool.get().await?;
    let n = client
        .execute("UPDATE agents SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", &[&id])
        .await?;
    Ok(n == 1)
}

/// Every revoked agent (read whole each time: a revocation committed late
/// is never missed; the partial index keeps it cheap).
pub async fn revoked(pool: &Pool) -> Result<HashSet<Uuid>> {
    let client = pool.get().await?;
    let rows = client.query("SELECT id FROM agents WHERE revoked_at IS NOT NULL", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One line per agent, for `vigie-collector agents`.
pub async fn list_agents(pool: &Pool) -> Result<Vec<serde_json::Value>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT json_build_object('id', id, 'group', grp, 'hostname', hostname, 'enrolled_at', enrolled_at,
                'cert_not_after', cert_not_after, 'revoked_at', revoked_at, 'last_seen', last_seen,
                'version', version, 'mode', mode, 'policy', policy, 'bundle_version', bundle_version,
                'health', health, 'outbox', outbox, 'counters', counters)::text
             FROM agents ORDER BY grp, hostname",
            &[],
        )
        .await?;
    rows.iter().map(|r| serde_json::from_str(r.get::<_, &str>(0)).context("agent row")).collect()
}

/// A find's handle for `vigie-collector recertify`: the first 16 hex digits
/// of an MD5 over its identity (agent, uid, kind, host, key), so that the
/// list can name it without showing the agent id or the uid.
pub(crate) fn find_id(table: &str) -> String {
    format!(
        "left(md5(concat_ws(chr(31), {table}.agent_id::text, {table}.uid::text, {table}.kind, {table}.host, \
         {table}.key)), 16)"
    )
}

/// Which finds `list_inventory` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryFilter {
    All,
    /// Holding a broad right: the recertification list.
    Broad,
    /// Holding a broad right on which no decision was taken yet.
    Pending,
}

/// A recertification decision, as listed and exported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub right: String,
    pub decision: String,
    pub by: String,
    pub at: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The latest decision on each right of each find, by find handle.
pub(crate) async fn latest_decisions(
    client: &deadpool_postgres::Client,
) -> Result<std::collections::HashMap<String, Vec<Decision>>> {
    let rows = client
        .query(
            &format!(
                "SELECT DISTINCT ON (r.agent_id, r.uid, r.kind, r.host, r.key, r.right_held)
                    {}, r.right_held, r.decision, r.decided_by,
                    to_char(r.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), r.note
                 FROM recertifications r
                 ORDER BY r.agent_id, r.uid, r.kind, r.host, r.key, r.right_held, r.decided_at DESC, r.id DESC",
                find_id("r")
            ),
            &[],
        )
        .await?;
    let mut by_find: std::collections::HashMap<String, Vec<Decision>> = std::collections::HashMap::new();
    for r in &rows {
        by_find.entry(r.get(0)).or_default().push(Decision {
            right: r.get(1),
            decision: r.get(2),
            by: r.get(3),
            at: r.get(4),
            note: r.get(5),
        });
    }
    Ok(by_find)
}

/// The fleet's AI software (revoked workstations left out), users as
/// pseudonyms, each find with its handle and the latest decision on each
/// of its rights.
pub async fn list_inventory(
    pool: &Pool,
    pseudonyms: &vigie_core::siem::Pseudonyms,
    filter: InventoryFilter,
) -> Result<Vec<serde_json::Value>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT a.hostname, a.grp, i.username, i.uid, i.kind, i.host, i.key, i.name, i.version, i.service_id,
                    i.local, i.rights, to_char(i.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    {}
                 FROM inventory i JOIN agents a ON a.id = i.agent_id
                 WHERE a.revoked_at IS NULL
                 ORDER BY a.grp, a.hostname, i.uid, i.kind, i.key",
                find_id("i")
            ),
            &[],
        )
        .await?;
    let decisions = latest_decisions(&client).await?;
    let mut found = Vec::with_capacity(rows.len());
    for r in &rows {
        let rights: Vec<String> = r.get(11);
        let broad_rights: Vec<&String> =
            rights.iter().filter(|x| vigie_core::inventory::is_broad_right(x)).collect();
        let find: String = r.get(13);
        // Decisions on rights the find still holds; a right it lost needs none.
        let decided: Vec<&Decision> = decisions
            .get(&find)
            .map(|all| all.iter().filter(|d| rights.contains(&d.right)).collect())
            .unwrap_or_default();
        let pending: Vec<&&String> =
            broad_rights.iter().filter(|right| !decided.iter().any(|d| &&d.right == *right)).collect();
        match filter {
            InventoryFilter::Broad if broad_rights.is_empty() => continue,
            InventoryFilter::Pending if pending.is_empty() => continue,
            _ => {}
        }
        let (user, uid): (Option<String>, i64) = (r.get(2), r.get(3));
        let who = match user.filter(|u| !u.is_empty()) {
            Some(user) => Some(pseudonyms.of(&user)),
            None => (uid >= 0).then(|| pseudonyms.of(&uid.to_string())),
        };
        found.push(serde_json::json!({
            "hostname": r.get::<_, String>(0),
            "group": r.get::<_, String>(1),
            "user": who,
            "kind": r.get::<_, String>(4),
            "host": r.get::<_, String>(5),
            "key": r.get::<_, String>(6),
            "name": r.get::<_, String>(7),
            "version": r.get::<_, Option<String>>(8),
            "service_id": r.get::<_, Option<String>>(9),
            "local": r.get::<_, bool>(10),
            "rights": rights,
            "broad": broad_rights,
            "received_at": r.get::<_, String>(12),
            "find": find,
            "decisions": decided,
            "pending": pending,
        }));
    }
    Ok(found)
}

/// Who decides and why, as stored: control characters out, lengths bounded;
/// someone must be named.
fn decider_and_note(by: &str, note: &str) -> Result<(String, String)> {
    let clean =
        |text: &str, max: usize| -> String { text.chars().filter(|c| !c.is_control()).take(max).collect() };
    let (by, note) = (clean(by, 128), clean(note, 1000));
    anyhow::ensure!(!by.trim().is_empty(), "who decides must be named");
    Ok((by, note))
}

/// Records a decision on one right of one find (named by its handle), and
/// the event that carries it to the export destinations, in one
/// transaction. `Ok(None)` when no find has that handle or it does not
/// hold that right.
pub async fn recertify(
    pool: &Pool,
    find: &str,
    right: &str,
    decision: &str,
    by: &str,
    note: &str,
) -> Result<Option<Decision>> {
    anyhow::ensure!(matches!(decision, "keep" | "remove"), "a decision is keep or remove, not {decision:?}");
    let (by, note) = decider_and_note(by, note)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!(
                "SELECT i.agent_id, i.uid, i.kind, i.host, i.key, a.hostname, i.name, i.service_id, i.username
                 FROM inventory i JOIN agents a ON a.id = i.agent_id
                 WHERE {} = $1 AND $2 = ANY(i.rights)",
                find_id("i")
            ),
            &[&find, &right],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (agent, uid, kind, host, key): (Uuid, i64, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let (hostname, name, service, user): (String, String, Option<String>, Option<String>) =
        (row.get(5), row.get(6), row.get(7), row.get(8));
    let at: String = tx
        .query_one(
            "INSERT INTO recertifications
                (agent_id, uid, kind, host, key, hostname, name, service_id, right_held, decision, decided_by, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             RETURNING to_char(decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[&agent, &uid, &kind, &host, &key, &hostname, &name, &service, &right, &decision, &by, &note],
        )
        .await?
        .get(0);
    // The decision as an event of the workstation it is about: name the
    // software, protocol its kind, dst the right, src who decided.
    tx.execute(
        "INSERT INTO events (agent_id, event_id, ts, source, name, service_id, service_name, category, vendor,
            action, rule_id, policy_version, protocol, src, dst, ech, uid, username, repeats)
         VALUES ($1, gen_random_uuid(), now(), 'review', $2, coalesce($3, ''), '', 'review', '', $4,
            'recertification:' || $4, '', $5, $6, $7, false, nullif($8::bigint, -1), $9, 1)",
        &[&agent, &key, &service, &decision, &kind, &by, &right, &uid, &user],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Decision { right: right.to_owned(), decision: decision.to_owned(), by, at, note }))
}

/// Publishes a verified bundle; refuses a version not above the latest.
pub async fn publish_bundle(
    pool: &Pool,
    version: i64,
    bundle: &[u8],
    etag: &str,
    expires_at: std::time::SystemTime,
) -> Result<Result<(), i64>> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("LOCK TABLE policy_bundles IN EXCLUSIVE MODE", &[]).await?;
    let latest: Option<i64> = tx.query_one("SELECT max(version) FROM policy_bundles", &[]).await?.get(0);
    if let Some(latest) = latest.filter(|l| *l >= version) {
        return Ok(Err(latest));
    }
    tx.execute(
        "INSERT INTO policy_bundles (version, bundle, etag, expires_at) VALUES ($1, $2, $3, $4)",
        &[&version, &bundle, &etag, &expires_at],
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// The latest bundle's ETag.
pub async fn latest_etag(pool: &Pool) -> Result<Option<String>> {
    let client = pool.get().await?;
    let row = client.query_opt("SELECT etag FROM policy_bundles ORDER BY version DESC LIMIT 1", &[]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// The latest bundle and its ETag.
pub async fn latest_bundle(pool: &Pool) -> Result<Option<(Vec<u8>, String)>> {
    let client = pool.get().await?;
    let row = client
        .query_opt("SELECT bundle, etag FROM policy_bundles ORDER BY version DESC LIMIT 1", &[])
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Records an administrator's certificate as issued.
pub async fn store_admin_cert(
    pool: &Pool,
    name: &str,
    serial: &str,
    not_after: OffsetDateTime,
) -> Result<()> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO admin_certs (serial, name, not_after) VALUES ($1, $2, $3)",
            &[&serial, &name, &system_time_of(not_after)],
        )
        .await?;
    Ok(())
}

fn system_time_of(t: OffsetDateTime) -> std::time::SystemTime {
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// Whether the certificate `serial` of `name` is one issued here, neither
/// revoked nor expired.
pub async fn admin_cert_valid(pool: &Pool, name: &str, serial: &str) -> Result<bool> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT 1 FROM admin_certs WHERE serial = $1 AND name = $2 AND revoked_at IS NULL AND not_after > now()",
            &[&serial, &name],
        )
        .await?;
    Ok(row.is_some())
}

/// Revokes every certificate of `name`; how many.
pub async fn revoke_admin(pool: &Pool, name: &str) -> Result<u64> {
    let client = pool.get().await?;
    Ok(client
        .execute("UPDATE admin_certs SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", &[&name])
        .await?)
}

/// One request of an administrator, as answered.
pub async fn log_admin_access(
    pool: &Pool,
    name: &str,
    serial: &str,
    method: &str,
    path: &str,
    status: u16,
) -> Result<()> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO admin_access (name, serial, method, path, status) VALUES ($1, $2, $3, $4, $5)",
            &[&name, &serial, &method, &path.chars().take(512).collect::<String>(), &i32::from(status)],
        )
        .await?;
    Ok(())
}

/// An exception request's handle: the first 16 hex digits of an MD5 over
/// its identity (agent, the event that opened the prompt, its time).
pub(crate) const REQUEST_ID: &str =
    "left(md5(concat_ws(chr(31), a.agent_id::text, coalesce(a.event_id::text, ''), \
     (extract(epoch FROM a.ts) * 1000000)::bigint::text)), 16)";

/// The security team's decision on an exception request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExceptionDecision {
    /// `grant` or `refuse`.
    pub decision: String,
    pub by: String,
    pub at: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The latest decision on each exception request, by request handle.
pub(crate) async fn exception_decisions(
    client: &deadpool_postgres::Client,
) -> Result<std::collections::HashMap<String, ExceptionDecision>> {
    let rows = client
        .query(
            "SELECT DISTINCT ON (request) request, decision, decided_by,
                to_char(decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), note
             FROM exception_decisions ORDER BY request, decided_at DESC, id DESC",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (r.get(0), ExceptionDecision { decision: r.get(1), by: r.get(2), at: r.get(3), note: r.get(4) })
        })
        .collect())
}

/// Exception requests of the last `days`, newest first (at most 500), users
/// as pseudonyms, each with its handle and the latest decision on it; with
/// `pending`, only those not decided yet.
/// How far back exception requests are listed and may be decided.
pub const EXCEPTION_REQUEST_DAYS: i32 = 90;

pub async fn list_exception_requests(
    pool: &Pool,
    pseudonyms: &vigie_core::siem::Pseudonyms,
    pending: bool,
) -> Result<Vec<serde_json::Value>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {REQUEST_ID}, to_char(a.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    coalesce(g.hostname, ''), coalesce(g.grp, ''), a.username, a.service_id, a.action, coalesce(a.text, '')
                 FROM answers a LEFT JOIN agents g ON g.id = a.agent_id
                 WHERE a.kind = 'exception-requested' AND a.ts > now() - make_interval(days => $1)
                 ORDER BY a.ts DESC LIMIT 500"
            ),
            &[&EXCEPTION_REQUEST_DAYS],
        )
        .await?;
    let decisions = exception_decisions(&client).await?;
    let mut found = Vec::with_capacity(rows.len());
    for r in &rows {
        let request: String = r.get(0);
        let decision = decisions.get(&request);
        if pending && decision.is_some() {
            continue;
        }
        let user: Option<String> = r.get(4);
        found.push(serde_json::json!({
            "request": request,
            "at": r.get::<_, String>(1),
            "hostname": r.get::<_, String>(2),
            "group": r.get::<_, String>(3),
            "user": user.filter(|u| !u.is_empty()).map(|u| pseudonyms.of(&u)),
            "service_id": r.get::<_, String>(5),
            "action": r.get::<_, String>(6),
            "text": r.get::<_, String>(7),
            "decision": decision,
        }));
    }
    Ok(found)
}

/// Records the decision on one exception request (named by its handle) and
/// the event that carries it to the export destinations, in one
/// transaction. `Ok(None)` when no exception request has that handle.
pub async fn decide_exception(
    pool: &Pool,
    request: &str,
    decision: &str,
    by: &str,
    note: &str,
) -> Result<Option<ExceptionDecision>> {
    anyhow::ensure!(
        matches!(decision, "grant" | "refuse"),
        "a decision is grant or refuse, not {decision:?}"
    );
    let (by, note) = decider_and_note(by, note)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!(
                "SELECT a.agent_id, a.service_id, a.username, a.uid FROM answers a
                 WHERE a.kind = 'exception-requested' AND a.ts > now() - make_interval(days => $2)
                   AND {REQUEST_ID} = $1 LIMIT 1"
            ),
            &[&request, &EXCEPTION_REQUEST_DAYS],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (agent, service, user, uid): (Uuid, String, Option<String>, Option<i64>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let at: String = tx
        .query_one(
            "INSERT INTO exception_decisions (request, agent_id, service_id, username, decision, decided_by, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING to_char(decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[&request, &agent, &service, &user, &decision, &by, &note],
        )
        .await?
        .get(0);
    // The decision as an event of the workstation the request came from:
    // name and service the service asked for, dst the request, src who decided.
    tx.execute(
        "INSERT INTO events (agent_id, event_id, ts, source, name, service_id, service_name, category, vendor,
            action, rule_id, policy_version, protocol, src, dst, ech, uid, username, repeats)
         VALUES ($1, gen_random_uuid(), now(), 'review', $2, $2, '', 'review', '', $3,
            'exception:' || $3, '', 'exception-request', $4, $5, false, $6, $7, 1)",
        &[&agent, &service, &decision, &by, &request, &uid, &user],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(ExceptionDecision { decision: decision.to_owned(), by, at, note }))
}
