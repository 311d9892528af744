//! The uploader: drains the local store to the collector in order, in
//! bounded gzip batches, at least once. It backs off with full jitter on
//! failures, obeys `Retry-After`, and keeps working offline for as long as
//! local retention keeps the events (what retention drops is counted).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use tracing::{info, warn};
use vigie_core::catalog::Catalog;
use vigie_core::policy::Policy;
use vigie_core::store::Store;

use super::{now_micros, now_secs, refusal, renew_if_due, Enrolment, FleetDir};
use crate::bundle::{self, SignedBundle};
use crate::proto::{self, BatchAck, Heartbeat, OutboxStatus};

#[derive(Debug, Clone)]
pub struct UploaderConfig {
    /// Events per batch (the collector takes at most [`proto::MAX_BATCH_EVENTS`]).
    pub batch_events: u32,
    /// How often to look for new events when caught up.
    pub idle: Duration,
    pub heartbeat_every: Duration,
    /// How often to ask for a new policy bundle (when a bundle key is pinned).
    pub policy_every: Duration,
    /// The first wait after a failure, doubled each time up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for UploaderConfig {
    fn default() -> Self {
        Self {
            batch_events: 500,
            idle: Duration::from_secs(2),
            heartbeat_every: Duration::from_secs(300),
            policy_every: Duration::from_secs(300),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
        }
    }
}

/// Full jitter (a random wait between zero and the capped exponential):
/// after an outage, agents come back spread out, not all at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max, failures: 0 }
    }

    /// The wait after one more failure; `random` in [0, 1).
    pub fn next(&mut self, random: f64) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << self.failures.min(20)).min(self.max);
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(random.clamp(0.0, 1.0))
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// What the uploader needs from the agent around it.
pub trait AgentLink: Send + Sync {
    /// What the agent says of itself (the outbox is filled in here).
    fn heartbeat(&self) -> Heartbeat;
    /// A policy bundle from the collector was refused (said once per bundle).
    fn policy_refused(&self, reason: &str);
}

pub struct Uploader {
    dir: FleetDir,
    database: PathBuf,
    config: UploaderConfig,
    link: Box<dyn AgentLink>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("dir", &self.dir)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended.
enum Outcome {
    /// Sent a batch; look again at once.
    Sent,
    /// Nothing to send.
    Idle,
    /// Wait this long (the collector said so, or backoff).
    Wait(Duration, String),
}

impl Uploader {
    pub fn new(dir: FleetDir, database: PathBuf, config: UploaderConfig, link: Box<dyn AgentLink>) -> Self {
        Self { dir, database, config, link }
    }

    /// Runs until `stop` is set. Errors of one attempt are recorded in the
    /// store (shown by `status`) and retried; only a missing enrolment or an
    /// unreadable store ends it.
    pub fn run(&self, stop: &AtomicBool) -> Result<()> {
        let mut enrolment = self.dir.enrolment()?.context("this agent is not enrolled")?;
        let mut store = Store::open(&self.database).with_context(|| self.database.display().to_string())?;
        store.outbox_open(false)?;
        let mut client = self.dir.client()?;
        let mut backoff = Backoff::new(self.config.base_backoff, self.config.max_backoff);
        // A first heartbeat at a random point of the first period: a fleet
        // restarted at once does not call in at once.
        let mut next_beat = Instant::now() + self.config.heartbeat_every.mul_f64(rand::random::<f64>() * 0.1);
        let mut next_policy = Instant::now() + self.config.policy_every.mul_f64(rand::random::<f64>() * 0.1);
        let mut policy_etag: Option<String> = None;
        let mut batch = self.config.batch_events.clamp(1, proto::MAX_BATCH_EVENTS as u32);
        let mut next_renewal = Instant::now();
        let mut renewal_backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(6 * 3_600));
        let mut next_identity_look = Instant::now() + IDENTITY_LOOK_EVERY;
        info!(collector = %enrolment.url, agent = %enrolment.agent_id, "fleet upload started");
        while !stop.load(Ordering::Relaxed) {
            // Enrolled again (`enroll --force`) while running: end, for the
            // agent to start an uploader with the new identity.
            if Instant::now() >= next_identity_look {
                next_identity_look = Instant::now() + IDENTITY_LOOK_EVERY;
                let current = self.dir.enrolment().ok().flatten().map(|e| e.agent_id);
                if current.as_deref() != Some(enrolment.agent_id.as_str()) {
                    info!(agent = %enrolment.agent_id, "the enrolment changed: this upload ends");
                    return Ok(());
                }
            }
            if Instant::now() >= next_renewal {
                match renew_if_due(&self.dir, &enrolment, now_secs()) {
                    Ok(Some(renewed)) => {
                        info!(not_after = renewed.not_after, "agent certificate renewed");
                        enrolment = renewed;
                        client = self.dir.client()?;
                        renewal_backoff.reset();
                    }
                    Ok(None) => renewal_backoff.reset(),
                    Err(e) => warn!(error = %format!("{e:#}"), "certificate renewal failed; retried later"),
                }
                next_renewal = Instant::now() + RENEWAL_LOOK_EVERY.max(renewal_backoff.next(rand::random()));
            }
            if Instant::now() >= next_beat {
                let jitter = 0.8 + rand::random::<f64>() * 0.4;
                next_beat = Instant::now() + self.config.heartbeat_every.mul_f64(jitter);
                if let Err(e) = self.send_heartbeat(&client, &enrolment, &store) {
                    warn!(error = %format!("{e:#}"), "heartbeat failed");
                }
            }
            if Instant::now() >= next_policy {
                let jitter = 0.8 + rand::random::<f64>() * 0.4;
                next_policy = Instant::now() + self.config.policy_every.mul_f64(jitter);
                if let Err(e) = self.poll_policy(&client, &enrolment, &mut policy_etag) {
                    warn!(error = %format!("{e:#}"), "policy poll failed");
                }
            }
            let wait = match self.send_batch(&client, &enrolment, &mut store, &mut batch) {
                Ok(Outcome::Sent) => {
                    backoff.reset();
                    continue;
                }
                Ok(Outcome::Idle) => {
                    backoff.reset();
                    self.config.idle
                }
                Ok(Outcome::Wait(wait, why)) => {
                    let _ = store.outbox_failed(&why, now_micros());
                    warn!(error = %why, wait_s = wait.as_secs(), "upload deferred");
                    wait
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    let _ = store.outbox_failed(&why, now_micros());
                    let wait = backoff.next(rand::random());
                    warn!(error = %why, wait_ms = wait.as_millis() as u64, "upload failed");
                    wait
                }
            };
            sleep_unless_stopped(wait, stop);
        }
        Ok(())
    }

    fn send_batch(
        &self,
        client: &Client,
        enrolment: &Enrolment,
        store: &mut Store,
        batch: &mut u32,
    ) -> Result<Outcome> {
        let cursor = store.outbox_cursor()?.unwrap_or(0);
        let pending = store.events_after(cursor, *batch)?;
        let Some(last_seq) = pending.last().map(|(seq, _)| *seq) else {
            return self.send_answers(client, enrolment, store, *batch);
        };
        let count = pending.len();
        let events: Vec<_> = pending.into_iter().map(|(_, e)| e).collect();
        let response = post_batch(
            client,
            enrolment,
            &proto::EventBatch { events, answers: Vec::new(), inventory: None },
        )?;
        let status = response.status();
        if status.is_success() {
            // Stored: whatever the body says (a newer collector may say more).
            store.outbox_acked(last_seq, count as u64, now_micros())?;
            // A batch halved after a 400 or 413 grows back, doubling, so that
            // one large batch does not leave every later upload small.
            *batch = batch
                .saturating_mul(2)
                .min(self.config.batch_events.clamp(1, proto::MAX_BATCH_EVENTS as u32));
            let ack: BatchAck = read_limited(response, MAX_ANSWER_BYTES)
                .ok()
                .and_then(|body| serde_json::from_slice(&body).ok())
                .unwrap_or_default();
            if ack.quarantined > 0 {
                warn!(
                    quarantined = ack.quarantined,
                    "the collector kept events apart: their time is far from its clock"
                );
            }
            return Ok(Outcome::Sent);
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            let asked = retry_after(response.headers()).unwrap_or(Duration::from_secs(30));
            // Never longer than the longest backoff; a little jitter on top.
            let wait = asked.min(self.config.max_backoff).mul_f64(1.0 + rand::random::<f64>() * 0.2);
            return Ok(Outcome::Wait(wait, format!("the collector answered {status}")));
        }
        if status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE {
            // The collector will refuse this batch every time: find the one
            // event it refuses (halving), then set it aside so that the
            // events after it still go; it is counted and said.
            let why = format!("{:#}", refusal(response));
            if *batch > 1 {
                *batch = (*batch / 2).max(1);
                return Ok(Outcome::Wait(Duration::ZERO, format!("{why}; batch now {batch} events")));
            }
            store.outbox_set_aside(last_seq, &why, now_micros())?;
            *batch = self.config.batch_events.clamp(1, proto::MAX_BATCH_EVENTS as u32);
            warn!(seq = last_seq, error = %why, "an event the collector refuses was set aside");
            return Ok(Outcome::Sent);
        }
        if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
            // Revoked or unknown: keep the events, ask again rarely.
            let why = format!("{:#}", refusal(response));
            return Ok(Outcome::Wait(self.config.max_backoff, why));
        }
        Err(refusal(response))
    }

    /// Once the events are sent: the answers to prompts, in order, marked
    /// sent once stored. A refused batch is retried like events (it holds
    /// nothing the collector could not store: text it cleans, ids it checks).
    fn send_answers(
        &self,
        client: &Client,
        enrolment: &Enrolment,
        store: &mut Store,
        batch: u32,
    ) -> Result<Outcome> {
        let pending = store.outbox_answers(batch)?;
        let Some(last_seq) = pending.last().map(|(seq, _)| *seq) else {
            return self.send_inventory(client, enrolment, store);
        };
        let answers = pending.into_iter().map(|(_, a)| a).collect();
        let response = post_batch(
            client,
            enrolment,
            &proto::EventBatch { events: Vec::new(), answers, inventory: None },
        )?;
        if response.status().is_success() {
            store.outbox_answers_acked(last_seq)?;
            return Ok(Outcome::Sent);
        }
        Err(refusal(response))
    }

    /// Last: the workstation's AI software, whole, when it changed since
    /// the collector acknowledged it.
    fn send_inventory(&self, client: &Client, enrolment: &Enrolment, store: &mut Store) -> Result<Outcome> {
        let Some((revision, mut items)) = store.outbox_inventory()? else {
            return Ok(Outcome::Idle);
        };
        if items.len() > proto::MAX_INVENTORY_ITEMS {
            warn!(found = items.len(), sent = proto::MAX_INVENTORY_ITEMS, "inventory cut for the collector");
            items.truncate(proto::MAX_INVENTORY_ITEMS);
        }
        let batch = proto::EventBatch { events: Vec::new(), answers: Vec::new(), inventory: Some(items) };
        let response = post_batch(client, enrolment, &batch)?;
        if response.status().is_success() {
            store.outbox_inventory_acked(revision)?;
            return Ok(Outcome::Sent);
        }
        Err(refusal(response))
    }

    fn send_heartbeat(&self, client: &Client, enrolment: &Enrolment, store: &Store) -> Result<()> {
        let mut beat = self.link.heartbeat();
        let state = store.outbox_state()?.unwrap_or_default();
        beat.outbox = OutboxStatus {
            backlog: state.backlog,
            backlog_capped: state.backlog_capped,
            sent: state.sent,
            dropped: state.dropped,
            set_aside: state.set_aside,
            last_success: state.last_success,
            last_error: state.last_error,
        };
        let response = client
            .post(format!("{}{}", enrolment.url, proto::HEARTBEAT))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&beat)?)
            .send()
            .context("reaching the collector")?;
        if !response.status().is_success() {
            return Err(refusal(response));
        }
        Ok(())
    }
}

impl Uploader {
    /// Asks for the policy bundle (with the ETag of the last one seen);
    /// a new one is verified against the pinned key, checked fresh and newer
    /// than the one in force, and loadable, before it replaces it on disk
    /// (the agent reloads from there). A refused one is reported once.
    fn poll_policy(&self, client: &Client, enrolment: &Enrolment, etag: &mut Option<String>) -> Result<()> {
        let key_path = self.dir.policy_key_path();
        if !key_path.exists() {
            return Ok(());
        }
        let key = std::fs::read_to_string(&key_path).with_context(|| key_path.display().to_string())?;
        let in_force = self.in_force(&key);
        if in_force.is_none() {
            // No verified bundle on disk (first poll, or it was deleted): ask for it whole.
            *etag = None;
        }
        let mut request = client.get(format!("{}{}", enrolment.url, proto::POLICY));
        if let Some(etag) = etag.as_deref() {
            request = request.header("if-none-match", etag);
        }
        let response = request.send().context("reaching the collector for the policy")?;
        match response.status() {
            StatusCode::NOT_MODIFIED | StatusCode::NOT_FOUND => return Ok(()),
            status if !status.is_success() => return Err(refusal(response)),
            _ => {}
        }
        let offered_etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = read_limited(response, MAX_BUNDLE_BYTES).context("reading the policy bundle")?;
        match check_bundle(&bytes, &key, in_force, now_secs()) {
            Ok(Some(version)) => {
                super::save(&self.dir.bundle_path(), &bytes, 0o644)?;
                info!(version, "fleet policy bundle accepted");
                *etag = offered_etag;
            }
            Ok(None) => *etag = offered_etag,
            Err(reason) => {
                // Asked again only when the collector has another one.
                *etag = offered_etag;
                warn!(reason = %reason, "fleet policy bundle refused");
                self.link.policy_refused(&reason);
            }
        }
        Ok(())
    }

    /// The version of the verified bundle on disk.
    fn in_force(&self, key_pem: &str) -> Option<u64> {
        let bytes = std::fs::read(self.dir.bundle_path()).ok()?;
        let key = bundle::read_public_key(key_pem).ok()?;
        SignedBundle::parse(&bytes).ok()?.verify(&key).ok().map(|body| body.version)
    }
}

/// Largest policy bundle accepted (a catalog is a few hundred KB).
const MAX_BUNDLE_BYTES: usize = 8 << 20;
/// Largest other answer read from the collector.
const MAX_ANSWER_BYTES: usize = 64 << 10;
/// How often the uploader looks whether the agent was enrolled again.
const IDENTITY_LOOK_EVERY: Duration = Duration::from_secs(5);
/// How often the certificate's age is looked at.
const RENEWAL_LOOK_EVERY: Duration = Duration::from_secs(60);

/// At most `limit` bytes of a body: a collector (or what poses as one)
/// cannot make the privileged agent hold more.
pub(crate) fn read_limited(response: reqwest::blocking::Response, limit: usize) -> Result<Vec<u8>> {
    use std::io::Read as _;
    if response.content_length().is_some_and(|n| n > limit as u64) {
        anyhow::bail!("the answer is larger than {limit} bytes");
    }
    let mut body = Vec::new();
    response.take(limit as u64 + 1).read_to_end(&mut body)?;
    if body.len() > limit {
        anyhow::bail!("the answer is larger than {limit} bytes");
    }
    Ok(body)
}

/// `Ok(Some(version))`: a bundle to put in force; `Ok(None)`: the one in
/// force already; `Err`: why it is refused.
pub fn check_bundle(
    bytes: &[u8],
    key_pem: &str,
    in_force: Option<u64>,
    now: i64,
) -> Result<Option<u64>, String> {
    let key = bundle::read_public_key(key_pem).map_err(|e| e.to_string())?;
    let body = SignedBundle::parse(bytes).and_then(|b| b.verify(&key)).map_err(|e| e.to_string())?;
    body.check_fresh(now, in_force).map_err(|e| e.to_string())?;
    if in_force == Some(body.version) {
        return Ok(None);
    }
    let catalog = match &body.catalog {
        Some(text) => Catalog::parse(text, "bundle (catalog)"),
        None => Catalog::bundled(),
    }
    .map_err(|e| format!("bundle {}: {e}", body.version))?;
    Policy::parse(&body.policy, "bundle (policy)", &catalog)
        .map_err(|e| format!("bundle {}: {e}", body.version))?;
    Ok(Some(body.version))
}

/// POSTs a batch, gzipped, to the collector's events route.
fn post_batch(
    client: &Client,
    enrolment: &Enrolment,
    batch: &proto::EventBatch,
) -> Result<reqwest::blocking::Response> {
    let body = gzip(&serde_json::to_vec(batch)?)?;
    client
        .post(format!("{}{}", enrolment.url, proto::EVENTS))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .context("reaching the collector")
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the collector).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

fn sleep_unless_stopped(wait: Duration, stop: &AtomicBool) {
    let end = Instant::now() + wait;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(200)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_under_a_doubling_capped_ceiling() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let ceilings: Vec<u64> = (0..10).map(|_| backoff.next(0.999_999).as_secs()).collect();
        assert_eq!(ceilings, [0, 1, 3, 7, 15, 31, 59, 59, 59, 59]);
        assert_eq!(backoff.next(0.0), Duration::ZERO, "full jitter reaches zero");
        backoff.reset();
        assert!(backoff.next(0.5) <= Duration::from_millis(500));
        // Thousands of failures never overflow.
        let mut long = Backoff::new(Duration::from_secs(1), Duration::from_secs(600));
        for _ in 0..10_000 {
            assert!(long.next(0.5) <= Duration::from_secs(300));
        }
    }

    #[test]
    fn retry_after_in_seconds_only() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, reqwest::header::HeaderValue::from_static(" 17 "));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(17)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}

#[cfg(test)]
mod bundle_tests {
    use super::*;
    use crate::bundle::{generate_key, public_key_pem, sign, BundleBody, FORMAT};

    #[test]
    fn a_bundle_is_put_in_force_only_if_signed_fresh_newer_and_loadable() {
        let key = generate_key([5; 32]);
        let pem = public_key_pem(&key.verifying_key()).unwrap();
        let policy = vigie_core::policy::BUNDLED_POLICY.to_owned();
        let make = |version: u64, expires_at: i64, policy: &str| {
            let body = BundleBody {
                format: FORMAT,
                version,
                issued_at: 0,
                expires_at,
                policy: policy.into(),
                catalog: None,
            };
            serde_json::to_vec(&sign(&body, &key).unwrap()).unwrap()
        };
        assert_eq!(check_bundle(&make(3, 100, &policy), &pem, None, 50), Ok(Some(3)));
        assert_eq!(check_bundle(&make(3, 100, &policy), &pem, Some(3), 50), Ok(None));
        assert!(check_bundle(&make(2, 100, &policy), &pem, Some(3), 50).unwrap_err().contains("older"));
        assert!(check_bundle(&make(4, 40, &policy), &pem, Some(3), 50).unwrap_err().contains("expired"));
        let broken = check_bundle(&make(4, 100, "name = 1"), &pem, Some(3), 50).unwrap_err();
        assert!(broken.starts_with("bundle 4:"), "{broken}");
        let other = public_key_pem(&generate_key([6; 32]).verifying_key()).unwrap();
        assert!(check_bundle(&make(4, 100, &policy), &other, None, 50).unwrap_err().contains("pinned"));
        assert!(check_bundle(b"{\"policy\": \"unsigned\"}", &pem, None, 50).is_err(), "unsigned");
    }
}
