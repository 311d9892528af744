//! Policy: ordered rules over catalog facts, users and programs; first
//! match wins and every decision names its rule. Loaded from TOML with
//! located errors; a failed reload keeps the policy in force.

mod clipboard_file;
mod eval;
mod inventory_file;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::catalog::{Catalog, Category, TrainsOnInputs};
use crate::clipboard::ClipboardPolicy;
use crate::diag::{self, Diagnostic, Diagnostics, LoadError};
use clipboard_file::ClipboardFile;
use inventory_file::InventoryFile;
pub use inventory_file::InventoryPolicy;

pub use eval::{Decision, Subject};

/// The R34 baseline compiled into the binary.
pub const BUNDLED_POLICY: &str = include_str!("../../../../policies/default.toml");
pub const BUNDLED_POLICY_PATH: &str = "policies/default.toml";

/// The rule id reported when no rule matched and `default_action` applied.
pub const DEFAULT_RULE_ID: &str = "default";

#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let through, record nothing beyond counters.
    Allow,
    /// Let through and record the event.
    Monitor,
    /// Let through and show the awareness prompt.
    Warn,
    /// Hold until the user acknowledges or justifies, then allow for a bounded time.
    Coach,
    /// Deny, and show the prompt with the internal alternative.
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Monitor => "monitor",
            Action::Warn => "warn",
            Action::Coach => "coach",
            Action::Block => "block",
        }
    }

    /// Whether an enforcement point refuses the service: always for block,
    /// for coach until the user justified it.
    pub fn denies(self, justified: bool) -> bool {
        match self {
            Action::Block => true,
            Action::Coach => !justified,
            Action::Allow | Action::Monitor | Action::Warn => false,
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Action::Allow, Action::Monitor, Action::Warn, Action::Coach, Action::Block]
            .into_iter()
            .find(|a| a.as_str() == value)
    }
}

/// French and English text; French is what employees see first.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub fr: String,
    pub en: String,
}

/// The approved internal tool every prompt points to (R34).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Alternative {
    pub name: String,
    pub url: String,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Coaching {
    /// How long a justified user may reach the service.
    pub bypass_minutes: u32,
    /// Shortest justification accepted, in characters.
    pub min_justification_chars: u32,
}

/// What happens to traffic while no agent runs (stopped, crashed, killed)
/// with enforcement installed (R15).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Traffic flows unfiltered until the agent is back.
    #[default]
    Open,
    /// New connections (TCP on every port, QUIC) wait for the agent: their
    /// packets are queued and dropped while nobody reads the queue; nothing
    /// leaves unchecked. Loopback and connections already judged flow.
    Closed,
}

/// What the packet verdicts do with a handshake they could not read within
/// their budget (a hello cut into hundreds of pieces, urgent data, a
/// rewritten retransmission, a flow the agent had no room to follow): it is
/// recorded either way.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnreadableHandshake {
    /// Reject the connection: what evasion tools send is refused.
    #[default]
    Block,
    /// Let it through.
    Monitor,
}

/// What the local resolver answers for a name the policy denies.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockedAnswer {
    /// 0.0.0.0 for A, :: for AAAA, no data for other types: the browser
    /// fails at once instead of retrying other resolvers.
    #[default]
    Null,
    /// The name does not exist.
    Nxdomain,
}

/// How the local resolver enforces the policy.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSettings {
    pub blocked_answer: BlockedAnswer,
    /// Refuse to resolve well-known DNS-over-HTTPS resolvers, so browsers
    /// fall back to the system resolver, where the policy applies.
    pub block_doh_resolvers: bool,
    /// Reject connections to the addresses blocked names resolve to (seen
    /// in DNS answers from other resolvers), for ten minutes: this stops
    /// clients that hide the name (IP literals, ECH), but a CDN address
    /// shared with other sites is blocked for them too.
    pub block_resolved_addresses: bool,
}

/// Prompt texts per action; a rule's `reason` is shown with them.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Messages {
    pub warn: Text,
    pub coach: Text,
    pub block: Text,
}

// The file as written. Names (actions, categories…) are read as text and
// checked afterwards, with their place, so that every wrong one is
// reported: a serde enum would stop the parse at the first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    format: Spanned<u32>,
    name: String,
    version: String,
    default_action: Spanned<String>,
    failure_mode: Option<Spanned<String>>,
    unreadable_handshake: Option<Spanned<String>>,
    alternative: Alternative,
    coach: CoachingFile,
    messages: Messages,
    #[serde(default)]
    dns: DnsSettings,
    #[serde(default)]
    clipboard: ClipboardFile,
    #[serde(default)]
    inventory: InventoryFile,
    #[serde(rename = "rule", default)]
    rules: Vec<RuleFile>,
}

/// `coach`: see [`Coaching`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoachingFile {
    bypass_minutes: Spanned<u32>,
    min_justification_chars: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: Spanned<String>,
    action: Spanned<String>,
    reason: Option<Text>,
    #[serde(default)]
    services: Vec<Spanned<String>>,
    #[serde(default)]
    categories: Vec<Spanned<String>>,
    #[serde(default)]
    vendors: Vec<Spanned<String>>,
    #[serde(default)]
    jurisdictions: Vec<Spanned<String>>,
    #[serde(default)]
    jurisdictions_except: Vec<Spanned<String>>,
    trains_on_inputs: Option<Spanned<String>>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    programs: Vec<String>,
}

/// One rule. Each non-empty criterion must hold (AND); within a list, any
/// value may match (OR). A rule with no criterion matches every service.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub id: Arc<str>,
    pub action: Action,
    pub reason: Option<Text>,
    pub services: Vec<String>,
    pub categories: Vec<Category>,
    pub vendors: Vec<String>,
    pub jurisdictions: Vec<String>,
    pub jurisdictions_except: Vec<String>,
    pub trains_on_inputs: Option<TrainsOnInputs>,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// Executable names (`code`) or absolute paths (`/usr/bin/code`).
    pub programs: Vec<String>,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub version: String,
    pub default_action: Action,
    pub failure_mode: FailureMode,
    pub unreadable_handshake: UnreadableHandshake,
    pub alternative: Alternative,
    pub coach: Coaching,
    pub messages: Messages,
    pub dns: DnsSettings,
    pub clipboard: ClipboardPolicy,
    #[serde(default)]
    pub inventory: InventoryPolicy,
    pub rules: Vec<Rule>,
}

const FORMAT: u32 = 1;

fn is_country_code(value: &str) -> bool {
    value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase())
}

/// The variant of `T` that `value` names, as serde reads it from TOML; else
/// serde's message (``unknown variant `deny`, expected one of …``).
fn variant<T: serde::de::DeserializeOwned>(value: &Spanned<String>) -> Result<T, String> {
    use serde::de::IntoDeserializer;
    T::deserialize(value.get_ref().as_str().into_deserializer())
        .map_err(|e: serde::de::value::Error| e.to_string())
}

impl Policy {
    pub fn bundled(catalog: &Catalog) -> Result<Self, LoadError> {
        Self::parse(BUNDLED_POLICY, BUNDLED_POLICY_PATH, catalog)
    }

    pub fn load(path: &Path, catalog: &Catalog) -> Result<Self, LoadError> {
        let text = diag::read_file(path)?;
        Self::parse(&text, &path.display().to_string(), catalog)
    }

    /// Parses and checks a policy against `catalog`. Every problem in the
    /// values is reported; a file TOML cannot read (syntax, unknown key,
    /// wrong type, missing field) stops at its first problem.
    pub fn parse(text: &str, path: &str, catalog: &Catalog) -> Result<Self, LoadError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| Diagnostics(vec![Diagnostic::from_toml(path, text, &e)]))?;
        let mut report = Report { path, text, errors: Vec::new() };
        if *file.format.get_ref() != FORMAT {
            report.error(file.format.span().start, format!("unsupported policy format, expected {FORMAT}"));
        }
        let default_action: Option<Action> = report.named(&file.default_action);
        let failure_mode: Option<FailureMode> = match &file.failure_mode {
            Some(mode) => report.named(mode),
            None => Some(FailureMode::default()),
        };
        let unreadable_handshake: Option<UnreadableHandshake> = match &file.unreadable_handshake {
            Some(value) => report.named(value),
            None => Some(UnreadableHandshake::default()),
        };
        let mut ids = HashSet::new();
        let mut rules = Vec::with_capacity(file.rules.len());
        for rule in file.rules {
            let id = rule.id.get_ref();
            if id.is_empty() || id == DEFAULT_RULE_ID {
                report.error(rule.id.span().start, format!("rule id `{id}` is reserved or empty"));
            } else if !ids.insert(id.clone()) {
                report.error(rule.id.span().start, format!("duplicate rule id `{id}`"));
            }
            let action: Option<Action> = report.named(&rule.action);
            // Each checked (collecting into an Option would stop at the first wrong one).
            let categories: Vec<Option<Category>> = rule.categories.iter().map(|c| report.named(c)).collect();
            let categories: Option<Vec<Category>> = categories.into_iter().collect();
            let trains_on_inputs: Option<Option<TrainsOnInputs>> = match &rule.trains_on_inputs {
                Some(value) => report.named(value).map(Some),
                None => Some(None),
            };
            for service in &rule.services {
                if catalog.get(service.get_ref()).is_none() {
                    report.error(
                        service.span().start,
                        format!("unknown service `{}`: not in the catalog", service.get_ref()),
                    );
                }
            }
            for vendor in &rule.vendors {
                if !catalog.services().iter().any(|s| s.vendor.eq_ignore_ascii_case(vendor.get_ref())) {
                    report.error(
                        vendor.span().start,
                        format!("unknown vendor `{}`: no catalogued service has it", vendor.get_ref()),
                    );
                }
            }
            for j in rule.jurisdictions.iter().chain(&rule.jurisdictions_except) {
                if !is_country_code(j.get_ref()) {
                    report.error(
                        j.span().start,
                        format!("invalid jurisdiction `{}`, expected a code such as `FR`", j.get_ref()),
                    );
                }
            }
            // A rule with a wrong name is reported above and not kept.
            let (Some(action), Some(categories), Some(trains_on_inputs)) =
                (action, categories, trains_on_inputs)
            else {
                continue;
            };
            rules.push(Rule {
                id: Arc::from(rule.id.into_inner()),
                action,
                reason: rule.reason,
                services: rule.services.into_iter().map(Spanned::into_inner).collect(),
                categories,
                vendors: rule.vendors.into_iter().map(Spanned::into_inner).collect(),
                jurisdictions: rule.jurisdictions.into_iter().map(Spanned::into_inner).collect(),
                jurisdictions_except: rule
                    .jurisdictions_except
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
                trains_on_inputs,
                users: rule.users,
                groups: rule.groups,
                programs: rule.programs,
            });
        }
        let CoachingFile { bypass_minutes, min_justification_chars } = file.coach;
        for (value, key) in
            [(&bypass_minutes, "bypass_minutes"), (&min_justification_chars, "min_justification_chars")]
        {
            if *value.get_ref() == 0 {
                report.error(value.span().start, format!("coach.{key} must be at least 1"));
            }
        }
        let coach = Coaching {
            bypass_minutes: bypass_minutes.into_inner(),
            min_justification_chars: min_justification_chars.into_inner(),
        };
        let clipboard = file.clipboard.check(catalog, &mut report);
        let inventory = file.inventory.check(&mut report);
        let (
            Some(default_action),
            Some(failure_mode),
            Some(unreadable_handshake),
            Some(clipboard),
            Some(inventory),
            true,
        ) = (
            default_action,
            failure_mode,
            unreadable_handshake,
            clipboard,
            inventory,
            report.errors.is_empty(),
        )
        else {
            // In the file's order, as a compiler lists them.
            report.errors.sort_by_key(|d| (d.line, d.column));
            return Err(Diagnostics(report.errors).into());
        };
        Ok(Self {
            name: file.name,
            version: file.version,
            default_action,
            failure_mode,
            unreadable_handshake,
            alternative: file.alternative,
            coach,
            messages: file.messages,
            dns: file.dns,
            clipboard,
            inventory,
            rules,
        })
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.id == id)
    }
}

/// The problems found in one file, each at its place.
struct Report<'a> {
    path: &'a str,
    text: &'a str,
    errors: Vec<Diagnostic>,
}

impl Report<'_> {
    fn error(&mut self, offset: usize, message: String) {
        self.errors.push(Diagnostic::at(self.path, self.text, offset, message));
    }

    /// The variant of `T` that `value` names, or `None` and the error at its place.
    fn named<T: serde::de::DeserializeOwned>(&mut self, value: &Spanned<String>) -> Option<T> {
        variant(value).map_err(|message| self.error(value.span().start, message)).ok()
    }
}

/// The policy in force and the outcome of the last attempt to replace it.
/// A file that fails to load never replaces a good one.
#[derive(Debug, Clone)]
pub struct ActivePolicy {
    current: Arc<Policy>,
    last_error: Option<Arc<LoadError>>,
}

impl ActivePolicy {
    pub fn new(policy: Policy) -> Self {
        Self { current: Arc::new(policy), last_error: None }
    }

    pub fn current(&self) -> &Arc<Policy> {
        &self.current
    }

    pub fn last_error(&self) -> Option<&LoadError> {
        self.last_error.as_deref()
    }

    /// Installs the result of a (re)load: a good policy replaces the one in
    /// force; an error is kept for reporting and the current policy stays.
    pub fn apply(&mut self, loaded: Result<Policy, LoadError>) -> Result<&Arc<Policy>, Arc<LoadError>> {
        match loaded {
            Ok(policy) => {
                self.current = Arc::new(policy);
                self.last_error = None;
                Ok(&self.current)
            }
            Err(error) => {
                let error = Arc::new(error);
                self.last_error = Some(Arc::clone(&error));
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests;
