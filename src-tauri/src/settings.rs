//! The console's settings: `/etc/vigie/console.toml` (set by the
//! administrator, like the policy), every key optional.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::prompt_queue::PromptSettings;

pub const SETTINGS_PATH: &str = "/etc/vigie/console.toml";
/// The agent's socket when nothing says otherwise (agent/IPC.md).
pub const DEFAULT_SOCKET: &str = "/run/vigie/agent.sock";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub socket: PathBuf,
    pub prompts: PromptSettings,
    /// The collector the security team's fleet view reads (`[fleet]`).
    pub fleet: crate::fleet::FleetSettings,
    /// Open the console window at start instead of staying in the tray.
    #[serde(skip)]
    pub show_console: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            prompts: PromptSettings::default(),
            fleet: crate::fleet::FleetSettings::default(),
            show_console: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: Box<toml::de::Error> },
}

impl Settings {
    /// The settings file (`VIGIE_CONSOLE_CONFIG`, else /etc/vigie/console.toml;
    /// a missing file means the defaults), then `VIGIE_SOCKET` and
    /// `--show` / `VIGIE_CONSOLE_SHOW=1`.
    pub fn load() -> Result<Self, SettingsError> {
        let path = std::env::var_os("VIGIE_CONSOLE_CONFIG")
            .map_or_else(|| PathBuf::from(SETTINGS_PATH), PathBuf::from);
        let mut settings = Self::from_file(&path)?;
        if let Some(socket) = std::env::var_os("VIGIE_SOCKET") {
            settings.socket = PathBuf::from(socket);
        }
        settings.show_console = std::env::args().any(|a| a == "--show")
            || std::env::var("VIGIE_CONSOLE_SHOW").is_ok_and(|v| v == "1");
        Ok(settings)
    }

    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(SettingsError::Read { path: path.display().to_string(), source }),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, SettingsError> {
        toml::from_str(text).map_err(|source| SettingsError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_with_defaults_and_reject_unknown_keys() {
        let path = Path::new("console.toml");
        let settings = Settings::parse("[prompts]\nmax_raises_per_minute = 6\n", path).unwrap();
        assert_eq!(settings.prompts.max_raises_per_minute, 6);
        assert_eq!(settings.prompts.snooze_minutes, PromptSettings::default().snooze_minutes);
        assert_eq!(settings.socket, PathBuf::from(DEFAULT_SOCKET));
        let error = Settings::parse("[prompts]\ngroup_secs = 30\n", path).unwrap_err().to_string();
        assert!(error.contains("console.toml") && error.contains("group_secs"), "{error}");
        assert!(Settings::from_file(Path::new("/nonexistent/console.toml")).is_ok());
        // A key of older consoles, no longer used, does not throw the file away.
        let old = Settings::parse("[prompts]\ngroup_seconds = 300\nsnooze_minutes = 5\n", path).unwrap();
        assert_eq!(old.prompts.snooze_minutes, 5);
        let fleet =
            Settings::parse("[fleet]\ncollector = \"https://collector.example.org:8443\"\n", path).unwrap();
        assert_eq!(fleet.fleet.collector.as_deref(), Some("https://collector.example.org:8443"));
        assert_eq!(fleet.fleet.ca, PathBuf::from("/etc/vigie/fleet-ca.pem"));
        assert!(Settings::parse("[fleet]\ncollector = \"http://collector\"\n", path).is_err(), "https only");
    }
}
