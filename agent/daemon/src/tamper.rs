//! Tamper evidence: what an employee with a shell (or with sudo) can do to
//! stop, change or get around the agent, each turned into a journal entry,
//! a log line with its fields and an event (which the fleet uploader will
//! carry to the collector with every other event).
//!
//! The checks run at the start and then periodically, in two halves:
//! [`gather`] reads the machine (files, the service manager's links, the
//! firewall, logind's sessions) into [`Facts`], and [`Integrity::judge`]
//! compares them with what held before, a pure function the tests drive
//! with made-up facts. Each finding is reported once, when it appears; it
//! is reported again only after it went away and came back.
//!
//! What cannot be seen from here (README, "Tamper evidence"): a root user
//! who stops the agent, then rewrites its store and journal; a change made
//! and undone between two checks; a graphical session without logind.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::system_dns::{DnsState, SystemDns};

/// `[tamper]` in the agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TamperConfig {
    /// How often the checks run.
    pub check_every_secs: u64,
    /// How long a graphical session may run without a console before it is
    /// recorded (the console is also the clipboard guard).
    pub console_grace_secs: u64,
    /// A jump of the wall clock against the monotonic one beyond this is
    /// recorded.
    pub clock_jump_secs: u64,
}

impl Default for TamperConfig {
    fn default() -> Self {
        Self { check_every_secs: 30, console_grace_secs: 180, clock_jump_secs: 30 }
    }
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// `systemctl stop` (or a shutdown): recorded at the stop.
    ServiceStopped,
    /// The previous run ended without stopping: `kill -9`, a crash, power.
    AgentKilled,
    /// The unit no longer starts at boot: disabled or masked.
    ServiceDisabled,
    /// The agent's program on disk is not the one running.
    BinaryChanged,
    /// A policy or catalog file changed on this machine.
    PolicyChanged,
    /// The packet rules of enforce mode were removed or flushed.
    FirewallRulesRemoved,
    /// DNS pointed at the agent by `vigie-agent dns on` was moved away.
    DnsMovedAway,
    /// Interfaces came up or went away (a VPN, a tether), or a configured
    /// one is missing.
    InterfacesChanged,
    /// The wall clock jumped against the monotonic clock.
    ClockMoved,
    /// A graphical session ran without its console for too long.
    ConsoleAbsent,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::ServiceStopped => "service-stopped",
            Check::AgentKilled => "agent-killed",
            Check::ServiceDisabled => "service-disabled",
            Check::BinaryChanged => "binary-changed",
            Check::PolicyChanged => "policy-changed",
            Check::FirewallRulesRemoved => "firewall-rules-removed",
            Check::DnsMovedAway => "dns-moved-away",
            Check::InterfacesChanged => "interfaces-changed",
            Check::ClockMoved => "clock-moved",
            Check::ConsoleAbsent => "console-absent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    /// What it is about: a file, an interface, a session.
    pub subject: String,
    /// What was seen, for the journal.
    pub detail: String,
    /// The user concerned, when there is one (a session's owner).
    pub uid: Option<u32>,
}

/// Whether systemd starts the agent at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    Enabled,
    Disabled,
    Masked,
    /// Not run by systemd: nothing to check.
    NotManaged,
}

/// A logind session with a display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicalSession {
    pub id: String,
    pub uid: u32,
}

/// The machine as one look found it.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The agent's program on disk (`None`: unreadable or gone).
    pub binary: Option<[u8; 32]>,
    /// Each rule file and its digest.
    pub rule_files: Vec<(PathBuf, Option<[u8; 32]>)>,
    pub unit: UnitState,
    /// Enforce mode's packet rules: `None` when there are none to check.
    pub rules_intact: Option<bool>,
    pub dns: DnsState,
    /// Interfaces that are up (`None`: could not be listed).
    pub interfaces: Option<BTreeSet<String>>,
    /// Interfaces the configuration names (empty: all).
    pub configured_interfaces: Vec<String>,
    pub sessions: Vec<GraphicalSession>,
    /// Users with a console connected.
    pub consoles: HashSet<u32>,
    pub now: Instant,
    /// Microseconds since the Unix epoch, read with `now`.
    pub wall_micros: i64,
}

/// What held at the last look, to compare the next one with.
#[derive(Debug)]
pub struct Integrity {
    config: TamperConfig,
    running_binary: Option<[u8; 32]>,
    rule_files: HashMap<PathBuf, Option<[u8; 32]>>,
    interfaces: Option<BTreeSet<String>>,
    /// Wall minus monotonic time, in microseconds, at the last look.
    clock_offset: Option<(Instant, i64)>,
    /// Since when each graphical session has had no console.
    without_console: HashMap<String, Instant>,
    /// Findings standing now, by check and subject: not reported again.
    standing: HashSet<(Check, String)>,
}

impl Integrity {
    /// The first look: the baseline. Findings that hold already at the
    /// start (a disabled unit, DNS moved away while the agent was down) are
    /// reported by the first [`judge`](Self::judge).
    pub fn new(config: TamperConfig, first: &Facts) -> Self {
        Self {
            config,
            running_binary: first.binary,
            rule_files: first.rule_files.iter().cloned().collect(),
            interfaces: first.interfaces.clone(),
            clock_offset: None,
            without_console: HashMap::new(),
            standing: HashSet::new(),
        }
    }

    pub fn every(&self) -> Duration {
        Duration::from_secs(self.config.check_every_secs.max(1))
    }

    /// Compares `facts` with the last look; returns what is new.
    pub fn judge(&mut self, facts: &Facts) -> Vec<Finding> {
        let mut now_standing: Vec<Finding> = Vec::new();
        let mut once: Vec<Finding> = Vec::new();

        match facts.unit {
            UnitState::Disabled => now_standing.push(finding(
                Check::ServiceDisabled,
                "vigie-agent.service",
                "the agent's unit is disabled: it will not start at the next boot",
            )),
            UnitState::Masked => now_standing.push(finding(
                Check::ServiceDisabled,
                "vigie-agent.service",
                "the agent's unit is masked: it cannot be started",
            )),
            UnitState::Enabled | UnitState::NotManaged => {}
        }

        if facts.binary != self.running_binary {
            let detail = match facts.binary {
                Some(digest) => format!(
                    "the agent's program on disk (sha256 {}) is not the one running (sha256 {}): replaced \
                     outside a package upgrade unless the agent restarts within seconds",
                    short(&digest),
                    self.running_binary.as_ref().map_or_else(|| "unknown".to_owned(), short)
                ),
                None => "the agent's program on disk is gone or unreadable".to_owned(),
            };
            now_standing.push(finding(Check::BinaryChanged, "agent program", &detail));
        }

        for (path, digest) in &facts.rule_files {
            let before = self.rule_files.insert(path.clone(), *digest);
            if before.is_some_and(|before| before != *digest) {
                let show = |d: Option<[u8; 32]>| d.as_ref().map_or_else(|| "none".to_owned(), short);
                once.push(finding(
                    Check::PolicyChanged,
                    &path.display().to_string(),
                    &format!(
                        "changed on this machine (sha256 {} -> {}); no signed channel delivers policies \
                         here, so every local change is recorded",
                        show(before.flatten()),
                        show(*digest)
                    ),
                ));
            }
        }

        if facts.rules_intact == Some(false) {
            now_standing.push(finding(
                Check::FirewallRulesRemoved,
                "packet rules",
                "enforce mode's packet rules were removed or flushed: nothing is judged until the agent \
                 puts them back (it restarts to do so)",
            ));
        }

        if let DnsState::MovedAway { first } = &facts.dns {
            let to = first.map_or_else(|| "no nameserver".to_owned(), |ip: IpAddr| ip.to_string());
            now_standing.push(finding(
                Check::DnsMovedAway,
                "/etc/resolv.conf",
                &format!("DNS was pointed at the agent (`vigie-agent dns on`) but now asks {to} first"),
            ));
        }

        if let Some(up) = &facts.interfaces {
            if facts.configured_interfaces.is_empty() {
                if let Some(before) = &self.interfaces {
                    let added: Vec<&String> = up.difference(before).collect();
                    let gone: Vec<&String> = before.difference(up).collect();
                    if !added.is_empty() || !gone.is_empty() {
                        let subject =
                            added.iter().chain(&gone).map(|s| s.as_str()).collect::<Vec<_>>().join(",");
                        once.push(finding(
                            Check::InterfacesChanged,
                            &subject,
                            &format!("interfaces up: added {added:?}, gone {gone:?}; new ones are captured"),
                        ));
                    }
                }
            } else {
                for name in facts.configured_interfaces.iter().filter(|name| !up.contains(*name)) {
                    now_standing.push(finding(
                        Check::InterfacesChanged,
                        name,
                        "a configured capture interface is down or gone: its traffic is not seen",
                    ));
                }
            }
            self.interfaces = Some(up.clone());
        }

        let offset = facts.wall_micros - micros_since(facts.now);
        if let Some((_, before)) = self.clock_offset {
            let jump = offset - before;
            if jump.unsigned_abs() > self.config.clock_jump_secs.saturating_mul(1_000_000) {
                once.push(finding(
                    Check::ClockMoved,
                    "wall clock",
                    &format!(
                        "the wall clock moved by {:+} s against the monotonic clock: event times around \
                         it are shifted",
                        jump / 1_000_000
                    ),
                ));
            }
        }
        self.clock_offset = Some((facts.now, offset));

        let grace = Duration::from_secs(self.config.console_grace_secs);
        let open: HashSet<&str> = facts.sessions.iter().map(|s| s.id.as_str()).collect();
        self.without_console.retain(|id, _| open.contains(id.as_str()));
        for session in &facts.sessions {
            if facts.consoles.contains(&session.uid) {
                self.without_console.remove(&session.id);
                continue;
            }
            let since = *self.without_console.entry(session.id.clone()).or_insert(facts.now);
            if facts.now.saturating_duration_since(since) >= grace {
                let mut found = finding(
                    Check::ConsoleAbsent,
                    &format!("session {}", session.id),
                    &format!(
                        "a graphical session of uid {} has run for over {} s without the console: no \
                         prompts, no clipboard guard",
                        session.uid,
                        grace.as_secs()
                    ),
                );
                found.uid = Some(session.uid);
                now_standing.push(found);
            }
        }

        // Standing findings are new only when they were not standing before.
        let keys: HashSet<(Check, String)> =
            now_standing.iter().map(|f| (f.check, f.subject.clone())).collect();
        let fresh =
            now_standing.into_iter().filter(|f| !self.standing.contains(&(f.check, f.subject.clone())));
        let mut out: Vec<Finding> = fresh.collect();
        self.standing = keys;
        out.extend(once);
        out
    }
}

fn finding(check: Check, subject: &str, detail: &str) -> Finding {
    Finding { check, subject: subject.to_owned(), detail: detail.to_owned(), uid: None }
}

fn short(digest: &[u8; 32]) -> String {
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A fixed origin for the monotonic clock, so offsets compare across looks.
fn micros_since(now: Instant) -> i64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| now);
    if now >= origin {
        i64::try_from(now.duration_since(origin).as_micros()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from(origin.duration_since(now).as_micros()).unwrap_or(i64::MAX)
    }
}

/// The sha256 of a file, `None` when it cannot be read.
pub fn digest_of(path: &Path) -> Option<[u8; 32]> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).ok()?;
    Some(hasher.finalize().into())
}

/// Where the checks look; the system's paths, or a test's folder.
#[derive(Debug, Clone)]
pub struct Places {
    pub binary: Option<PathBuf>,
    pub rule_files: Vec<PathBuf>,
    /// systemd's configuration folder (`/etc/systemd/system`), when the
    /// agent runs under systemd.
    pub units: Option<PathBuf>,
    /// logind's session files (`/run/systemd/sessions`).
    pub sessions: PathBuf,
    pub dns: SystemDns,
    pub resolver: Option<IpAddr>,
}

impl Places {
    /// The system's places for this configuration: the running program,
    /// the configured rule files, systemd's links when systemd started the
    /// agent, logind's sessions, and the DNS set-up `dns on` saved.
    pub fn of(config: &crate::Config) -> Self {
        let state_dir =
            config.database.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
        Self {
            binary: std::env::current_exe().ok(),
            rule_files: [&config.policy, &config.catalog].into_iter().flatten().cloned().collect(),
            units: under_systemd.then(|| PathBuf::from("/etc/systemd/system")),
            sessions: PathBuf::from("/run/systemd/sessions"),
            dns: SystemDns::system(state_dir),
            resolver: crate::system_dns::resolver_address(&config.resolver.listen),
        }
    }
}

/// The agent's unit under `units`: enabled (a link in a `.wants` folder),
/// disabled, or masked (a link to /dev/null).
pub fn unit_state(units: &Path, unit: &str) -> UnitState {
    let own = units.join(unit);
    if std::fs::read_link(&own).is_ok_and(|target| target == Path::new("/dev/null")) {
        return UnitState::Masked;
    }
    let wanted = std::fs::read_dir(units).into_iter().flatten().flatten().any(|entry| {
        entry.file_name().to_string_lossy().ends_with(".wants") && entry.path().join(unit).exists()
    });
    if wanted {
        UnitState::Enabled
    } else {
        UnitState::Disabled
    }
}

/// logind's graphical user sessions, from its files (one per session,
/// `KEY=value` lines).
pub fn graphical_sessions(folder: &Path) -> Vec<GraphicalSession> {
    let mut sessions = Vec::new();
    for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".ref") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        if let Some(session) = parse_session(&name, &text) {
            sessions.push(session);
        }
    }
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    sessions
}

fn parse_session(id: &str, text: &str) -> Option<GraphicalSession> {
    let field = |key: &str| {
        text.lines().find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    };
    let graphical = matches!(field("TYPE"), Some("x11" | "wayland" | "mir"));
    let user = field("CLASS").is_none_or(|class| class == "user");
    let closing = field("STATE") == Some("closing");
    let remote = field("REMOTE") == Some("1");
    let uid = field("UID")?.parse().ok()?;
    (graphical && user && !closing && !remote).then(|| GraphicalSession { id: id.to_owned(), uid })
}

/// Looks at the machine.
pub fn gather(
    places: &Places,
    rules_intact: Option<bool>,
    interfaces: Option<BTreeSet<String>>,
    configured_interfaces: &[String],
    consoles: HashSet<u32>,
    now: Instant,
    wall_micros: i64,
) -> Facts {
    Facts {
        binary: places.binary.as_deref().and_then(digest_of),
        rule_files: places.rule_files.iter().map(|p| (p.clone(), digest_of(p))).collect(),
        unit: places.units.as_deref().map_or(UnitState::NotManaged, |u| unit_state(u, "vigie-agent.service")),
        rules_intact,
        dns: places.resolver.map_or(DnsState::Untouched, |r| places.dns.state(r)),
        interfaces,
        configured_interfaces: configured_interfaces.to_vec(),
        sessions: graphical_sessions(&places.sessions),
        consoles,
        now,
        wall_micros,
    }
}

#[cfg(test)]
mod tests;
