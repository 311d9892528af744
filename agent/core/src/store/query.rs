//! The security view's questions: a filtered page of events with its total,
//! the values to filter on, and the charts. Every filter is an index range
//! (migration 0004), and free text is matched against the small
//! `event_terms` table, then turned into indexed `IN` lists, so a query over
//! a million events does not scan them.

use std::collections::{BTreeMap, HashSet};

use rusqlite::params_from_iter;
use rusqlite::types::Value;

use super::{Answer, Store, StoreError, EVENT_COLUMNS};
use crate::event::Event;
use crate::policy::Action;
use crate::proto::{
    EventPage, EventQuery, EventStats, FacetValue, Facets, Ranked, TimeBucket, MAX_FILTER_VALUES, MAX_LIMIT,
    MAX_SEARCH_CHARS,
};
use crate::sensor::Micros;

/// Above this many matching values of one field, the search matches that
/// column directly rather than through an `IN` list.
const MAX_TERMS_PER_FIELD: usize = 2_000;
const TOP: u32 = 10;
const MAX_JUSTIFICATIONS: u32 = 200;
/// Bucket widths the timeline picks from: the smallest giving at most
/// [`MAX_BUCKETS`] buckets.
const BUCKET_WIDTHS: &[Micros] = &[
    60_000_000,
    300_000_000,
    900_000_000,
    3_600_000_000,
    6 * 3_600_000_000,
    86_400_000_000,
    7 * 86_400_000_000,
    30 * 86_400_000_000,
];
const MAX_BUCKETS: i64 = 96;

/// A query the caller got wrong: the console shows the message as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("at most {MAX_FILTER_VALUES} values per filter")]
    TooManyValues,
    #[error("the search text is at most {MAX_SEARCH_CHARS} characters")]
    TextTooLong,
    #[error("`from` must be before `to`")]
    EmptyRange,
}

/// A `WHERE` clause and its arguments.
#[derive(Debug, Default)]
struct Clause {
    conditions: Vec<String>,
    args: Vec<Value>,
}

impl Clause {
    fn sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// The time range and the user: the columns events and answers share.
    fn push_scope(&mut self, query: &EventQuery) {
        if let Some(from) = query.from {
            self.conditions.push("ts >= ?".to_owned());
            self.args.push(Value::Integer(from));
        }
        if let Some(to) = query.to {
            self.conditions.push("ts < ?".to_owned());
            self.args.push(Value::Integer(to));
        }
        if let Some(uid) = query.uid {
            self.conditions.push("uid = ?".to_owned());
            self.args.push(Value::Integer(i64::from(uid)));
        }
    }

    fn push_in(&mut self, column: &str, values: impl IntoIterator<Item = String>) {
        let values: Vec<String> = values.into_iter().collect();
        if values.is_empty() {
            return;
        }
        self.conditions.push(in_list(column, values.len()));
        self.args.extend(values.into_iter().map(Value::Text));
    }
}

fn in_list(column: &str, n: usize) -> String {
    let marks = vec!["?"; n].join(",");
    format!("{column} IN ({marks})")
}

/// Columns a scoped free-text search reads, in the user's own rows.
const SCOPED_TEXT_COLUMNS: [&str; 7] =
    ["name", "service_id", "service_name", "vendor", "program", "user", "rule_id"];

/// `(instr(lower(name), ?) > 0 OR …)`: the same work whatever the text.
fn scoped_text_condition(text: &str) -> (String, Vec<Value>) {
    let needle = text.to_lowercase();
    let alternatives: Vec<String> = SCOPED_TEXT_COLUMNS
        .iter()
        .map(|column| format!("instr(lower(coalesce({column}, '')), ?) > 0"))
        .collect();
    let args = SCOPED_TEXT_COLUMNS.iter().map(|_| Value::Text(needle.clone())).collect();
    (format!("({})", alternatives.join(" OR ")), args)
}

impl Store {
    /// Builds the clause for `query`; `None` when the free text matches no
    /// stored value, so nothing can match.
    fn clause(&self, query: &EventQuery) -> Result<Option<Clause>, StoreError> {
        let lists = [
            query.services.len(),
            query.categories.len(),
            query.users.len(),
            query.programs.len(),
            query.actions.len(),
            query.rules.len(),
        ];
        if lists.iter().any(|&n| n > MAX_FILTER_VALUES) {
            return Err(QueryError::TooManyValues.into());
        }
        if let (Some(from), Some(to)) = (query.from, query.to) {
            if from >= to {
                return Err(QueryError::EmptyRange.into());
            }
        }
        let mut clause = Clause::default();
        clause.push_scope(query);
        clause.push_in("service_id", query.services.iter().cloned());
        clause.push_in("category", query.categories.iter().cloned());
        clause.push_in("user", query.users.iter().cloned());
        clause.push_in("program", query.programs.iter().cloned());
        clause.push_in("action", query.actions.iter().map(|a| a.as_str().to_owned()));
        clause.push_in("rule_id", query.rules.iter().cloned());
        if let Some(text) = query.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            if text.chars().count() > MAX_SEARCH_CHARS {
                return Err(QueryError::TextTooLong.into());
            }
            // A search scoped to one user reads that user's rows only: the
            // table of terms holds every user's values, and whether it
            // holds one (another user's name, a site someone visited)
            // would show in how long the search takes.
            let condition = match query.uid {
                Some(_) => Some(scoped_text_condition(text)),
                None => self.text_condition(text)?,
            };
            match condition {
                Some((condition, args)) => {
                    clause.conditions.push(condition);
                    clause.args.extend(args);
                }
                None => return Ok(None),
            }
        }
        Ok(Some(clause))
    }

    /// `(name IN (…) OR service_id IN (…) OR …)` over the stored values
    /// containing `text`; `None` when none does.
    fn text_condition(&self, text: &str) -> Result<Option<(String, Vec<Value>)>, StoreError> {
        let needle = text.to_lowercase();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT field, value, service FROM event_terms WHERE instr(search, ?1) > 0")?;
        let rows = stmt.query_map([&needle], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<String>>(2)?))
        })?;
        let terms = rows.collect::<Result<Vec<_>, _>>()?;
        let services: HashSet<&str> = terms
            .iter()
            .filter(|(field, ..)| field == "service")
            .map(|(_, value, _)| value.as_str())
            .collect();
        let mut by_field: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (field, value, service) in &terms {
            // A name of a service the text already matches adds nothing but
            // a slower query.
            if field == "name" && service.as_deref().is_some_and(|s| services.contains(s)) {
                continue;
            }
            by_field.entry(field.as_str()).or_default().push(value.clone());
        }
        let mut alternatives = Vec::new();
        let mut args = Vec::new();
        // Categories are filtered by list, not searched.
        for (field, column) in TERM_COLUMNS.iter().filter(|(field, _)| *field != "category") {
            let Some(values) = by_field.remove(field) else { continue };
            if values.len() > MAX_TERMS_PER_FIELD {
                alternatives.push(format!("instr(lower({column}), ?) > 0"));
                args.push(Value::Text(needle.clone()));
            } else {
                alternatives.push(in_list(column, values.len()));
                args.extend(values.into_iter().map(Value::Text));
            }
        }
        if alternatives.is_empty() {
            return Ok(None);
        }
        Ok(Some((format!("({})", alternatives.join(" OR ")), args)))
    }

    fn count_where(&self, clause: &Clause) -> Result<u64, StoreError> {
        let sql = format!("SELECT count(*) FROM events{}", clause.sql());
        let n: i64 =
            self.conn.prepare_cached(&sql)?.query_row(params_from_iter(&clause.args), |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The events matching `query`, newest first, from `offset`, and how
    /// many match in all.
    pub fn search(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let Some(clause) = self.clause(query)? else {
            return Ok(EventPage { total: 0, offset: query.offset, events: Vec::new() });
        };
        let total = self.count_where(&clause)?;
        let limit = query.limit.min(MAX_LIMIT);
        let mut events = Vec::new();
        if limit > 0 && u64::from(query.offset) < total {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events{} ORDER BY ts DESC, seq DESC LIMIT {limit} OFFSET {}",
                clause.sql(),
                query.offset
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(&clause.args), super::event_row)?;
            for row in rows {
                events.push(super::event_from_row(row?)?);
            }
        }
        Ok(EventPage { total, offset: query.offset, events })
    }

    /// Every value stored for each filterable field (all users).
    pub fn facets(&self) -> Result<Facets, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT field, value, label FROM event_terms WHERE field != 'name' ORDER BY field, label COLLATE NOCASE",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, FacetValue { value: row.get(1)?, label: row.get(2)? }))
        })?;
        let mut facets = Facets::default();
        for row in rows {
            let (field, value) = row?;
            let list = match field.as_str() {
                "service" => &mut facets.services,
                "category" => &mut facets.categories,
                "user" => &mut facets.users,
                "program" => &mut facets.programs,
                "rule" => &mut facets.rules,
                _ => continue,
            };
            list.push(value);
        }
        Ok(facets)
    }

    /// The charts over the events matching `query` (its page is ignored).
    pub fn stats(&self, query: &EventQuery) -> Result<EventStats, StoreError> {
        let Some(clause) = self.clause(query)? else { return Ok(EventStats::default()) };
        let where_sql = clause.sql();
        let args = &clause.args;
        let (total, first, last): (i64, Option<i64>, Option<i64>) = self
            .conn
            .prepare_cached(&format!("SELECT count(*), min(ts), max(ts) FROM events{where_sql}"))?
            .query_row(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let mut stats = EventStats { total: u64::try_from(total).unwrap_or(0), ..EventStats::default() };
        let (Some(first), Some(last)) =
            (query.from.or(first), query.to.or(last.map(|t| t.saturating_add(1))))
        else {
            return Ok(stats);
        };
        let span = last.saturating_sub(first).max(1);
        let width =
            BUCKET_WIDTHS.iter().copied().find(|w| span / w < MAX_BUCKETS).unwrap_or(span / MAX_BUCKETS + 1);
        // Buckets start on multiples of their width, so they read as round times.
        let start = first.saturating_sub(first.rem_euclid(width));
        stats.bucket_micros = width;
        let mut timeline: BTreeMap<i64, TimeBucket> = BTreeMap::new();
        let sql =
            format!("SELECT (ts - {start}) / {width}, action, count(*) FROM events{where_sql} GROUP BY 1, 2");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?;
        for row in rows {
            let (index, action, count) = row?;
            let bucket = timeline.entry(index).or_insert_with(|| TimeBucket {
                start: start.saturating_add(index.saturating_mul(width)),
                ..TimeBucket::default()
            });
            let count = u64::try_from(count).unwrap_or(0);
            match Action::parse(&action).ok_or(StoreError::UnknownAction(action))? {
                Action::Allow => bucket.allow += count,
                Action::Monitor => bucket.monitor += count,
                Action::Warn => bucket.warn += count,
                Action::Coach => bucket.coach += count,
                Action::Block => bucket.block += count,
            }
        }
        stats.timeline = timeline.into_values().collect();
        stats.top_services = self.top(&clause, "service_id", "service")?;
        stats.top_users = self.top(&clause, "user", "user")?;
        stats.top_programs = self.top(&clause, "program", "program")?;
        stats.justifications = self.justifications(query)?;
        Ok(stats)
    }

    /// The most frequent values of `column`, labelled from `event_terms`
    /// (`field`): the count reads only the column's index.
    fn top(&self, clause: &Clause, column: &str, field: &str) -> Result<Vec<Ranked>, StoreError> {
        let mut not_null = Clause { conditions: clause.conditions.clone(), args: clause.args.clone() };
        not_null.conditions.push(format!("{column} IS NOT NULL"));
        let sql = format!(
            "SELECT {column}, count(*) FROM events{} GROUP BY {column} ORDER BY 2 DESC, 1 LIMIT {TOP}",
            not_null.sql()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(&not_null.args), |r| {
            Ok((r.get::<_, String>(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
        })?;
        let mut label =
            self.conn.prepare_cached("SELECT label FROM event_terms WHERE field = ?1 AND value = ?2")?;
        let mut ranked = Vec::new();
        for row in rows {
            let (key, count) = row?;
            let found: Option<String> =
                label.query_row([field, key.as_str()], |r| r.get(0)).map(Some).or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
            ranked.push(Ranked { label: found.unwrap_or_else(|| key.clone()), key, count });
        }
        Ok(ranked)
    }

    /// Justifications and exception requests within the query's time range,
    /// services and users.
    fn justifications(&self, query: &EventQuery) -> Result<Vec<Answer>, StoreError> {
        let mut clause = Clause { conditions: vec!["kind != 'acknowledged'".to_owned()], args: Vec::new() };
        clause.push_scope(query);
        clause.push_in("service_id", query.services.iter().cloned());
        clause.push_in("user", query.users.iter().cloned());
        let sql = format!(
            "SELECT {ANSWER_COLUMNS} FROM answers{} ORDER BY ts DESC, seq DESC LIMIT {MAX_JUSTIFICATIONS}",
            clause.sql()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(&clause.args), super::answer_row)?;
        let mut answers = Vec::new();
        for row in rows {
            answers.push(super::answer_from_row(row?)?);
        }
        Ok(answers)
    }

    /// Adds the filterable values of `events` to `event_terms`.
    pub(super) fn remember_terms(tx: &rusqlite::Transaction<'_>, events: &[Event]) -> Result<(), StoreError> {
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO event_terms (field, value, label, search, service) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for e in events {
            let service_search = format!("{} {} {}", e.service_id, e.service_name, e.vendor);
            let service = Some(e.service_id.as_str());
            // (field, value, label, search text, the service of a name)
            let terms = [
                ("service", service, Some(e.service_name.as_str()), Some(service_search.as_str()), None),
                ("category", Some(e.category.as_str()), None, None, None),
                ("user", e.attribution.user.as_deref(), None, None, None),
                ("program", e.attribution.program.as_deref(), None, None, None),
                ("rule", Some(e.rule_id.as_str()), None, None, None),
                ("name", Some(e.name.as_str()), None, None, service),
            ];
            for (field, value, label, search, of_service) in terms {
                let Some(value) = value else { continue };
                if !seen.insert((field, value)) {
                    continue;
                }
                let search = search.unwrap_or(value).to_lowercase();
                stmt.execute(rusqlite::params![field, value, label.unwrap_or(value), search, of_service])?;
            }
        }
        Ok(())
    }

    /// Forgets the values no event holds any more (after retention). Each
    /// check is one index lookup per value, so the writer is not held up.
    pub(super) fn prune_terms(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for (field, column) in TERM_COLUMNS {
            tx.execute(
                &format!(
                    "DELETE FROM event_terms WHERE field = ?1
                     AND NOT EXISTS (SELECT 1 FROM events WHERE {column} = event_terms.value)"
                ),
                [field],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Every field of `event_terms` and the indexed column it comes from.
const TERM_COLUMNS: &[(&str, &str)] = &[
    ("service", "service_id"),
    ("category", "category"),
    ("user", "user"),
    ("program", "program"),
    ("rule", "rule_id"),
    ("name", "name"),
];

pub(super) const ANSWER_COLUMNS: &str =
    "ts, uid, user, service_id, action, event_id, kind, text, bypass_until";
