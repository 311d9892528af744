//! The commands the UI may call (per window: see capabilities/). Each
//! unwraps the state and calls a plain function of `ops`.

use std::time::Instant;

use tauri::{AppHandle, Manager, Runtime, State};
use tracing::info;
use vigie_core::inventory::InventoryRow;
use vigie_core::proto::Answer;
use vigie_core::proto::{
    AnswerKind, AnswerParams, Answered, CatalogView, EventPage, EventQuery, EventStats, Facets, PolicyView,
    Prompt,
};

use crate::fleet::FleetClient;
use crate::types::{
    CommandError, ConnectionStatus, ErrorKind, ExportFormat, ExportResult, FleetDecision, FleetException,
    FleetExceptionDecision, FleetFind, FleetOverview, FleetStatus, ReportResult,
};
use crate::{ops, windows, Console};

type Reply<T> = Result<T, CommandError>;

fn my_uid(console: &Console) -> Reply<u32> {
    console.client.current_status().hello.map(|h| h.uid).ok_or_else(|| CommandError {
        kind: ErrorKind::NotConnected,
        message: "not connected to the agent".to_owned(),
    })
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[tauri::command]
pub fn connection_status(console: State<'_, Console>) -> ConnectionStatus {
    console.client.current_status()
}

#[tauri::command]
pub fn pending_prompts(console: State<'_, Console>) -> Vec<Prompt> {
    console.queue.lock().map(|q| q.pending()).unwrap_or_default()
}

#[tauri::command]
pub async fn answer_prompt<R: Runtime>(
    app: AppHandle<R>,
    console: State<'_, Console>,
    answer: AnswerParams,
) -> Reply<Answered> {
    let answered = ops::answer_prompt(&*console.client, &answer).await?;
    if let Ok(mut queue) = console.queue.lock() {
        queue.answered(answer.prompt);
    }
    // A justification or an exception request is confirmed on screen until
    // the user closes it; an acknowledgement needs no more: with nothing
    // left to show, the window goes.
    let show = match answered.kind {
        AnswerKind::Acknowledged => windows::Show::Update,
        AnswerKind::Justified | AnswerKind::ExceptionRequested => windows::Show::Keep,
    };
    windows::show_prompts(&app, show);
    // The answer is recorded with the user's activity ("Mes réponses").
    crate::activity(&app, now_micros());
    Ok(answered)
}

#[tauri::command]
pub fn dismiss_prompt<R: Runtime>(app: AppHandle<R>, console: State<'_, Console>, id: u64) {
    if let Ok(mut queue) = console.queue.lock() {
        queue.dismiss(id, Instant::now());
    }
    windows::show_prompts(&app, windows::Show::Update);
}

/// Opens the internal alternative a prompt names, in the user's browser.
/// Only that URL, and only http(s): the UI cannot open anything else.
#[tauri::command]
pub fn open_alternative(console: State<'_, Console>, id: u64) -> Reply<()> {
    let url =
        console.queue.lock().ok().and_then(|q| q.get(id).map(|p| p.alternative.url.clone())).ok_or_else(
            || CommandError { kind: ErrorKind::BadRequest, message: format!("no prompt {id}") },
        )?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(CommandError {
            kind: ErrorKind::BadRequest,
            message: format!("not a web address: {url}"),
        });
    }
    let mut opener = std::process::Command::new("xdg-open")
        .arg(&url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| CommandError { kind: ErrorKind::Internal, message: format!("xdg-open {url}: {e}") })?;
    // Reaped off the UI's way, so no zombie is left per click.
    std::thread::spawn(move || opener.wait());
    Ok(())
}

#[tauri::command]
pub async fn my_events(console: State<'_, Console>, offset: u32, limit: u32) -> Reply<EventPage> {
    let uid = my_uid(&console)?;
    ops::my_events(&*console.client, uid, offset, limit).await
}

#[tauri::command]
pub async fn my_answers(console: State<'_, Console>) -> Reply<Vec<Answer>> {
    let uid = my_uid(&console)?;
    ops::my_answers(&*console.client, uid).await
}

#[tauri::command]
pub async fn policy(console: State<'_, Console>) -> Reply<PolicyView> {
    ops::policy(&*console.client).await
}

#[tauri::command]
pub async fn catalog(console: State<'_, Console>) -> Reply<CatalogView> {
    ops::catalog(&*console.client).await
}

/// The AI software found on this workstation: mine, or with `everyone`
/// every user's (the security team's view; the agent decides who may).
#[tauri::command]
pub async fn inventory(console: State<'_, Console>, everyone: bool) -> Reply<Vec<InventoryRow>> {
    let uid = if everyone { None } else { Some(my_uid(&console)?) };
    ops::inventory(&*console.client, uid).await
}

#[tauri::command]
pub async fn search_events(console: State<'_, Console>, query: EventQuery) -> Reply<EventPage> {
    ops::search_events(&*console.client, &query).await
}

#[tauri::command]
pub async fn event_stats(console: State<'_, Console>, query: EventQuery) -> Reply<EventStats> {
    ops::event_stats(&*console.client, &query).await
}

#[tauri::command]
pub async fn facets(console: State<'_, Console>) -> Reply<Facets> {
    ops::facets(&*console.client).await
}

/// The user's download folder (their home when there is none): where
/// exports and reviews are written.
fn download_dir<R: Runtime>(app: &AppHandle<R>) -> Reply<std::path::PathBuf> {
    app.path()
        .download_dir()
        .or_else(|_| app.path().home_dir())
        .map_err(|e| CommandError { kind: ErrorKind::Internal, message: format!("no download folder: {e}") })
}

/// Writes the filtered events to the user's download folder.
#[tauri::command]
pub async fn export_events<R: Runtime>(
    app: AppHandle<R>,
    console: State<'_, Console>,
    query: EventQuery,
    format: ExportFormat,
) -> Reply<ExportResult> {
    let directory = download_dir(&app)?;
    let result = ops::export_events(&*console.client, &query, format, &directory, now_micros()).await?;
    info!(path = %result.path, count = result.count, "events exported");
    Ok(result)
}

#[tauri::command]
pub fn open_console<R: Runtime>(app: AppHandle<R>, view: String) {
    windows::open_console(&app, &view);
}

/// The session's language for the UI: French unless the locale settings
/// name another language (English is then the closest we have).
#[tauri::command]
pub fn session_locale() -> &'static str {
    if windows::prefers_french() {
        "fr"
    } else {
        "en"
    }
}

/// The main window's UI rendered its first data: records how long the
/// console took from process start (the cold-start figure).
#[tauri::command]
pub fn ui_ready(console: State<'_, Console>) -> Option<u64> {
    let elapsed = process_age_ms();
    if let Ok(mut ready) = console.ready_after_ms.lock() {
        if ready.is_none() {
            *ready = elapsed;
            info!(ms = elapsed, "console interactive");
        }
        return *ready;
    }
    elapsed
}

/// Milliseconds since this process started (Linux: /proc/self/stat field
/// 22 against /proc/uptime, both from boot).
fn process_age_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted after its ')'.
    let after_name = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 =
        std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    let ticks_per_second = 100.0; // USER_HZ, fixed at 100 on Linux for userspace ABI
    let age = uptime - start_ticks / ticks_per_second;
    Some((age * 1000.0).max(0.0) as u64)
}

/// Whether the fleet view is set up (collector, fleet CA, the
/// administrator's own certificate).
#[tauri::command]
pub fn fleet_status(console: State<'_, Console>) -> FleetStatus {
    crate::fleet::status(&console.fleet)
}

/// Runs a blocking request to the collector off the UI's threads.
async fn with_fleet<T: Send + 'static>(
    console: &Console,
    request: impl FnOnce(&FleetClient) -> Reply<T> + Send + 'static,
) -> Reply<T> {
    let settings = console.fleet.clone();
    tauri::async_runtime::spawn_blocking(move || request(&FleetClient::new(&settings)?))
        .await
        .map_err(|e| CommandError { kind: ErrorKind::Internal, message: e.to_string() })?
}

#[tauri::command]
pub async fn fleet_overview(console: State<'_, Console>) -> Reply<FleetOverview> {
    with_fleet(&console, FleetClient::overview).await
}

#[tauri::command]
pub async fn fleet_inventory(console: State<'_, Console>, filter: String) -> Reply<Vec<FleetFind>> {
    with_fleet(&console, move |fleet| fleet.inventory(&filter)).await
}

#[tauri::command]
pub async fn fleet_recertify(
    console: State<'_, Console>,
    find: String,
    right: String,
    decision: String,
    note: String,
) -> Reply<FleetDecision> {
    let request = vigie_fleet::proto::RecertifyRequest { find, right, decision, note };
    let decided = with_fleet(&console, move |fleet| fleet.recertify(&request)).await?;
    info!(right = %decided.right, decision = %decided.decision, "recertification recorded");
    Ok(decided)
}

#[tauri::command]
pub async fn fleet_exceptions(console: State<'_, Console>, filter: String) -> Reply<Vec<FleetException>> {
    with_fleet(&console, move |fleet| fleet.exceptions(&filter)).await
}

#[tauri::command]
pub async fn fleet_decide_exception(
    console: State<'_, Console>,
    request: String,
    decision: String,
    note: String,
) -> Reply<FleetExceptionDecision> {
    let asked = vigie_fleet::proto::ExceptionDecisionRequest { request, decision, note };
    let decided = with_fleet(&console, move |fleet| fleet.decide_exception(&asked)).await?;
    info!(decision = %decided.decision, "exception request decided");
    Ok(decided)
}

/// The periodic review, written to the user's download folder.
#[tauri::command]
pub async fn fleet_report<R: Runtime>(
    app: AppHandle<R>,
    console: State<'_, Console>,
    from: String,
    to: String,
    lang: String,
) -> Reply<ReportResult> {
    let directory = download_dir(&app)?;
    with_fleet(&console, move |fleet| fleet.report(&from, &to, &lang, &directory)).await
}
