//! The clipboard guard's decisions (ANSSI R25/R34): where copied content is
//! headed — from the active window and the user's recent GenAI flows — and
//! what the policy does about what the detectors found in it.
//!
//! Pure functions over names and counts: the content itself never reaches
//! this module (the console scans it in memory and drops it), only the
//! [`Summary`](crate::detect::Summary) of the scan.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Service};
use crate::detect::{DetectorId, DetectorSettings, Family};
use crate::event::{Attribution, Event};
use crate::policy::{Action, Text};
use crate::sensor::Micros;

/// What the guard does when sensitive content is headed to a GenAI service.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipboardAction {
    /// Record the event only.
    Monitor,
    /// Record and show the prompt; the clipboard is left alone.
    Warn,
    /// Replace the clipboard with a short notice, record and show the prompt.
    Block,
}

impl ClipboardAction {
    pub fn action(self) -> Action {
        match self {
            ClipboardAction::Monitor => Action::Monitor,
            ClipboardAction::Warn => Action::Warn,
            ClipboardAction::Block => Action::Block,
        }
    }
}

/// Prompt texts for the guard: they explain why the content should not go
/// to the service, which the network messages do not.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClipboardMessages {
    pub warn: Text,
    pub block: Text,
}

impl Default for ClipboardMessages {
    fn default() -> Self {
        Self {
            warn: Text {
                fr: "Le presse-papiers contient des données sensibles et la fenêtre active est un service d'IA générative public. Ne les y collez pas : tout ce qui y est saisi sort de l'organisation.".to_owned(),
                en: "The clipboard holds sensitive data and the active window is a public generative-AI service. Do not paste it there: whatever is typed there leaves the organisation.".to_owned(),
            },
            block: Text {
                fr: "Le presse-papiers contenait des données sensibles alors qu'un service d'IA générative public est actif : Vigie l'a remplacé par un avertissement. Utilisez l'assistant interne pour ce contenu.".to_owned(),
                en: "The clipboard held sensitive data while a public generative-AI service was active: Vigie replaced it with a notice. Use the internal assistant for this content.".to_owned(),
            },
        }
    }
}

/// The policy's `[clipboard]` section. Absent, the guard is off: turning it
/// on is the administrator's choice, not a side effect of an upgrade.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipboardPolicy {
    pub enabled: bool,
    /// Which detectors run in the console and from what confidence.
    pub detectors: DetectorSettings,
    /// The action for each family of detectors.
    pub actions: BTreeMap<Family, ClipboardAction>,
    /// Per-detector actions, overriding their family's.
    pub detector_actions: BTreeMap<DetectorId, ClipboardAction>,
    /// Catalog ids the guard leaves alone (an approved enterprise tenant).
    pub services_except: Vec<String>,
    /// A window of a program that reached a GenAI service this recently
    /// counts as that service, when its title names none.
    pub recent_flow_seconds: u32,
    /// The same for web browsers, shorter: a browser's other tabs are not
    /// the GenAI service it reached a minute ago.
    pub browser_recent_flow_seconds: u32,
    pub messages: ClipboardMessages,
}

impl Default for ClipboardPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            detectors: DetectorSettings::default(),
            actions: [
                (Family::Secret, ClipboardAction::Block),
                (Family::PersonalData, ClipboardAction::Warn),
                (Family::Marking, ClipboardAction::Block),
                (Family::SourceCode, ClipboardAction::Warn),
                (Family::Organisation, ClipboardAction::Warn),
            ]
            .into_iter()
            .collect(),
            detector_actions: BTreeMap::new(),
            services_except: Vec::new(),
            recent_flow_seconds: 120,
            browser_recent_flow_seconds: 30,
            messages: ClipboardMessages::default(),
        }
    }
}

/// What decided a clipboard action: the strongest action among the
/// detectors that fired, and the rule it came from
/// (`clipboard:<detector>` for an override, `clipboard:<family>` else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipboardDecision {
    pub action: ClipboardAction,
    pub rule_id: String,
}

impl ClipboardPolicy {
    /// The strongest action the detected content calls for; `None` when the
    /// guard is off or no enabled detector with an action fired.
    pub fn decide(&self, counts: &BTreeMap<DetectorId, u32>) -> Option<ClipboardDecision> {
        if !self.enabled {
            return None;
        }
        counts
            .iter()
            .filter(|(detector, n)| **n > 0 && self.detectors.is_enabled(**detector))
            .filter_map(|(detector, _)| match self.detector_actions.get(detector) {
                Some(action) => Some((*action, format!("clipboard:{detector}"))),
                None => self
                    .actions
                    .get(&detector.family())
                    .map(|action| (*action, format!("clipboard:{}", family_name(detector.family())))),
            })
            // Strongest action; among equals, the first detector in name order.
            .fold(None, |best: Option<(ClipboardAction, String)>, candidate| match best {
                Some(b) if b.0 >= candidate.0 => Some(b),
                _ => Some(candidate),
            })
            .map(|(action, rule_id)| ClipboardDecision { action, rule_id })
    }
}

pub fn family_name(family: Family) -> &'static str {
    match family {
        Family::Secret => "secret",
        Family::PersonalData => "personal-data",
        Family::Marking => "marking",
        Family::SourceCode => "source-code",
        Family::Organisation => "organisation",
    }
}

/// The window that has the focus when content is copied or pasted.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveWindow {
    /// `_NET_WM_NAME` (or `WM_NAME`): for a browser, the tab's title.
    pub title: String,
    /// `_NET_WM_PID`, as the window's client declares it.
    pub pid: Option<u32>,
    /// Executable name of that process, e.g. `firefox-esr`.
    pub program: Option<String>,
}

/// A GenAI flow the agent recorded for this user recently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentFlow {
    pub ts: Micros,
    pub service_id: String,
    pub program: Option<String>,
}

/// How the destination was recognised.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// The window title names the service (a browser tab "ChatGPT").
    WindowTitle,
    /// The window's program reached the service moments ago (a desktop app).
    RecentFlow,
}

impl Evidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::WindowTitle => "window-title",
            Evidence::RecentFlow => "recent-flow",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination<'a> {
    pub service: &'a Service,
    pub evidence: Evidence,
}

/// Executable names of web browsers: their windows hold many sites, so a
/// recent flow says less about the one in front.
const BROWSERS: &[&str] = &[
    "firefox",
    "firefox-esr",
    "firefox-bin",
    "librewolf",
    "chrome",
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "brave",
    "brave-browser",
    "msedge",
    "microsoft-edge",
    "opera",
    "vivaldi-bin",
    "epiphany",
    "WebKitWebProcess",
    "falkon",
    "qutebrowser",
];

pub fn is_browser(program: &str) -> bool {
    BROWSERS.contains(&program)
}

/// Where content copied or pasted now would go: the service the active
/// window's title names, else the one its program reached within the
/// policy's recent-flow window. `None`: not a catalogued GenAI service.
pub fn destination<'a>(
    catalog: &'a Catalog,
    window: &ActiveWindow,
    recent: &[RecentFlow],
    now: Micros,
    policy: &ClipboardPolicy,
) -> Option<Destination<'a>> {
    if let Some(service) = catalog.service_for_title(&window.title) {
        return Some(Destination { service, evidence: Evidence::WindowTitle });
    }
    let program = window.program.as_deref()?;
    let seconds =
        if is_browser(program) { policy.browser_recent_flow_seconds } else { policy.recent_flow_seconds };
    let since = now.saturating_sub(i64::from(seconds).saturating_mul(1_000_000));
    let services: BTreeSet<&str> = recent
        .iter()
        .filter(|f| f.ts >= since && f.program.as_deref() == Some(program))
        .map(|f| f.service_id.as_str())
        .collect();
    // A program that reached two services: which one is in front is a guess.
    match services.into_iter().collect::<Vec<_>>().as_slice() {
        [only] => catalog.get(only).map(|service| Destination { service, evidence: Evidence::RecentFlow }),
        _ => None,
    }
}

/// The name a clipboard event records: each detector with its count,
/// e.g. `nir:1 email:2`. Searching the events for a detector finds it.
pub fn detectors_label(counts: &BTreeMap<DetectorId, u32>) -> String {
    counts.iter().filter(|(_, n)| **n > 0).map(|(d, n)| format!("{d}:{n}")).collect::<Vec<_>>().join(" ")
}

/// What one clipboard decision records.
#[derive(Debug, Clone)]
pub struct ClipboardFacts<'a> {
    pub ts: Micros,
    pub counts: &'a BTreeMap<DetectorId, u32>,
    pub destination: &'a Destination<'a>,
    pub decision: &'a ClipboardDecision,
    pub policy_version: &'a str,
    /// `x11` or `wayland`.
    pub display: &'a str,
    pub content_hash: Option<String>,
    pub attribution: Attribution,
}

impl Event {
    /// A clipboard decision as an event: source `clipboard`, the detectors
    /// and their counts as its name, `display/evidence` as its protocol.
    pub fn clipboard(facts: ClipboardFacts<'_>) -> Self {
        let service = facts.destination.service;
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            ts: facts.ts,
            source: "clipboard".to_owned(),
            name: detectors_label(facts.counts),
            service_id: service.id.clone(),
            service_name: service.name.clone(),
            category: service.category.as_str().to_owned(),
            vendor: service.vendor.clone(),
            action: facts.decision.action.action(),
            rule_id: facts.decision.rule_id.clone(),
            policy_version: facts.policy_version.to_owned(),
            protocol: format!("{}/{}", facts.display, facts.destination.evidence.as_str()),
            src: String::new(),
            dst: String::new(),
            ech: false,
            attribution: facts.attribution,
            repeats: 1,
            content_hash: facts.content_hash,
        }
    }
}

#[cfg(test)]
mod tests;
