//! The store as the source of a workstation's own SIEM lines (`[export]`
//! in `agent.toml`): each destination reads the events after its cursor
//! and moves the cursor once they are written, like the fleet outbox, so
//! that a full disk or a stopped journal loses nothing.

use rusqlite::{params, OptionalExtension as _};

use super::{Store, StoreError};
use crate::sensor::Micros;

/// Where one destination stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalExportState {
    pub name: String,
    pub acked_seq: i64,
    pub written: u64,
    pub last_success: Option<Micros>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Micros>,
}

impl Store {
    /// The cursor of destination `name`, made at its first use: it starts
    /// with the first event still stored.
    pub fn local_export_open(&mut self, name: &str) -> Result<i64, StoreError> {
        self.conn.execute("INSERT OR IGNORE INTO local_exports (name, acked_seq) VALUES (?1, 0)", [name])?;
        Ok(self
            .conn
            .query_row("SELECT acked_seq FROM local_exports WHERE name = ?1", [name], |row| row.get(0))?)
    }

    /// Where destination `name` stands (0 before its first use): a read,
    /// for the loop that looks every second.
    pub fn local_export_cursor(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT acked_seq FROM local_exports WHERE name = ?1", [name], |row| row.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// Every event up to `seq` was written (`count` of them now).
    pub fn local_export_acked(
        &mut self,
        name: &str,
        seq: i64,
        count: u64,
        now: Micros,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE local_exports SET acked_seq = max(acked_seq, ?2), written = written + ?3, last_success = ?4,
                last_error = NULL, last_error_at = NULL
             WHERE name = ?1",
            params![name, seq, i64::try_from(count).unwrap_or(i64::MAX), now],
        )?;
        Ok(())
    }

    pub fn local_export_failed(&mut self, name: &str, error: &str, now: Micros) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE local_exports SET last_error = ?2, last_error_at = ?3 WHERE name = ?1",
            params![name, error, now],
        )?;
        Ok(())
    }

    pub fn local_export_states(&self) -> Result<Vec<LocalExportState>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, acked_seq, written, last_success, last_error, last_error_at FROM local_exports ORDER BY name",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(LocalExportState {
                name: row.get(0)?,
                acked_seq: row.get(1)?,
                written: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                last_success: row.get(3)?,
                last_error: row.get(4)?,
                last_error_at: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::event as stored;
    use super::*;
    use crate::event::Event;
    use crate::policy::Action;

    fn event(i: u32) -> Event {
        stored(&format!("e{i}"), 1_000 + i64::from(i), "chatgpt", Action::Monitor)
    }

    #[test]
    fn each_destination_resumes_where_it_wrote_and_records_failures() {
        let mut store = Store::open_in_memory().unwrap();
        store.insert(&(0..5).map(event).collect::<Vec<_>>()).unwrap();
        let file = store.local_export_open("file").unwrap();
        assert_eq!(file, 0);
        let first = store.events_after(file, 3).unwrap();
        assert_eq!(first.len(), 3);
        let last = first.last().map(|(seq, _)| *seq).unwrap();
        store.local_export_acked("file", last, 3, 1).unwrap();
        store.local_export_failed("file", "disk full", 2).unwrap();
        // A second destination starts from the first stored event, alone.
        assert_eq!(store.local_export_open("journald").unwrap(), 0);
        assert_eq!(store.local_export_open("file").unwrap(), last);
        assert_eq!(store.local_export_cursor("file").unwrap(), last);
        assert_eq!(store.local_export_cursor("never-opened").unwrap(), 0);
        assert_eq!(store.events_after(last, 10).unwrap().len(), 2);
        let states = store.local_export_states().unwrap();
        let file = states.iter().find(|s| s.name == "file").unwrap();
        assert_eq!((file.written, file.last_error.as_deref()), (3, Some("disk full")));
        store.local_export_acked("file", last + 2, 2, 3).unwrap();
        let states = store.local_export_states().unwrap();
        let file = states.iter().find(|s| s.name == "file").unwrap();
        assert_eq!((file.written, file.last_error.as_deref()), (5, None));
    }
}
