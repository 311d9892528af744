//! The collector's HTTPS API, as types. Every body is JSON; event batches
//! are gzip-compressed (`Content-Encoding: gzip`). Unknown fields are
//! ignored both ways: agents and collectors of different versions coexist.

use serde::{Deserialize, Serialize};
use vigie_core::event::Event;

/// `POST /v1/enroll` (TLS pinned to the fleet CA, no client certificate).
pub const ENROLL: &str = "/v1/enroll";
/// `POST /v1/renew` (mutual TLS): a new certificate for the same agent.
pub const RENEW: &str = "/v1/renew";
/// `POST /v1/events` (mutual TLS): a batch from the agent's outbox.
pub const EVENTS: &str = "/v1/events";
/// `POST /v1/heartbeat` (mutual TLS).
pub const HEARTBEAT: &str = "/v1/heartbeat";
/// `GET /v1/policy` (mutual TLS, `If-None-Match`): the signed bundle in force.
pub const POLICY: &str = "/v1/policy";

/// The security team's console (mutual TLS with an administrator's
/// certificate, `vigie-collector admin-cert`): every workstation and every
/// export destination with its lag.
pub const ADMIN_OVERVIEW: &str = "/v1/admin/overview";
/// `GET ?filter=all|broad|pending`: the fleet's AI software, users as pseudonyms.
pub const ADMIN_INVENTORY: &str = "/v1/admin/inventory";
/// `POST` a [`RecertifyRequest`]: the review's decision on one right.
pub const ADMIN_RECERTIFY: &str = "/v1/admin/recertify";
/// `GET ?from=YYYY-MM-DD&to=YYYY-MM-DD&lang=fr|en`: the periodic review, HTML.
pub const ADMIN_REPORT: &str = "/v1/admin/report";

/// `GET ?filter=pending|all`: the exception requests of the last 90 days.
pub const ADMIN_EXCEPTIONS: &str = "/v1/admin/exceptions";
/// `POST` an [`ExceptionDecisionRequest`]: grant or refuse one.
pub const ADMIN_DECIDE_EXCEPTION: &str = "/v1/admin/exceptions/decide";

/// The decision on an exception request, asked from the console; who
/// decides is the certificate's holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionDecisionRequest {
    /// The request's handle, as the list gives it.
    pub request: String,
    /// `grant` or `refuse`.
    pub decision: String,
    #[serde(default)]
    pub note: String,
}

/// A recertification decision asked from the console; who decides is the
/// certificate's holder, never a field of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecertifyRequest {
    /// The find's handle, as the inventory lists it.
    pub find: String,
    pub right: String,
    /// `keep` or `remove`.
    pub decision: String,
    #[serde(default)]
    pub note: String,
}

/// Most events in one batch; the collector refuses more (413).
pub const MAX_BATCH_EVENTS: usize = 2_000;
/// At most this many finds in an inventory: a workstation with more is
/// sent its first ones, and says so in its log.
pub const MAX_INVENTORY_ITEMS: usize = 5_000;
/// Most bytes of a batch once decompressed; the collector stops reading past it.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// `<token id>.<secret>`, as `vigie-collector token create` printed it.
    pub token: String,
    /// A PKCS#10 request for the key the agent made; its subject is ignored.
    pub csr_pem: String,
    pub hostname: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub group: String,
    pub certificate_pem: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewRequest {
    pub csr_pem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventBatch {
    pub events: Vec<Event>,
    /// Users' answers to prompts (justifications, exception requests,
    /// acknowledgements), for the security team's review; sent once the
    /// events are. Absent from older agents' batches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<vigie_core::proto::Answer>,
    /// The workstation's AI software as it is now, whole (it replaces what
    /// the collector held); sent once events and answers are, when it
    /// changed. Absent from older agents' batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Vec<vigie_core::inventory::Item>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAck {
    /// Stored now.
    pub stored: u32,
    /// Already stored by an earlier attempt (a retry).
    pub duplicates: u32,
    /// Time stamps outside the collector's partitions (a clock far off):
    /// kept apart for review, not lost.
    pub quarantined: u32,
}

/// What an agent says of itself, every few minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub version: String,
    pub hostname: String,
    pub mode: String,
    /// The policy in force: its name and version.
    pub policy: String,
    /// The signed bundle in force, when the policy comes from the fleet.
    pub bundle_version: Option<u64>,
    /// `ok`, or what is wrong with enforcement (a stalled thread, rules gone).
    pub health: String,
    pub outbox: OutboxStatus,
    /// The agent's counters: events stored and dropped, resolver queries
    /// and denials, packets judged and rejected…
    #[serde(default)]
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// The agent's outbox: the local store's events not yet acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStatus {
    /// Events waiting to be sent (counted up to a cap, see `backlog_capped`).
    pub backlog: u64,
    /// More wait than `backlog` says.
    #[serde(default)]
    pub backlog_capped: bool,
    /// Events acknowledged by the collector since enrolment.
    pub sent: u64,
    /// Events deleted by local retention before they could be sent.
    pub dropped: u64,
    /// Events the collector refused one by one, skipped (kept locally).
    #[serde(default)]
    pub set_aside: u64,
    /// Microseconds since the Unix epoch.
    pub last_success: Option<i64>,
    pub last_error: Option<String>,
}

/// An error body: `{"error": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
