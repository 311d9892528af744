//! `clipboard`: a console found sensitive content in its user's clipboard.
//! The agent holds the catalog, the policy and the user's recent flows, so
//! it decides where the content is headed and what to do; the console only
//! ever sends detector names and counts, never the content.

use vigie_core::clipboard::RecentFlow;
use vigie_core::clipboard::{destination, ClipboardAction, ClipboardFacts};
use vigie_core::detect::DetectorId;
use vigie_core::event::Attribution;
use vigie_core::proto::{
    ClipboardNotice, ClipboardOutcome, ClipboardReport, DetectorCount, MAX_REPORT_DETECTORS,
    MAX_WINDOW_TITLE_BYTES,
};

use crate::decider::{ClipboardVerdict, Decider};

use crate::platform::process_belongs_to;
use crate::rules::Rules;

/// Who sent the report, from SO_PEERCRED.
#[derive(Debug, Clone, Copy)]
pub struct Reporter<'a> {
    pub uid: u32,
    pub user: Option<&'a str>,
}

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
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
    #[error("detector `{0}` is not defined by the policy")]
    UndefinedDetector(String),
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

/// The window's process and program, as flows record them, from the
/// agent's own lookup. The pid comes from the window's client (a console
/// can say anything): it is kept only when that process belongs to the
/// reporting user, so no user learns what another one runs, and the
/// console's own word for the program is never stored.
fn window_program(decider: &Decider, reporter: Reporter<'_>, pid: Option<u32>) -> Attribution {
    let Some(pid) = pid.filter(|pid| process_belongs_to(*pid, reporter.uid)) else {
        return Attribution::default();
    };
    let (program, program_path) = decider.owners().program(pid);
    Attribution { pid: Some(pid), program, program_path, ..Attribution::default() }
}

/// Decides a report: destination, action, event and prompt. `recent_flows`
/// gives the user's GenAI flows since a time (it reads the store:
/// blocking, run it off the async threads).
pub fn report(
    rules: &Rules,
    decider: &Decider,
    recent_flows: impl FnOnce(u32, i64) -> Vec<RecentFlow>,
    reporter: Reporter<'_>,
    report: &ClipboardReport,
) -> Result<ClipboardOutcome, ReportError> {
    check(report)?;
    let (catalog, policy) = rules.current();
    let guard = &policy.clipboard;
    // A console only runs the organisation detectors the policy sent it.
    if let Some(undefined) = report.detectors.keys().find_map(|d| match d {
        DetectorId::Org(name) if !guard.detectors.organisation.defines(*name) => {
            Some(name.as_str().to_owned())
        }
        _ => None,
    }) {
        return Err(ReportError::UndefinedDetector(undefined));
    }
    let now = decider.clock().wall_micros();
    // Who the window belongs to is only looked up (in /proc) when a
    // detector calls for an action: the destination needs it.
    let mut program = Attribution::default();
    let find_destination = || {
        program = window_program(decider, reporter, report.window.pid);
        // The destination is found with the console's word for the program
        // when the agent has none of its own (Wayland gives no pid, only an
        // app id): it is matched against this user's own flows, so it
        // reveals nothing. What is stored is only what the agent verified.
        let mut window = report.window.clone();
        if program.program.is_some() {
            window.program.clone_from(&program.program);
        }
        let longest = guard.recent_flow_seconds.max(guard.browser_recent_flow_seconds);
        let since = now.saturating_sub(i64::from(longest).saturating_mul(1_000_000));
        let recent = recent_flows(reporter.uid, since);
        destination(&catalog, &window, &recent, now, guard)
    };
    let (decision, found) = match decider.decide_clipboard(&policy, &report.detectors, find_destination) {
        ClipboardVerdict::Nothing => return Ok(ClipboardOutcome::default()),
        ClipboardVerdict::Exempt(found) => (None, found),
        ClipboardVerdict::Act(decision, found) => (Some(decision), found),
    };
    let mut outcome = ClipboardOutcome {
        service_id: Some(found.service.id.clone()),
        evidence: Some(found.evidence),
        ..ClipboardOutcome::default()
    };
    let Some(decision) = decision else { return Ok(outcome) };
    let clear = decision.action == ClipboardAction::Block;
    let notice = ClipboardNotice {
        detectors: report
            .detectors
            .iter()
            .map(|(detector, count)| DetectorCount { detector: *detector, count: *count })
            .collect(),
        cleared: clear,
    };
    let facts = ClipboardFacts {
        ts: now,
        counts: &report.detectors,
        destination: &found,
        decision: &decision,
        policy_version: &policy.version,
        display: &report.display,
        content_hash: Some(report.content_hash.clone()),
        attribution: Attribution {
            uid: Some(reporter.uid),
            user: reporter.user.map(str::to_owned),
            ..program
        },
    };
    let event = decider.report_clipboard(&policy, facts, notice);
    outcome.action = Some(decision.action);
    outcome.clear = clear;
    outcome.event_id = Some(event.id);
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
