//! The clipboard guard, in the user's session (ANSSI R25/R34). A watcher
//! (X11: [`x11`]) hands it each new clipboard text and each change of the
//! window in front; the guard scans the text in memory with the policy's
//! detectors, keeps only what the detectors found (names and counts) and a
//! keyed hash, and drops the text. When sensitive content sits in the
//! clipboard and the window in front changes, the agent is asked where it
//! is headed and what the policy does about it.
//!
//! Wayland ([`wayland`]): through the wlr data-control protocol and the
//! window in front through wlr foreign-toplevel management (sway, Hyprland
//! and other wlroots compositors). GNOME and KDE Plasma do not offer both:
//! there, only what X11 clients copy under XWayland is seen.

use std::collections::{BTreeMap, VecDeque};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use vigie_core::clipboard::{ActiveWindow, ClipboardPolicy};
use vigie_core::detect::{self, DetectorId};
use vigie_core::proto::{ClipboardOutcome, ClipboardReport};

// The watchers speak X11 and Wayland: Unix desktops. Windows and macOS
// have theirs to write (agent/PORTING.md).
#[cfg(unix)]
pub mod wayland;
#[cfg(unix)]
pub mod x11;

/// What a watcher needs from the rest of the console: the policy's
/// clipboard section, and the agent's decision on a report. Both block
/// (a watcher has its own thread).
pub trait Agent {
    fn clipboard_policy(&self) -> Option<ClipboardPolicy>;
    fn report(&self, report: &ClipboardReport) -> Option<ClipboardOutcome>;
}

/// Text types a clipboard owner may offer, best first (Wayland MIME types
/// and their X11 names, as XWayland bridges them).
pub const TEXT_TYPES: &[&str] = &["text/plain;charset=utf-8", "UTF8_STRING", "text/plain", "TEXT", "STRING"];

/// What replaces blocked content in the clipboard.
pub const NOTICE: &str = "[Vigie] Contenu retiré du presse-papiers : il contenait des données sensibles \
et la fenêtre active est un service d'IA générative public. \
/ Content removed from the clipboard: it held sensitive data and the active window is a public \
generative-AI service.";

/// Window titles the agent was already asked about for one content: a
/// window going back and forth is asked once.
const MAX_ASKED: usize = 64;

/// Sensitive content in the clipboard, as far as the guard keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    detectors: BTreeMap<DetectorId, u32>,
    hash: String,
    asked: VecDeque<(String, Option<u32>)>,
}

/// The guard's state: the policy's clipboard section (from the agent),
/// the per-session hash key, and what the clipboard holds.
pub struct Guard {
    policy: Option<ClipboardPolicy>,
    key: [u8; 32],
    held: Option<Held>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Guard").field("policy", &self.policy.is_some()).field("held", &self.held).finish()
    }
}

impl Default for Guard {
    fn default() -> Self {
        Self::new()
    }
}

impl Guard {
    /// A new key per console session: the hashes it makes count repeats of
    /// one content within the session and cannot be tested against guesses
    /// once it ends.
    pub fn new() -> Self {
        Self { policy: None, key: rand::random(), held: None }
    }

    pub fn set_policy(&mut self, policy: ClipboardPolicy) {
        self.policy = Some(policy);
    }

    pub fn has_policy(&self) -> bool {
        self.policy.is_some()
    }

    /// Whether clipboard contents should be read at all.
    pub fn enabled(&self) -> bool {
        self.policy.as_ref().is_some_and(|p| p.enabled)
    }

    /// The clipboard changed to `text` (`None`: emptied, or not text). The
    /// text is scanned here and not kept; returns whether it is sensitive.
    pub fn copied(&mut self, text: Option<&str>) -> bool {
        self.held = None;
        let (Some(text), Some(policy)) = (text, self.policy.as_ref().filter(|p| p.enabled)) else {
            return false;
        };
        let summary = detect::summarize(&detect::scan(text, &policy.detectors));
        if summary.is_empty() {
            return false;
        }
        self.held = Some(Held { detectors: summary.counts, hash: self.hash(text), asked: VecDeque::new() });
        true
    }

    /// The report to send when `window` is in front, if the clipboard holds
    /// sensitive content and the agent was not asked about this window yet.
    pub fn report(&mut self, window: &ActiveWindow, display: &str) -> Option<ClipboardReport> {
        let held = self.held.as_mut()?;
        let key = (window.title.clone(), window.pid);
        if held.asked.contains(&key) {
            return None;
        }
        if held.asked.len() >= MAX_ASKED {
            held.asked.pop_front();
        }
        held.asked.push_back(key);
        Some(ClipboardReport {
            detectors: held.detectors.clone(),
            window: window.clone(),
            content_hash: held.hash.clone(),
            display: display.to_owned(),
        })
    }

    /// The agent's answer: once the clipboard is replaced, nothing is held.
    pub fn decided(&mut self, outcome: &ClipboardOutcome) {
        if outcome.clear {
            self.held = None;
        }
    }

    pub fn holds_sensitive(&self) -> bool {
        self.held.is_some()
    }

    /// HMAC-SHA-256 under the session key, first 16 bytes in hex.
    fn hash(&self, text: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else { return String::new() };
        mac.update(text.as_bytes());
        mac.finalize().into_bytes().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NIR_TEXT: &str = "Dossier de M. Martin, NIR 1 84 12 76 451 089 46, à traiter.";
    const BAD_NIR_TEXT: &str = "Dossier de M. Martin, NIR 1 84 12 76 451 089 47, à traiter.";

    fn guard() -> Guard {
        let mut guard = Guard::new();
        guard.set_policy(ClipboardPolicy { enabled: true, ..ClipboardPolicy::default() });
        guard
    }

    fn window(title: &str) -> ActiveWindow {
        ActiveWindow { title: title.into(), pid: Some(7), program: None }
    }

    #[test]
    fn sensitive_content_is_reported_once_per_window_by_names_and_counts() {
        let mut guard = guard();
        assert!(guard.copied(Some(NIR_TEXT)));
        let report = guard.report(&window("ChatGPT — Mozilla Firefox"), "x11");
        let report = report.unwrap_or_else(|| panic!("no report"));
        assert_eq!(report.detectors, [(DetectorId::Nir, 1)].into_iter().collect());
        assert_eq!(report.content_hash.len(), 32);
        assert!(!serde_json::to_string(&report).unwrap_or_default().contains("451"), "no content");
        assert_eq!(guard.report(&window("ChatGPT — Mozilla Firefox"), "x11"), None, "asked already");
        assert!(guard.report(&window("Claude - Chromium"), "x11").is_some());
        guard.decided(&ClipboardOutcome { clear: true, ..ClipboardOutcome::default() });
        assert!(!guard.holds_sensitive());
        assert_eq!(guard.report(&window("Gemini"), "x11"), None);
    }

    #[test]
    fn nothing_is_held_for_harmless_text_or_a_failed_checksum() {
        let mut guard = guard();
        assert!(!guard.copied(Some(BAD_NIR_TEXT)));
        assert!(!guard.copied(Some("Compte rendu de la réunion de lundi.")));
        assert!(!guard.copied(None));
        assert_eq!(guard.report(&window("ChatGPT"), "x11"), None);
    }

    #[test]
    fn a_new_copy_replaces_what_was_held_and_the_guard_off_reads_nothing() {
        let mut guard = guard();
        assert!(guard.copied(Some(NIR_TEXT)));
        assert!(!guard.copied(Some("rien")));
        assert!(!guard.holds_sensitive());
        let mut off = Guard::new();
        assert!(!off.copied(Some(NIR_TEXT)), "no policy yet");
        off.set_policy(ClipboardPolicy::default());
        assert!(!off.enabled());
        assert!(!off.copied(Some(NIR_TEXT)), "guard off in the policy");
    }

    #[test]
    fn hashes_are_keyed_per_session() {
        let (mut a, mut b) = (guard(), guard());
        a.copied(Some(NIR_TEXT));
        b.copied(Some(NIR_TEXT));
        let ha = a.report(&window("ChatGPT"), "x11").map(|r| r.content_hash);
        let hb = b.report(&window("ChatGPT"), "x11").map(|r| r.content_hash);
        assert!(ha.is_some() && ha != hb);
        let mut again = Guard { key: a.key, policy: a.policy.clone(), held: None };
        again.copied(Some(NIR_TEXT));
        assert_eq!(
            again.report(&window("ChatGPT"), "x11").map(|r| r.content_hash),
            ha,
            "same key, same hash"
        );
    }
}
