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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS, thiserror::Error)]
#[ts(export)]
#[error("{message}")]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
}
