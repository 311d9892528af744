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
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::{debug, info, warn};
use vigie_core::event::{Attribution, Event};
use vigie_core::inventory::{diff, Change, Item, Kind, ModelServer};

pub use profile::{scan_profile, scan_system_applications, Home};
pub use running::{probe, MODEL_PORTS};

use crate::accounts::Accounts;
use crate::decider::Decider;
use crate::platform::portable::owner_uid;
use crate::rules::Rules;
use crate::sink::InventoryUpdate;
use crate::worker::Worker;
use vigie_core::store::Store;

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
/// Folder changes waiting to be looked at, at most.
const WATCH_QUEUE: usize = 4096;

/// The homes to look in: the configured ones, owned by their user; else
/// every person's account (`Accounts::people`) whose home exists.
fn configured_homes(config: &InventoryConfig, accounts: &Accounts) -> Vec<Home> {
    if config.homes.is_empty() {
        return accounts
            .people()
            .into_iter()
            .filter(|(_, _, home)| Path::new(home).is_dir())
            .map(|(uid, name, home)| Home { uid, user: Some(name.to_owned()), path: PathBuf::from(home) })
            .collect();
    }
    config
        .homes
        .iter()
        .filter_map(|path| {
            let uid = owner_uid(&std::fs::metadata(path).ok()?)?;
            Some(Home { uid, user: accounts.user_name(uid).map(str::to_owned), path: path.clone() })
        })
        .collect()
}

/// uid → (user, home), to attribute running programs and servers.
type HomeIndex = HashMap<u32, (Option<String>, String)>;

fn home_index(homes: &[Home]) -> HomeIndex {
    homes.iter().map(|h| (h.uid, (h.user.clone(), h.path.to_string_lossy().into_owned()))).collect()
}

/// The inventory's thread, kept running by the daemon's loop like its
/// other workers: started at the first poll, reported and started again
/// (once a minute at most) if it ends.
#[derive(Debug)]
pub struct Inventory {
    config: InventoryConfig,
    database: PathBuf,
    rules: Arc<Rules>,
    decider: Arc<Decider>,
    looking: Worker,
}

impl Inventory {
    pub fn new(config: InventoryConfig, database: &Path, rules: Arc<Rules>, decider: Arc<Decider>) -> Self {
        Self {
            config,
            database: database.to_owned(),
            rules,
            decider,
            looking: Worker::new("software inventory", Duration::from_secs(60)),
        }
    }

    pub fn poll(&mut self) {
        if self.looking.is_running() || !self.looking.due() {
            return;
        }
        let (config, database) = (self.config.clone(), self.database.clone());
        let (rules, decider) = (Arc::clone(&self.rules), Arc::clone(&self.decider));
        self.looking.start("inventory", move |stop| {
            Looker::new(config, rules, decider, stored_inventory(&database)).run(stop);
            Ok(())
        });
    }

    /// Stops the thread and waits for it (it sleeps a second at most, and a
    /// server's answer is awaited half a second).
    pub fn stop(&mut self) {
        self.looking.stop(true);
    }
}

/// What the last run stored, so that a restart announces only what changed.
fn stored_inventory(database: &Path) -> Vec<Item> {
    match Store::open_reader(database).and_then(|store| store.inventory(None)) {
        Ok(rows) => rows.into_iter().map(|row| row.item).collect(),
        Err(e) => {
            warn!(error = %e, "cannot read the stored inventory: everything found is announced again");
            Vec::new()
        }
    }
}

/// The profiles changed since they were last looked at, and when the
/// first and the latest change came.
#[derive(Debug, Default)]
struct Dirty {
    uids: BTreeSet<u32>,
    since: Option<(Instant, Instant)>,
}

impl Dirty {
    fn mark(&mut self, uid: u32) {
        self.uids.insert(uid);
        let at = Instant::now();
        self.since = Some(self.since.map_or((at, at), |(first, _)| (first, at)));
    }

    fn is_empty(&self) -> bool {
        self.since.is_none()
    }

    /// The profiles to look at now: writing paused for [`SETTLE`], or
    /// [`MAX_SETTLE`] passed since the first change.
    fn settled(&mut self, now: Instant) -> Option<BTreeSet<u32>> {
        let (first, last) = self.since?;
        if now.duration_since(last) < SETTLE && now.duration_since(first) < MAX_SETTLE {
            return None;
        }
        self.since = None;
        Some(std::mem::take(&mut self.uids))
    }
}

/// The inventory's state between looks.
struct Looker {
    config: InventoryConfig,
    rules: Arc<Rules>,
    decider: Arc<Decider>,
    homes: Vec<Home>,
    home_of: HomeIndex,
    /// What was last stored.
    known: Vec<Item>,
    /// The latest finds per part: each profile, the system, what runs.
    profiles: HashMap<u32, Vec<Item>>,
    system_apps: Vec<Item>,
    running: Vec<Item>,
    system: sysinfo::System,
    probed: Probed,
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
    fn new(config: InventoryConfig, rules: Arc<Rules>, decider: Arc<Decider>, known: Vec<Item>) -> Self {
        let baseline = known.is_empty();
        Self {
            config,
            rules,
            decider,
            homes: Vec::new(),
            home_of: HomeIndex::new(),
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
        // Bounded: a user writing files as fast as they can in a watched
        // folder costs a rescan of every profile, never the agent's memory.
        let (events, changes) = sync_channel(WATCH_QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        let overflow = Arc::clone(&overflowed);
        let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                for path in event.paths {
                    if events.try_send(path).is_err() {
                        overflow.store(true, Ordering::Relaxed);
                    }
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
        let mut dirty = Dirty::default();
        while !stop.load(Ordering::Relaxed) {
            let policy = self.rules.current().1;
            if !policy.inventory.enabled {
                // Off: changes are not looked at, and not kept either.
                while changes.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            let now = Instant::now();
            let full_every = Duration::from_secs(u64::from(policy.inventory.rescan_seconds));
            let running_every = Duration::from_secs(self.config.process_seconds.max(1));
            let mut changed = false;
            if last_full.is_none_or(|at| now.duration_since(at) >= full_every) {
                // Accounts made since the last full look are looked at too.
                self.set_homes(configured_homes(&self.config, &Accounts::load()));
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
            if let Some(uids) = dirty.settled(now) {
                self.look_at_profiles(Some(&uids));
                if let Some(watcher) = watcher.as_mut() {
                    self.watch(watcher, &mut watched);
                }
                changed = true;
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
            let wait = next_running.min(if dirty.is_empty() {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(200)
            });
            let mut paths = Vec::new();
            match changes.recv_timeout(wait) {
                Ok(path) => {
                    paths.push(path);
                    paths.extend(changes.try_iter().take(WATCH_QUEUE));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => watcher = None,
            }
            if overflowed.swap(false, Ordering::Relaxed) {
                // Changes were lost: every profile is looked at again.
                for home in &self.homes {
                    dirty.mark(home.uid);
                }
            }
            for path in paths {
                if let Some(home) = self.homes.iter().find(|h| profile::is_relevant(&h.path, &path)) {
                    dirty.mark(home.uid);
                }
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
        self.home_of = home_index(&homes);
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
    /// stored one, then raises their prompts; a scan the store cannot take
    /// now is given again (and prompts once, when it is taken).
    fn publish(&mut self) {
        let current = self.current();
        if current == self.known && !self.pending {
            return;
        }
        let changes = diff(&self.known, &current);
        let (catalog, policy) = self.rules.current();
        let ts = self.decider.clock().wall_micros();
        let events: Vec<Event> = changes.iter().map(|c| event_for(&catalog, &policy, c, ts)).collect();
        let update = InventoryUpdate { ts, items: current.clone(), events: events.clone() };
        if !self.decider.sink().inventory(update) {
            warn!("inventory not stored: the store is behind; tried again");
            self.pending = true;
            return;
        }
        if !changes.is_empty() {
            info!(changes = changes.len(), items = current.len(), "inventory changed");
        }
        for (change, event) in changes.iter().zip(&events) {
            self.decider.report_inventory(&policy, event, change, !self.baseline);
        }
        self.known = current;
        self.pending = false;
    }
}

/// What a listening socket answered when asked, and the process holding
/// it: asked once per socket, its holder looked up once, only when it
/// answered like a model server.
type Probed = HashMap<(SocketAddr, u64), Option<(ModelServer, Option<u32>)>>;

/// Programs running and local model servers listening now.
fn running_items(
    catalog: &vigie_core::catalog::Catalog,
    config: &InventoryConfig,
    system: &mut sysinfo::System,
    probed: &mut Probed,
    home_of: &HomeIndex,
) -> Vec<Item> {
    let processes = running::processes(system);
    let mut items = running::programs(catalog, &processes, home_of);
    let proc_root = Path::new("/proc");
    let listeners = running::listeners(proc_root);
    // Sockets held by a catalogued local runtime are asked whatever their port.
    let runtime_pids: Vec<u32> = processes
        .iter()
        .filter(|p| p.names.iter().any(|n| catalog.service_for_process(n).is_some_and(|s| s.runs_locally)))
        .map(|p| p.pid)
        .collect();
    let inodes: Vec<u64> = listeners.iter().map(|l| l.inode).collect();
    let runtime_sockets = running::socket_owners(proc_root, runtime_pids.iter().copied(), &inodes);
    let by_pid: HashMap<u32, &running::Process> = processes.iter().map(|p| (p.pid, p)).collect();
    let mut still_listening = BTreeSet::new();
    for listener in &listeners {
        let port = listener.address.port();
        let runtime = runtime_sockets.get(&listener.inode).copied();
        if !(MODEL_PORTS.contains(&port) || config.model_ports.contains(&port) || runtime.is_some()) {
            continue;
        }
        let key = (listener.address, listener.inode);
        still_listening.insert(key);
        let answer = probed.entry(key).or_insert_with(|| {
            let server = probe(listener.address)?;
            let holder = runtime.or_else(|| {
                let pids = processes.iter().map(|p| p.pid);
                running::socket_owners(proc_root, pids, &[listener.inode]).get(&listener.inode).copied()
            });
            Some((server, holder))
        });
        if let Some((server, holder)) = answer {
            let owner = holder.and_then(|pid| by_pid.get(&pid)).copied();
            items.push(running::local_server(catalog, listener, server, owner, home_of));
        }
    }
    probed.retain(|key, _| still_listening.contains(key));
    items
}

/// One full look, for `vigie-agent inventory`: every profile, the
/// system's applications, what runs now.
pub fn scan_once(catalog: &vigie_core::catalog::Catalog, config: &InventoryConfig) -> Vec<Item> {
    let homes = configured_homes(config, &Accounts::load());
    let home_of = home_index(&homes);
    let mut items: Vec<Item> = homes.iter().flat_map(|home| scan_profile(catalog, home)).collect();
    items.extend(scan_system_applications(catalog, &config.applications));
    items.extend(running_items(catalog, config, &mut sysinfo::System::new(), &mut HashMap::new(), &home_of));
    items
}

/// The event of a change, its action from the policy's `[inventory]`.
fn event_for(
    catalog: &vigie_core::catalog::Catalog,
    policy: &vigie_core::policy::Policy,
    change: &Change,
    ts: i64,
) -> Event {
    let item = &change.item;
    let service = item.service_id.as_deref().and_then(|id| catalog.get(id));
    let action = policy.inventory.action(item.kind, change.kind);
    // Running things name their program: itself, or the server's holder.
    let program = match item.kind {
        Kind::Program => Some(item.key.clone()),
        Kind::LocalServer => Some(item.host.clone()),
        _ => None,
    };
    let program_path = program.as_ref().filter(|_| !item.path.is_empty()).map(|_| item.path.clone());
    let attribution =
        Attribution { uid: item.uid, user: item.user.clone(), program, program_path, pid: None };
    Event::inventory(ts, change, service, action, &policy.version, attribution)
}

#[cfg(test)]
mod tests;
