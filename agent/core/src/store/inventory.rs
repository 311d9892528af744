//! The inventory's current state: what the last scan found, with when each
//! find was first and last seen.

use rusqlite::params;

use super::{Store, StoreError};
use crate::inventory::{InventoryRow, Item, Kind};
use crate::sensor::Micros;

const SYSTEM_UID: i64 = -1;

impl Store {
    /// Makes the stored inventory `items`, in one transaction: a find
    /// already known keeps its first sighting, one no longer found is gone.
    pub fn replace_inventory(&mut self, items: &[Item], now: Micros) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS inventory_seen (uid INTEGER, kind TEXT, host TEXT, key TEXT)",
            [],
        )?;
        tx.execute("DELETE FROM temp.inventory_seen", [])?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO inventory (uid, kind, host, key, user, name, version, path, service_id, local, rights,
                    first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
                 ON CONFLICT (uid, kind, host, key) DO UPDATE SET user = excluded.user, name = excluded.name,
                    version = excluded.version, path = excluded.path, service_id = excluded.service_id,
                    local = excluded.local, rights = excluded.rights, last_seen = excluded.last_seen",
            )?;
            let mut seen = tx.prepare_cached("INSERT INTO temp.inventory_seen VALUES (?1, ?2, ?3, ?4)")?;
            for item in items {
                let uid = item.uid.map_or(SYSTEM_UID, i64::from);
                let rights = serde_json::to_string(&item.rights).unwrap_or_else(|_| "[]".to_owned());
                upsert.execute(params![
                    uid,
                    item.kind.as_str(),
                    item.host,
                    item.key,
                    item.user,
                    item.name,
                    item.version,
                    item.path,
                    item.service_id,
                    item.local,
                    rights,
                    now
                ])?;
                seen.execute(params![uid, item.kind.as_str(), item.host, item.key])?;
            }
        }
        tx.execute(
            "DELETE FROM inventory WHERE NOT EXISTS (SELECT 1 FROM temp.inventory_seen s
                WHERE s.uid = inventory.uid AND s.kind = inventory.kind AND s.host = inventory.host
                  AND s.key = inventory.key)",
            [],
        )?;
        tx.execute("UPDATE inventory_sync SET revision = revision + 1 WHERE id = 1", [])?;
        tx.commit()?;
        Ok(())
    }

    /// The stored inventory; only `uid`'s finds when given. A row this
    /// agent cannot read (a kind from a newer one) is skipped.
    pub fn inventory(&self, uid: Option<u32>) -> Result<Vec<InventoryRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT uid, kind, host, key, user, name, version, path, service_id, local, rights, first_seen, last_seen
             FROM inventory WHERE (?1 IS NULL OR uid = ?1) ORDER BY uid, kind, host, key",
        )?;
        let rows = stmt.query_map(params![uid], |row| {
            // A kind from a newer agent: skipped.
            let Some(kind) = Kind::parse(&row.get::<_, String>(1)?) else { return Ok(None) };
            let rights: String = row.get(10)?;
            let item = Item {
                kind,
                host: row.get(2)?,
                key: row.get(3)?,
                user: row.get(4)?,
                name: row.get(5)?,
                version: row.get(6)?,
                path: row.get(7)?,
                service_id: row.get(8)?,
                local: row.get(9)?,
                uid: u32::try_from(row.get::<_, i64>(0)?).ok(),
                rights: serde_json::from_str(&rights).unwrap_or_default(),
            };
            Ok(Some(InventoryRow::new(item, row.get(11)?, row.get(12)?)))
        })?;
        let mut found = Vec::new();
        for row in rows {
            found.extend(row?);
        }
        Ok(found)
    }
}

impl Store {
    /// The inventory to send to the fleet collector, with its revision,
    /// when it changed since the collector last acknowledged it.
    pub fn outbox_inventory(&self) -> Result<Option<(i64, Vec<Item>)>, StoreError> {
        let (revision, acked): (i64, i64) =
            self.conn.query_row("SELECT revision, acked FROM inventory_sync WHERE id = 1", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        if revision <= acked {
            return Ok(None);
        }
        Ok(Some((revision, self.inventory(None)?.into_iter().map(|row| row.item).collect())))
    }

    /// The collector stored the inventory of `revision`.
    pub fn outbox_inventory_acked(&mut self, revision: i64) -> Result<(), StoreError> {
        self.conn.execute("UPDATE inventory_sync SET acked = max(acked, ?1) WHERE id = 1", [revision])?;
        Ok(())
    }
}

/// What `status` says of the inventory: finds per kind, and when it last
/// changed (µs since the epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventorySummary {
    pub kinds: Vec<(String, i64)>,
    pub last_change: Option<Micros>,
}

impl Store {
    pub fn inventory_summary(&self) -> Result<InventorySummary, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT kind, count(*) FROM inventory GROUP BY kind ORDER BY kind")?;
        let kinds =
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
        let last_change =
            self.conn.query_row("SELECT max(last_seen) FROM inventory", [], |row| row.get(0))?;
        Ok(InventorySummary { kinds, last_change })
    }
}
