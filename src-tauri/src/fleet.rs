//! The security team's view of the whole fleet: the collector's admin API
//! (`agent/FLEET.md`), reached over HTTPS pinned to the fleet CA with the
//! administrator's own certificate. The collector decides who may read
//! what and logs each request under that certificate's name; the console
//! holds no other credential and keeps nothing it reads.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use vigie_fleet::proto;

use crate::types::{
    CommandError, ErrorKind, FleetDecision, FleetException, FleetExceptionDecision, FleetFind, FleetOverview,
    FleetStatus, ReportResult,
};

/// `[fleet]` of `/etc/vigie/console.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetSettings {
    /// The collector's address, `https://…` (none: no fleet view).
    #[serde(deserialize_with = "https_url")]
    pub collector: Option<String>,
    /// The fleet CA, pinned: no other root is trusted.
    pub ca: PathBuf,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self { collector: None, ca: PathBuf::from("/etc/vigie/fleet-ca.pem") }
    }
}

fn https_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let url = Option::<String>::deserialize(deserializer)?;
    match url {
        Some(url) if !url.starts_with("https://") => {
            Err(serde::de::Error::custom(format!("collector must be an https:// address, not {url}")))
        }
        other => Ok(other.map(|u| u.trim_end_matches('/').to_owned())),
    }
}

/// The administrator's certificate and key: `VIGIE_ADMIN_IDENTITY`, else
/// `$XDG_CONFIG_HOME/vigie/admin.pem` (`~/.config/vigie/admin.pem`).
pub fn identity_path() -> PathBuf {
    if let Some(path) = std::env::var_os("VIGIE_ADMIN_IDENTITY") {
        return PathBuf::from(path);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    config.join("vigie").join("admin.pem")
}

/// Answers larger than this are refused (a report of a big fleet is a few MB).
const MAX_ANSWER: u64 = 32 << 20;

/// A client of the collector for this administrator.
#[derive(Debug)]
pub struct FleetClient {
    url: String,
    http: reqwest::blocking::Client,
}

fn not_configured(message: String) -> CommandError {
    CommandError { kind: ErrorKind::NotConfigured, message }
}

/// What the view needs to say before any request: configured or not, and why.
pub fn status(settings: &FleetSettings) -> FleetStatus {
    let identity = identity_path();
    FleetStatus {
        collector: settings.collector.clone(),
        ca: settings.ca.display().to_string(),
        identity: identity.display().to_string(),
        ready: settings.collector.is_some() && settings.ca.is_file() && identity.is_file(),
    }
}

impl FleetClient {
    pub fn new(settings: &FleetSettings) -> Result<Self, CommandError> {
        let Some(url) = settings.collector.clone() else {
            return Err(not_configured("no collector in [fleet] of /etc/vigie/console.toml".to_owned()));
        };
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| not_configured(format!("{what} {}: {e}", path.display())))
        };
        let ca = read(&settings.ca, "fleet CA")?;
        let identity = read(&identity_path(), "administrator's certificate")?;
        let http = vigie_fleet::https::https_client(&ca, Some(&identity))
            .map_err(|e| not_configured(format!("{e:#}")))?;
        Ok(Self { url, http })
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> Result<Vec<u8>, CommandError> {
        let response = request.send().map_err(|e| CommandError {
            kind: ErrorKind::Unreachable,
            message: format!("{}: {e}", self.url),
        })?;
        let status = response.status();
        if response.content_length().is_some_and(|n| n > MAX_ANSWER) {
            return Err(CommandError { kind: ErrorKind::Internal, message: "answer too large".to_owned() });
        }
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(response, MAX_ANSWER + 1), &mut body)
            .map_err(|e| CommandError { kind: ErrorKind::Unreachable, message: e.to_string() })?;
        if status.is_success() {
            return Ok(body);
        }
        let why = serde_json::from_slice::<proto::ErrorBody>(&body)
            .map_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect(), |e| e.error);
        let kind = match status.as_u16() {
            401 | 403 => ErrorKind::Forbidden,
            400 | 404 => ErrorKind::BadRequest,
            _ => ErrorKind::Internal,
        };
        Err(CommandError { kind, message: format!("{status}: {why}") })
    }

    fn json<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, CommandError> {
        serde_json::from_slice(body).map_err(|e| CommandError {
            kind: ErrorKind::Internal,
            message: format!("unexpected answer from the collector: {e}"),
        })
    }

    pub fn overview(&self) -> Result<FleetOverview, CommandError> {
        let body = self.send(self.http.get(format!("{}{}", self.url, proto::ADMIN_OVERVIEW)))?;
        self.json(&body)
    }

    pub fn inventory(&self, filter: &str) -> Result<Vec<FleetFind>, CommandError> {
        if !matches!(filter, "all" | "broad" | "pending") {
            return Err(CommandError { kind: ErrorKind::BadRequest, message: format!("no filter {filter}") });
        }
        let url = format!("{}{}?filter={filter}", self.url, proto::ADMIN_INVENTORY);
        let body = self.send(self.http.get(url))?;
        self.json(&body)
    }

    pub fn recertify(&self, request: &proto::RecertifyRequest) -> Result<FleetDecision, CommandError> {
        self.post_json(proto::ADMIN_RECERTIFY, request)
    }

    fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CommandError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| CommandError { kind: ErrorKind::Internal, message: e.to_string() })?;
        let request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body);
        let answer = self.send(request)?;
        self.json(&answer)
    }

    pub fn exceptions(&self, filter: &str) -> Result<Vec<FleetException>, CommandError> {
        if !matches!(filter, "pending" | "all") {
            return Err(CommandError { kind: ErrorKind::BadRequest, message: format!("no filter {filter}") });
        }
        let url = format!("{}{}?filter={filter}", self.url, proto::ADMIN_EXCEPTIONS);
        let body = self.send(self.http.get(url))?;
        self.json(&body)
    }

    pub fn decide_exception(
        &self,
        request: &proto::ExceptionDecisionRequest,
    ) -> Result<FleetExceptionDecision, CommandError> {
        self.post_json(proto::ADMIN_DECIDE_EXCEPTION, request)
    }

    /// The periodic review from `from` to `to` (YYYY-MM-DD), written as an
    /// HTML file in `directory`.
    pub fn report(
        &self,
        from: &str,
        to: &str,
        lang: &str,
        directory: &Path,
    ) -> Result<ReportResult, CommandError> {
        let day = |d: &str| d.len() == 10 && d.chars().all(|c| c.is_ascii_digit() || c == '-');
        if !day(from) || !day(to) || !matches!(lang, "fr" | "en") {
            return Err(CommandError {
                kind: ErrorKind::BadRequest,
                message: "dates are YYYY-MM-DD, the language fr or en".to_owned(),
            });
        }
        let url = format!("{}{}?from={from}&to={to}&lang={lang}", self.url, proto::ADMIN_REPORT);
        let html = self.send(self.http.get(url))?;
        let io = |path: &Path, e: std::io::Error| CommandError {
            kind: ErrorKind::Internal,
            message: format!("{}: {e}", path.display()),
        };
        std::fs::create_dir_all(directory).map_err(|e| io(directory, e))?;
        let path = directory.join(format!("vigie-revue-{from}-{to}.html"));
        let part = path.with_extension("html.part");
        std::fs::write(&part, &html).map_err(|e| io(&part, e))?;
        std::fs::rename(&part, &path).map_err(|e| io(&path, e))?;
        Ok(ReportResult { path: path.display().to_string(), bytes: html.len() as u64 })
    }
}
