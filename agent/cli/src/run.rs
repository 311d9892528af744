//! `vigie-agent run`: the live agent in monitor mode. Captures on the
//! chosen interfaces, runs each frame through the same pipeline as `scan`,
//! logs every decision about a GenAI service and stores it as an event.
//! The policy and catalog files are watched and reloaded; a bad edit keeps
//! the rules in force. Nothing on the machine is changed (no resolver, no
//! packet verdicts: enforcement comes with the live-agent issue).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use tracing::{error, info, warn};
use vigie_core::catalog::Catalog;
use vigie_core::diag::{Diagnostic, Diagnostics, LoadError};
use vigie_core::event::{Attribution, Event};
use vigie_core::policy::{ActivePolicy, Policy};
use vigie_core::store::Store;

pub(crate) const DEFAULT_CONFIG: &str = "/etc/vigie/agent.toml";

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Agent configuration (default: /etc/vigie/agent.toml when it exists, else built-in defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Capture on this interface (repeatable); overrides the configuration.
    #[arg(long = "interface", short = 'i')]
    interfaces: Vec<String>,
    /// Store events in this database; overrides the configuration.
    #[arg(long)]
    db: Option<PathBuf>,
}

/// `/etc/vigie/agent.toml`. Every key is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentConfig {
    /// Policy file (default: the bundled R34 baseline).
    policy: Option<PathBuf>,
    /// Catalog file (default: the bundled catalog).
    catalog: Option<PathBuf>,
    #[serde(default = "default_database")]
    database: PathBuf,
    /// Interfaces to capture on; empty: every interface that is up, but loopback.
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default = "default_retention_days")]
    retention_days: u32,
    /// Enforcement (resolver, packet verdicts) is not available yet.
    #[serde(default)]
    enforce: bool,
}

fn default_database() -> PathBuf {
    PathBuf::from("/var/lib/vigie/events.db")
}

fn default_retention_days() -> u32 {
    90
}

fn load_config(path: Option<&Path>) -> Result<AgentConfig> {
    let path = match path {
        Some(path) => path.to_owned(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(toml::from_str("")?),
    };
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let name = path.display().to_string();
    let config: AgentConfig =
        toml::from_str(&text).map_err(|e| Diagnostics(vec![Diagnostic::from_toml(&name, &text, &e)]))?;
    if config.enforce {
        bail!("{name}: enforce = true is not supported yet; this agent runs in monitor mode");
    }
    Ok(config)
}

/// The catalog and policy in force, shared with the capture threads, which
/// pick up a new generation between frames.
struct Rules {
    current: RwLock<(Arc<Catalog>, Arc<Policy>)>,
    generation: AtomicU64,
}

fn load_rules(config: &AgentConfig) -> Result<(Catalog, Policy), LoadError> {
    let catalog = match &config.catalog {
        Some(path) => Catalog::load(path)?,
        None => Catalog::bundled()?,
    };
    let policy = match &config.policy {
        Some(path) => Policy::load(path, &catalog)?,
        None => Policy::bundled(&catalog)?,
    };
    Ok((catalog, policy))
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn run(args: &RunArgs) -> Result<()> {
    let mut config = load_config(args.config.as_deref())?;
    if !args.interfaces.is_empty() {
        config.interfaces.clone_from(&args.interfaces);
    }
    if let Some(db) = &args.db {
        config.database.clone_from(db);
    }
    let (catalog, policy) = load_rules(&config).context("rules rejected")?;
    info!(policy = %policy.name, version = %policy.version, services = catalog.services().len(), "rules loaded");
    let mut active = ActivePolicy::new(policy);
    let rules = Arc::new(Rules {
        current: RwLock::new((Arc::new(catalog), Arc::clone(active.current()))),
        generation: AtomicU64::new(0),
    });

    if let Some(parent) = config.database.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    let mut store = Store::open(&config.database).with_context(|| config.database.display().to_string())?;
    store.apply_retention(now_micros(), config.retention_days)?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }

    // Rules reload on any change to their files; editors replace files, so
    // the folders are watched.
    let watched: Vec<PathBuf> = [&config.policy, &config.catalog].into_iter().flatten().cloned().collect();
    let (reload_tx, reload_rx) = sync_channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = reload_tx.try_send(());
        }
    })?;
    for path in &watched {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        notify::Watcher::watch(&mut watcher, folder, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {}", folder.display()))?;
    }

    let (events_tx, events_rx) = sync_channel::<Event>(8192);
    let dropped = Arc::new(AtomicU64::new(0));
    let writer =
        std::thread::Builder::new().name("store".into()).spawn(move || write_events(store, &events_rx))?;

    let mut captures = Vec::new();
    for interface in capture::interfaces(&config.interfaces)? {
        let (rules, stop, events, dropped) =
            (Arc::clone(&rules), Arc::clone(&stop), events_tx.clone(), Arc::clone(&dropped));
        let name = interface.name.clone();
        captures.push(
            std::thread::Builder::new()
                .name(format!("capture-{name}"))
                .spawn(move || capture::run(&interface, &rules, &stop, &events, &dropped))?,
        );
    }
    drop(events_tx);
    info!(database = %config.database.display(), "monitor mode: nothing on this machine is changed");

    while !stop.load(Ordering::Relaxed) {
        match reload_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(()) => {
                // Let an editor finish writing before reading.
                while reload_rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
                reload(&config, &mut active, &rules);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if captures.iter().all(std::thread::JoinHandle::is_finished) {
            warn!("every capture stopped");
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for capture in captures {
        if let Ok(Err(e)) = capture.join() {
            error!(error = %format!("{e:#}"), "capture failed");
        }
    }
    let stored = writer.join().map_err(|_| anyhow::anyhow!("store thread panicked"))??;
    info!(stored, dropped = dropped.load(Ordering::Relaxed), "stopped");
    Ok(())
}

fn reload(config: &AgentConfig, active: &mut ActivePolicy, rules: &Rules) {
    let loaded = load_rules(config);
    let catalog = loaded.as_ref().ok().map(|(c, _)| Arc::new(c.clone()));
    match active.apply(loaded.map(|(_, p)| p)) {
        Ok(policy) => {
            if let (Some(catalog), Ok(mut current)) = (catalog, rules.current.write()) {
                info!(policy = %policy.name, version = %policy.version, "rules reloaded");
                *current = (catalog, Arc::clone(policy));
                rules.generation.fetch_add(1, Ordering::Release);
            }
        }
        // The error names file, line and column; the rules in force stay.
        Err(e) => error!(error = %e, "reload rejected, keeping the rules in force"),
    }
}

/// The single writer: batches what the capture threads decided, commits it.
fn write_events(mut store: Store, events: &Receiver<Event>) -> Result<u64> {
    let mut batch = Vec::with_capacity(512);
    let mut stored = 0u64;
    while let Ok(first) = events.recv() {
        batch.push(first);
        while batch.len() < 512 {
            match events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        match store.insert(&batch) {
            Ok(()) => stored += batch.len() as u64,
            Err(e) => error!(error = %e, lost = batch.len(), "storing events failed"),
        }
        batch.clear();
    }
    Ok(stored)
}

/// Hands an event to the writer without ever blocking capture.
fn send(events: &SyncSender<Event>, dropped: &AtomicU64, event: Event) {
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = events.try_send(event) {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(target_os = "linux")]
mod capture {
    use super::*;
    use pnet_datalink::{Channel, NetworkInterface};
    use vigie_core::pipeline::Pipeline;
    use vigie_core::policy::Subject;
    use vigie_core::sensor::frame::LinkType;
    use vigie_core::sensor::Sensor;

    pub(super) fn interfaces(names: &[String]) -> Result<Vec<NetworkInterface>> {
        let all = pnet_datalink::interfaces();
        if names.is_empty() {
            let chosen: Vec<_> = all.into_iter().filter(|i| i.is_up() && !i.is_loopback()).collect();
            if chosen.is_empty() {
                bail!("no network interface is up");
            }
            return Ok(chosen);
        }
        names
            .iter()
            .map(|name| {
                all.iter()
                    .find(|i| &i.name == name)
                    .cloned()
                    .with_context(|| format!("no interface named {name}"))
            })
            .collect()
    }

    pub(super) fn run(
        interface: &NetworkInterface,
        rules: &Rules,
        stop: &AtomicBool,
        events: &SyncSender<Event>,
        dropped: &AtomicU64,
    ) -> Result<()> {
        let config = pnet_datalink::Config {
            // Frames on the sending side can be GSO super-frames, far over the MTU.
            read_buffer_size: 1 << 17,
            read_timeout: Some(Duration::from_millis(200)),
            promiscuous: false,
            ..pnet_datalink::Config::default()
        };
        let channel = pnet_datalink::channel(interface, config)
            .with_context(|| format!("capture on {} (needs CAP_NET_RAW)", interface.name))?;
        let Channel::Ethernet(_, mut rx) = channel else {
            bail!("{}: not an Ethernet-like interface", interface.name);
        };
        // Said once the socket is open: from here on, nothing is missed.
        info!(interface = %interface.name, "capturing");
        let (catalog, policy) =
            rules.current.read().map_err(|_| anyhow::anyhow!("rules lock poisoned"))?.clone();
        let mut pipeline = Pipeline::new(Sensor::default(), catalog, policy);
        let mut generation = rules.generation.load(Ordering::Acquire);
        let subject = Subject::default();
        while !stop.load(Ordering::Relaxed) {
            let latest = rules.generation.load(Ordering::Acquire);
            if latest != generation {
                if let Ok(current) = rules.current.read() {
                    pipeline.set_rules(Arc::clone(&current.0), Arc::clone(&current.1));
                    generation = latest;
                }
            }
            let frame = match rx.next() {
                Ok(frame) => frame,
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) =>
                {
                    continue
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("reading from {}", interface.name)),
            };
            let version = pipeline.policy().version.clone();
            pipeline.process(now_micros(), LinkType::Ethernet, frame, &subject, &mut |decided| {
                let o = &decided.observation;
                let Some((service, decision)) = &decided.verdict else { return };
                if o.is_answer() {
                    return;
                }
                info!(
                    source = o.source.as_str(),
                    name = %o.name,
                    service = %service.id,
                    action = decision.action.as_str(),
                    rule = %decision.rule_id,
                    flow = %o.flow,
                    "decision"
                );
                send(events, dropped, Event::new(o, service, decision, &version, Attribution::default()));
            });
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod capture {
    use super::*;

    pub(super) struct Interface {
        pub(super) name: String,
    }

    pub(super) fn interfaces(_: &[String]) -> Result<Vec<Interface>> {
        bail!("live capture is implemented for Linux only so far")
    }

    pub(super) fn run(
        _: &Interface,
        _: &Rules,
        _: &AtomicBool,
        _: &SyncSender<Event>,
        _: &AtomicU64,
    ) -> Result<()> {
        bail!("live capture is implemented for Linux only so far")
    }
}
