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
//! What held at the last look (file digests, findings standing) is kept in
//! the state folder, so that a change made while the agent was stopped is
//! found at its next start, and a finding is not reported again at every
//! restart. What cannot be seen from here (README, "Tamper evidence"): a
//! root user who stops the agent, then rewrites its store and that state; a
//! change made and undone between two checks; a session without logind.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use vigie_core::event::{Attribution, Event, TAMPER};
use vigie_core::store::JournalEntry;

use crate::platform::{file_stamp, FileStamp};
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

/// The longest each setting may be: an edited configuration cannot switch
/// the checks off by making them wait for years.
const MAX_CHECK_EVERY_SECS: u64 = 300;
const MAX_CONSOLE_GRACE_SECS: u64 = 3_600;
const MAX_CLOCK_JUMP_SECS: u64 = 3_600;

impl TamperConfig {
    fn clamped(self) -> Self {
        Self {
            check_every_secs: self.check_every_secs.clamp(1, MAX_CHECK_EVERY_SECS),
            console_grace_secs: self.console_grace_secs.min(MAX_CONSOLE_GRACE_SECS),
            clock_jump_secs: self.clock_jump_secs.clamp(1, MAX_CLOCK_JUMP_SECS),
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// `systemctl stop` (or a shutdown): recorded at the stop.
    ServiceStopped,
    /// The previous run ended without stopping: `kill -9`, a crash, power.
    AgentKilled,
    /// The unit no longer starts at boot (disabled, masked), or a drop-in
    /// overrides it (`Restart=no`, `WatchdogSec=0`, another `ExecStart`).
    ServiceDisabled,
    /// The agent's program on disk is not the one running.
    BinaryChanged,
    /// The agent's configuration, policy or catalog file changed on this
    /// machine (while it ran, or while it was stopped).
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
    /// A fleet policy bundle was refused: unsigned or signed by another
    /// key, expired, older than the one in force, not loadable, or the
    /// bundle on disk edited by hand.
    PolicyRefused,
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
            Check::PolicyRefused => "policy-refused",
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
    /// Enabled, with drop-ins that change it.
    Overridden,
    /// Not run by its unit: nothing to check.
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
    /// The running agent's program (`/proc/self/exe`, the file as it was
    /// started even if replaced since).
    pub running_binary: Option<[u8; 32]>,
    /// The agent's program on disk (`None`: unreadable or gone).
    pub binary: Option<[u8; 32]>,
    /// The program on disk is the one the installed package lists (an
    /// upgrade in progress: the agent restarts within seconds).
    pub binary_packaged: bool,
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
    /// Microseconds since the Unix epoch, and since boot (suspend
    /// included), read together.
    pub wall_micros: i64,
    pub since_boot_micros: i64,
}

/// What the checks keep across restarts (`tamper.json` in the state folder).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Each watched file and the hex sha256 it had ("" when absent).
    pub files: std::collections::BTreeMap<PathBuf, String>,
    /// Findings standing, as `check subject`.
    pub standing: BTreeSet<String>,
}

/// What held at the last look, to compare the next one with.
#[derive(Debug)]
pub struct Integrity {
    config: TamperConfig,
    running_binary: Option<[u8; 32]>,
    rule_files: HashMap<PathBuf, Option<[u8; 32]>>,
    interfaces: Option<BTreeSet<String>>,
    /// Wall time minus time since boot, in microseconds, at the last look.
    clock_offset: Option<i64>,
    /// Since when each graphical session has had no console.
    without_console: HashMap<String, Instant>,
    /// Findings standing now, by check and subject: not reported again.
    standing: HashSet<(Check, String)>,
}

impl Integrity {
    /// The first look, and what the previous run saved: files changed
    /// while no agent ran are reported by the first [`judge`](Self::judge),
    /// as are findings that hold at the start and were not standing when
    /// the previous run ended.
    pub fn new(config: TamperConfig, first: &Facts, saved: Option<&Saved>) -> Self {
        let mut rule_files: HashMap<PathBuf, Option<[u8; 32]>> = first.rule_files.iter().cloned().collect();
        let mut standing = HashSet::new();
        if let Some(saved) = saved {
            for (path, hex) in &saved.files {
                rule_files.insert(path.clone(), from_hex(hex));
            }
            standing = saved.standing.iter().filter_map(|key| parse_key(key)).collect();
        }
        Self {
            config: config.clamped(),
            running_binary: first.running_binary,
            rule_files,
            interfaces: first.interfaces.as_ref().map(visible),
            clock_offset: None,
            without_console: HashMap::new(),
            standing,
        }
    }

    pub fn every(&self) -> Duration {
        Duration::from_secs(self.config.check_every_secs)
    }

    /// What to keep for the next run.
    pub fn saved(&self) -> Saved {
        Saved {
            files: self
                .rule_files
                .iter()
                .map(|(path, digest)| (path.clone(), digest.map_or_else(String::new, |d| hex(&d))))
                .collect(),
            standing: self
                .standing
                .iter()
                .map(|(check, subject)| format!("{} {subject}", check.as_str()))
                .collect(),
        }
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
            UnitState::Overridden => now_standing.push(finding(
                Check::ServiceDisabled,
                "vigie-agent.service.d",
                "a drop-in overrides the agent's unit (its restart, watchdog or command may have changed)",
            )),
            UnitState::Enabled | UnitState::NotManaged => {}
        }

        if facts.binary != self.running_binary && !facts.binary_packaged {
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

        let up = facts.interfaces.as_ref().map(visible);
        if let Some(up) = &up {
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

        let offset = facts.wall_micros - facts.since_boot_micros;
        if let Some(before) = self.clock_offset {
            let jump = offset - before;
            if jump.unsigned_abs() > self.config.clock_jump_secs.saturating_mul(1_000_000) {
                once.push(finding(
                    Check::ClockMoved,
                    "wall clock",
                    &format!(
                        "the wall clock moved by {:+} s against the time since boot: event times around \
                         it are shifted",
                        jump / 1_000_000
                    ),
                ));
            }
        }
        self.clock_offset = Some(offset);

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

impl Finding {
    /// A fleet policy bundle refused: what happened to it, and why.
    pub fn policy_refused(bundle: &Path, detail: String) -> Self {
        Self { check: Check::PolicyRefused, subject: bundle.display().to_string(), detail, uid: None }
    }

    /// Logs the finding (a warning with its fields: the journal's
    /// `VIGIE_CHECK`, `VIGIE_SUBJECT`) and returns its store journal entry
    /// and its event, stamped `ts`.
    pub fn evidence(&self, ts: i64, policy_version: &str) -> (JournalEntry, Event) {
        let check = self.check.as_str();
        tracing::warn!(check, subject = %self.subject, uid = self.uid, detail = %self.detail, "tamper evidence");
        let entry = JournalEntry {
            ts,
            kind: format!("{TAMPER}:{check}"),
            detail: format!("{}: {}", self.subject, self.detail),
        };
        let attribution = Attribution { uid: self.uid, ..Attribution::default() };
        (entry, Event::tamper(ts, check, &self.subject, policy_version, attribution))
    }
}

fn finding(check: Check, subject: &str, detail: &str) -> Finding {
    Finding { check, subject: subject.to_owned(), detail: detail.to_owned(), uid: None }
}

fn short(digest: &[u8; 32]) -> String {
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Container and VM plumbing that comes and goes with every container:
/// not recorded (a VPN's tun, a tether, a new NIC are).
fn is_plumbing(name: &str) -> bool {
    ["veth", "docker", "br-", "virbr", "vnet", "cni", "flannel", "cali", "lxc", "podman", "vxlan"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// The interfaces whose coming and going is recorded.
fn visible(all: &BTreeSet<String>) -> BTreeSet<String> {
    all.iter().filter(|name| !is_plumbing(name)).cloned().collect()
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(digest)
}

fn parse_key(key: &str) -> Option<(Check, String)> {
    let (check, subject) = key.split_once(' ')?;
    let check = ALL_CHECKS.into_iter().find(|c| c.as_str() == check)?;
    Some((check, subject.to_owned()))
}

const ALL_CHECKS: [Check; 10] = [
    Check::ServiceStopped,
    Check::AgentKilled,
    Check::ServiceDisabled,
    Check::BinaryChanged,
    Check::PolicyChanged,
    Check::FirewallRulesRemoved,
    Check::DnsMovedAway,
    Check::InterfacesChanged,
    Check::ClockMoved,
    Check::ConsoleAbsent,
];

/// Reads what the previous run kept; `None` when there is nothing usable.
pub fn load_saved(path: &Path) -> Option<Saved> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Keeps `saved` for the next run (written beside, then renamed).
pub fn store_saved(path: &Path, saved: &Saved) -> std::io::Result<()> {
    let temporary = path.with_extension("json.new");
    std::fs::write(&temporary, serde_json::to_vec(saved).map_err(std::io::Error::other)?)?;
    std::fs::rename(&temporary, path)
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
    /// The running program's digest (`/proc/self/exe`, read once).
    pub running_binary: Option<[u8; 32]>,
    /// The program's path on disk, and its stamp when the agent started:
    /// hashed again only when the stamp changes (it is tens of MB).
    pub binary: Option<PathBuf>,
    pub binary_stamp: Option<FileStamp>,
    /// dpkg's list of the package's files and their MD5 sums.
    pub package_sums: PathBuf,
    /// The configuration, policy and catalog files.
    pub rule_files: Vec<PathBuf>,
    /// systemd's configuration folders (`/etc/systemd/system`,
    /// `/run/systemd/system`), when the agent runs under its unit.
    pub units: Option<Vec<PathBuf>>,
    /// logind's session files (`/run/systemd/sessions`).
    pub sessions: PathBuf,
    pub dns: SystemDns,
    pub resolver: Option<IpAddr>,
    /// Where the checks keep what they saw for the next run.
    pub saved: PathBuf,
}

impl Places {
    /// The system's places for an agent keeping its state in `state_dir`,
    /// configured by `config_files` (its configuration, policy and catalog
    /// files) and listening for DNS on `resolver_listen`: the running
    /// program, those files, systemd's folders when the agent runs under
    /// its unit, logind's sessions, and the DNS set-up `dns on` saved.
    pub fn of(
        state_dir: &Path,
        config_files: &[&Option<PathBuf>],
        resolver_listen: &[std::net::SocketAddr],
    ) -> Self {
        // Our own cgroup, not an inherited INVOCATION_ID (a terminal's, a
        // CI runner's), says whether systemd runs us as the agent's unit.
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let under_unit = cgroup.lines().any(|line| line.ends_with("/vigie-agent.service"));
        let binary = std::env::current_exe().ok();
        Self {
            running_binary: digest_of(Path::new("/proc/self/exe")),
            binary_stamp: binary.as_deref().and_then(file_stamp),
            binary,
            package_sums: PathBuf::from("/var/lib/dpkg/info/vigie-agent.md5sums"),
            // The pinned bundle key too: removing it would quietly put the
            // local policy back in force on a centrally managed agent.
            rule_files: config_files
                .iter()
                .copied()
                .flatten()
                .cloned()
                .chain([vigie_fleet::client::FleetDir::new(state_dir).policy_key_path()])
                .collect(),
            units: under_unit
                .then(|| vec![PathBuf::from("/etc/systemd/system"), PathBuf::from("/run/systemd/system")]),
            sessions: PathBuf::from("/run/systemd/sessions"),
            dns: SystemDns::system(state_dir),
            resolver: crate::system_dns::resolver_address(resolver_listen),
            saved: state_dir.join("tamper.json"),
        }
    }
}

/// The agent's unit in systemd's configuration `folders`: masked (a link to
/// /dev/null), overridden (a drop-in), enabled (a link in a `.wants`
/// folder) or disabled.
pub fn unit_state(folders: &[PathBuf], unit: &str) -> UnitState {
    let masked = folders.iter().any(|folder| {
        std::fs::read_link(folder.join(unit)).is_ok_and(|target| target == Path::new("/dev/null"))
    });
    if masked {
        return UnitState::Masked;
    }
    let wanted = folders.iter().any(|folder| {
        std::fs::read_dir(folder).into_iter().flatten().flatten().any(|entry| {
            entry.file_name().to_string_lossy().ends_with(".wants") && entry.path().join(unit).exists()
        })
    });
    if !wanted {
        return UnitState::Disabled;
    }
    let overridden = folders.iter().any(|folder| {
        std::fs::read_dir(folder.join(format!("{unit}.d")))
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().ends_with(".conf"))
    });
    if overridden {
        UnitState::Overridden
    } else {
        UnitState::Enabled
    }
}

/// Whether the file at `path` is the one dpkg installed as `listed` (its
/// path in `sums`, dpkg's `<md5>  <path>` lines).
pub fn is_packaged(path: &Path, sums: &Path, listed: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(sums) else { return false };
    let Some(expected) = text.lines().find_map(|line| {
        let (sum, file) = line.split_once("  ")?;
        (file.trim() == listed).then(|| sum.trim().to_owned())
    }) else {
        return false;
    };
    let Ok(mut file) = std::fs::File::open(path) else { return false };
    let mut hasher = md5::Md5::new();
    if std::io::copy(&mut file, &mut hasher).is_err() {
        return false;
    }
    let actual: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    actual == expected
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

/// What the platform tells the checks: the firewall's rules, the
/// interfaces up, the consoles connected, the clocks.
#[derive(Debug, Clone)]
pub struct Live {
    /// Enforce mode's packet rules intact (`None`: none installed, or they
    /// could not be read).
    pub rules_intact: Option<bool>,
    pub interfaces: Option<BTreeSet<String>>,
    pub configured_interfaces: Vec<String>,
    pub consoles: HashSet<u32>,
    pub now: Instant,
    pub wall_micros: i64,
    pub since_boot_micros: i64,
}

/// Looks at the machine.
pub fn gather(places: &Places, live: Live) -> Facts {
    let path = places.binary.as_deref();
    let untouched = path.and_then(file_stamp).is_some_and(|stamp| Some(stamp) == places.binary_stamp);
    let (binary, binary_packaged) = if untouched {
        (places.running_binary, false)
    } else {
        let packaged =
            path.is_some_and(|path| is_packaged(path, &places.package_sums, "usr/bin/vigie-agent"));
        (path.and_then(digest_of), packaged)
    };
    Facts {
        running_binary: places.running_binary,
        binary,
        binary_packaged,
        rule_files: places.rule_files.iter().map(|p| (p.clone(), digest_of(p))).collect(),
        unit: places.units.as_deref().map_or(UnitState::NotManaged, |u| unit_state(u, "vigie-agent.service")),
        rules_intact: live.rules_intact,
        dns: places.resolver.map_or(DnsState::Untouched, |r| places.dns.state(r)),
        interfaces: live.interfaces,
        configured_interfaces: live.configured_interfaces,
        sessions: graphical_sessions(&places.sessions),
        consoles: live.consoles,
        now: live.now,
        wall_micros: live.wall_micros,
        since_boot_micros: live.since_boot_micros,
    }
}

#[cfg(test)]
mod tests;
