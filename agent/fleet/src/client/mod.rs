//! The agent's side of the fleet: its identity on disk, enrolment and
//! renewal, and the uploader that drains the local store (the outbox).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

mod enroll;
mod uploader;

pub use enroll::{enroll, renew_if_due, EnrollOptions};
pub use uploader::{check_bundle, AgentLink, Backoff, Uploader, UploaderConfig};

/// What enrolment leaves in `<state dir>/fleet/`: the collector, who this
/// agent is to it, and the keys pinned for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    /// The collector's base URL (`https://…`).
    pub url: String,
    pub agent_id: String,
    pub group: String,
    /// When the certificate expires, seconds since the Unix epoch.
    pub not_after: i64,
    /// When it was issued: renewal comes once two thirds of its life went by.
    pub not_before: i64,
}

/// `<state dir>/fleet/`: `enrolment.json`, `identity.pem` (the certificate
/// and its key in one file, 0600, so that a renewal replaces both at once),
/// `ca.pem` (the pinned fleet CA), `policy-key.pem` (the pinned bundle key).
#[derive(Debug, Clone)]
pub struct FleetDir {
    pub dir: PathBuf,
}

impl FleetDir {
    pub fn new(state_dir: &Path) -> Self {
        Self { dir: state_dir.join("fleet") }
    }

    pub fn enrolment_path(&self) -> PathBuf {
        self.dir.join("enrolment.json")
    }
    pub fn identity_path(&self) -> PathBuf {
        self.dir.join("identity.pem")
    }
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn policy_key_path(&self) -> PathBuf {
        self.dir.join("policy-key.pem")
    }
    /// The last verified bundle in force.
    pub fn bundle_path(&self) -> PathBuf {
        self.dir.join("bundle.json")
    }

    /// The enrolment, when this agent is enrolled.
    pub fn enrolment(&self) -> Result<Option<Enrolment>> {
        let path = self.enrolment_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{}: not an enrolment file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| path.display().to_string()),
        }
    }

    /// The HTTPS client that trusts the fleet CA alone and presents this
    /// agent's certificate.
    pub fn client(&self) -> Result<reqwest::blocking::Client> {
        let ca = read(&self.ca_path())?;
        let identity = read(&self.identity_path())?;
        https_client(&ca, Some(&identity))
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| path.display().to_string())
}

/// [`crate::write_private`], with the path in the error.
pub(crate) fn save(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    crate::write_private(path, bytes, mode).with_context(|| path.display().to_string())
}

pub use crate::https::https_client;

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The collector's answer as an error that says what it said.
pub(crate) fn refusal(response: reqwest::blocking::Response) -> anyhow::Error {
    let status = response.status();
    let body = uploader::read_limited(response, 4_096).unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let said = serde_json::from_str::<crate::proto::ErrorBody>(&text)
        .map(|b| b.error)
        .unwrap_or_else(|_| text.chars().take(200).collect());
    anyhow::anyhow!("the collector answered {status}: {said}")
}
