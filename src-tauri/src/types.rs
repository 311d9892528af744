//! Types the console's Rust side shares with its UI only (the agent's are
//! in `vigie_core::proto`); ts-rs writes their TypeScript twins.

use serde::{Deserialize, Serialize};
use vigie_core::proto::Hello;

/// Whether the console reaches the agent, and as whom.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ConnectionStatus {
    pub connected: bool,
    pub socket: String,
    pub hello: Option<Hello>,
    /// Why the last attempt failed, while not connected.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ExportResult {
    pub path: String,
    pub count: u64,
}

/// Why a command failed, for the UI to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[ts(export)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The agent is not running or its socket is unreachable.
    NotConnected,
    /// The agent refused: this needs the admin group.
    Forbidden,
    /// The request was wrong (e.g. a justification too short).
    BadRequest,
    /// Anything else the agent or the console's side reported.
    Internal,
    /// The fleet view has no collector, fleet CA or administrator's
    /// certificate to use.
    NotConfigured,
    /// The collector did not answer.
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS, thiserror::Error)]
#[ts(export)]
#[error("{message}")]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
}

/// Whether the fleet view can ask the collector, and with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct FleetStatus {
    pub collector: Option<String>,
    pub ca: String,
    /// Where the administrator's certificate is looked for.
    pub identity: String,
    /// The collector is set and both files are there.
    pub ready: bool,
}

/// A workstation as the collector knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct FleetAgent {
    pub id: String,
    pub group: String,
    pub hostname: String,
    #[serde(default)]
    pub last_seen: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    #[ts(type = "number | null")]
    pub bundle_version: Option<i64>,
}

/// An export destination and what waits for it (its lag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct FleetExport {
    pub destination: String,
    #[ts(type = "number")]
    pub exported: i64,
    #[ts(type = "number")]
    pub waiting: i64,
    #[serde(default)]
    pub oldest_waiting: Option<String>,
    #[serde(default)]
    pub last_success: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct FleetOverview {
    pub agents: Vec<FleetAgent>,
    pub exports: Vec<FleetExport>,
}

/// The review's latest decision on one right of one find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct FleetDecision {
    pub right: String,
    /// `keep` or `remove`.
    pub decision: String,
    pub by: String,
    pub at: String,
    #[serde(default)]
    pub note: String,
}

/// One AI software found on one workstation, for one user (a pseudonym).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct FleetFind {
    /// The collector's handle for it, used to decide.
    pub find: String,
    pub hostname: String,
    pub group: String,
    #[serde(default)]
    pub user: Option<String>,
    pub kind: String,
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub service_id: Option<String>,
    pub local: bool,
    pub rights: Vec<String>,
    /// Its rights the review must look at.
    pub broad: Vec<String>,
    /// Broad rights not decided yet.
    #[serde(default)]
    pub pending: Vec<String>,
    #[serde(default)]
    pub decisions: Vec<FleetDecision>,
}

/// The periodic review written to the download folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ReportResult {
    pub path: String,
    #[ts(type = "number")]
    pub bytes: u64,
}

/// The security team's decision on an exception request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct FleetExceptionDecision {
    /// `grant` or `refuse`.
    pub decision: String,
    pub by: String,
    pub at: String,
    #[serde(default)]
    pub note: String,
}

/// An employee's exception request, as the collector keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct FleetException {
    /// The collector's handle for it, used to decide.
    pub request: String,
    pub at: String,
    pub hostname: String,
    pub group: String,
    #[serde(default)]
    pub user: Option<String>,
    pub service_id: String,
    /// The decision the prompt was about (block).
    pub action: String,
    /// In the employee's words.
    pub text: String,
    #[serde(default)]
    pub decision: Option<FleetExceptionDecision>,
}
