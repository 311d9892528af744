//! The passive capture: every frame of a [`FrameSource`] through the same
//! pipeline as `scan`, each catalogued observation to the decider. It
//! enforces nothing itself, but it sees the DNS answers that give a
//! blocked name's addresses, which the verdicts then reject.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use tracing::{debug, info, warn};
use vigie_core::policy::{Action, Subject};
use vigie_core::sensor::{Detail, Micros, Observation};

use crate::decider::{Decider, Point};
use crate::platform::{Batch, Capture, FrameSource};
use crate::rules::{LivePipeline, Rules};
use crate::verdict::AddressBlocker;
use crate::watchdog::Heartbeat;

/// What a capture thread consults besides the rules.
#[derive(Debug, Clone, Copy)]
pub struct CaptureContext<'a> {
    pub decider: &'a Decider,
    /// Set when packet verdicts run: addresses of blocked names go there.
    pub blocker: Option<&'a AddressBlocker>,
    /// Marked around each frame, for the watchdog.
    pub heartbeat: &'a Heartbeat,
}

/// How long a query waits for its answer, and how many wait at most.
const ANSWER_WITHIN: Micros = 10_000_000;
const MAX_QUERIES_WAITING: usize = 4096;

/// The DNS queries for catalogued names seen on the wire, so that only an
/// answer to one of them (from the server it was sent to, to the port it
/// came from, with its id and question) feeds the address sets: a datagram
/// any user sends to port 53, or one forged from afar, blocks nothing.
#[derive(Debug, Default)]
pub struct QueriesSent {
    waiting: HashMap<(SocketAddr, SocketAddr, u16, u16, String), Micros>,
}

impl QueriesSent {
    /// Notes a query (`flow` from the asker to the server).
    pub fn sent(&mut self, observation: &Observation) {
        let Detail::DnsQuery { qtype, id } = observation.detail else { return };
        if self.waiting.len() >= MAX_QUERIES_WAITING {
            let now = observation.ts;
            self.waiting.retain(|_, at| now.saturating_sub(*at) < ANSWER_WITHIN);
            // Still half full of fresh queries (a flood): start over, so the
            // sweep runs at most once per MAX / 2 queries. The answers to
            // the queries forgotten block nothing: the safe side.
            if self.waiting.len() >= MAX_QUERIES_WAITING / 2 {
                self.waiting.clear();
            }
        }
        let flow = observation.flow;
        self.waiting.insert((flow.src, flow.dst, id, qtype, observation.name.clone()), observation.ts);
    }

    /// Whether an answer (its `flow` oriented asker → server, as the
    /// sensor gives it) answers a query seen leaving; that query is used up.
    pub fn answers(&mut self, observation: &Observation) -> bool {
        let Detail::DnsAnswer { qtype, id, .. } = observation.detail else { return false };
        let flow = observation.flow;
        let key = (flow.src, flow.dst, id, qtype, observation.name.clone());
        self.waiting.remove(&key).is_some_and(|at| observation.ts.saturating_sub(at) < ANSWER_WITHIN)
    }
}

/// Reads `source` until it ends or `stop` is set.
pub fn run_source(
    source: &mut dyn FrameSource,
    rules: &Rules,
    stop: &AtomicBool,
    context: CaptureContext<'_>,
) -> std::io::Result<()> {
    let mut live = LivePipeline::new(rules);
    let mut queries = QueriesSent::default();
    let subject = Subject::default();
    while !stop.load(Ordering::Relaxed) {
        live.refresh(rules);
        let LivePipeline { pipeline, policy, .. } = &mut live;
        let batch = source.next_batch(&mut |ts, link, frame| {
            let _busy = context.heartbeat.busy();
            pipeline.process(ts, link, frame, &subject, &mut |decided| {
                let observation = &decided.observation;
                let Some((service, default_decision)) = &decided.verdict else { return };
                if let Some(blocker) = context.blocker {
                    match &observation.detail {
                        Detail::DnsQuery { .. } => queries.sent(observation),
                        Detail::DnsAnswer { addresses, .. }
                            if policy.dns.block_resolved_addresses && default_decision.action == Action::Block =>
                        {
                            if queries.answers(observation) {
                                for address in addresses {
                                    blocker.block(*address);
                                }
                            } else {
                                debug!(flow = %observation.flow, name = %observation.name, "answer to no query sent: ignored");
                            }
                        }
                        _ => {}
                    }
                }
                let decider = context.decider;
                if !decider.reports(Point::Capture, observation) {
                    return;
                }
                // Attributed only now: few flows reach a catalogued service.
                let owner = decider.owner(&observation.flow, None);
                let outcome = decider.decide(policy, service, owner);
                decider.report(Point::Capture, policy, observation, service, outcome);
            });
        })?;
        if batch == Batch::Ended {
            break;
        }
    }
    Ok(())
}

/// Captures on `interface` until asked to stop. A capture that breaks (the
/// link went down, the interface was removed and comes back) is opened
/// again, with a growing pause; only a refusal (no CAP_NET_RAW) ends it.
pub fn run_interface(
    capture: &dyn Capture,
    interface: &str,
    kernel_filter: bool,
    rules: &Rules,
    stop: &AtomicBool,
    context: CaptureContext<'_>,
) -> Result<()> {
    const FIRST_PAUSE: Duration = Duration::from_secs(1);
    let mut pause = FIRST_PAUSE;
    loop {
        let started = std::time::Instant::now();
        let error = match capture.open(interface, kernel_filter) {
            Ok(mut source) => {
                // Said once the socket is open: from here on, nothing is missed.
                info!(interface, "capturing");
                match run_source(source.as_mut(), rules, stop, context) {
                    Ok(()) => return Ok(()),
                    Err(e) => anyhow::Error::from(e).context(format!("reading from {interface}")),
                }
            }
            Err(e) => e,
        };
        let refused = error.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        });
        if refused {
            return Err(error);
        }
        // A capture that ran a while before breaking starts the pauses over.
        if started.elapsed() > Duration::from_secs(60) {
            pause = FIRST_PAUSE;
        }
        warn!(interface, error = %format!("{error:#}"), retry_in = ?pause, "capture interrupted");
        let resume = std::time::Instant::now() + pause;
        while std::time::Instant::now() < resume {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests;
