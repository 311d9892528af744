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
    /// Set when the software inventory raised this prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub software: Option<SoftwareNotice>,
}

/// What an inventory prompt says about the software: what it is, what
/// happened, and the service it sends data to (the prompt's service).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftwareNotice {
    pub kind: crate::inventory::Kind,
    pub change: crate::inventory::ChangeKind,
    pub name: String,
    pub version: Option<String>,
    /// Where it lives (browser, editor, agent).
    pub host: String,
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
    pub fn parse(value: &str) -> Option<Self> {
        [AnswerKind::Acknowledged, AnswerKind::Justified, AnswerKind::ExceptionRequested]
            .into_iter()
            .find(|kind| kind.as_str() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Acknowledged => "acknowledged",
            AnswerKind::Justified => "justified",
            AnswerKind::ExceptionRequested => "exception-requested",
        }
    }
}

/// A user's answer to a prompt.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub ts: Micros,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub service_id: String,
    pub action: Action,
    pub event_id: String,
    pub kind: AnswerKind,
    pub text: Option<String>,
    pub bypass_until: Option<Micros>,
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
    /// New events or answers of this user were stored: views of their
    /// activity fetch again. Sent at most once a second per console.
    Activity { ts: Micros },
}

/// `events`, `answers`, `aggregates` and `journal`: a page of the newest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Before this time (exclusive), microseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    /// Administrators only: one user's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
}

/// `journal`: the newest entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `inventory`: the AI software found; a user's own unless an
/// administrator asks for everyone's (`uid` left out) or one user's.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub uid: Option<u32>,
}

/// One request of the console protocol: a method and its params. On the
/// wire, `{"id": …, "method": "…", "params": …}` (agent/IPC.md); params may
/// be left out or `null` where the method takes none or all are optional.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Hello,
    Status,
    Subscribe,
    Prompts,
    Answer(AnswerParams),
    Events(ListParams),
    Answers(ListParams),
    Aggregates,
    Journal(JournalParams),
    Search(EventQuery),
    Stats(EventQuery),
    Facets,
    Clipboard(ClipboardReport),
    Policy,
    Catalog,
    Inventory(InventoryParams),
}

/// Why a request line is not a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown method `{0}`")]
    UnknownMethod(String),
    #[error("params of `{method}`: {reason}")]
    BadParams { method: &'static str, reason: String },
}

impl Request {
    /// Every method, for documentation and tests.
    pub const METHODS: [&'static str; 16] = [
        "hello",
        "status",
        "subscribe",
        "prompts",
        "answer",
        "events",
        "answers",
        "aggregates",
        "journal",
        "search",
        "stats",
        "facets",
        "clipboard",
        "policy",
        "catalog",
        "inventory",
    ];

    pub fn method(&self) -> &'static str {
        match self {
            Request::Hello => "hello",
            Request::Status => "status",
            Request::Subscribe => "subscribe",
            Request::Prompts => "prompts",
            Request::Answer(_) => "answer",
            Request::Events(_) => "events",
            Request::Answers(_) => "answers",
            Request::Aggregates => "aggregates",
            Request::Journal(_) => "journal",
            Request::Search(_) => "search",
            Request::Stats(_) => "stats",
            Request::Facets => "facets",
            Request::Clipboard(_) => "clipboard",
            Request::Policy => "policy",
            Request::Catalog => "catalog",
            Request::Inventory(_) => "inventory",
        }
    }

    /// The params as sent on the wire (`null` for none).
    pub fn params(&self) -> serde_json::Value {
        let value = match self {
            Request::Answer(p) => serde_json::to_value(p),
            Request::Events(p) | Request::Answers(p) => serde_json::to_value(p),
            Request::Journal(p) => serde_json::to_value(p),
            Request::Search(q) | Request::Stats(q) => serde_json::to_value(q),
            Request::Clipboard(r) => serde_json::to_value(r),
            Request::Inventory(p) => serde_json::to_value(p),
            Request::Hello
            | Request::Status
            | Request::Subscribe
            | Request::Prompts
            | Request::Facets
            | Request::Aggregates
            | Request::Policy
            | Request::Catalog => Ok(serde_json::Value::Null),
        };
        // These types serialise to JSON whatever they hold.
        value.unwrap_or(serde_json::Value::Null)
    }

    /// The request a method name and its params make.
    pub fn parse(method: &str, params: serde_json::Value) -> Result<Self, RequestError> {
        fn take<T: serde::de::DeserializeOwned + Default>(
            method: &'static str,
            params: serde_json::Value,
        ) -> Result<T, RequestError> {
            if params.is_null() {
                return Ok(T::default());
            }
            serde_json::from_value(params)
                .map_err(|e| RequestError::BadParams { method, reason: e.to_string() })
        }
        fn none(method: &'static str, params: &serde_json::Value) -> Result<(), RequestError> {
            match params {
                serde_json::Value::Null => Ok(()),
                serde_json::Value::Object(fields) if fields.is_empty() => Ok(()),
                _ => Err(RequestError::BadParams { method, reason: "takes no params".to_owned() }),
            }
        }
        let known = Self::METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .ok_or_else(|| RequestError::UnknownMethod(method.chars().take(64).collect()))?;
        Ok(match known {
            "answer" => Request::Answer(take(known, params)?),
            "events" => Request::Events(take(known, params)?),
            "answers" => Request::Answers(take(known, params)?),
            "journal" => Request::Journal(take(known, params)?),
            "search" => Request::Search(take(known, params)?),
            "stats" => Request::Stats(take(known, params)?),
            "clipboard" => Request::Clipboard(take(known, params)?),
            "inventory" => Request::Inventory(take(known, params)?),
            other => {
                none(other, &params)?;
                match other {
                    "hello" => Request::Hello,
                    "status" => Request::Status,
                    "subscribe" => Request::Subscribe,
                    "prompts" => Request::Prompts,
                    "facets" => Request::Facets,
                    "aggregates" => Request::Aggregates,
                    "policy" => Request::Policy,
                    _ => Request::Catalog,
                }
            }
        })
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;

    #[test]
    fn every_method_round_trips_through_its_wire_form() {
        for method in Request::METHODS {
            // Params left out: the defaults (an empty clipboard report is
            // then refused by the agent's checks, not by the parser).
            let request = Request::parse(method, serde_json::Value::Null).unwrap();
            assert_eq!(request.method(), method);
            assert_eq!(Request::parse(request.method(), request.params()), Ok(request));
        }
        let search = Request::Search(EventQuery { text: Some("chatgpt".into()), ..EventQuery::default() });
        assert_eq!(Request::parse("search", search.params()), Ok(search));
    }

    #[test]
    fn bad_methods_and_params_are_named() {
        assert_eq!(
            Request::parse("drop-tables", serde_json::Value::Null),
            Err(RequestError::UnknownMethod("drop-tables".into()))
        );
        let extra = serde_json::json!({ "limit": 5, "evil": true });
        assert!(matches!(
            Request::parse("events", extra),
            Err(RequestError::BadParams { method: "events", .. })
        ));
        let params = serde_json::json!({ "x": 1 });
        assert!(matches!(
            Request::parse("status", params),
            Err(RequestError::BadParams { method: "status", .. })
        ));
        assert_eq!(Request::parse("status", serde_json::json!({})), Ok(Request::Status));
    }
}
