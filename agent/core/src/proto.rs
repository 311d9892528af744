//! The console socket's messages (agent/IPC.md), shared by the agent, the
//! console's Rust side and — through ts-rs (`--features ts`) — its
//! TypeScript, so each type is written once.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::catalog::Service;
use crate::clipboard::{ActiveWindow, ClipboardAction, Evidence};
use crate::detect::DetectorId;
use crate::event::Event;
use crate::policy::{Action, Alternative, Policy, Text};
use crate::sensor::Micros;
use crate::store::Answer;

/// Bumped by changes that break a client; additions keep it.
pub const PROTOCOL_VERSION: u32 = 1;

/// Bounds on what one request may ask for, so a console cannot make the
/// agent build an unbounded reply or query.
pub const MAX_LIMIT: u32 = 10_000;
pub const MAX_FILTER_VALUES: usize = 500;
pub const MAX_SEARCH_CHARS: usize = 200;

/// `hello`: who the agent sees at the other end of the socket.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub agent: String,
    pub uid: u32,
    pub user: Option<String>,
    /// Root or a member of the admin group: may read every user's events.
    pub admin: bool,
}

/// An awareness prompt waiting for its user's console.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub id: u64,
    /// When the service was last reached, in microseconds since the epoch.
    pub ts: Micros,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub program: Option<String>,
    pub service_id: String,
    pub service_name: String,
    pub vendor: String,
    pub category: String,
    pub name: String,
    pub action: Action,
    pub rule_id: String,
    pub reason: Option<Text>,
    pub message: Text,
    pub alternative: Alternative,
    /// Coach only: the justification the user must give, and what it earns.
    pub min_justification_chars: Option<u32>,
    pub bypass_minutes: Option<u32>,
    /// How many times the service was reached while this prompt was open.
    pub repeats: u32,
    pub event_id: String,
    /// Set when the clipboard guard raised this prompt, not a flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub clipboard: Option<ClipboardNotice>,
}

/// What a clipboard prompt says about the content: which detectors fired
/// and how often, and whether the clipboard was replaced.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipboardNotice {
    pub detectors: Vec<DetectorCount>,
    pub cleared: bool,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorCount {
    pub detector: DetectorId,
    pub count: u32,
}

/// Bounds on a clipboard report.
pub const MAX_REPORT_DETECTORS: usize = 64;
pub const MAX_WINDOW_TITLE_BYTES: usize = 4096;

/// `clipboard`: the console found sensitive content in the clipboard (the
/// names and counts of the detectors, never the content) while `window` had
/// the focus. The agent decides where it is headed and what to do.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipboardReport {
    pub detectors: BTreeMap<DetectorId, u32>,
    pub window: ActiveWindow,
    /// Keyed hash of the content (per console session key), to count the
    /// same content pasted again; it cannot be reversed once the session
    /// ends.
    pub content_hash: String,
    /// Where the copy was seen: `x11`, `wayland`.
    pub display: String,
}

/// The reply to `clipboard`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipboardOutcome {
    /// The GenAI service the content is headed to, if any.
    pub service_id: Option<String>,
    pub evidence: Option<Evidence>,
    /// What the policy does; `None`: nothing (no destination, guard off,
    /// an excepted service).
    pub action: Option<ClipboardAction>,
    /// Block: the console must replace the clipboard's content now.
    pub clear: bool,
    pub event_id: Option<String>,
}

/// `answer`: what the user did with a prompt. Give a justification (coach)
/// or an exception request (block), or neither to acknowledge.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerParams {
    pub prompt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerKind {
    Acknowledged,
    Justified,
    ExceptionRequested,
}

impl AnswerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Acknowledged => "acknowledged",
            AnswerKind::Justified => "justified",
            AnswerKind::ExceptionRequested => "exception-requested",
        }
    }
}

/// The reply to `answer`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answered {
    pub prompt: Prompt,
    pub kind: AnswerKind,
    pub text: Option<String>,
    /// Coach: the user may reach the service until this time (microseconds).
    pub bypass_until: Option<Micros>,
}

/// `search` and `stats`: which events. Every list narrows the selection
/// (values within a list are alternatives); empty lists select everything.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventQuery {
    /// From this time (inclusive), microseconds since the epoch.
    #[cfg_attr(feature = "ts", ts(optional))]
    pub from: Option<Micros>,
    /// Until this time (exclusive).
    #[cfg_attr(feature = "ts", ts(optional))]
    pub to: Option<Micros>,
    pub services: Vec<String>,
    pub categories: Vec<String>,
    pub users: Vec<String>,
    pub programs: Vec<String>,
    pub actions: Vec<Action>,
    pub rules: Vec<String>,
    /// Free text, matched (case-insensitively, as a substring) against the
    /// name, the service (id, name, vendor), the program, the user and the rule.
    #[cfg_attr(feature = "ts", ts(optional))]
    pub text: Option<String>,
    /// One user's events. A non-administrator always gets their own only.
    #[cfg_attr(feature = "ts", ts(optional))]
    pub uid: Option<u32>,
    /// Rows to skip, newest first (the events table asks for the rows it shows).
    pub offset: u32,
    /// Rows to return, at most [`MAX_LIMIT`]; 0 asks for the count only.
    pub limit: u32,
}

/// A page of matching events, newest first, and how many match in all.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    pub total: u64,
    pub offset: u32,
    pub events: Vec<Event>,
}

/// A value the events can be filtered on, with what to show for it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetValue {
    pub value: String,
    pub label: String,
}

/// `facets`: every value seen in the store, per filterable field.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facets {
    pub services: Vec<FacetValue>,
    pub categories: Vec<FacetValue>,
    pub users: Vec<FacetValue>,
    pub programs: Vec<FacetValue>,
    pub rules: Vec<FacetValue>,
}

/// Events in one slice of time, per action.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeBucket {
    pub start: Micros,
    pub allow: u64,
    pub monitor: u64,
    pub warn: u64,
    pub coach: u64,
    pub block: u64,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranked {
    pub key: String,
    pub label: String,
    pub count: u64,
}

/// `stats`: the charts of the security view, over the same selection as
/// the events table.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventStats {
    pub total: u64,
    pub bucket_micros: Micros,
    pub timeline: Vec<TimeBucket>,
    pub top_services: Vec<Ranked>,
    pub top_users: Vec<Ranked>,
    pub top_programs: Vec<Ranked>,
    /// Justifications and exception requests for the selected services and
    /// users, newest first.
    pub justifications: Vec<Answer>,
}

/// `policy`: the rules in force and why a newer file was not taken.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    pub policy: Policy,
    pub reload_error: Option<String>,
}

/// `catalog`: the GenAI services the agent recognises.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogView {
    pub version: String,
    pub services: Vec<Service>,
}

/// What the agent sends unasked after `subscribe`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "push", rename_all = "kebab-case")]
pub enum Push {
    /// A new prompt, or an open one that was reached again.
    Prompt { prompt: Box<Prompt> },
    /// The console read too slowly and missed updates: list prompts again.
    Lagged { missed: u64 },
}
