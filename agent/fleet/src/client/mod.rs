//! The agent's side of the fleet: its identity on disk, enrolment and
//! renewal, and the uploader that drains the local store (the outbox).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
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

/// A client that trusts `ca_pem` alone (never the system's roots: the fleet
/// CA is pinned), speaks TLS 1.3 only, and presents `identity` (a PEM file
/// with the certificate and its key) when given.
pub fn https_client(ca_pem: &[u8], identity: Option<&[u8]>) -> Result<reqwest::blocking::Client> {
    let provider = crate::crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(cert.context("fleet CA: unreadable PEM")?).context("fleet CA")?;
    }
    if roots.is_empty() {
        bail!("the fleet CA file holds no certificate");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(pem) => {
            let chain: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
                .collect::<Result<_, _>>()
                .context("agent certificate: unreadable PEM")?;
            let key = rustls_pemfile::private_key(&mut &pem[..])
                .context("agent key: unreadable PEM")?
                .context("agent key: no key in the file")?;
            builder.with_client_auth_cert(chain, key).context("agent certificate and key")?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("vigie-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("HTTPS client")
}

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
