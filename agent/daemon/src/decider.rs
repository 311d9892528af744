//! Where a policy action becomes an event and a prompt. Every enforcement
//! and observation point (capture, resolver, packet verdicts, clipboard
//! reports) asks the one [`Decider`]: `decide` gives the outcome (the
//! policy's decision for this owner, whether it denies, the bypass a user
//! earned), `report` writes the single `decision` log line, builds the
//! event, raises the prompt when [`shows_prompt`] says so, and hands the
//! event to the sink. Which point reports a flow is decided here too, from
//! the record of the flows the verdicts and the resolver actually handled.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};
use vigie_core::catalog::Service;
use vigie_core::clipboard::{ClipboardDecision, ClipboardFacts, Destination};
use vigie_core::detect::DetectorId;
use vigie_core::event::Event;
use vigie_core::policy::{Action, Decision, Policy, UnreadableHandshake};
use vigie_core::proto::ClipboardNotice;
use vigie_core::sensor::gate::Unreadable;
use vigie_core::sensor::{Flow, Observation, Protocol, Source};

use crate::attribution::{Owner, OwnerLookup};
use crate::platform::Clock;
use crate::prompts::Prompts;
use crate::sink::EventSink;

/// Whether the agent enforces the policy or only watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Monitor,
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
        }
    }
}

/// Where an observation was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The passive capture: sees everything, enforces nothing.
    Capture,
    /// The local resolver: answers denied names itself.
    Resolver,
    /// Packet verdicts: reject denied handshakes.
    Verdict,
    /// A console's clipboard report: the console clears the clipboard.
    Clipboard,
}

impl Point {
    pub fn as_str(self) -> &'static str {
        match self {
            Point::Capture => "capture",
            Point::Resolver => "resolver",
            Point::Verdict => "verdict",
            Point::Clipboard => "clipboard",
        }
    }
}

/// Whether the employee is shown a prompt for `action`, decided at `point`
/// in `mode`. A prompt must tell the truth: "blocked" only where the agent
/// did block, "justify to continue" only where it held the flow.
/// - `warn` lets the flow through everywhere, so its prompt shows in both
///   modes, whichever point saw the flow;
/// - `coach` and `block` prompt only where they are enforced: in enforce
///   mode, at the resolver or the verdicts (a flow only the capture saw was
///   not stopped); a justified coach asks nothing more;
/// - the clipboard guard acts itself (it clears the clipboard), so its
///   `warn` and `block` prompt in both modes;
/// - `allow` and `monitor` never prompt.
pub fn shows_prompt(action: Action, mode: Mode, point: Point, justified: bool) -> bool {
    let enforced = match point {
        Point::Clipboard => true,
        Point::Resolver | Point::Verdict => mode == Mode::Enforce,
        Point::Capture => false,
    };
    match action {
        Action::Allow | Action::Monitor => false,
        Action::Warn => true,
        Action::Coach => enforced && !justified,
        Action::Block => enforced,
    }
}

/// What the decider made of an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// Whether an enforcement point stops the flow.
    pub denies: bool,
    /// A coached service the owner justified recently: let through.
    pub justified: bool,
    pub owner: Owner,
}

/// What the clipboard guard makes of content a console found.
#[derive(Debug)]
pub enum ClipboardVerdict<'c> {
    /// The guard is off, no detector with an action fired, or the content
    /// is not headed to a catalogued service.
    Nothing,
    /// Headed to a service the guard leaves alone (an approved tenant).
    Exempt(Destination<'c>),
    /// The strongest action of the detectors that fired.
    Act(ClipboardDecision, Destination<'c>),
}

/// How long a handled flow is remembered: longer than the capture can lag
/// behind the verdicts (its batch window is 20 ms).
const HANDLED_FOR: Duration = Duration::from_secs(10);
const MAX_HANDLED: usize = 16_384;

/// The flows the verdicts judged and the queries the resolver sent
/// upstream: the capture sees them afterwards and must not report them a
/// second time. Bounded; when full of fresh entries it forgets them all,
/// so the worst case is an event reported twice, never one lost.
#[derive(Debug, Default)]
pub struct Handled {
    /// Handshakes the verdicts reported.
    flows: Mutex<HashMap<Flow, Instant>>,
    /// The resolver's upstream queries, by transport, local port and upstream.
    upstream_ports: Mutex<HashMap<(Protocol, u16, SocketAddr), Instant>>,
    /// Where the resolver listens: queries to it are its own to report.
    resolver_listen: Mutex<Vec<SocketAddr>>,
}

fn remember<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Instant>>, key: K, now: Instant) {
    let Ok(mut map) = map.lock() else { return };
    if map.len() >= MAX_HANDLED {
        map.retain(|_, at| now.saturating_duration_since(*at) < HANDLED_FOR);
        // Still half full of fresh entries (a flood of queries): start over,
        // so that the sweep above runs at most once per MAX_HANDLED / 2
        // insertions, whatever the rate.
        if map.len() >= MAX_HANDLED / 2 {
            map.clear();
        }
    }
    map.insert(key, now);
}

/// Whether `key` was handled recently; the entry is used up, since one
/// handled flow is one observation for the capture (a later flow on the
/// same addresses is the capture's to report).
fn take_recent<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Instant>>, key: &K, now: Instant) -> bool {
    map.lock().is_ok_and(|mut map| {
        map.remove(key).is_some_and(|at| now.saturating_duration_since(at) < HANDLED_FOR)
    })
}

impl Handled {
    pub fn set_resolver_listen(&self, listen: &[SocketAddr]) {
        if let Ok(mut addresses) = self.resolver_listen.lock() {
            *addresses = listen.to_vec();
        }
    }

    /// The resolver asked `upstream` over `protocol` from local port `port`.
    pub fn upstream_query(&self, protocol: Protocol, port: u16, upstream: SocketAddr, now: Instant) {
        remember(&self.upstream_ports, (protocol, port, upstream), now);
    }

    fn verdict_judged(&self, flow: &Flow, now: Instant) {
        remember(&self.flows, *flow, now);
    }

    /// Whether a point other than the capture already reported `flow`.
    fn by_another_point(&self, flow: &Flow, now: Instant) -> bool {
        let asks_resolver = self.resolver_listen.lock().is_ok_and(|listen| {
            listen.iter().any(|l| *l == flow.dst || (l.ip().is_unspecified() && l.port() == flow.dst.port()))
        });
        asks_resolver
            || take_recent(&self.upstream_ports, &(flow.protocol, flow.src.port(), flow.dst), now)
            || take_recent(&self.flows, flow, now)
    }
}

/// The one decision path.
#[derive(Debug)]
pub struct Decider {
    mode: Mode,
    prompts: Arc<Prompts>,
    sink: EventSink,
    owners: Arc<dyn OwnerLookup>,
    clock: Arc<dyn Clock>,
    handled: Arc<Handled>,
}

impl Decider {
    pub fn new(
        mode: Mode,
        prompts: Arc<Prompts>,
        sink: EventSink,
        owners: Arc<dyn OwnerLookup>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { mode, prompts, sink, owners, clock, handled: Arc::default() }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn handled(&self) -> &Handled {
        &self.handled
    }

    pub fn sink(&self) -> &EventSink {
        &self.sink
    }

    pub fn prompts(&self) -> &Arc<Prompts> {
        &self.prompts
    }

    pub fn owners(&self) -> &Arc<dyn OwnerLookup> {
        &self.owners
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The owner of `flow`'s local socket; when it is gone, the uid the
    /// kernel gave with a queued packet, if any.
    pub fn owner(&self, flow: &Flow, queued_uid: Option<u32>) -> Owner {
        let owner = self.owners.owner(flow.protocol, flow.src, flow.dst);
        match (owner.attribution.uid, queued_uid) {
            (None, Some(uid)) => self.owners.for_uid(uid),
            _ => owner,
        }
    }

    /// The policy's decision on `service` for `owner`. The bypass rule
    /// lives here: a coached service its owner justified is let through.
    pub fn decide(&self, policy: &Policy, service: &Service, owner: Owner) -> Outcome {
        let decision = policy.decide(service, &owner.subject());
        let justified =
            decision.action == Action::Coach && self.prompts.bypassed(owner.attribution.uid, &service.id);
        Outcome { denies: decision.action.denies(justified), decision, justified, owner }
    }

    /// Whether `point` is the one to report `observation`: each catalogued
    /// observation ends in exactly one event. The capture leaves DNS
    /// answers (their question was reported) and the flows the resolver or
    /// the verdicts handled.
    pub fn reports(&self, point: Point, observation: &Observation) -> bool {
        match point {
            Point::Capture => {
                !observation.is_answer()
                    && !self.handled.by_another_point(&observation.flow, self.clock.now())
            }
            Point::Resolver | Point::Verdict | Point::Clipboard => true,
        }
    }

    /// Logs the decision, stores its event and raises its prompt. Returns
    /// the event's id.
    pub fn report(
        &self,
        point: Point,
        policy: &Policy,
        observation: &Observation,
        service: &Service,
        outcome: Outcome,
    ) -> String {
        let Outcome { decision, denies, justified, owner } = outcome;
        if point == Point::Verdict && matches!(observation.source, Source::Tls | Source::Quic | Source::Http)
        {
            self.handled.verdict_judged(&observation.flow, self.clock.now());
        }
        info!(
            point = point.as_str(),
            source = observation.source.as_str(),
            name = %observation.name,
            service = %service.id,
            action = decision.action.as_str(),
            rule = %decision.rule_id,
            flow = %observation.flow,
            uid = owner.attribution.uid,
            program = owner.attribution.program.as_deref(),
            denied = denies,
            "decision"
        );
        let event = Event::new(observation, service, &decision, &policy.version, owner.attribution);
        if shows_prompt(decision.action, self.mode, point, justified) {
            self.prompts.notify(&event, policy);
        }
        let id = event.id.clone();
        self.sink.send(event);
        id
    }

    /// Logs and stores a handshake the verdicts could not read; returns
    /// whether the policy denies it. No prompt: there is no service to
    /// explain, and the connection failing is what the user sees.
    pub fn report_unreadable(
        &self,
        policy: &Policy,
        flow: &Flow,
        source: Source,
        why: Unreadable,
        owner: Owner,
    ) -> bool {
        let denies = policy.unreadable_handshake == UnreadableHandshake::Block;
        let action = if denies { Action::Block } else { Action::Monitor };
        self.handled.verdict_judged(flow, self.clock.now());
        // One line per flow, like every decision: a flood of these is
        // coalesced in the store, and should not take the log's level up.
        info!(
            point = Point::Verdict.as_str(),
            source = source.as_str(),
            why = why.as_str(),
            flow = %flow,
            uid = owner.attribution.uid,
            program = owner.attribution.program.as_deref(),
            denied = denies,
            "unreadable handshake"
        );
        let ts = self.clock.wall_micros();
        let event =
            Event::unreadable_handshake(ts, flow, source, why, action, &policy.version, owner.attribution);
        if !self.sink.send(event) {
            warn!("unreadable-handshake event dropped: the store is behind");
        }
        denies
    }

    /// Records tamper evidence: a warning with its fields (the journal's
    /// `VIGIE_CHECK`, `VIGIE_SUBJECT`), a journal entry with what was seen,
    /// and an event for the console and the fleet.
    pub fn report_tamper(&self, policy_version: &str, finding: &crate::tamper::Finding) {
        let (entry, event) = finding.evidence(self.clock.wall_micros(), policy_version);
        self.sink.journal(&entry.kind, entry.detail);
        if !self.sink.send(event) {
            warn!(check = finding.check.as_str(), "tamper event dropped: the store is behind");
        }
    }

    /// Logs a stored change in the software inventory and raises its
    /// prompt: a `warn` on software a user has (installed, started, given
    /// more rights), never on a removal, on what belongs to no user, nor
    /// on the agent's first look (`prompts` false: the baseline).
    pub fn report_inventory(
        &self,
        policy: &Policy,
        event: &Event,
        change: &vigie_core::inventory::Change,
        prompts: bool,
    ) {
        info!(
            point = "inventory",
            change = change.kind.as_str(),
            kind = change.item.kind.as_str(),
            key = %change.item.key,
            host = %change.item.host,
            service = %event.service_id,
            uid = event.attribution.uid,
            action = event.action.as_str(),
            "inventory"
        );
        let shown = prompts
            && event.action == Action::Warn
            && event.attribution.uid.is_some()
            && change.kind != vigie_core::inventory::ChangeKind::Removed;
        if shown {
            let item = &change.item;
            let notice = vigie_core::proto::SoftwareNotice {
                kind: item.kind,
                change: change.kind,
                name: item.name.clone(),
                version: item.version.clone(),
                host: item.host.clone(),
            };
            self.prompts.notify_inventory(event, policy, notice);
        }
    }

    /// The clipboard guard's decision on content with detector `counts`:
    /// the strongest action of the enabled detectors that fired, unless
    /// the guard is off, `destination` finds no catalogued service, or the
    /// guard exempts it. `destination` is only looked for when a detector
    /// calls for an action (it reads the user's recent flows).
    pub fn decide_clipboard<'c>(
        &self,
        policy: &Policy,
        counts: &BTreeMap<DetectorId, u32>,
        destination: impl FnOnce() -> Option<Destination<'c>>,
    ) -> ClipboardVerdict<'c> {
        let guard = &policy.clipboard;
        let Some(decision) = guard.decide(counts) else { return ClipboardVerdict::Nothing };
        match destination() {
            None => ClipboardVerdict::Nothing,
            Some(found) if guard.services_except.contains(&found.service.id) => {
                ClipboardVerdict::Exempt(found)
            }
            Some(found) => ClipboardVerdict::Act(decision, found),
        }
    }

    /// Logs, stores and prompts for a clipboard detection headed to a
    /// catalogued service ([`Decider::decide_clipboard`]'s `Act`).
    pub fn report_clipboard(
        &self,
        policy: &Policy,
        facts: ClipboardFacts<'_>,
        notice: ClipboardNotice,
    ) -> Event {
        let event = Event::clipboard(facts);
        info!(
            point = Point::Clipboard.as_str(),
            uid = event.attribution.uid,
            service = %event.service_id,
            detectors = %event.name,
            action = event.action.as_str(),
            "decision"
        );
        if shows_prompt(event.action, self.mode, Point::Clipboard, false) {
            self.prompts.notify_clipboard(&event, policy, notice);
        }
        if !self.sink.send(event.clone()) {
            warn!(id = %event.id, "clipboard event dropped: the store is behind");
        }
        event
    }
}

#[cfg(test)]
mod tests;
