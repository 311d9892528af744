//! The store as the fleet's outbox: events leave in `seq` order and are
//! marked sent only once the collector acknowledged them, so an upload is
//! at least once, survives restarts, and never needs a second copy.

use rusqlite::{params, OptionalExtension as _};

use super::query::ANSWER_COLUMNS;
use super::{answer_from_row, answer_row, event_from_row, event_row, Store, StoreError, EVENT_COLUMNS};
use crate::event::Event;
use crate::proto::Answer;
use crate::sensor::Micros;

/// Where the upload stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxState {
    pub acked_seq: i64,
    /// Events waiting to be sent, counted up to [`BACKLOG_COUNT_CAP`].
    pub backlog: u64,
    /// More than [`BACKLOG_COUNT_CAP`] wait: `backlog` is that cap.
    #[serde(default)]
    pub backlog_capped: bool,
    pub sent: u64,
    /// Deleted by retention before they were sent.
    pub dropped: u64,
    /// Refused by the collector one by one, and skipped so that the
    /// events after them still go.
    #[serde(default)]
    pub set_aside: u64,
    pub last_success: Option<Micros>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Micros>,
}

/// Past this, the backlog is not counted further: `status` is open to
/// every user, and counting a million waiting rows costs about 0.1 s; this
/// bounds it to about 15 ms.
pub const BACKLOG_COUNT_CAP: u64 = 100_000;

impl Store {
    /// Starts the outbox (at enrolment): every event still stored is to be
    /// sent. With `reset`, a new identity starts again from the first event.
    pub fn outbox_open(&mut self, reset: bool) -> Result<(), StoreError> {
        if reset {
            self.conn.execute("DELETE FROM outbox", [])?;
        }
        // A new collector (or identity) has no inventory yet.
        self.conn.execute("UPDATE inventory_sync SET acked = 0 WHERE id = 1", [])?;
        self.conn.execute("INSERT OR IGNORE INTO outbox (id, acked_seq) VALUES (1, 0)", [])?;
        Ok(())
    }

    /// The outbox, when the agent is enrolled.
    pub fn outbox_state(&self) -> Result<Option<OutboxState>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT acked_seq, sent, dropped, last_success, last_error, last_error_at, set_aside,
                                                (SELECT count(*) FROM (SELECT 1 FROM events WHERE seq > outbox.acked_seq LIMIT ?1))
                 FROM outbox WHERE id = 1",
                [i64::try_from(BACKLOG_COUNT_CAP + 1).unwrap_or(i64::MAX)],
                |row| {
                    Ok(OutboxState {
                        acked_seq: row.get(0)?,
                        sent: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                        dropped: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                        last_success: row.get(3)?,
                        last_error: row.get(4)?,
                        last_error_at: row.get(5)?,
                        set_aside: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
                                                backlog: u64::try_from(row.get::<_, i64>(7)?).unwrap_or(0).min(BACKLOG_COUNT_CAP),
                        backlog_capped: u64::try_from(row.get::<_, i64>(7)?).unwrap_or(0) > BACKLOG_COUNT_CAP,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    /// The events after `after_seq`, oldest first, with their `seq`: what
    /// the outbox and each local export send next.
    pub fn events_after(&self, after_seq: i64, limit: u32) -> Result<Vec<(i64, Event)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS}, seq FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after_seq, limit], |row| {
            let seq: i64 = row.get(EVENT_COLUMNS.split(',').count())?;
            Ok((seq, event_row(row)?))
        })?;
        let mut pending = Vec::new();
        for row in rows {
            let (seq, raw) = row?;
            pending.push((seq, event_from_row(raw)?));
        }
        Ok(pending)
    }

    /// The answers to prompts not yet acknowledged by the collector, oldest
    /// first, with their `seq`.
    pub fn outbox_answers(&self, limit: u32) -> Result<Vec<(i64, Answer)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ANSWER_COLUMNS}, seq FROM answers
             WHERE seq > (SELECT answers_acked_seq FROM outbox WHERE id = 1) ORDER BY seq LIMIT ?1"
        ))?;
        let rows = stmt.query_map(params![limit], |row| {
            let seq: i64 = row.get(ANSWER_COLUMNS.split(',').count())?;
            Ok((seq, answer_row(row)?))
        })?;
        let mut pending = Vec::new();
        for row in rows {
            let (seq, raw) = row?;
            pending.push((seq, answer_from_row(raw)?));
        }
        Ok(pending)
    }

    /// The collector stored every answer up to `seq`.
    pub fn outbox_answers_acked(&mut self, seq: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET answers_acked_seq = max(answers_acked_seq, ?1) WHERE id = 1",
            params![seq],
        )?;
        Ok(())
    }

    /// The collector stored every event up to `seq` (`count` of them now).
    pub fn outbox_acked(&mut self, seq: i64, count: u64, now: Micros) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET acked_seq = max(acked_seq, ?1), sent = sent + ?2, last_success = ?3,
                last_error = NULL, last_error_at = NULL
             WHERE id = 1",
            params![seq, i64::try_from(count).unwrap_or(i64::MAX), now],
        )?;
        Ok(())
    }

    /// The collector refuses the event at `seq` whatever is done: it is
    /// skipped (kept in the local store), counted, and the reason kept.
    pub fn outbox_set_aside(&mut self, seq: i64, why: &str, now: Micros) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET acked_seq = max(acked_seq, ?1), set_aside = set_aside + 1,
                last_error = ?2, last_error_at = ?3
             WHERE id = 1",
            params![seq, format!("event set aside: {why}"), now],
        )?;
        Ok(())
    }

    pub fn outbox_failed(&mut self, error: &str, now: Micros) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET last_error = ?1, last_error_at = ?2 WHERE id = 1",
            params![error, now],
        )?;
        Ok(())
    }

    /// How far the collector acknowledged (`None`: not enrolled); cheap,
    /// unlike [`Self::outbox_state`] which counts the backlog.
    pub fn outbox_cursor(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT acked_seq FROM outbox WHERE id = 1", [], |row| row.get(0))
            .optional()?)
    }

    /// After retention deleted events: `seq` is a rowid, which SQLite gives
    /// again from the largest one left (or 1 when none is left). Were the
    /// cursor left above it, the next events would be taken as sent; every
    /// event left at or below the lowered cursor was sent already.
    pub(super) fn keep_cursors_below_next_seq(&mut self) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET acked_seq = min(acked_seq, coalesce((SELECT max(seq) FROM events), 0)) WHERE id = 1",
            [],
        )?;
        self.conn.execute(
            "UPDATE local_exports SET acked_seq = min(acked_seq, coalesce((SELECT max(seq) FROM events), 0))",
            [],
        )?;
        self.conn.execute(
            "UPDATE outbox SET answers_acked_seq = min(answers_acked_seq, coalesce((SELECT max(seq) FROM answers), 0))
             WHERE id = 1",
            [],
        )?;
        Ok(())
    }

    /// Before retention deletes events older than `cutoff`: those never sent
    /// are counted as dropped, so that the loss is reported, not silent.
    pub(super) fn count_unsent_before(&mut self, cutoff: Micros) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET dropped = dropped +
                (SELECT count(*) FROM events WHERE ts < ?1 AND seq > outbox.acked_seq)
             WHERE id = 1",
            [cutoff],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::event;
    use super::*;
    use crate::policy::Action;

    #[test]
    fn the_outbox_sends_in_order_survives_reopening_and_counts_what_retention_drops() {
        let dir = tempfile_dir();
        let path = dir.join("events.db");
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.outbox_state().unwrap(), None, "not enrolled: no outbox");
        store
            .insert(&[
                event("a", 1_000, "chatgpt", Action::Block),
                event("b", 2_000, "chatgpt", Action::Block),
                event("c", 3_000, "chatgpt", Action::Block),
            ])
            .unwrap();
        store.outbox_open(false).unwrap();
        let state = store.outbox_state().unwrap().unwrap();
        assert_eq!((state.acked_seq, state.backlog), (0, 3), "history is sent too");

        let first = store.events_after(0, 2).unwrap();
        let ids: Vec<&str> = first.iter().map(|(_, e)| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let last = first.last().map(|(seq, _)| *seq).unwrap();
        store.outbox_acked(last, 2, 5_000).unwrap();
        drop(store);

        let mut store = Store::open(&path).unwrap();
        let state = store.outbox_state().unwrap().unwrap();
        assert_eq!((state.backlog, state.sent, state.last_success), (1, 2, Some(5_000)));
        let rest = store.events_after(state.acked_seq, 10).unwrap();
        assert_eq!(rest.iter().map(|(_, e)| e.id.as_str()).collect::<Vec<_>>(), ["c"]);
        // An acknowledgement that arrives late never moves the cursor back.
        store.outbox_acked(1, 0, 6_000).unwrap();
        assert_eq!(store.outbox_state().unwrap().unwrap().acked_seq, last);

        store.outbox_failed("the collector answered 503", 7_000).unwrap();
        let state = store.outbox_state().unwrap().unwrap();
        assert_eq!(state.last_error.as_deref(), Some("the collector answered 503"));

        // Retention deletes "c" (unsent) and nothing else was pending.
        let day = 86_400_000_000;
        assert_eq!(store.apply_retention(3_001 + day, 1).unwrap(), 3);
        let state = store.outbox_state().unwrap().unwrap();
        assert_eq!((state.dropped, state.backlog), (1, 0));

        // Everything was deleted: SQLite gives seq 1 again, and the new event
        // must still be sent (the cursor must not stay above it).
        store.insert(&[event("e", 5 * day, "chatgpt", Action::Block)]).unwrap();
        let pending = store.events_after(store.outbox_cursor().unwrap().unwrap(), 10).unwrap();
        assert_eq!(pending.iter().map(|(_, e)| e.id.as_str()).collect::<Vec<_>>(), ["e"]);
        assert_eq!(pending[0].0, 1, "the rowid was given again");

        // A new identity starts again.
        store.insert(&[event("d", 4 * day, "chatgpt", Action::Block)]).unwrap();
        store.outbox_open(true).unwrap();
        let state = store.outbox_state().unwrap().unwrap();
        assert_eq!((state.acked_seq, state.sent, state.dropped, state.backlog), (0, 0, 0, 2));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_backlog_is_counted_up_to_its_cap() {
        let mut store = Store::open_in_memory().unwrap();
        store.outbox_open(false).unwrap();
        let fill = |store: &mut Store, n: u64| {
            store
                .conn
                .execute(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
                     INSERT INTO events (id, ts, source, name, service_id, service_name, category, vendor, action,
                        rule_id, policy_version, protocol, src, dst, ech)
                     SELECT 'e' || i || '-' || (SELECT count(*) FROM events), i, 'tls', 'x', 'x', 'x', 'chat', 'v',
                        'block', 'r', '1', 'tcp', '', '', 0 FROM n",
                    [i64::try_from(n).unwrap()],
                )
                .unwrap();
        };
        fill(&mut store, BACKLOG_COUNT_CAP);
        let state = store.outbox_state().unwrap().unwrap();
        assert_eq!((state.backlog, state.backlog_capped), (BACKLOG_COUNT_CAP, false));
        fill(&mut store, 1);
        let state = store.outbox_state().unwrap().unwrap();
        assert_eq!((state.backlog, state.backlog_capped), (BACKLOG_COUNT_CAP, true));
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vigie-outbox-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
