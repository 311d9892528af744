//! The HTTPS API: TLS 1.3 with the agent's certificate as its identity,
//! bounded bodies, and back-pressure (503 + Retry-After) instead of queues.

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};
use uuid::Uuid;
use vigie_fleet::proto::{
    self, EnrollRequest, EnrollResponse, ErrorBody, EventBatch, Heartbeat, RenewRequest,
};

use crate::config::Config;
use crate::db;
use crate::pki::{self, Issuer};

/// Connections served at once; past it, new ones wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 4_096;
/// The TLS handshake and the request headers must arrive within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest compressed event batch read off the wire.
const MAX_COMPRESSED_BATCH: usize = 2 << 20;
/// Largest other body (enrolment, heartbeat).
const MAX_SMALL_BODY: usize = 64 << 10;

#[derive(Debug)]
pub struct App {
    pub pool: Pool,
    pub issuer: Issuer,
    pub config: Config,
    revoked: RwLock<HashSet<Uuid>>,
    /// Agents known to be enrolled and not revoked: a request from one
    /// costs no database read.
    known: RwLock<HashSet<Uuid>>,
    /// Last contact and heartbeat per agent, written in batches.
    seen: std::sync::Mutex<HashMap<Uuid, (SystemTime, Option<Heartbeat>)>>,
    partitions: tokio::sync::Mutex<HashSet<Date>>,
    batches: Semaphore,
}

impl App {
    pub fn new(pool: Pool, issuer: Issuer, config: Config) -> Self {
        let batches = Semaphore::new(config.max_concurrent_batches);
        Self {
            pool,
            issuer,
            config,
            revoked: RwLock::default(),
            known: RwLock::default(),
            seen: std::sync::Mutex::default(),
            partitions: tokio::sync::Mutex::default(),
            batches,
        }
    }

    fn is_revoked(&self, agent: Uuid) -> bool {
        self.revoked.read().map(|r| r.contains(&agent)).unwrap_or(true)
    }

    fn mark_seen(&self, agent: Uuid, beat: Option<Heartbeat>) {
        if let Ok(mut seen) = self.seen.lock() {
            let entry = seen.entry(agent).or_insert((SystemTime::now(), None));
            entry.0 = SystemTime::now();
            if beat.is_some() {
                entry.1 = beat;
            }
        }
    }

    /// Events are stored in daily partitions from `retention_days` ago to
    /// two days ahead (clocks drift); the rest goes to quarantine.
    fn window(&self) -> (Date, Date) {
        let today = OffsetDateTime::now_utc().date();
        let keep = i64::from(self.config.retention_days) - 1;
        (today - time::Duration::days(keep), today + time::Duration::days(2))
    }
}

/// Who is on the other end: the agent id of a verified client certificate.
#[derive(Debug, Clone, Copy)]
struct Peer(Option<Uuid>);

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody { error: message.into() })).into_response()
}

/// Come back later: with jitter, so that refused agents do not return together.
fn busy(why: &str) -> Response {
    let seconds = 5 + rand::random::<u64>() % 26;
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, why);
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn internal(e: &anyhow::Error) -> Response {
    warn!(error = %format!("{e:#}"), "database");
    busy("the collector's database is unavailable")
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(proto::ENROLL, post(enroll).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)))
        .route(proto::RENEW, post(renew).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)))
        .route(proto::EVENTS, post(events).layer(DefaultBodyLimit::max(MAX_COMPRESSED_BATCH)))
        .route(proto::HEARTBEAT, post(heartbeat).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)))
        .route(proto::POLICY, get(policy))
        .with_state(app)
}

/// Splits `<uuid>.<base64url secret>`.
pub fn parse_token(token: &str) -> Option<(Uuid, Vec<u8>)> {
    let (id, secret) = token.split_once('.')?;
    Some((Uuid::parse_str(id).ok()?, B64URL.decode(secret).ok()?))
}

async fn enroll(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<EnrollRequest>(&body) else {
        return error(StatusCode::BAD_REQUEST, "not an enrolment request");
    };
    let refused = || error(StatusCode::FORBIDDEN, "enrolment token unknown, expired, used up or revoked");
    let Some((token_id, secret)) = parse_token(&request.token) else {
        return refused();
    };
    let digest = Sha256::digest(&secret);
    let (token, group) = match db::take_token(&app.pool, token_id, digest.as_slice()).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            warn!(token = %token_id, "enrolment refused");
            return refused();
        }
        Err(e) => return internal(&e),
    };
    let agent = Uuid::new_v4();
    let issued = match app.issuer.issue(agent, &request.csr_pem) {
        Ok(issued) => issued,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let hostname: String = request.hostname.chars().filter(|c| !c.is_control()).take(255).collect();
    let version: String = request.version.chars().filter(|c| !c.is_control()).take(64).collect();
    let new = db::NewAgent {
        id: agent,
        group: &group,
        hostname: &hostname,
        token,
        serial: &issued.serial,
        not_after: system_time(issued.not_after),
        version: &version,
    };
    if let Err(e) = db::insert_agent(&app.pool, &new).await {
        return internal(&e);
    }
    info!(agent = %agent, group = %group, hostname = %hostname, "agent enrolled");
    Json(EnrollResponse {
        agent_id: agent.to_string(),
        group,
        certificate_pem: issued.pem,
        not_after: issued.not_after.unix_timestamp(),
    })
    .into_response()
}

fn system_time(t: OffsetDateTime) -> SystemTime {
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// The agent behind the request, if its certificate is valid and it is
/// enrolled and not revoked; the answer to send otherwise.
async fn authenticated(app: &App, peer: Peer) -> Result<Uuid, Response> {
    let Some(agent) = peer.0 else {
        return Err(error(StatusCode::UNAUTHORIZED, "a client certificate from the fleet CA is required"));
    };
    if app.is_revoked(agent) {
        return Err(error(StatusCode::FORBIDDEN, "this agent is revoked"));
    }
    if app.known.read().map(|k| k.contains(&agent)).unwrap_or(false) {
        return Ok(agent);
    }
    match db::agent_group(&app.pool, agent).await {
        Ok(Some(_)) => {
            if let Ok(mut known) = app.known.write() {
                known.insert(agent);
            }
            Ok(agent)
        }
        Ok(None) => Err(error(StatusCode::FORBIDDEN, "this agent is not enrolled or is revoked")),
        Err(e) => Err(internal(&e)),
    }
}

async fn renew(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>, body: Bytes) -> Response {
    let agent = match authenticated(&app, peer).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let Ok(request) = serde_json::from_slice::<RenewRequest>(&body) else {
        return error(StatusCode::BAD_REQUEST, "not a renewal request");
    };
    let issued = match app.issuer.issue(agent, &request.csr_pem) {
        Ok(issued) => issued,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    if let Err(e) = db::renewed(&app.pool, agent, &issued.serial, system_time(issued.not_after)).await {
        return internal(&e);
    }
    let group = db::agent_group(&app.pool, agent).await.ok().flatten().unwrap_or_default();
    info!(agent = %agent, "certificate renewed");
    Json(EnrollResponse {
        agent_id: agent.to_string(),
        group,
        certificate_pem: issued.pem,
        not_after: issued.not_after.unix_timestamp(),
    })
    .into_response()
}

/// Inflates a gzip body, reading at most `limit` bytes of output.
fn inflate(body: &[u8], limit: usize) -> Result<Vec<u8>, (StatusCode, &'static str)> {
    let mut out = Vec::new();
    let limit_plus_one = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(body)
        .take(limit_plus_one)
        .read_to_end(&mut out)
        .map_err(|_| (StatusCode::BAD_REQUEST, "the batch is not valid gzip"))?;
    if out.len() > limit {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            "the batch is larger than the collector accepts once decompressed",
        ));
    }
    Ok(out)
}

async fn events(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let agent = match authenticated(&app, peer).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let Ok(_permit) = app.batches.try_acquire() else {
        return busy("the collector is busy");
    };
    let gzip =
        headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let json = if gzip {
        match inflate(&body, proto::MAX_BATCH_BYTES) {
            Ok(json) => json,
            Err((status, why)) => return error(status, why),
        }
    } else {
        body.to_vec()
    };
    let batch: EventBatch = match serde_json::from_slice(&json) {
        Ok(batch) => batch,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not an event batch: {e}")),
    };
    if batch.events.len() > proto::MAX_BATCH_EVENTS {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {} events per batch", proto::MAX_BATCH_EVENTS),
        );
    }
    let count = batch.events.len();
    match db::store_batch(&app.pool, agent, batch.events, app.window(), &app.partitions).await {
        Ok(Ok(ack)) => {
            app.mark_seen(agent, None);
            tracing::debug!(agent = %agent, count, stored = ack.stored, "batch");
            Json(ack).into_response()
        }
        Ok(Err(bad)) => error(StatusCode::BAD_REQUEST, bad.0),
        Err(e) => internal(&e),
    }
}

async fn heartbeat(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>, body: Bytes) -> Response {
    let agent = match authenticated(&app, peer).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let Ok(beat) = serde_json::from_slice::<Heartbeat>(&body) else {
        return error(StatusCode::BAD_REQUEST, "not a heartbeat");
    };
    app.mark_seen(agent, Some(beat));
    StatusCode::NO_CONTENT.into_response()
}

async fn policy(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let agent = match authenticated(&app, peer).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    app.mark_seen(agent, None);
    let (bundle, etag) = match db::latest_bundle(&app.pool).await {
        Ok(Some(latest)) => latest,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no policy bundle is published"),
        Err(e) => return internal(&e),
    };
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = (StatusCode::OK, bundle).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let router = router(Arc::clone(&app));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit.context("connection limit")?,
            () = &mut shutdown => return Ok(()),
        };
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                return;
            };
            let agent =
                stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| pki::agent_of(c));
            let service = hyper_util::service::TowerToHyperService::new(router.layer(Extension(Peer(agent))));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Background work: revocations picked up every second, "last seen"
/// written every five, partitions and retention every hour.
pub fn spawn_maintenance(app: &Arc<App>) {
    let revocations = Arc::clone(app);
    tokio::spawn(async move {
        let mut since = None;
        loop {
            match db::revoked_since(&revocations.pool, since).await {
                Ok((ids, latest)) => {
                    since = latest;
                    if !ids.is_empty() {
                        if let Ok(mut known) = revocations.known.write() {
                            for id in &ids {
                                known.remove(id);
                            }
                        }
                        if let Ok(mut revoked) = revocations.revoked.write() {
                            revoked.extend(ids);
                        }
                    }
                }
                Err(e) => warn!(error = %format!("{e:#}"), "reading revocations"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let seen = Arc::clone(app);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            flush_seen(&seen).await;
        }
    });
    let upkeep = Arc::clone(app);
    tokio::spawn(async move {
        loop {
            if let Err(e) = maintain(&upkeep).await {
                warn!(error = %format!("{e:#}"), "partitions and retention");
            }
            tokio::time::sleep(Duration::from_secs(3_600)).await;
        }
    });
}

pub async fn flush_seen(app: &App) {
    let batch: Vec<_> = match app.seen.lock() {
        Ok(mut seen) => seen.drain().map(|(id, (at, beat))| (id, at, beat)).collect(),
        Err(_) => return,
    };
    if let Err(e) = db::flush_seen(&app.pool, batch).await {
        warn!(error = %format!("{e:#}"), "writing last seen");
    }
}

/// Today's partition and the next two exist; what retention ends is dropped.
pub async fn maintain(app: &App) -> Result<()> {
    let today = OffsetDateTime::now_utc().date();
    let days: Vec<Date> = (0..3).map(|n| today + time::Duration::days(n)).collect();
    db::ensure_partitions(&app.pool, &days).await?;
    app.partitions.lock().await.extend(days);
    let dropped =
        db::apply_retention(&app.pool, today, app.config.retention_days, app.config.rollup_retention_days)
            .await?;
    if !dropped.is_empty() {
        info!(partitions = ?dropped, "retention dropped");
        let oldest = app.window().0;
        app.partitions.lock().await.retain(|d| *d >= oldest);
    }
    Ok(())
}
