//! `clipboard`: a console found sensitive content in its user's clipboard.
//! The agent holds the catalog, the policy and the user's recent flows, so
//! it decides where the content is headed and what to do; the console only
//! ever sends detector names and counts, never the content.

use std::sync::atomic::Ordering;

use tracing::{info, warn};
use vigie_core::clipboard::{destination, ClipboardFacts};
use vigie_core::event::{Attribution, Event};
use vigie_core::policy::Action;
use vigie_core::proto::{
    ClipboardNotice, ClipboardOutcome, ClipboardReport, DetectorCount, MAX_REPORT_DETECTORS,
    MAX_WINDOW_TITLE_BYTES,
};
use vigie_core::store::Store;

use crate::ipc::Shared;
use crate::run::{now_micros, send};

/// Who sent the report, from SO_PEERCRED.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reporter<'a> {
    pub(crate) uid: u32,
    pub(crate) user: Option<&'a str>,
}

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    #[error("at most {MAX_REPORT_DETECTORS} detectors")]
    TooManyDetectors,
    #[error("detector counts must be at least 1")]
    ZeroCount,
    #[error("window title over {MAX_WINDOW_TITLE_BYTES} bytes")]
    TitleTooLong,
    #[error("content_hash must be 16 to 64 lowercase hex digits")]
    BadHash,
    #[error("display must be `x11` or `wayland`")]
    BadDisplay,
    #[error("rules lock poisoned")]
    Poisoned,
}

impl ReportError {
    pub(crate) fn is_bad_request(&self) -> bool {
        !matches!(self, ReportError::Poisoned)
    }
}

fn check(report: &ClipboardReport) -> Result<(), ReportError> {
    if report.detectors.len() > MAX_REPORT_DETECTORS {
        return Err(ReportError::TooManyDetectors);
    }
    if report.detectors.values().any(|n| *n == 0) {
        return Err(ReportError::ZeroCount);
    }
    if report.window.title.len() > MAX_WINDOW_TITLE_BYTES
        || report.window.program.as_ref().is_some_and(|p| p.len() > 256)
    {
        return Err(ReportError::TitleTooLong);
    }
    let hash = &report.content_hash;
    if !(16..=64).contains(&hash.len())
        || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ReportError::BadHash);
    }
    if !matches!(report.display.as_str(), "x11" | "wayland") {
        return Err(ReportError::BadDisplay);
    }
    Ok(())
}

/// The program behind the window, as flows record it. The window's pid
/// comes from its client; it is only looked up when that process belongs
/// to the reporting user, so no user learns what another one runs.
fn window_program(
    shared: &Shared,
    reporter: Reporter<'_>,
    pid: Option<u32>,
) -> (Option<String>, Option<String>) {
    use std::os::unix::fs::MetadataExt;
    let Some(pid) = pid.filter(|p| *p > 0) else { return (None, None) };
    match std::fs::metadata(format!("/proc/{pid}")) {
        Ok(meta) if meta.uid() == reporter.uid => shared.owners.program(pid),
        _ => (None, None),
    }
}

/// Decides a report: destination, action, event and prompt. Blocking (the
/// store is read for the user's recent flows): run it off the async threads.
pub(crate) fn report(
    shared: &Shared,
    reporter: Reporter<'_>,
    report: &ClipboardReport,
) -> Result<ClipboardOutcome, ReportError> {
    check(report)?;
    let (catalog, policy) = {
        let current = shared.rules.current.read().map_err(|_| ReportError::Poisoned)?;
        (current.0.clone(), current.1.clone())
    };
    let guard = &policy.clipboard;
    let Some(decision) = guard.decide(&report.detectors) else { return Ok(ClipboardOutcome::default()) };
    let now = now_micros();
    let (program, program_path) = window_program(shared, reporter, report.window.pid);
    let mut window = report.window.clone();
    // The agent's view of the program wins over the console's claim.
    if program.is_some() {
        window.program.clone_from(&program);
    }
    let longest = guard.recent_flow_seconds.max(guard.browser_recent_flow_seconds);
    let since = now.saturating_sub(i64::from(longest).saturating_mul(1_000_000));
    let recent = match Store::open(&shared.database).and_then(|store| store.recent_flows(reporter.uid, since))
    {
        Ok(recent) => recent,
        Err(e) => {
            // Titles still work without the store.
            warn!(error = %e, "clipboard: recent flows unavailable");
            Vec::new()
        }
    };
    let Some(found) = destination(&catalog, &window, &recent, now, guard) else {
        return Ok(ClipboardOutcome::default());
    };
    let mut outcome = ClipboardOutcome {
        service_id: Some(found.service.id.clone()),
        evidence: Some(found.evidence),
        ..ClipboardOutcome::default()
    };
    if guard.services_except.contains(&found.service.id) {
        return Ok(outcome);
    }
    let event = Event::clipboard(ClipboardFacts {
        ts: now,
        counts: &report.detectors,
        destination: &found,
        decision: &decision,
        policy_version: &policy.version,
        display: &report.display,
        content_hash: Some(report.content_hash.clone()),
        attribution: Attribution {
            pid: report.window.pid,
            program: window.program.clone(),
            program_path,
            uid: Some(reporter.uid),
            user: reporter.user.map(str::to_owned),
        },
    });
    let clear = event.action == Action::Block;
    info!(
        uid = reporter.uid,
        service = %event.service_id,
        detectors = %event.name,
        action = event.action.as_str(),
        evidence = found.evidence.as_str(),
        "clipboard"
    );
    let notice = ClipboardNotice {
        detectors: report
            .detectors
            .iter()
            .map(|(detector, count)| DetectorCount { detector: *detector, count: *count })
            .collect(),
        cleared: clear,
    };
    shared.prompts.notify_clipboard(&event, &policy, notice);
    outcome.action = Some(decision.action);
    outcome.clear = clear;
    outcome.event_id = Some(event.id.clone());
    let before = shared.dropped.load(Ordering::Relaxed);
    send(&shared.records, &shared.dropped, event);
    if shared.dropped.load(Ordering::Relaxed) != before {
        warn!("clipboard event dropped: the store is behind");
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_core::clipboard::ActiveWindow;
    use vigie_core::detect::DetectorId;

    fn valid() -> ClipboardReport {
        ClipboardReport {
            detectors: [(DetectorId::Nir, 1)].into_iter().collect(),
            window: ActiveWindow { title: "ChatGPT".into(), pid: None, program: None },
            content_hash: "0123456789abcdef".into(),
            display: "x11".into(),
        }
    }

    #[test]
    fn reports_are_checked() {
        assert!(check(&valid()).is_ok());
        let mut r = valid();
        r.content_hash = "not hex at all!!".into();
        assert!(matches!(check(&r), Err(ReportError::BadHash)));
        let mut r = valid();
        r.content_hash = "ABCDEF0123456789".into();
        assert!(matches!(check(&r), Err(ReportError::BadHash)), "uppercase");
        let mut r = valid();
        r.display = "quartz".into();
        assert!(matches!(check(&r), Err(ReportError::BadDisplay)));
        let mut r = valid();
        r.window.title = "x".repeat(MAX_WINDOW_TITLE_BYTES + 1);
        assert!(matches!(check(&r), Err(ReportError::TitleTooLong)));
        let mut r = valid();
        r.detectors.insert(DetectorId::Email, 0);
        assert!(matches!(check(&r), Err(ReportError::ZeroCount)));
    }
}
