//! The agent in a fleet: once enrolled (`vigie-agent enroll`), an uploader
//! thread drains the store to the collector, sends heartbeats and fetches
//! the signed policy bundle; the rules then come from that bundle
//! (`rules::FleetRules`). Not enrolled, nothing here runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{error, info};
use vigie_fleet::client::{AgentLink, Enrolment, FleetDir, Uploader, UploaderConfig};
use vigie_fleet::proto::Heartbeat;

use crate::decider::Decider;
use crate::resolver::Resolver;
use crate::rules::Rules;
use crate::tamper::Finding;
use crate::verdict::VerdictStats;
use crate::worker::Worker;

/// How often to look for an enrolment made while the agent runs, and to
/// start the uploader again after it failed.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// What the console's `status` and the heartbeats say of the fleet link.
#[derive(Debug, Default)]
pub struct FleetState {
    pub enrolment: Mutex<Option<Enrolment>>,
    /// The signed bundle in force, when the rules come from one.
    pub bundle_version: Mutex<Option<u64>>,
    /// `ok`, or what is wrong with enforcement.
    pub health: Mutex<String>,
}

impl FleetState {
    pub fn set_health(&self, health: &str) {
        if let Ok(mut current) = self.health.lock() {
            if *current != health {
                *current = health.to_owned();
            }
        }
    }

    pub fn set_bundle_version(&self, version: Option<u64>) {
        if let Ok(mut current) = self.bundle_version.lock() {
            *current = version;
        }
    }
}

/// What the fleet link reports of the running agent.
#[derive(Debug, Clone)]
pub struct Live {
    pub rules: Arc<Rules>,
    pub decider: Arc<Decider>,
    pub resolver: Option<Arc<Resolver>>,
    pub verdicts: Option<Arc<VerdictStats>>,
}

/// The daemon's side of the uploader: heartbeats from the live state, and
/// a refused bundle recorded as tamper evidence.
struct Link {
    state: Arc<FleetState>,
    live: Live,
    hostname: String,
    bundle: PathBuf,
}

impl Link {
    /// The counters `status` shows, flattened (`resolver.denied`, …).
    fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        let sink = self.live.decider.sink();
        let mut counters: std::collections::BTreeMap<String, u64> =
            [("events.stored".to_owned(), sink.stored()), ("events.dropped".to_owned(), sink.dropped())]
                .into();
        let parts = [
            ("resolver", self.live.resolver.as_ref().and_then(|r| serde_json::to_value(&r.stats).ok())),
            ("verdicts", self.live.verdicts.as_ref().and_then(|v| serde_json::to_value(v.as_ref()).ok())),
        ];
        for (part, value) in parts {
            if let Some(serde_json::Value::Object(fields)) = value {
                for (name, value) in fields {
                    if let Some(n) = value.as_u64() {
                        counters.insert(format!("{part}.{name}"), n);
                    }
                }
            }
        }
        counters
    }
}

impl AgentLink for Link {
    fn heartbeat(&self) -> Heartbeat {
        let policy = self.live.rules.policy();
        Heartbeat {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: self.hostname.clone(),
            mode: self.live.decider.mode().as_str().to_owned(),
            policy: format!("{} {}", policy.name, policy.version),
            bundle_version: self.state.bundle_version.lock().ok().and_then(|v| *v),
            health: self.state.health.lock().map(|h| h.clone()).unwrap_or_default(),
            outbox: Default::default(),
            counters: self.counters(),
        }
    }

    fn policy_refused(&self, reason: &str) {
        let finding = Finding::policy_refused(
            &self.bundle,
            format!("a policy bundle from the collector was refused, the rules in force stay: {reason}"),
        );
        self.live.decider.report_tamper(&self.live.rules.policy().version, &finding);
    }
}

/// The uploader thread, started once the agent is enrolled.
pub struct Fleet {
    dir: FleetDir,
    uploader: UploaderConfig,
    database: PathBuf,
    state: Arc<FleetState>,
    live: Live,
    uploading: Worker,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("dir", &self.dir).field("uploading", &self.uploading).finish()
    }
}

impl Fleet {
    /// The link of an agent keeping its state in `state_dir` and its
    /// events in `database`.
    pub fn new(
        state_dir: &Path,
        uploader: UploaderConfig,
        database: &Path,
        state: Arc<FleetState>,
        live: Live,
    ) -> Self {
        Self {
            dir: FleetDir::new(state_dir),
            uploader,
            database: database.to_owned(),
            state,
            live,
            uploading: Worker::new("fleet upload", LOOK_EVERY),
        }
    }

    /// Starts the uploader when the agent is (or became) enrolled; reports
    /// and restarts one that ended.
    pub fn poll(&mut self) {
        if self.uploading.is_running() || !self.uploading.due() {
            return;
        }
        let enrolment = match self.dir.enrolment() {
            Ok(Some(enrolment)) => enrolment,
            Ok(None) => return,
            Err(e) => {
                error!(error = %format!("{e:#}"), "unreadable enrolment");
                return;
            }
        };
        info!(collector = %enrolment.url, agent = %enrolment.agent_id, group = %enrolment.group, "enrolled in a fleet");
        if let Ok(mut current) = self.state.enrolment.lock() {
            *current = Some(enrolment);
        }
        let link = Link {
            state: Arc::clone(&self.state),
            live: self.live.clone(),
            hostname: hostname(),
            bundle: self.dir.bundle_path(),
        };
        let uploader =
            Uploader::new(self.dir.clone(), self.database.clone(), self.uploader.clone(), Box::new(link));
        self.uploading.start("fleet", move |stop| uploader.run(stop));
    }

    /// Asks the uploader to stop; not joined (it may be inside a request):
    /// what it acknowledged is in the store, the rest goes next time.
    pub fn stop(&mut self) {
        self.uploading.stop(false);
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
