//! The software inventory (issue 15, ANSSI R35 and R27): what AI software
//! each user has and runs, which service it sends data to, and the rights
//! it holds. One thread: a full look at start and every
//! `policy.inventory.rescan_seconds`, a profile looked at again within
//! seconds of a change in it (inotify, through notify), processes and
//! listening sockets every `process_seconds`. Each change is one event,
//! decided by the policy's `[inventory]` actions; the inventory itself is
//! stored with them, for the console's "Logiciels IA" view.

mod profile;
mod running;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::{debug, info, warn};
use vigie_core::event::{Attribution, Event};
use vigie_core::inventory::{diff, Change, Item, Kind, ModelServer};
use vigie_core::proto::SoftwareNotice;

pub use profile::{scan_profile, scan_system_applications, Home};
pub use running::{probe, MODEL_PORTS};

use crate::decider::Decider;
use crate::rules::Rules;
use crate::sink::InventoryUpdate;

/// `[inventory]` in the agent's configuration: where to look. What to do
/// with a find is the policy's `[inventory]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    /// Home folders to look in; empty: every account's in /etc/passwd with
    /// a uid from 1000, a login shell and a home that exists. The owner of
    /// the folder is the user its finds are attributed to.
    pub homes: Vec<PathBuf>,
    /// Folders of system-wide `.desktop` entries.
    pub applications: Vec<PathBuf>,
    /// How often running programs and listening sockets are listed.
    pub process_seconds: u64,
    /// Ports asked whether a model server listens, besides the usual ones
    /// and any port a catalogued local runtime holds.
    pub model_ports: Vec<u16>,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            homes: Vec::new(),
            applications: [
                "/usr/share/applications",
                "/usr/local/share/applications",
                "/var/lib/flatpak/exports/share/applications",
                "/var/lib/snapd/desktop/applications",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
            process_seconds: 10,
            model_ports: Vec::new(),
        }
    }
}

/// After a change in a profile, how long the writing must pause before the
/// profile is read again, and the longest a busy profile waits.
const SETTLE: Duration = Duration::from_millis(700);
const MAX_SETTLE: Duration = Duration::from_secs(5);

/// The accounts whose homes are looked at: uid from 1000 (not `nobody`),
/// a shell that logs in, a home that exists.
fn homes_from_passwd(passwd: &str) -> Vec<Home> {
    passwd
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let (name, uid, home, shell) = (fields.first()?, fields.get(2)?, fields.get(5)?, fields.get(6)?);
            let uid: u32 = uid.parse().ok()?;
            let logs_in = !shell.ends_with("nologin") && !shell.ends_with("/false");
            ((1000..65534).contains(&uid) && logs_in && Path::new(home).is_dir()).then(|| Home {
                uid,
                user: Some((*name).to_owned()),
                path: PathBuf::from(home),
            })
        })
        .collect()
}

fn configured_homes(config: &InventoryConfig, accounts: &crate::accounts::Accounts) -> Vec<Home> {
    use std::os::unix::fs::MetadataExt;
    if config.homes.is_empty() {
        return homes_from_passwd(&std::fs::read_to_string("/etc/passwd").unwrap_or_default());
    }
    config
        .homes
        .iter()
        .filter_map(|path| {
            let uid = std::fs::metadata(path).ok()?.uid();
            Some(Home { uid, user: accounts.user_name(uid).map(str::to_owned), path: path.clone() })
        })
        .collect()
}

/// The running inventory thread.
#[derive(Debug)]
pub struct Inventory {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Inventory {
    /// Starts the thread; `known` is the inventory stored by the last run,
    /// so that a restart does not announce everything again.
    pub fn start(
        config: InventoryConfig,
        rules: Arc<Rules>,
        decider: Arc<Decider>,
        known: Vec<Item>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("inventory".into()).spawn(move || {
            let mut looker = Looker::new(config, rules, decider, Vec::new(), known);
            looker.run(&thread_stop);
        })?;
        Ok(Self { thread: Some(thread), stop })
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the inventory thread panicked");
            }
        }
    }
}

impl Drop for Inventory {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The inventory's state between looks.
struct Looker {
    config: InventoryConfig,
    rules: Arc<Rules>,
    decider: Arc<Decider>,
    homes: Vec<Home>,
    /// uid → (user, home) for programs and servers.
    home_of: HashMap<u32, (Option<String>, String)>,
    /// What was last stored.
    known: Vec<Item>,
    /// The latest finds per part: each profile, the system, what runs.
    profiles: HashMap<u32, Vec<Item>>,
    system_apps: Vec<Item>,
    running: Vec<Item>,
    system: sysinfo::System,
    /// What each listening socket (address, inode) answered when asked.
    probed: HashMap<(SocketAddr, u64), Option<ModelServer>>,
    /// A scan that could not be stored (the store is behind): given again.
    pending: bool,
    /// The agent's first look ever (nothing stored): what it finds is the
    /// baseline, recorded without a prompt, or a workstation's first day
    /// would open one prompt per extension already there.
    baseline: bool,
}

impl std::fmt::Debug for Looker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Looker").field("homes", &self.homes).field("known", &self.known.len()).finish()
    }
}

impl Looker {
    fn new(
        config: InventoryConfig,
        rules: Arc<Rules>,
        decider: Arc<Decider>,
        homes: Vec<Home>,
        known: Vec<Item>,
    ) -> Self {
        let home_of =
            homes.iter().map(|h| (h.uid, (h.user.clone(), h.path.to_string_lossy().into_owned()))).collect();
        let baseline = known.is_empty();
        Self {
            config,
            rules,
            decider,
            homes,
            home_of,
            known,
            profiles: HashMap::new(),
            system_apps: Vec::new(),
            running: Vec::new(),
            system: sysinfo::System::new(),
            probed: HashMap::new(),
            pending: false,
            baseline,
        }
    }

    fn run(&mut self, stop: &AtomicBool) {
        let (events, changes) = channel();
        let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                for path in event.paths {
                    let _ = events.send(path);
                }
            }
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, "cannot watch profiles: changes are seen at the next full look");
                None
            }
        };
        let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
        let mut last_full: Option<Instant> = None;
        let mut last_running: Option<Instant> = None;
        let mut dirty: BTreeSet<u32> = BTreeSet::new();
        let mut dirty_since: Option<(Instant, Instant)> = None;
        while !stop.load(Ordering::Relaxed) {
            let policy = self.rules.current().1;
            if !policy.inventory.enabled {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            let now = Instant::now();
            let full_every = Duration::from_secs(u64::from(policy.inventory.rescan_seconds));
            let running_every = Duration::from_secs(self.config.process_seconds.max(1));
            let mut changed = false;
            if last_full.is_none_or(|at| now.duration_since(at) >= full_every) {
                // Accounts made since the last full look are looked at too.
                self.set_homes(configured_homes(&self.config, &crate::accounts::Accounts::load()));
                self.look_at_profiles(None);
                self.system_apps =
                    scan_system_applications(&self.rules.current().0, &self.config.applications);
                // A new full look asks the servers again (their models change).
                self.probed.clear();
                if let Some(watcher) = watcher.as_mut() {
                    self.watch(watcher, &mut watched);
                }
                last_full = Some(now);
                changed = true;
            }
            if last_running.is_none_or(|at| now.duration_since(at) >= running_every) {
                self.look_at_running();
                last_running = Some(now);
                changed = true;
            }
            if let Some((first, last)) = dirty_since {
                if now.duration_since(last) >= SETTLE || now.duration_since(first) >= MAX_SETTLE {
                    let uids = std::mem::take(&mut dirty);
                    self.look_at_profiles(Some(&uids));
                    if let Some(watcher) = watcher.as_mut() {
                        self.watch(watcher, &mut watched);
                    }
                    dirty_since = None;
                    changed = true;
                }
            }
            if changed || self.pending {
                self.publish();
            }
            if !self.pending {
                self.baseline = false;
            }
            // Sleep until the next thing due, or a change in a profile.
            let next_running =
                last_running.map_or(Duration::ZERO, |at| running_every.saturating_sub(at.elapsed()));
            let wait = match dirty_since {
                Some(_) => next_running.min(Duration::from_millis(200)),
                None => next_running.min(Duration::from_secs(1)),
            };
            match changes.recv_timeout(wait) {
                Ok(path) => {
                    let mut paths = vec![path];
                    paths.extend(changes.try_iter().take(10_000));
                    for path in paths {
                        if let Some(home) = self.homes.iter().find(|h| profile::is_relevant(&h.path, &path)) {
                            dirty.insert(home.uid);
                            let at = Instant::now();
                            dirty_since = Some(dirty_since.map_or((at, at), |(first, _)| (first, at)));
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => watcher = None,
            }
        }
    }

    /// Watches the folders of every profile that exist now (a folder made
    /// later is seen through its parent, then watched at the next look).
    fn watch(&self, watcher: &mut notify::RecommendedWatcher, watched: &mut BTreeSet<PathBuf>) {
        for home in &self.homes {
            for path in profile::watched_paths(&home.path) {
                if watched.contains(&path) || !path.is_dir() {
                    continue;
                }
                match notify::Watcher::watch(watcher, &path, notify::RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        watched.insert(path);
                    }
                    Err(e) => debug!(path = %path.display(), error = %e, "cannot watch"),
                }
            }
        }
        watched.retain(|p| p.is_dir());
    }

    fn set_homes(&mut self, homes: Vec<Home>) {
        self.home_of =
            homes.iter().map(|h| (h.uid, (h.user.clone(), h.path.to_string_lossy().into_owned()))).collect();
        // A profile whose account is gone is gone from the inventory.
        self.profiles.retain(|uid, _| homes.iter().any(|h| h.uid == *uid));
        self.homes = homes;
    }

    fn look_at_profiles(&mut self, only: Option<&BTreeSet<u32>>) {
        let catalog = self.rules.current().0;
        for home in &self.homes {
            if only.is_some_and(|uids| !uids.contains(&home.uid)) {
                continue;
            }
            self.profiles.insert(home.uid, scan_profile(&catalog, home));
        }
    }

    fn look_at_running(&mut self) {
        let catalog = self.rules.current().0;
        self.running =
            running_items(&catalog, &self.config, &mut self.system, &mut self.probed, &self.home_of);
    }

    fn current(&self) -> Vec<Item> {
        let mut items: Vec<Item> = self.profiles.values().flatten().cloned().collect();
        items.extend(self.system_apps.iter().cloned());
        items.extend(self.running.iter().cloned());
        items.sort_by(|a, b| a.identity().cmp(&b.identity()));
        items.dedup_by(|a, b| a.identity() == b.identity());
        items
    }

    /// Stores the inventory with the events of what changed since the last
    /// stored one; a scan the store cannot take now is given again.
    fn publish(&mut self) {
        let current = self.current();
        let changes = diff(&self.known, &current);
        if changes.is_empty() && !self.pending && self.known.len() == current.len() {
            return;
        }
        let (catalog, policy) = self.rules.current();
        let ts = self.decider.clock().wall_micros();
        let prompts = !self.baseline;
        let events: Vec<Event> =
            changes.iter().map(|c| event_for(&self.decider, &catalog, &policy, c, ts, prompts)).collect();
        if !changes.is_empty() {
            info!(changes = changes.len(), items = current.len(), "inventory changed");
        }
        let update = InventoryUpdate { ts, items: current.clone(), events };
        if self.decider.sink().inventory(update) {
            self.known = current;
            self.pending = false;
        } else {
            warn!("inventory not stored: the store is behind; tried again");
            self.pending = true;
        }
    }
}

/// Programs running and local model servers listening now. `probed`
/// keeps what each socket answered, so that a server is asked once.
fn running_items(
    catalog: &vigie_core::catalog::Catalog,
    config: &InventoryConfig,
    system: &mut sysinfo::System,
    probed: &mut HashMap<(SocketAddr, u64), Option<ModelServer>>,
    home_of: &HashMap<u32, (Option<String>, String)>,
) -> Vec<Item> {
    let processes = running::processes(system);
    let mut items = running::programs(catalog, &processes, home_of);
    let proc_root = Path::new("/proc");
    let listeners = running::listeners(proc_root);
    // Which runtimes hold a socket: their ports are asked too.
    let runtime_pids: Vec<u32> = processes
        .iter()
        .filter(|p| p.names.iter().any(|n| catalog.service_for_process(n).is_some_and(|s| s.runs_locally)))
        .map(|p| p.pid)
        .collect();
    let inodes: Vec<u64> = listeners.iter().map(|l| l.inode).collect();
    let mut owners = running::socket_owners(proc_root, runtime_pids.iter().copied(), &inodes);
    let candidates: Vec<_> = listeners
        .iter()
        .filter(|l| {
            MODEL_PORTS.contains(&l.address.port())
                || config.model_ports.contains(&l.address.port())
                || owners.contains_key(&l.inode)
        })
        .copied()
        .collect();
    let unknown: Vec<u64> =
        candidates.iter().map(|l| l.inode).filter(|inode| !owners.contains_key(inode)).collect();
    owners.extend(running::socket_owners(proc_root, processes.iter().map(|p| p.pid), &unknown));
    let by_pid: HashMap<u32, &running::Process> = processes.iter().map(|p| (p.pid, p)).collect();
    let mut still_listening = BTreeSet::new();
    for listener in &candidates {
        let key = (listener.address, listener.inode);
        still_listening.insert(key);
        let answer = probed.entry(key).or_insert_with(|| probe(listener.address));
        if let Some(server) = answer {
            let owner = owners.get(&listener.inode).and_then(|pid| by_pid.get(pid)).copied();
            items.push(running::local_server(catalog, listener, server, owner, home_of));
        }
    }
    probed.retain(|key, _| still_listening.contains(key));
    items
}

/// One full look, for `vigie-agent inventory`: every profile, the
/// system's applications, what runs now.
pub fn scan_once(catalog: &vigie_core::catalog::Catalog, config: &InventoryConfig) -> Vec<Item> {
    let homes = configured_homes(config, &crate::accounts::Accounts::load());
    let home_of =
        homes.iter().map(|h| (h.uid, (h.user.clone(), h.path.to_string_lossy().into_owned()))).collect();
    let mut items: Vec<Item> = homes.iter().flat_map(|home| scan_profile(catalog, home)).collect();
    items.extend(scan_system_applications(catalog, &config.applications));
    items.extend(running_items(catalog, config, &mut sysinfo::System::new(), &mut HashMap::new(), &home_of));
    items
}

/// The event of a change, with its prompt when the policy says `warn`
/// and `prompts` (not the baseline).
fn event_for(
    decider: &Decider,
    catalog: &vigie_core::catalog::Catalog,
    policy: &vigie_core::policy::Policy,
    change: &Change,
    ts: i64,
    prompts: bool,
) -> Event {
    let item = &change.item;
    let service = item.service_id.as_deref().and_then(|id| catalog.get(id));
    let action = policy.inventory.action(item.kind, change.kind);
    let program = matches!(item.kind, Kind::Program | Kind::LocalServer).then(|| match item.kind {
        Kind::Program => item.key.clone(),
        _ => item.host.clone(),
    });
    let attribution = Attribution {
        uid: item.uid,
        user: item.user.clone(),
        program,
        program_path: (!item.path.is_empty() && matches!(item.kind, Kind::Program | Kind::LocalServer))
            .then(|| item.path.clone()),
        pid: None,
    };
    let event = Event::inventory(ts, change, service, action, &policy.version, attribution);
    let notice = SoftwareNotice {
        kind: item.kind,
        change: change.kind,
        name: item.name.clone(),
        version: item.version.clone(),
        host: item.host.clone(),
    };
    decider.report_inventory(policy, &event, change, prompts.then_some(notice));
    event
}

#[cfg(test)]
mod tests;
