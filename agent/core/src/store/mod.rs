//! The event store: SQLite (bundled) in WAL mode, versioned migrations,
//! batched writes. A batch is acknowledged only once its transaction has
//! committed with `synchronous=FULL`, so acknowledged events survive a crash.

use std::path::Path;

use rusqlite::{params, Connection};

use crate::clipboard::RecentFlow;
use crate::event::{Attribution, Event};
use crate::policy::Action;
use crate::proto::AnswerKind;
use crate::sensor::Micros;

mod inventory;
mod local_export;
mod outbox;
mod query;
pub use crate::inventory::InventoryRow;
pub use inventory::InventorySummary;
pub use local_export::LocalExportState;
pub use outbox::{OutboxState, BACKLOG_COUNT_CAP};
pub use query::QueryError;
use query::ANSWER_COLUMNS;

/// Ordered migrations; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_events.sql"),
    include_str!("migrations/0002_journal_answers.sql"),
    include_str!("migrations/0003_event_repeats.sql"),
    concat!(include_str!("migrations/0004_event_terms.sql"), include_str!("event_terms_fill.sql")),
    include_str!("migrations/0005_event_content_hash.sql"),
    include_str!("migrations/0006_outbox.sql"),
    include_str!("migrations/0007_local_exports.sql"),
    include_str!("migrations/0008_outbox_answers.sql"),
    include_str!("migrations/0009_inventory.sql"),
    include_str!("migrations/0010_inventory_sync.sql"),
    include_str!("migrations/0011_agent_starts.sql"),
];

/// Messages say their cause, which is therefore no `source()` (a report of
/// the whole chain would say it twice).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store: {0}")]
    Sqlite(rusqlite::Error),
    #[error(
        "event store schema version {found} is newer than this agent ({supported}); refusing to touch it"
    )]
    TooNew { found: i64, supported: usize },
    #[error(
        "event store schema version {found} is not this agent's ({expected}): open it for writing first"
    )]
    Unmigrated { found: i64, expected: usize },
    #[error(
        "event store migration {step} of {total} failed ({why}); the store is left as it was, \
         at schema version {kept}"
    )]
    Migration { step: usize, total: usize, kept: i64, why: String },
    #[error("event store holds an unknown action `{0}`")]
    UnknownAction(String),
    #[error("event store holds an unknown answer kind `{0}`")]
    UnknownAnswer(String),
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Sqlite(error)
    }
}

#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

/// Events per service and action, for summaries and charts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceCount {
    pub service_id: String,
    pub action: Action,
    pub count: u64,
}

/// Which events to read, newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this user's events (what a non-administrator may see).
    pub uid: Option<u32>,
    /// Only events older than this (microseconds), to page back in time.
    pub before: Option<Micros>,
    pub limit: u32,
}

/// One entry of the agent's own journal.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JournalEntry {
    pub ts: Micros,
    pub kind: String,
    pub detail: String,
}

pub use crate::proto::Answer;

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(Connection::open(path)?)
    }

    /// A read-only connection to a store the writer already migrated: no
    /// migration, no write lock taken. Readers (the console's queries) open
    /// one and keep it.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let flags =
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let store = Self { conn };
        let version = store.schema_version()?;
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if version != known {
            return Err(StoreError::Unmigrated { found: version, expected: MIGRATIONS.len() });
        }
        Ok(store)
    }

    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // In-memory databases answer "memory" here; that is fine.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // What retention deletes is overwritten, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        let mut store = Self { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        Self::migrate_with(&mut self.conn, MIGRATIONS)
    }

    /// Runs the steps of `migrations` the store has not run, all in one
    /// transaction: an upgrade that fails part-way (a full disk, a step this
    /// store's data trips on) leaves the store exactly as the previous agent
    /// left it, so that it still runs it.
    fn migrate_with(conn: &mut Connection, migrations: &[&str]) -> Result<(), StoreError> {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let applied = usize::try_from(version).unwrap_or(usize::MAX);
        if applied > migrations.len() {
            return Err(StoreError::TooNew { found: version, supported: migrations.len() });
        }
        if applied == migrations.len() {
            return Ok(());
        }
        let tx = conn.transaction()?;
        for (index, sql) in migrations.iter().enumerate().skip(applied) {
            let failed = |e: rusqlite::Error| StoreError::Migration {
                step: index + 1,
                total: migrations.len(),
                kept: version,
                why: e.to_string(),
            };
            tx.execute_batch(sql).map_err(failed)?;
            tx.pragma_update(None, "user_version", index + 1).map_err(failed)?;
        }
        tx.commit().map_err(|e| StoreError::Migration {
            step: migrations.len(),
            total: migrations.len(),
            kept: version,
            why: e.to_string(),
        })
    }

    /// Counts one more agent start and returns the count (1 for the
    /// first): committed at once, so a crash right after still counted. A
    /// store whose counter row is gone counts again from 1 rather than
    /// keeping the agent from starting.
    pub fn count_start(&mut self) -> Result<u64, StoreError> {
        let count: i64 = self.conn.query_row(
            "INSERT INTO agent_starts (id, count) VALUES (1, 1) \
             ON CONFLICT (id) DO UPDATE SET count = count + 1 RETURNING count",
            [],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    /// Stores a batch in one transaction. When this returns `Ok`, every event
    /// is durable. Re-inserting an event id is a no-op (idempotent retries).
    pub fn insert(&mut self, events: &[Event]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (id, ts, source, name, service_id, service_name, category, vendor,
                    action, rule_id, policy_version, protocol, src, dst, ech, pid, program, program_path, uid, user,
                    repeats, content_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                    ?21, ?22)",
            )?;
            for e in events {
                stmt.execute(params![
                    e.id,
                    e.ts,
                    e.source,
                    e.name,
                    e.service_id,
                    e.service_name,
                    e.category,
                    e.vendor,
                    e.action.as_str(),
                    e.rule_id,
                    e.policy_version,
                    e.protocol,
                    e.src,
                    e.dst,
                    e.ech,
                    e.attribution.pid,
                    e.attribution.program,
                    e.attribution.program_path,
                    e.attribution.uid,
                    e.attribution.user,
                    e.repeats,
                    e.content_hash,
                ])?;
            }
        }
        Self::remember_terms(&tx, events)?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes events, answers (the users' own words) and journal entries
    /// older than `keep_days` before `now`; returns how many events.
    pub fn apply_retention(&mut self, now: Micros, keep_days: u32) -> Result<u64, StoreError> {
        // u32::MAX days in microseconds overflow an i64: saturate, so a huge
        // retention keeps everything instead of wrapping into deleting it.
        let keep = i64::from(keep_days).saturating_mul(86_400_000_000);
        let cutoff = now.saturating_sub(keep);
        self.count_unsent_before(cutoff)?;
        let deleted = self.conn.execute("DELETE FROM events WHERE ts < ?1", [cutoff])?;
        self.keep_cursors_below_next_seq()?;
        self.conn.execute("DELETE FROM answers WHERE ts < ?1", [cutoff])?;
        self.conn.execute("DELETE FROM journal WHERE ts < ?1", [cutoff])?;
        if deleted > 0 {
            self.prune_terms()?;
        }
        Ok(deleted as u64)
    }

    pub fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM events", [], |row| row.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The most recent events first.
    pub fn recent(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.events(&EventFilter { limit, ..EventFilter::default() })
    }

    /// Events matching `filter`, newest first.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE (?1 IS NULL OR uid = ?1) AND (?2 IS NULL OR ts < ?2)
             ORDER BY ts DESC, seq DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![filter.uid, filter.before, filter.limit], event_row)?;
        let mut events = Vec::new();
        for row in rows {
            events.push(event_from_row(row?)?);
        }
        Ok(events)
    }

    pub fn append_journal(&mut self, entries: &[JournalEntry]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("INSERT INTO journal (ts, kind, detail) VALUES (?1, ?2, ?3)")?;
            for e in entries {
                stmt.execute(params![e.ts, e.kind, e.detail])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The journal, newest first.
    pub fn journal(&self, limit: u32) -> Result<Vec<JournalEntry>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT ts, kind, detail FROM journal ORDER BY seq DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit], |row| {
            Ok(JournalEntry { ts: row.get(0)?, kind: row.get(1)?, detail: row.get(2)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn insert_answers(&mut self, answers: &[Answer]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO answers (ts, uid, user, service_id, action, event_id, kind, text, bypass_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for a in answers {
                stmt.execute(params![
                    a.ts,
                    a.uid,
                    a.user,
                    a.service_id,
                    a.action.as_str(),
                    a.event_id,
                    a.kind.as_str(),
                    a.text,
                    a.bypass_until
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Answers to prompts, newest first; only `uid`'s when given.
    pub fn answers(&self, uid: Option<u32>, limit: u32) -> Result<Vec<Answer>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ANSWER_COLUMNS} FROM answers WHERE (?1 IS NULL OR uid = ?1) ORDER BY ts DESC, seq DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![uid, limit], answer_row)?;
        let mut answers = Vec::new();
        for row in rows {
            answers.push(answer_from_row(row?)?);
        }
        Ok(answers)
    }

    /// The GenAI flows `uid` made since `since`: per service and program,
    /// the latest time. What the clipboard guard tells desktop apps by.
    pub fn recent_flows(&self, uid: u32, since: Micros) -> Result<Vec<RecentFlow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT service_id, program, max(ts) FROM events
             WHERE ts >= ?1 AND uid = ?2 AND source <> 'clipboard' AND action <> 'allow'
             GROUP BY service_id, program LIMIT 256",
        )?;
        let rows = stmt.query_map(params![since, uid], |row| {
            Ok(RecentFlow { service_id: row.get(0)?, program: row.get(1)?, ts: row.get(2)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn counts_by_service(&self) -> Result<Vec<ServiceCount>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT service_id, action, count(*) FROM events GROUP BY service_id, action ORDER BY 3 DESC, 1",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?))
        })?;
        let mut counts = Vec::new();
        for row in rows {
            let (service_id, action, count) = row?;
            let action = Action::parse(&action).ok_or(StoreError::UnknownAction(action))?;
            counts.push(ServiceCount { service_id, action, count: u64::try_from(count).unwrap_or(0) });
        }
        Ok(counts)
    }
}

const EVENT_COLUMNS: &str =
    "id, ts, source, name, service_id, service_name, category, vendor, action, rule_id,
    policy_version, protocol, src, dst, ech, pid, program, program_path, uid, user, repeats, content_hash";

/// An event row as read, with its action still text (checked by [`event_from_row`]).
fn event_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Event, String)> {
    Ok((
        Event {
            id: row.get(0)?,
            ts: row.get(1)?,
            source: row.get(2)?,
            name: row.get(3)?,
            service_id: row.get(4)?,
            service_name: row.get(5)?,
            category: row.get(6)?,
            vendor: row.get(7)?,
            action: Action::Allow,
            rule_id: row.get(9)?,
            policy_version: row.get(10)?,
            protocol: row.get(11)?,
            src: row.get(12)?,
            dst: row.get(13)?,
            ech: row.get(14)?,
            attribution: Attribution {
                pid: row.get(15)?,
                program: row.get(16)?,
                program_path: row.get(17)?,
                uid: row.get(18)?,
                user: row.get(19)?,
            },
            repeats: row.get(20)?,
            content_hash: row.get(21)?,
        },
        row.get(8)?,
    ))
}

fn event_from_row((mut event, action): (Event, String)) -> Result<Event, StoreError> {
    event.action = Action::parse(&action).ok_or(StoreError::UnknownAction(action))?;
    Ok(event)
}

fn answer_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Answer, String, String)> {
    Ok((
        Answer {
            ts: row.get(0)?,
            uid: row.get(1)?,
            user: row.get(2)?,
            service_id: row.get(3)?,
            action: Action::Allow,
            event_id: row.get(5)?,
            kind: AnswerKind::Acknowledged,
            text: row.get(7)?,
            bypass_until: row.get(8)?,
        },
        row.get(4)?,
        row.get(6)?,
    ))
}

fn answer_from_row((mut answer, action, kind): (Answer, String, String)) -> Result<Answer, StoreError> {
    answer.action = Action::parse(&action).ok_or(StoreError::UnknownAction(action))?;
    answer.kind = AnswerKind::parse(&kind).ok_or(StoreError::UnknownAnswer(kind))?;
    Ok(answer)
}

#[cfg(test)]
mod tests;
