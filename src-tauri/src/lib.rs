//! Vigie console: the unprivileged desktop app in each user's session. It
//! lives in the tray, keeps a connection to the agent's socket, brings up
//! the just-in-time prompt when the agent decides warn, coach or block for
//! this user, and shows "Mon activité" and — to the security team — the
//! event review. The agent decides what each user may read; the console
//! only asks.

pub mod client;
pub mod clipboard;
pub mod commands;
pub mod fleet;
pub mod ops;
pub mod prompt_queue;
pub mod settings;
pub mod types;
mod windows;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tauri::{Emitter, Manager, RunEvent, Runtime};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::client::{call, AgentFeed, SocketClient};
use crate::prompt_queue::{Offer, PromptQueue};
use crate::settings::Settings;

/// Events sent to the UI (names mirrored in ui/src/ipc/commands.ts).
pub const CONNECTION_EVENT: &str = "vigie://connection";
pub const PROMPTS_EVENT: &str = "vigie://prompts";
/// New events or answers of this user were recorded: "Mon activité" fetches
/// again. The payload is the time, in microseconds since the epoch.
pub const ACTIVITY_EVENT: &str = "vigie://activity";

/// The console's state, managed by Tauri.
#[derive(Debug)]
pub struct Console {
    pub client: Arc<SocketClient>,
    pub queue: Mutex<PromptQueue>,
    /// When the UI first said it was ready, in ms after the process started.
    pub ready_after_ms: Mutex<Option<u64>>,
    /// The collector the security team's fleet view reads.
    pub fleet: fleet::FleetSettings,
}

pub fn run() {
    init_tracing();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            // A bad settings file must not leave the user without prompts.
            warn!(error = %e, "console settings rejected; using the defaults");
            Settings::default()
        }
    };
    let builder = tauri::Builder::default().plugin(tauri_plugin_notification::init());
    let app = match build(builder, settings).build(tauri::generate_context!()) {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "the console could not start");
            std::process::exit(1);
        }
    };
    app.run(|_, event| {
        // Closing the windows leaves the console in the tray; only "Quitter"
        // (an explicit exit code) ends it.
        if let RunEvent::ExitRequested { api, code: None, .. } = event {
            api.prevent_exit();
        }
    });
}

/// The app without its context, so tests can build it on the mock runtime.
pub fn build<R: Runtime>(builder: tauri::Builder<R>, settings: Settings) -> tauri::Builder<R> {
    builder
        .invoke_handler(tauri::generate_handler![
            commands::connection_status,
            commands::pending_prompts,
            commands::answer_prompt,
            commands::dismiss_prompt,
            commands::open_alternative,
            commands::my_events,
            commands::my_answers,
            commands::policy,
            commands::catalog,
            commands::inventory,
            commands::search_events,
            commands::event_stats,
            commands::facets,
            commands::export_events,
            commands::open_console,
            commands::ui_ready,
            commands::session_locale,
            commands::fleet_status,
            commands::fleet_overview,
            commands::fleet_inventory,
            commands::fleet_recertify,
            commands::fleet_report,
            commands::fleet_exceptions,
            commands::fleet_decide_exception,
        ])
        .setup(move |app| {
            let client = SocketClient::new(settings.socket.clone());
            app.manage(Console {
                client: Arc::clone(&client),
                queue: Mutex::new(PromptQueue::new(settings.prompts.clone())),
                ready_after_ms: Mutex::new(None),
                fleet: settings.fleet.clone(),
            });
            let handle = app.handle().clone();
            windows::setup(&handle, settings.show_console)?;
            let (feed, feed_rx) = mpsc::unbounded_channel();
            tauri::async_runtime::spawn(Arc::clone(&client).maintain(feed));
            tauri::async_runtime::spawn(follow_agent(handle.clone(), feed_rx));
            tauri::async_runtime::spawn(follow_connection(handle, Arc::clone(&client)));
            start_clipboard_guard(client);
            Ok(())
        })
}

/// Tells the windows when the connection to the agent changes.
async fn follow_connection<R: Runtime>(app: tauri::AppHandle<R>, client: Arc<SocketClient>) {
    let mut status = client.status();
    loop {
        let current = status.borrow_and_update().clone();
        let _ = app.emit(CONNECTION_EVENT, &current);
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// Feeds the prompt queue from the agent and brings the prompt window up
/// when the queue says so; tells the main window of new activity.
async fn follow_agent<R: Runtime>(app: tauri::AppHandle<R>, mut feed: mpsc::UnboundedReceiver<AgentFeed>) {
    while let Some(mut message) = feed.recv().await {
        // Several relists in a row are one.
        while message == AgentFeed::Relist {
            match feed.try_recv() {
                Ok(AgentFeed::Relist) => {}
                Ok(next) => {
                    // Keep the order: list now, the next message after.
                    relist(&app).await;
                    message = next;
                }
                Err(_) => break,
            }
        }
        let console = app.state::<Console>();
        let now = Instant::now();
        let offer = match message {
            AgentFeed::Prompt(prompt) => console.queue.lock().map(|mut q| q.offer(*prompt, now)),
            AgentFeed::Relist => {
                relist(&app).await;
                continue;
            }
            AgentFeed::Activity(ts) => {
                activity(&app, ts);
                continue;
            }
        };
        if let Ok(offer) = offer {
            show(&app, offer);
        }
    }
}

/// Lists the agent's open prompts and brings the queue in line with them.
async fn relist<R: Runtime>(app: &tauri::AppHandle<R>) {
    let console = app.state::<Console>();
    match call(&*console.client, vigie_core::proto::Request::Prompts).await {
        Ok(open) => {
            if let Ok(offer) = console.queue.lock().map(|mut q| q.resync(open, Instant::now())) {
                show(app, offer);
            }
        }
        Err(e) => warn!(error = %e, "listing the open prompts failed"),
    }
}

/// Tells the main window that its user's activity changed (its views fetch again).
pub(crate) fn activity<R: Runtime>(app: &tauri::AppHandle<R>, ts: vigie_core::sensor::Micros) {
    let _ = app.emit_to(windows::MAIN, ACTIVITY_EVENT, ts);
}

fn show<R: Runtime>(app: &tauri::AppHandle<R>, offer: Offer) {
    match offer {
        Offer::Raise => windows::show_prompts(app, windows::Show::Raise),
        Offer::Update => windows::show_prompts(app, windows::Show::Update),
        Offer::Ignore => {}
    }
}

/// The clipboard guard's view of the agent, from its own thread.
#[cfg(unix)]
struct GuardAgent {
    client: Arc<SocketClient>,
}

/// How long the guard waits for the agent before letting a copy go.
#[cfg(unix)]
const GUARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `request` on the console's runtime from the guard's thread; the
/// timer is made inside the runtime, where it must live.
#[cfg(unix)]
fn with_timeout<T>(
    request: impl std::future::Future<Output = T> + Send,
) -> Result<T, tokio::time::error::Elapsed> {
    tauri::async_runtime::block_on(async move { tokio::time::timeout(GUARD_TIMEOUT, request).await })
}

#[cfg(unix)]
impl clipboard::Agent for GuardAgent {
    fn clipboard_policy(&self) -> Option<vigie_core::clipboard::ClipboardPolicy> {
        let request =
            call::<_, vigie_core::proto::PolicyView>(&*self.client, vigie_core::proto::Request::Policy);
        match with_timeout(request) {
            Ok(Ok(view)) => Some(view.policy.clipboard),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "clipboard guard: no policy from the agent yet");
                None
            }
            Err(_) => None,
        }
    }

    fn report(
        &self,
        report: &vigie_core::proto::ClipboardReport,
    ) -> Option<vigie_core::proto::ClipboardOutcome> {
        let request = vigie_core::proto::Request::Clipboard(report.clone());
        let request = call::<_, vigie_core::proto::ClipboardOutcome>(&*self.client, request);
        match with_timeout(request) {
            Ok(Ok(outcome)) => Some(outcome),
            Ok(Err(e)) => {
                warn!(error = %e, "clipboard guard: the agent did not decide");
                None
            }
            Err(_) => {
                warn!("clipboard guard: the agent did not answer in time");
                None
            }
        }
    }
}

/// No clipboard watcher outside Unix desktops yet.
#[cfg(not(unix))]
fn start_clipboard_guard(client: Arc<SocketClient>) {
    let _ = client;
    warn!("clipboard guard off: no watcher is built for this system (agent/PORTING.md)");
}

/// Watches the clipboard on its own thread for as long as the console
/// runs: through Wayland data-control in a Wayland session whose compositor
/// offers it, else through X11 (an X session, or XWayland's clients).
#[cfg(unix)]
fn start_clipboard_guard(client: Arc<SocketClient>) {
    let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some();
    let x11 = std::env::var_os("DISPLAY").is_some();
    if !wayland && !x11 {
        warn!("clipboard guard off: no display");
        return;
    }
    let spawned = std::thread::Builder::new().name("clipboard-guard".into()).spawn(move || {
        if wayland {
            match clipboard::wayland::watch(GuardAgent { client: Arc::clone(&client) }) {
                Err(e @ clipboard::wayland::WatchError::NotSupported(_)) if x11 => {
                    warn!(error = %e, "clipboard guard: falling back to X11 (XWayland clients only)");
                }
                Err(e) => {
                    warn!(error = %e, "clipboard guard stopped");
                    return;
                }
                Ok(()) => return,
            }
        }
        if let Err(e) = clipboard::x11::watch(&GuardAgent { client }) {
            warn!(error = %e, "clipboard guard stopped");
        }
    });
    if let Err(e) = spawned {
        warn!(error = %e, "clipboard guard could not start");
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VIGIE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    info!(version = env!("CARGO_PKG_VERSION"), "vigie console starting");
}
