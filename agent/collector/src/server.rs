//! The HTTPS API: TLS 1.3 with the agent's certificate as its identity,
//! bounded bodies and times, and back-pressure (503 + Retry-After) instead
//! of queues.

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
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
use crate::db::{self, AgentCerts, EnrollError, IssuedCert};
use crate::pki::{self, Issuer};

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
    /// The certificates each known agent may present: a request from one
    /// costs no database read.
    known: RwLock<HashMap<Uuid, AgentCerts>>,
    /// Last contact and heartbeat per agent, written in batches.
    seen: Mutex<HashMap<Uuid, (SystemTime, Option<Heartbeat>)>>,
    partitions: tokio::sync::Mutex<HashSet<Date>>,
    batches: Semaphore,
    /// The users' pseudonyms in what administrators read here.
    admin_pseudonyms: vigie_core::siem::Pseudonyms,
}

impl App {
    /// Fails when `admin_pseudonym_key` cannot be read.
    pub fn new(pool: Pool, issuer: Issuer, config: Config) -> Result<Self> {
        let batches = Semaphore::new(config.max_concurrent_batches);
        let admin_pseudonyms = vigie_core::siem::Pseudonyms::new(
            crate::config::pseudonym_key(config.admin_pseudonym_key.as_deref())
                .context("admin_pseudonym_key")?,
        );
        Ok(Self {
            pool,
            issuer,
            config,
            revoked: RwLock::default(),
            known: RwLock::default(),
            seen: Mutex::default(),
            partitions: tokio::sync::Mutex::default(),
            batches,
            admin_pseudonyms,
        })
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
        let first = today.checked_sub(time::Duration::days(keep)).unwrap_or(Date::MIN);
        (first, today.checked_add(time::Duration::days(2)).unwrap_or(Date::MAX))
    }

    fn remember(&self, agent: Uuid, certs: AgentCerts) {
        if let Ok(mut known) = self.known.write() {
            known.insert(agent, certs);
        }
    }
}

/// Who is on the other end: the agent id and certificate serial of a
/// client certificate the fleet CA signed.
#[derive(Debug, Clone)]
struct Peer(Option<(Uuid, String)>);

/// An administrator's certificate on the connection (name, serial), not
/// yet checked against the database.
#[derive(Debug, Clone)]
struct AdminPeer(Option<(String, String)>);

/// An administrator whose certificate the database accepts.
#[derive(Debug, Clone)]
struct Admin(String);

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
    // Every route but enrolment needs a certificate, checked before any
    // byte of the body is read.
    let agents = Router::new()
        .route(proto::RENEW, post(renew).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)))
        .route(proto::EVENTS, post(events).layer(DefaultBodyLimit::max(MAX_COMPRESSED_BATCH)))
        .route(proto::HEARTBEAT, post(heartbeat).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)))
        .route(proto::POLICY, get(policy))
        .route_layer(middleware::from_fn(require_certificate));
    let admins = Router::new()
        .route(proto::ADMIN_OVERVIEW, get(admin_overview))
        .route(proto::ADMIN_INVENTORY, get(admin_inventory))
        .route(proto::ADMIN_RECERTIFY, post(admin_recertify).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)))
        .route(proto::ADMIN_REPORT, get(admin_report))
        .route(proto::ADMIN_EXCEPTIONS, get(admin_exceptions))
        .route(
            proto::ADMIN_DECIDE_EXCEPTION,
            post(admin_decide_exception).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)),
        )
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), require_admin));
    Router::new()
        .route(proto::ENROLL, post(enroll).layer(DefaultBodyLimit::max(MAX_SMALL_BODY)))
        .merge(agents)
        .merge(admins)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), with_deadline))
        .with_state(app)
}

/// The security team's routes: an administrator's certificate the
/// database still accepts (issued here, not revoked, not expired); every
/// request is logged with its answer's status, refused ones included.
async fn require_admin(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let Some(AdminPeer(Some((name, serial)))) = request.extensions().get::<AdminPeer>().cloned() else {
        return error(StatusCode::UNAUTHORIZED, "an administrator's certificate is required");
    };
    let (method, path) = (request.method().to_string(), request.uri().path().to_owned());
    let response = match db::admin_cert_valid(&app.pool, &name, &serial).await {
        Ok(true) => {
            request.extensions_mut().insert(Admin(name.clone()));
            next.run(request).await
        }
        Ok(false) => {
            error(StatusCode::FORBIDDEN, "this administrator's certificate is revoked, expired or unknown")
        }
        Err(e) => return internal(&e),
    };
    if let Err(e) =
        db::log_admin_access(&app.pool, &name, &serial, &method, &path, response.status().as_u16()).await
    {
        warn!(error = %format!("{e:#}"), "administrator access not logged");
    }
    response
}

/// `key=value&…` of a query string whose values need no decoding (dates,
/// words): anything encoded is refused rather than guessed.
fn query_params(request_query: Option<&str>) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    for pair in request_query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let plain = |t: &str| t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !plain(key) || !plain(value) || key.len() > 32 || value.len() > 64 {
            return None;
        }
        params.insert(key.to_owned(), value.to_owned());
    }
    Some(params)
}

fn bad_query() -> Response {
    error(StatusCode::BAD_REQUEST, "query parameters are plain words and dates")
}

/// The fleet at a glance: every workstation and every export destination.
async fn admin_overview(State(app): State<Arc<App>>) -> Response {
    let agents = match db::list_agents(&app.pool).await {
        Ok(agents) => agents,
        Err(e) => return internal(&e),
    };
    let exports = match crate::export::status(&app.pool).await {
        Ok(exports) => exports,
        Err(e) => return internal(&e),
    };
    Json(serde_json::json!({ "agents": agents, "exports": exports })).into_response()
}

/// The fleet's AI software, users as pseudonyms: `?filter=all|broad|pending`.
async fn admin_inventory(State(app): State<Arc<App>>, request: Request) -> Response {
    let Some(params) = query_params(request.uri().query()) else { return bad_query() };
    let filter = match params.get("filter").map_or("all", String::as_str) {
        "all" => db::InventoryFilter::All,
        "broad" => db::InventoryFilter::Broad,
        "pending" => db::InventoryFilter::Pending,
        other => {
            return error(StatusCode::BAD_REQUEST, format!("filter is all, broad or pending, not {other}"))
        }
    };
    match db::list_inventory(&app.pool, &app.admin_pseudonyms, filter).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => internal(&e),
    }
}

/// One decision of the review, taken by the administrator who asks.
async fn admin_recertify(
    State(app): State<Arc<App>>,
    Extension(Admin(name)): Extension<Admin>,
    body: Bytes,
) -> Response {
    let Ok(asked) = serde_json::from_slice::<proto::RecertifyRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"find\", \"right\", \"decision\": keep|remove, \"note\"}",
        );
    };
    if !matches!(asked.decision.as_str(), "keep" | "remove") {
        return error(StatusCode::BAD_REQUEST, "a decision is keep or remove");
    }
    match db::recertify(&app.pool, &asked.find, &asked.right, &asked.decision, &name, &asked.note).await {
        Ok(Some(decision)) => {
            info!(admin = %name, find = %asked.find, right = %asked.right, decision = %asked.decision, "recertification");
            Json(decision).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such find holding that right"),
        Err(e) => internal(&e),
    }
}

/// The exception requests of the last 90 days: `?filter=pending|all`.
async fn admin_exceptions(State(app): State<Arc<App>>, request: Request) -> Response {
    let Some(params) = query_params(request.uri().query()) else { return bad_query() };
    let pending = match params.get("filter").map_or("pending", String::as_str) {
        "pending" => true,
        "all" => false,
        other => return error(StatusCode::BAD_REQUEST, format!("filter is pending or all, not {other}")),
    };
    match db::list_exception_requests(&app.pool, &app.admin_pseudonyms, pending).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => internal(&e),
    }
}

/// Grants or refuses one exception request, as the administrator who asks.
async fn admin_decide_exception(
    State(app): State<Arc<App>>,
    Extension(Admin(name)): Extension<Admin>,
    body: Bytes,
) -> Response {
    let Ok(asked) = serde_json::from_slice::<proto::ExceptionDecisionRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"request\", \"decision\": grant|refuse, \"note\"}",
        );
    };
    if !matches!(asked.decision.as_str(), "grant" | "refuse") {
        return error(StatusCode::BAD_REQUEST, "a decision is grant or refuse");
    }
    match db::decide_exception(&app.pool, &asked.request, &asked.decision, &name, &asked.note).await {
        Ok(Some(decision)) => {
            info!(admin = %name, request = %asked.request, decision = %asked.decision, "exception request decided");
            Json(decision).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such exception request"),
        Err(e) => internal(&e),
    }
}

/// The periodic review as HTML: `?from=YYYY-MM-DD&to=YYYY-MM-DD&lang=fr|en`.
async fn admin_report(State(app): State<Arc<App>>, request: Request) -> Response {
    let Some(params) = query_params(request.uri().query()) else { return bad_query() };
    let day = |key: &str| params.get(key).map(|d| crate::report::parse_day(d)).transpose();
    let (Ok(Some(from)), Ok(Some(to))) = (day("from"), day("to")) else {
        return error(StatusCode::BAD_REQUEST, "from and to are dates (YYYY-MM-DD)");
    };
    let period = match crate::report::Period::new(from, to) {
        Ok(period) => period,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    };
    let lang = match params.get("lang").map_or("fr", String::as_str) {
        "fr" => crate::report::Lang::Fr,
        "en" => crate::report::Lang::En,
        _ => return error(StatusCode::BAD_REQUEST, "lang is fr or en"),
    };
    let data = match crate::report::gather(&app.pool, period, &app.admin_pseudonyms).await {
        Ok(data) => data,
        Err(e) => return internal(&e),
    };
    let generated = OffsetDateTime::now_utc().date().to_string();
    let html = crate::report::render_html(&data, period, lang, &generated);
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn require_certificate(request: Request, next: Next) -> Response {
    match request.extensions().get::<Peer>() {
        Some(Peer(Some(_))) => next.run(request).await,
        _ => error(StatusCode::UNAUTHORIZED, "a client certificate from the fleet CA is required"),
    }
}

/// A whole request, body included, within `request_seconds`: a body
/// trickled slowly is cut.
async fn with_deadline(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let limit = Duration::from_secs(app.config.request_seconds);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(StatusCode::REQUEST_TIMEOUT, "the request took too long"),
    }
}

/// Splits `<uuid>.<base64url secret>`.
pub fn parse_token(token: &str) -> Option<(Uuid, Vec<u8>)> {
    let (id, secret) = token.split_once('.')?;
    Some((Uuid::parse_str(id).ok()?, B64URL.decode(secret).ok()?))
}

/// Printable text of at most `max` characters, as the database and the
/// console want it (control characters, NUL included, dropped).
fn clean(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

fn issued_cert(issued: pki::Issued) -> IssuedCert {
    IssuedCert { pem: issued.pem, serial: issued.serial, not_after: system_time(issued.not_after) }
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn enroll(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<EnrollRequest>(&body) else {
        return error(StatusCode::BAD_REQUEST, "not an enrolment request");
    };
    let refused = || error(StatusCode::FORBIDDEN, EnrollError::Token.to_string());
    let Some((token_id, secret)) = parse_token(&request.token) else {
        return refused();
    };
    let digest = Sha256::digest(&secret);
    let agent = Uuid::new_v4();
    let hostname = clean(&request.hostname, 255);
    let version = clean(&request.version, 64);
    let new = db::NewAgent { id: agent, hostname: &hostname, version: &version };
    let issue = || app.issuer.issue(agent, &request.csr_pem).map(issued_cert);
    let (group, issued) = match db::enroll(&app.pool, token_id, digest.as_slice(), &new, issue).await {
        Ok(enrolled) => enrolled,
        Err(EnrollError::Token) => {
            warn!(token = %token_id, "enrolment refused");
            return refused();
        }
        Err(EnrollError::Request(why)) => return error(StatusCode::BAD_REQUEST, why),
        Err(EnrollError::Database(e)) => return internal(&e),
    };
    info!(agent = %agent, group = %group, hostname = %hostname, "agent enrolled");
    app.remember(agent, AgentCerts { group: group.clone(), serial: issued.serial.clone(), previous: None });
    certificate_answer(agent, group, issued)
}

/// What enrolment and renewal answer: the certificate for the agent id.
fn certificate_answer(agent: Uuid, group: String, issued: IssuedCert) -> Response {
    Json(EnrollResponse {
        agent_id: agent.to_string(),
        group,
        certificate_pem: issued.pem,
        not_after: unix_secs(issued.not_after),
    })
    .into_response()
}

fn system_time(t: OffsetDateTime) -> SystemTime {
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// The agent behind the request, if its certificate is the one it holds
/// now and it is enrolled and not revoked; the answer to send otherwise.
async fn authenticated(app: &App, peer: &Peer) -> Result<Uuid, Response> {
    let Some((agent, serial)) = &peer.0 else {
        return Err(error(StatusCode::UNAUTHORIZED, "a client certificate from the fleet CA is required"));
    };
    let agent = *agent;
    if app.is_revoked(agent) {
        return Err(error(StatusCode::FORBIDDEN, "this agent is revoked"));
    }
    let now = SystemTime::now();
    let cached = app.known.read().ok().and_then(|k| k.get(&agent).cloned());
    if cached.is_some_and(|certs| certs.accepts(serial, now)) {
        return Ok(agent);
    }
    // Unknown here, or another certificate: the database says (a renewal
    // through another collector, or a copy of a replaced certificate).
    match db::agent_certs(&app.pool, agent).await {
        Ok(Some(certs)) => {
            let accepted = certs.accepts(serial, now);
            app.remember(agent, certs);
            if accepted {
                Ok(agent)
            } else {
                warn!(agent = %agent, serial = %serial, "a replaced certificate was presented");
                Err(error(StatusCode::FORBIDDEN, "this certificate was replaced by a renewal"))
            }
        }
        Ok(None) => Err(error(StatusCode::FORBIDDEN, "this agent is not enrolled or is revoked")),
        Err(e) => Err(internal(&e)),
    }
}

async fn renew(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>, body: Bytes) -> Response {
    let agent = match authenticated(&app, &peer).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let Ok(request) = serde_json::from_slice::<RenewRequest>(&body) else {
        return error(StatusCode::BAD_REQUEST, "not a renewal request");
    };
    let issued = match app.issuer.issue(agent, &request.csr_pem) {
        Ok(issued) => issued_cert(issued),
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let certs = match db::renewed(&app.pool, agent, &issued).await {
        Ok(Some(certs)) => certs,
        Ok(None) => return error(StatusCode::FORBIDDEN, "this agent is revoked"),
        Err(e) => return internal(&e),
    };
    let group = certs.group.clone();
    app.remember(agent, certs);
    info!(agent = %agent, "certificate renewed");
    certificate_answer(agent, group, issued)
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

/// The batch in a body: inflated if need be, parsed, bounded; or the
/// status and reason to answer.
fn read_batch(body: &[u8], gzip: bool) -> Result<EventBatch, (StatusCode, String)> {
    let inflated;
    let json = if gzip {
        inflated = inflate(body, proto::MAX_BATCH_BYTES).map_err(|(status, why)| (status, why.to_owned()))?;
        &inflated[..]
    } else {
        body
    };
    let batch: EventBatch = serde_json::from_slice(json)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("not an event batch: {e}")))?;
    if batch.events.len() > proto::MAX_BATCH_EVENTS || batch.answers.len() > proto::MAX_BATCH_EVENTS {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {} events per batch", proto::MAX_BATCH_EVENTS),
        ));
    }
    if batch.inventory.as_ref().is_some_and(|items| items.len() > proto::MAX_INVENTORY_ITEMS) {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {} finds in an inventory", proto::MAX_INVENTORY_ITEMS),
        ));
    }
    Ok(batch)
}

async fn events(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let agent = match authenticated(&app, &peer).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let Ok(_permit) = app.batches.try_acquire() else {
        return busy("the collector is busy");
    };
    let gzip =
        headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    // Inflating and parsing megabytes is CPU work: off the I/O threads.
    let batch = match tokio::task::spawn_blocking(move || read_batch(&body, gzip)).await {
        Ok(Ok(batch)) => batch,
        Ok(Err((status, why))) => return error(status, why),
        Err(e) => return internal(&anyhow::anyhow!("batch reader: {e}")),
    };
    let count = batch.events.len();
    if !batch.answers.is_empty() {
        if let Err(e) = db::store_answers(&app.pool, agent, &batch.answers).await {
            return internal(&e);
        }
    }
    if let Some(items) = &batch.inventory {
        if let Err(e) = db::store_inventory(&app.pool, agent, items).await {
            return internal(&e);
        }
    }
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

/// A heartbeat as it will be stored: printable, bounded text; the
/// enrolled host name is kept (an agent cannot rename itself).
fn clean_heartbeat(beat: Heartbeat) -> Result<Heartbeat, &'static str> {
    if beat.bundle_version.is_some_and(|v| i64::try_from(v).is_err()) {
        return Err("bundle_version out of range");
    }
    let mut outbox = beat.outbox;
    outbox.last_error = outbox.last_error.map(|e| clean(&e, 512));
    Ok(Heartbeat {
        version: clean(&beat.version, 64),
        hostname: String::new(),
        mode: clean(&beat.mode, 16),
        policy: clean(&beat.policy, 256),
        bundle_version: beat.bundle_version,
        health: clean(&beat.health, 512),
        outbox,
        // Printable names, at most 64 of them: a heartbeat stays small.
        counters: beat.counters.into_iter().take(64).map(|(k, v)| (clean(&k, 64), v)).collect(),
    })
}

async fn heartbeat(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>, body: Bytes) -> Response {
    let agent = match authenticated(&app, &peer).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let Ok(beat) = serde_json::from_slice::<Heartbeat>(&body) else {
        return error(StatusCode::BAD_REQUEST, "not a heartbeat");
    };
    match clean_heartbeat(beat) {
        Ok(beat) => {
            app.mark_seen(agent, Some(beat));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(why) => error(StatusCode::BAD_REQUEST, why),
    }
}

async fn policy(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let agent = match authenticated(&app, &peer).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    app.mark_seen(agent, None);
    // The ETag first: an unchanged bundle costs no read of the bundle.
    let etag = match db::latest_etag(&app.pool).await {
        Ok(Some(etag)) => etag,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no policy bundle is published"),
        Err(e) => return internal(&e),
    };
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let (bundle, etag) = match db::latest_bundle(&app.pool).await {
        Ok(Some(latest)) => latest,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no policy bundle is published"),
        Err(e) => return internal(&e),
    };
    let mut response = (StatusCode::OK, bundle).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Connections per remote address, released when a connection ends.
#[derive(Debug, Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

struct AddressSlot(Arc<PerAddress>, IpAddr);

impl PerAddress {
    fn take(self: &Arc<Self>, address: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut counts = self.0.lock().ok()?;
        let count = counts.entry(address).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot(Arc::clone(self), address))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.0 .0.lock() {
            if let Some(count) = counts.get_mut(&self.1) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&self.1);
                }
            }
        }
    }
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
    let connections = Arc::new(Semaphore::new(app.config.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let per_address_limit = app.config.max_connections_per_address;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit.context("connection limit")?,
            () = &mut shutdown => return Ok(()),
        };
        let (tcp, remote) = tokio::select! {
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
        let Some(slot) = per_address.take(remote.ip(), per_address_limit) else {
            // One address holding its share: closed at once, not queued.
            drop(tcp);
            continue;
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let _held = (permit, slot);
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                return;
            };
            let identity =
                stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| pki::peer_of(c));
            let (agent, admin) = match identity {
                Some(pki::PeerIdentity::Agent(agent, serial)) => (Some((agent, serial)), None),
                Some(pki::PeerIdentity::Admin(name, serial)) => (None, Some((name, serial))),
                None => (None, None),
            };
            let service = hyper_util::service::TowerToHyperService::new(
                router.layer(Extension(Peer(agent))).layer(Extension(AdminPeer(admin))),
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Background work: revocations read every second, "last seen" written
/// every five, partitions and retention every hour.
pub fn spawn_maintenance(app: &Arc<App>) {
    let revocations = Arc::clone(app);
    tokio::spawn(async move {
        loop {
            refresh_revocations(&revocations).await;
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

/// Takes the revoked set from the database whole.
pub async fn refresh_revocations(app: &App) {
    match db::revoked(&app.pool).await {
        Ok(revoked) => {
            if let Ok(mut known) = app.known.write() {
                known.retain(|id, _| !revoked.contains(id));
            }
            if let Ok(mut current) = app.revoked.write() {
                *current = revoked;
            }
        }
        Err(e) => warn!(error = %format!("{e:#}"), "reading revocations"),
    }
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
    let days: Vec<Date> = (0..3).filter_map(|n| today.checked_add(time::Duration::days(n))).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_are_cleaned_and_cannot_rename_the_host() {
        let beat = Heartbeat {
            version: "1.0\0\u{7}".into(),
            hostname: "someone-else".into(),
            health: "x".repeat(10_000),
            bundle_version: Some(3),
            ..Heartbeat::default()
        };
        let clean = clean_heartbeat(beat).unwrap();
        assert_eq!((clean.version.as_str(), clean.hostname.as_str(), clean.health.len()), ("1.0", "", 512));
        let too_big = Heartbeat { bundle_version: Some(u64::MAX), ..Heartbeat::default() };
        assert!(clean_heartbeat(too_big).is_err());
    }

    #[test]
    fn tokens_parse_or_not() {
        let id = Uuid::new_v4();
        assert_eq!(parse_token(&format!("{id}.AQID")), Some((id, vec![1, 2, 3])));
        for junk in ["", ".", "x.AQID", &format!("{id}"), &format!("{id}.!!")] {
            assert_eq!(parse_token(junk), None, "{junk}");
        }
    }

    #[test]
    fn one_address_gets_its_share_of_connections_and_gives_them_back() {
        let table = Arc::new(PerAddress::default());
        let address: IpAddr = [192, 0, 2, 7].into();
        let held: Vec<_> = (0..3).map(|_| table.take(address, 3).unwrap()).collect();
        assert!(table.take(address, 3).is_none());
        assert!(table.take([192, 0, 2, 8].into(), 3).is_some(), "others are not affected");
        drop(held);
        assert!(table.take(address, 3).is_some());
    }
}
