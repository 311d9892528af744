//! PostgreSQL: the collector's migrations, and every statement it runs.

use std::collections::HashSet;
use std::str::FromStr as _;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use time::{Date, OffsetDateTime};
use tokio_postgres::NoTls;
use uuid::Uuid;
use vigie_core::event::Event;
use vigie_fleet::proto::{BatchAck, Heartbeat};

/// Ordered; `vigie_schema` records how many ran.
const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_init.sql")];

/// Any number above this sits in one advisory lock shared by every
/// collector on the database: migrations and partition changes.
const SCHEMA_LOCK: i64 = 0x5649_4749_4501;

pub fn pool(connection: &str, size: usize) -> Result<Pool> {
    let config = tokio_postgres::Config::from_str(connection).context("database connection string")?;
    let manager =
        Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager).max_size(size).build().context("database pool")
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
    let oldest_kept = today - time::Duration::days(i64::from(keep_days) - 1);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
    let rows = tx
        .query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'",
            &[],
        )
        .await?;
    let mut dropped = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        if name.len() == "events_yyyymmdd".len() && name < partition_name(oldest_kept) {
            tx.batch_execute(&format!("DROP TABLE {name}")).await?;
            dropped.push(name);
        }
    }
    let rollup_cutoff = OffsetDateTime::now_utc() - time::Duration::days(i64::from(rollup_days));
    tx.execute("DELETE FROM event_rollup_hourly WHERE hour < $1", &[&to_pg_time(rollup_cutoff)]).await?;
    tx.commit().await?;
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

impl Columns {
    fn push(&mut self, id: Uuid, e: Event) {
        self.event_id.push(id);
        self.ts.push(e.ts);
        self.source.push(e.source);
        self.name.push(e.name);
        self.service_id.push(e.service_id);
        self.service_name.push(e.service_name);
        self.category.push(e.category);
        self.vendor.push(e.vendor);
        self.action.push(e.action.as_str().to_owned());
        self.rule_id.push(e.rule_id);
        self.policy_version.push(e.policy_version);
        self.protocol.push(e.protocol);
        self.src.push(e.src);
        self.dst.push(e.dst);
        self.ech.push(e.ech);
        self.pid.push(e.attribution.pid.map(i64::from));
        self.program.push(e.attribution.program);
        self.program_path.push(e.attribution.program_path);
        self.uid.push(e.attribution.uid.map(i64::from));
        self.username.push(e.attribution.user);
        self.repeats.push(i32::try_from(e.repeats).unwrap_or(i32::MAX));
        self.content_hash.push(e.content_hash);
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
        let day =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(event.ts) * 1_000).ok().map(|t| t.date());
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
            "INSERT INTO events_quarantine ({INSERT_COLUMNS}) SELECT {SELECT_COLUMNS} FROM {UNNEST}
             ON CONFLICT DO NOTHING"
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
    client
        .execute(
            "UPDATE agents a SET last_seen = greatest(a.last_seen, s.at),
                version = coalesce(s.beat->>'version', a.version),
                mode = coalesce(s.beat->>'mode', a.mode),
                policy = coalesce(s.beat->>'policy', a.policy),
                bundle_version = CASE WHEN s.beat IS NULL THEN a.bundle_version
                                      ELSE (s.beat->>'bundle_version')::bigint END,
                health = coalesce(s.beat->>'health', a.health),
                hostname = coalesce(s.beat->>'hostname', a.hostname),
                outbox = coalesce(s.beat->'outbox', a.outbox)
             FROM unnest($1::uuid[], $2::timestamptz[], $3::jsonb[]) AS s(id, at, beat)
             WHERE a.id = s.id",
            &[&ids, &times, &beats],
        )
        .await?;
    Ok(())
}

/// Takes one use of an enrolment token, if it is valid; returns its id and group.
/// One statement: two agents racing for the last use cannot both win.
pub async fn take_token(pool: &Pool, id: Uuid, secret_sha256: &[u8]) -> Result<Option<(Uuid, String)>> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "UPDATE enrol_tokens SET uses_left = uses_left - 1
             WHERE id = $1 AND secret_sha256 = $2 AND uses_left > 0 AND expires_at > now() AND revoked_at IS NULL
             RETURNING id, grp",
            &[&id, &secret_sha256],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
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

#[derive(Debug)]
pub struct NewAgent<'a> {
    pub id: Uuid,
    pub group: &'a str,
    pub hostname: &'a str,
    pub token: Uuid,
    pub serial: &'a str,
    pub not_after: std::time::SystemTime,
    pub version: &'a str,
}

pub async fn insert_agent(pool: &Pool, agent: &NewAgent<'_>) -> Result<()> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO agents (id, grp, hostname, token_id, cert_serial, cert_not_after, version, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, now())",
            &[&agent.id, &agent.group, &agent.hostname, &agent.token, &agent.serial, &agent.not_after, &agent.version],
        )
        .await?;
    Ok(())
}

/// The agent's group, when it is enrolled and not revoked.
pub async fn agent_group(pool: &Pool, id: Uuid) -> Result<Option<String>> {
    let client = pool.get().await?;
    let row = client.query_opt("SELECT grp FROM agents WHERE id = $1 AND revoked_at IS NULL", &[&id]).await?;
    Ok(row.map(|r| r.get(0)))
}

pub async fn renewed(pool: &Pool, id: Uuid, serial: &str, not_after: std::time::SystemTime) -> Result<()> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE agents SET cert_serial = $2, cert_not_after = $3 WHERE id = $1",
            &[&id, &serial, &not_after],
        )
        .await?;
    Ok(())
}

pub async fn revoke_agent(pool: &Pool, id: Uuid) -> Result<bool> {
    let client = pool.get().await?;
    let n = client
        .execute("UPDATE agents SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", &[&id])
        .await?;
    Ok(n == 1)
}

/// Agents revoked after `since` (all of them from `None`), and the latest time seen.
pub async fn revoked_since(
    pool: &Pool,
    since: Option<std::time::SystemTime>,
) -> Result<(Vec<Uuid>, Option<std::time::SystemTime>)> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, revoked_at FROM agents WHERE revoked_at IS NOT NULL AND ($1::timestamptz IS NULL OR revoked_at >= $1)",
            &[&since],
        )
        .await?;
    let mut latest = since;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let at: std::time::SystemTime = row.get(1);
        latest = Some(latest.map_or(at, |l| l.max(at)));
        ids.push(row.get(0));
    }
    Ok((ids, latest))
}

/// One line per agent, for `vigie-collector agents`.
pub async fn list_agents(pool: &Pool) -> Result<Vec<serde_json::Value>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT json_build_object('id', id, 'group', grp, 'hostname', hostname, 'enrolled_at', enrolled_at,
                'cert_not_after', cert_not_after, 'revoked_at', revoked_at, 'last_seen', last_seen,
                'version', version, 'mode', mode, 'policy', policy, 'bundle_version', bundle_version,
                'health', health, 'outbox', outbox)::text
             FROM agents ORDER BY grp, hostname",
            &[],
        )
        .await?;
    rows.iter().map(|r| serde_json::from_str(r.get::<_, &str>(0)).context("agent row")).collect()
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

/// The latest bundle and its ETag.
pub async fn latest_bundle(pool: &Pool) -> Result<Option<(Vec<u8>, String)>> {
    let client = pool.get().await?;
    let row = client
        .query_opt("SELECT bundle, etag FROM policy_bundles ORDER BY version DESC LIMIT 1", &[])
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}
