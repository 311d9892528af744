// App commands get generated `allow-…` permissions, so each window's
// capability file lists exactly the commands it may call.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = tauri_build::AppManifest::new().commands(&[
        "connection_status",
        "pending_prompts",
        "answer_prompt",
        "dismiss_prompt",
        "open_alternative",
        "my_events",
        "my_answers",
        "policy",
        "catalog",
        "inventory",
        "search_events",
        "event_stats",
        "facets",
        "export_events",
        "open_console",
        "ui_ready",
        "session_locale",
        "fleet_status",
        "fleet_overview",
        "fleet_inventory",
        "fleet_recertify",
        "fleet_report",
        "fleet_exceptions",
        "fleet_decide_exception",
    ]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))?;
    Ok(())
}
