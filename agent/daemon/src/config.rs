//! `/etc/vigie/agent.toml`: every key optional, unknown keys refused.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use vigie_core::diag::{Diagnostic, Diagnostics};

use crate::console::DEFAULT_SOCKET;
use crate::decider::Mode;
use crate::local_export::ExportConfig;
use crate::platform::VerdictConfig;
use crate::resolver::ResolverConfig;
use crate::rules::{FleetRules, RuleFiles};
use crate::tamper::TamperConfig;

pub const DEFAULT_CONFIG: &str = "/etc/vigie/agent.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Policy file (default: the bundled R34 baseline).
    pub policy: Option<PathBuf>,
    /// Catalog file (default: the bundled catalog).
    pub catalog: Option<PathBuf>,
    #[serde(default = "default_database")]
    pub database: PathBuf,
    /// Interfaces to capture on; empty: every interface that is up, but loopback.
    #[serde(default)]
    pub interfaces: Vec<String>,
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Enforce the policy: run the local resolver and packet verdicts.
    /// Off: monitor mode.
    #[serde(default)]
    pub enforce: bool,
    #[serde(default)]
    pub resolver: ResolverConfig,
    #[serde(default)]
    pub verdicts: VerdictConfig,
    /// How often and how the tamper checks look.
    #[serde(default)]
    pub tamper: TamperConfig,
    /// How the enrolled agent talks to its collector.
    #[serde(default)]
    pub fleet: FleetConfig,
    /// The workstation's own SIEM lines (ECS or OCSF JSON) to a file or
    /// the journal; absent, none.
    #[serde(default)]
    pub export: Option<ExportConfig>,
    /// Where the software inventory looks (what it does is the policy's).
    #[serde(default)]
    pub inventory: crate::inventory::InventoryConfig,
    /// The console socket.
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// Members of this group (and root) may read every user's events.
    #[serde(default = "default_admin_group")]
    pub admin_group: String,
    /// Copy every frame to user space (benchmarks of the kernel filter).
    #[serde(skip, default = "default_kernel_filter")]
    pub kernel_filter: bool,
    /// The file this configuration was read from (none: built-in defaults).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[fleet]`: only read once the agent is enrolled (`vigie-agent enroll`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Seconds between heartbeats (jittered by ±20 %); 1 to 3600.
    #[serde(default = "default_fleet_seconds")]
    pub heartbeat_seconds: u64,
    /// Seconds between asks for a new policy bundle (jittered); 1 to 3600.
    #[serde(default = "default_fleet_seconds")]
    pub policy_seconds: u64,
    /// Events per upload batch; 1 to 2000.
    #[serde(default = "default_batch_events")]
    pub batch_events: u32,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self { heartbeat_seconds: 300, policy_seconds: 300, batch_events: 500 }
    }
}

fn default_fleet_seconds() -> u64 {
    300
}

fn default_batch_events() -> u32 {
    500
}

impl FleetConfig {
    /// The uploader's settings, each clamped to its documented range.
    pub fn uploader(&self) -> vigie_fleet::client::UploaderConfig {
        let max_batch = u32::try_from(vigie_fleet::proto::MAX_BATCH_EVENTS).unwrap_or(u32::MAX);
        vigie_fleet::client::UploaderConfig {
            batch_events: self.batch_events.clamp(1, max_batch),
            heartbeat_every: std::time::Duration::from_secs(self.heartbeat_seconds.clamp(1, 3_600)),
            policy_every: std::time::Duration::from_secs(self.policy_seconds.clamp(1, 3_600)),
            ..vigie_fleet::client::UploaderConfig::default()
        }
    }
}

fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}

fn default_admin_group() -> String {
    "vigie-admin".to_owned()
}

fn default_database() -> PathBuf {
    PathBuf::from("/var/lib/vigie/events.db")
}

fn default_retention_days() -> u32 {
    90
}

fn default_kernel_filter() -> bool {
    true
}

impl Config {
    /// The file at `path`; without one, `/etc/vigie/agent.toml` when it
    /// exists, else the built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let path = match path {
            Some(path) => path.to_owned(),
            None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
            None => return Self::parse("", "(defaults)"),
        };
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        config.source = Some(path);
        Ok(config)
    }

    pub fn parse(text: &str, name: &str) -> Result<Self> {
        let config: Self =
            toml::from_str(text).map_err(|e| Diagnostics(vec![Diagnostic::from_toml(name, text, &e)]))?;
        if let Some(export) = &config.export {
            export.check().with_context(|| name.to_owned())?;
        }
        Ok(config)
    }

    /// The folder of the event store, where the agent keeps its other
    /// state too (the saved resolv.conf, the tamper checks' digests).
    pub fn state_dir(&self) -> &Path {
        self.database.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    }

    pub fn mode(&self) -> Mode {
        if self.enforce {
            Mode::Enforce
        } else {
            Mode::Monitor
        }
    }

    /// The rules' sources; under central management (an enrolment with a
    /// pinned bundle key), the fleet's signed bundle once there is one.
    pub fn rule_files(&self) -> RuleFiles {
        let fleet = vigie_fleet::client::FleetDir::new(self.state_dir());
        let managed = fleet.policy_key_path().exists();
        RuleFiles {
            policy: self.policy.clone(),
            catalog: self.catalog.clone(),
            fleet: managed.then(|| FleetRules { bundle: fleet.bundle_path(), key: fleet.policy_key_path() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let config = Config::parse("", "x").unwrap();
        assert_eq!((config.mode(), config.retention_days, config.kernel_filter), (Mode::Monitor, 90, true));
        assert_eq!(config.socket, PathBuf::from(DEFAULT_SOCKET));
        let error = Config::parse("enforce = true\nenforcce = false\n", "agent.toml").unwrap_err();
        assert!(format!("{error:#}").contains("agent.toml:2:1"), "{error:#}");
    }
}
