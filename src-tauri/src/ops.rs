//! What the console's commands do, as plain functions over an
//! [`AgentClient`]: the Tauri commands (`commands.rs`) only unwrap state and
//! call these, so they are tested without a window against a fake agent.

use std::io::Write;
use std::path::{Path, PathBuf};

use vigie_core::event::Event;
use vigie_core::inventory::InventoryRow;
use vigie_core::proto::Answer;
use vigie_core::proto::{
    AnswerParams, Answered, CatalogView, EventPage, EventQuery, EventStats, Facets, PolicyView, MAX_LIMIT,
};
use vigie_core::proto::{InventoryParams, ListParams, Request};
use vigie_core::timefmt::{civil_from_days, rfc3339_micros};

use crate::client::{call, AgentClient};
use crate::types::{CommandError, ErrorKind, ExportFormat, ExportResult};

/// Rows of "Mon activité" and answers listed at most.
const MY_ANSWERS: u32 = 200;

pub async fn answer_prompt<C: AgentClient>(
    client: &C,
    answer: &AnswerParams,
) -> Result<Answered, CommandError> {
    call(client, Request::Answer(answer.clone())).await
}

/// My own events, newest first (an administrator's own too, not everyone's).
pub async fn my_events<C: AgentClient>(
    client: &C,
    uid: u32,
    offset: u32,
    limit: u32,
) -> Result<EventPage, CommandError> {
    let query = EventQuery { uid: Some(uid), offset, limit: limit.min(MAX_LIMIT), ..EventQuery::default() };
    call(client, Request::Search(query)).await
}

pub async fn my_answers<C: AgentClient>(client: &C, uid: u32) -> Result<Vec<Answer>, CommandError> {
    call(client, Request::Answers(ListParams { uid: Some(uid), limit: Some(MY_ANSWERS), before: None })).await
}

pub async fn search_events<C: AgentClient>(
    client: &C,
    query: &EventQuery,
) -> Result<EventPage, CommandError> {
    call(client, Request::Search(query.clone())).await
}

pub async fn event_stats<C: AgentClient>(client: &C, query: &EventQuery) -> Result<EventStats, CommandError> {
    call(client, Request::Stats(query.clone())).await
}

pub async fn facets<C: AgentClient>(client: &C) -> Result<Facets, CommandError> {
    call(client, Request::Facets).await
}

pub async fn policy<C: AgentClient>(client: &C) -> Result<PolicyView, CommandError> {
    call(client, Request::Policy).await
}

pub async fn catalog<C: AgentClient>(client: &C) -> Result<CatalogView, CommandError> {
    call(client, Request::Catalog).await
}

/// The AI software found: `uid`'s, or every user's (the agent refuses
/// that to anyone but the security team).
pub async fn inventory<C: AgentClient>(
    client: &C,
    uid: Option<u32>,
) -> Result<Vec<InventoryRow>, CommandError> {
    call(client, Request::Inventory(InventoryParams { uid })).await
}

fn io_error(path: &Path, e: &std::io::Error) -> CommandError {
    CommandError { kind: ErrorKind::Internal, message: format!("{}: {e}", path.display()) }
}

/// The agent stores events in batches: an event can reach the store a few
/// seconds after its time. An export stops this far before now, so that no
/// late event shifts its pages.
const EXPORT_SETTLE_MICROS: i64 = 5_000_000;

/// Writes every event matching `query` to a new file in `directory`, page
/// by page (the agent caps a page at 10,000). The time range is frozen at
/// the start, a few seconds back, so events arriving meanwhile do not shift
/// the pages.
pub async fn export_events<C: AgentClient>(
    client: &C,
    query: &EventQuery,
    format: ExportFormat,
    directory: &Path,
    now_micros: i64,
) -> Result<ExportResult, CommandError> {
    let mut query = query.clone();
    let settled = now_micros.saturating_sub(EXPORT_SETTLE_MICROS);
    query.to = Some(query.to.map_or(settled, |to| to.min(settled)));
    query.limit = MAX_LIMIT;
    query.offset = 0;
    let extension = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
    };
    std::fs::create_dir_all(directory).map_err(|e| io_error(directory, &e))?;
    let path = unique_path(directory, &format!("vigie-events-{}", file_stamp(now_micros)), extension);
    let part = path.with_extension(format!("{extension}.part"));
    let file = std::fs::File::create(&part).map_err(|e| io_error(&part, &e))?;
    let mut out = std::io::BufWriter::new(file);
    let written = write_pages(client, &mut query, format, &mut out, &part).await;
    let finished = written.and_then(|count| {
        out.flush().map_err(|e| io_error(&part, &e))?;
        std::fs::rename(&part, &path).map_err(|e| io_error(&path, &e))?;
        Ok(count)
    });
    match finished {
        Ok(count) => Ok(ExportResult { path: path.display().to_string(), count }),
        Err(e) => {
            // A half-written export is worse than none.
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

async fn write_pages<C: AgentClient>(
    client: &C,
    query: &mut EventQuery,
    format: ExportFormat,
    out: &mut impl Write,
    path: &Path,
) -> Result<u64, CommandError> {
    let io = |e: std::io::Error| io_error(path, &e);
    let mut count = 0u64;
    match format {
        ExportFormat::Csv => writeln!(out, "{}", CSV_HEADER).map_err(io)?,
        ExportFormat::Json => write!(out, "[").map_err(io)?,
    }
    loop {
        let page = search_events(client, query).await?;
        for event in &page.events {
            match format {
                ExportFormat::Csv => writeln!(out, "{}", csv_row(event)).map_err(io)?,
                ExportFormat::Json => {
                    if count > 0 {
                        write!(out, ",").map_err(io)?;
                    }
                    write!(out, "\n  ").map_err(io)?;
                    serde_json::to_writer(&mut *out, event)
                        .map_err(|e| CommandError { kind: ErrorKind::Internal, message: e.to_string() })?;
                }
            }
            count += 1;
        }
        let fetched = u32::try_from(page.events.len()).unwrap_or(u32::MAX);
        query.offset = query.offset.saturating_add(fetched);
        if fetched == 0 || u64::from(query.offset) >= page.total {
            break;
        }
    }
    if format == ExportFormat::Json {
        writeln!(out, "\n]").map_err(io)?;
    }
    Ok(count)
}

const CSV_HEADER: &str = "id,time,ts_us,source,name,service_id,service_name,category,vendor,action,rule_id,\
policy_version,protocol,src,dst,ech,pid,program,program_path,uid,user,repeats";

fn csv_row(e: &Event) -> String {
    let a = &e.attribution;
    let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    [
        csv_field(&e.id),
        rfc3339_micros(e.ts),
        e.ts.to_string(),
        csv_field(&e.source),
        csv_field(&e.name),
        csv_field(&e.service_id),
        csv_field(&e.service_name),
        csv_field(&e.category),
        csv_field(&e.vendor),
        e.action.as_str().to_owned(),
        csv_field(&e.rule_id),
        csv_field(&e.policy_version),
        csv_field(&e.protocol),
        csv_field(&e.src),
        csv_field(&e.dst),
        e.ech.to_string(),
        opt(a.pid),
        csv_field(a.program.as_deref().unwrap_or("")),
        csv_field(a.program_path.as_deref().unwrap_or("")),
        opt(a.uid),
        csv_field(a.user.as_deref().unwrap_or("")),
        e.repeats.to_string(),
    ]
    .join(",")
}

/// RFC 4180 quoting, and a leading `'` on text a spreadsheet would run as a
/// formula (names and program paths come from the network and the machine).
fn csv_field(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn file_stamp(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!("{y:04}{mo:02}{d:02}-{:02}{:02}{:02}", sod / 3600, sod / 60 % 60, sod % 60)
}

fn unique_path(directory: &Path, stem: &str, extension: &str) -> PathBuf {
    let mut path = directory.join(format!("{stem}.{extension}"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = directory.join(format!("{stem}-{n}.{extension}"));
    }
    path
}

#[cfg(test)]
mod tests;
