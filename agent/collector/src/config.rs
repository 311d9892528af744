//! `/etc/vigie-collector/collector.toml`: every key optional, unknown keys refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A libpq connection string (`host=/run/postgresql dbname=vigie`).
    #[serde(default = "default_database")]
    pub database: String,
    /// The fleet CA and the collector's own certificate (`vigie-collector init`).
    #[serde(default = "default_pki")]
    pub pki: PathBuf,
    /// Days of events kept; older daily partitions are dropped whole.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Days of hourly counts kept (they hold no user or program).
    #[serde(default = "default_rollup_retention_days")]
    pub rollup_retention_days: u32,
    /// Life of an agent certificate; agents renew after two thirds of it.
    #[serde(default = "default_certificate_days")]
    pub certificate_days: u32,
    /// Batches written at once; past it, agents are told to come back
    /// later (503 with Retry-After) instead of queueing on the database.
    #[serde(default = "default_max_concurrent_batches")]
    pub max_concurrent_batches: usize,
    /// Database connections.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Connections served at once; past it, new ones wait in the backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a whole request may take, body included.
    #[serde(default = "default_request_seconds")]
    pub request_seconds: u64,
    /// Which fleet alerts are raised, and their thresholds.
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
    /// Destinations of the events (`[[export]]`), each with its own cursor.
    #[serde(default, rename = "export")]
    pub exports: Vec<crate::export::ExportConfig>,
    /// Connections from one address at once (a site behind NAT shares one).
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Key of the users' pseudonyms in what the console's fleet view shows
    /// (a file of at least 16 bytes): the same key, the same pseudonyms from
    /// one day to the next. Without it, a key drawn at each start.
    #[serde(default)]
    pub admin_pseudonym_key: Option<PathBuf>,
}

/// A pseudonym key from `path`, or a new random one.
pub fn pseudonym_key(path: Option<&Path>) -> Result<Vec<u8>> {
    let Some(path) = path else { return Ok(rand::random::<[u8; 32]>().to_vec()) };
    let key = std::fs::read(path).with_context(|| path.display().to_string())?;
    if key.len() < 16 {
        bail!("{}: a pseudonym key has at least 16 bytes", path.display());
    }
    Ok(key)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}
fn default_database() -> String {
    "host=/run/postgresql dbname=vigie".to_owned()
}
fn default_pki() -> PathBuf {
    PathBuf::from("/etc/vigie-collector/pki")
}
fn default_retention_days() -> u32 {
    180
}
fn default_rollup_retention_days() -> u32 {
    730
}
fn default_certificate_days() -> u32 {
    90
}
fn default_max_concurrent_batches() -> usize {
    32
}
fn default_pool_size() -> usize {
    16
}
fn default_request_seconds() -> u64 {
    30
}
fn default_max_connections() -> usize {
    4_096
}
fn default_max_connections_per_address() -> usize {
    512
}

impl Config {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        Self::parse(&text).with_context(|| path.display().to_string())
    }

    pub fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text)?;
        if config.retention_days == 0 || config.retention_days > 3_650 {
            bail!("retention_days must be between 1 and 3650");
        }
        let mut names = std::collections::HashSet::new();
        for export in &config.exports {
            if export.name.is_empty() || !names.insert(export.name.as_str()) {
                bail!("each [[export]] needs a name of its own (`{}`)", export.name);
            }
            export.check()?;
        }
        if !(1..=600).contains(&config.request_seconds) {
            bail!("request_seconds must be between 1 and 600");
        }
        if config.rollup_retention_days == 0 || config.rollup_retention_days > 36_500 {
            bail!("rollup_retention_days must be between 1 and 36500");
        }
        if !(1..=397).contains(&config.certificate_days) {
            bail!("certificate_days must be between 1 and 397");
        }
        if [
            config.max_concurrent_batches,
            config.pool_size,
            config.max_connections,
            config.max_connections_per_address,
        ]
        .contains(&0)
        {
            bail!("max_concurrent_batches, pool_size, max_connections and max_connections_per_address must be at least 1");
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bounds_and_unknown_keys() {
        let config = Config::parse("").unwrap();
        assert_eq!((config.retention_days, config.certificate_days), (180, 90));
        assert!(Config::parse("rollup_retention_days = 99999999").is_err());
        assert!(Config::parse("retention_days = 0").is_err());
        assert!(Config::parse("certificate_days = 9000").is_err());
        let error = Config::parse("listen = \"0.0.0.0:8443\"\nlisen = 1\n").unwrap_err();
        assert!(format!("{error:#}").contains("lisen"), "{error:#}");
    }
}
