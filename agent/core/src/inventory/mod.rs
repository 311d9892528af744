//! AI software on the workstation (ANSSI R35, R27): browser extensions,
//! editor extensions and plugins, desktop apps, running programs, local
//! model servers and the MCP servers agents are given, each tied to the
//! catalog service it sends data to, with the rights it holds.
//!
//! Everything here is pure: the parsers read manifests and settings as
//! bytes, [`diff`] compares two scans. The daemon walks the profiles,
//! lists processes and sockets, and watches the folders.

mod parse;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Service};

pub use parse::{
    chromium_extension, claude_code_rights, codex_rights, desktop_entry, firefox_extensions,
    gemini_cli_rights, jetbrains_plugin, listening_sockets, mcp_servers, model_server, vscode_extension,
    vscode_settings_rights, DesktopEntry, Extension, Listener, McpFormat, McpServer, ModelServer, ParseError,
};

/// What kind of software a find is.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A Chromium-family or Firefox extension.
    BrowserExtension,
    /// A VS Code, VSCodium or Cursor extension.
    EditorExtension,
    /// A JetBrains IDE plugin.
    JetbrainsPlugin,
    /// An installed application (its `.desktop` entry).
    DesktopApp,
    /// A command-line agent, found by its settings in the profile
    /// (Claude Code, Codex CLI, Gemini CLI).
    CliAgent,
    /// A running program (desktop app, command-line agent, model runtime).
    Program,
    /// A local server answering like a model server (Ollama, OpenAI-compatible).
    LocalServer,
    /// An MCP server configured for a desktop or editor agent.
    McpServer,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::BrowserExtension,
        Kind::EditorExtension,
        Kind::JetbrainsPlugin,
        Kind::DesktopApp,
        Kind::CliAgent,
        Kind::Program,
        Kind::LocalServer,
        Kind::McpServer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BrowserExtension => "browser-extension",
            Kind::EditorExtension => "editor-extension",
            Kind::JetbrainsPlugin => "jetbrains-plugin",
            Kind::DesktopApp => "desktop-app",
            Kind::CliAgent => "cli-agent",
            Kind::Program => "program",
            Kind::LocalServer => "local-server",
            Kind::McpServer => "mcp-server",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }

    /// Whether the find is an installation (seen removed when it is gone),
    /// rather than something running (seen when it starts, then ages).
    pub fn is_installed(self) -> bool {
        !matches!(self, Kind::Program | Kind::LocalServer)
    }
}

/// One piece of AI software found on the workstation. It holds names,
/// versions, rights and paths relative to the home folder; never file
/// contents, argument values or a secret's value.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub kind: Kind,
    /// Where it lives: the browser, editor or agent (`google-chrome`,
    /// `firefox`, `vscode`, `claude-desktop`…), or `system`.
    pub host: String,
    /// Its identifier there: extension id, plugin id, program name,
    /// listening address, MCP server name.
    pub key: String,
    pub name: String,
    pub version: Option<String>,
    /// The user whose profile holds it or who runs it; `None` for the system.
    pub uid: Option<u32>,
    pub user: Option<String>,
    /// `~/…` under the user's home, else absolute.
    pub path: String,
    /// The catalog service it sends data to; `None` when only its name says AI.
    pub service_id: Option<String>,
    /// Runs models on the machine: the data stays, the model's provenance matters.
    pub local: bool,
    /// The rights it holds, normalised and sorted (see `rights` in the README).
    pub rights: Vec<String>,
}

impl Item {
    /// What identifies a find from one scan to the next.
    pub fn identity(&self) -> (Option<u32>, Kind, &str, &str) {
        (self.uid, self.kind, self.host.as_str(), self.key.as_str())
    }
}

/// A find as stored, with when it was first and last seen (µs since the
/// epoch) and which of its rights are broad ([`is_broad_right`]: said by
/// the agent, so that the console marks the same ones).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRow {
    #[serde(flatten)]
    pub item: Item,
    pub first_seen: i64,
    pub last_seen: i64,
    pub broad: Vec<String>,
}

impl InventoryRow {
    pub fn new(item: Item, first_seen: i64, last_seen: i64) -> Self {
        let broad = item.rights.iter().filter(|r| is_broad_right(r)).cloned().collect();
        Self { item, first_seen, last_seen, broad }
    }
}

/// What changed between two scans.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Installed,
    Removed,
    Updated,
    RightsChanged,
    /// A program or a local server seen running for the first time.
    Started,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Installed => "installed",
            ChangeKind::Removed => "removed",
            ChangeKind::Updated => "updated",
            ChangeKind::RightsChanged => "rights-changed",
            ChangeKind::Started => "started",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub item: Item,
    /// Rights gained and lost (`rights-changed`, `updated`).
    pub gained: Vec<String>,
    pub lost: Vec<String>,
}

/// The changes from `before` to `after`. Running things (programs, local
/// servers) are reported when they start; their stopping is not an event,
/// or every command-line run would be two.
pub fn diff(before: &[Item], after: &[Item]) -> Vec<Change> {
    let old: BTreeMap<_, &Item> = before.iter().map(|i| (i.identity(), i)).collect();
    let new: BTreeMap<_, &Item> = after.iter().map(|i| (i.identity(), i)).collect();
    let mut changes = Vec::new();
    for (identity, item) in &new {
        let Some(previous) = old.get(identity) else {
            let kind = if item.kind.is_installed() { ChangeKind::Installed } else { ChangeKind::Started };
            changes.push(Change {
                kind,
                item: (*item).clone(),
                gained: item.rights.clone(),
                lost: Vec::new(),
            });
            continue;
        };
        let was: BTreeSet<&String> = previous.rights.iter().collect();
        let is: BTreeSet<&String> = item.rights.iter().collect();
        let gained: Vec<String> = is.difference(&was).map(|r| (*r).clone()).collect();
        let lost: Vec<String> = was.difference(&is).map(|r| (*r).clone()).collect();
        let kind = if previous.version != item.version {
            ChangeKind::Updated
        } else if !gained.is_empty() || !lost.is_empty() {
            ChangeKind::RightsChanged
        } else {
            continue;
        };
        changes.push(Change { kind, item: (*item).clone(), gained, lost });
    }
    for (identity, item) in &old {
        if item.kind.is_installed() && !new.contains_key(identity) {
            changes.push(Change {
                kind: ChangeKind::Removed,
                item: (*item).clone(),
                gained: Vec::new(),
                lost: item.rights.clone(),
            });
        }
    }
    changes
}

/// Words that make an uncatalogued extension count as AI software when
/// its name or description holds one as a whole word, without case…
const AI_WORDS: &[&str] = &["ai", "gpt", "llm", "llms", "chatbot", "chatbots", "genai"];
/// …or anywhere in a word ("ChatGPTBox", "ClaudeHelper").
const AI_WORD_PARTS: &[&str] = &[
    "chatgpt",
    "openai",
    "copilot",
    "claude",
    "gemini",
    "anthropic",
    "deepseek",
    "perplexity",
    "ollama",
    "mistral",
];

/// Whether a name or description says AI (an uncatalogued extension is
/// still recorded, without a service, when it says so itself).
pub fn name_says_ai(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()).any(|word| {
        let lower = word.to_lowercase();
        AI_WORDS.contains(&lower.as_str()) || AI_WORD_PARTS.iter().any(|part| lower.contains(part))
    })
}

/// The catalog's answer for a find: the service, and whether it is a
/// local runtime.
pub fn service_for<'c>(catalog: &'c Catalog, kind: Kind, key: &str) -> Option<&'c Service> {
    match kind {
        Kind::BrowserExtension => catalog.service_for_extension(key),
        Kind::EditorExtension | Kind::JetbrainsPlugin | Kind::DesktopApp | Kind::CliAgent => {
            catalog.service_for_software(key)
        }
        Kind::Program => catalog.service_for_process(key),
        Kind::LocalServer | Kind::McpServer => None,
    }
}

/// Rights that reach far: every site, the clipboard, cookies, actions run
/// without asking, a full-access sandbox, a server open to the network. The
/// console marks them (`InventoryRow::broad`) and the periodic review lists
/// the finds holding one for recertification (R35).
pub fn is_broad_right(right: &str) -> bool {
    matches!(
        right,
        "all-sites"
            | "clipboard-read"
            | "cookies"
            | "debugger"
            | "native-messaging"
            | "history"
            | "listen:network"
            | "workspace-trust-off"
            | "sandbox:full-access"
    ) || right.starts_with("auto-run:")
        || right.starts_with("auto-approve:")
}

/// A path as recorded: `~/…` under `home`, else unchanged.
pub fn relative_to_home(path: &str, home: Option<&str>) -> String {
    let Some(home) = home.map(|h| h.trim_end_matches('/')).filter(|h| !h.is_empty()) else {
        return path.to_owned();
    };
    match path.strip_prefix(home) {
        Some("") => "~".to_owned(),
        Some(rest) if rest.starts_with('/') => format!("~{rest}"),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests;
