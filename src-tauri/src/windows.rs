//! The console's windows and tray: the main window (hidden until asked for),
//! one prompt window for every prompt (created hidden at start, so showing
//! it costs no web view start-up), and the tray menu.

use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};
use tauri_plugin_notification::NotificationExt;
use tracing::warn;

use crate::{Console, PROMPTS_EVENT};

pub(crate) const MAIN: &str = "main";
pub(crate) const PROMPT: &str = "prompt";
const PROMPT_SIZE: (f64, f64) = (480.0, 440.0);

pub(crate) fn setup<R: Runtime>(app: &AppHandle<R>, show_console: bool) -> tauri::Result<()> {
    prompt_window(app)?;
    if show_console {
        // The window opens on its configured view; no navigation here, which
        // would race the page's own.
        if let Some(main) = app.get_webview_window(MAIN) {
            main.show()?;
        }
    }
    // No tray host (a bare X server) is not an error: the prompts still work.
    if let Err(e) = tray(app) {
        warn!(error = %e, "no tray icon");
    }
    Ok(())
}

fn prompt_window<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<tauri::WebviewWindow<R>> {
    if let Some(window) = app.get_webview_window(PROMPT) {
        return Ok(window);
    }
    WebviewWindowBuilder::new(app, PROMPT, WebviewUrl::App("index.html#/prompt".into()))
        .title(label(app, "Vigie — sensibilisation", "Vigie — awareness"))
        .inner_size(PROMPT_SIZE.0, PROMPT_SIZE.1)
        .always_on_top(true)
        .decorations(false)
        .skip_taskbar(true)
        .visible(false)
        .center()
        .build()
}

/// What the prompt window does with the pending list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// Bring the window up.
    Raise,
    /// Update it; hide it when nothing is left.
    Update,
    /// Update it and leave it as it is: after a justification or an
    /// exception request, the window shows its confirmation until the user
    /// closes it.
    Keep,
}

/// Sends the pending prompts to the prompt window and shows or hides it.
pub(crate) fn show_prompts<R: Runtime>(app: &AppHandle<R>, show: Show) {
    let raise = show == Show::Raise;
    let pending = app.state::<Console>().queue.lock().map(|q| q.pending()).unwrap_or_default();
    let window = match prompt_window(app) {
        Ok(window) => window,
        Err(e) => {
            warn!(error = %e, "prompt window unavailable; notifying instead");
            if raise {
                notify(app, pending.last());
            }
            return;
        }
    };
    let _ = window.emit_to(PROMPT, PROMPTS_EVENT, &pending);
    if pending.is_empty() && show == Show::Update {
        let _ = window.hide();
    } else if raise {
        let shown =
            window.show().and_then(|()| window.set_always_on_top(true)).and_then(|()| window.set_focus());
        if let Err(e) = shown {
            warn!(error = %e, "prompt window could not be shown; notifying instead");
            notify(app, pending.last());
        }
    }
}

/// The fallback when no window can be shown: a desktop notification.
fn notify<R: Runtime>(app: &AppHandle<R>, prompt: Option<&vigie_core::proto::Prompt>) {
    let Some(prompt) = prompt else { return };
    let french = prefers_french();
    let body = if french { &prompt.message.fr } else { &prompt.message.en };
    let title = format!("Vigie — {}", prompt.service_name);
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        warn!(error = %e, "desktop notification failed");
    }
}

/// Opens (or brings back) the main window on a view (`activity`, `rules`, `security/events`, …).
pub(crate) fn open_console<R: Runtime>(app: &AppHandle<R>, view: &str) {
    let Some(window) = app.get_webview_window(MAIN) else { return };
    if !view.is_empty() {
        let _ = window.eval(format!("location.hash = {};", serde_json::json!(format!("#/{view}"))));
    }
    let _ = window.show();
    let _ = window.unminimize();
    let _ = window.set_focus();
}

fn tray<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", label(app, "Ouvrir Vigie", "Open Vigie"), true, None::<&str>)?;
    let rules = MenuItem::with_id(
        app,
        "rules",
        label(app, "Règles du poste", "Workstation rules"),
        true,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(app, "quit", label(app, "Quitter", "Quit"), true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&open, &rules, &separator, &quit])?;
    let mut tray = TrayIconBuilder::with_id("vigie").menu(&menu).tooltip("Vigie").on_menu_event(
        |app, event| match event.id().as_ref() {
            "open" => open_console(app, "activity"),
            "rules" => open_console(app, "rules"),
            "quit" => app.exit(0),
            _ => {}
        },
    );
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}

pub(crate) fn prefers_french() -> bool {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .is_none_or(|lang| lang.starts_with("fr") || lang == "C" || lang == "C.UTF-8" || lang == "POSIX")
}

fn label<R: Runtime>(_app: &AppHandle<R>, french: &'static str, english: &'static str) -> &'static str {
    if prefers_french() {
        french
    } else {
        english
    }
}
