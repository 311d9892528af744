//! Vigie detection core: everything between bytes on the wire and a stored,
//! policy-decided event. No pnet, no Tauri, no async runtime: the live agent
//! and the console both build on it, and `vigie-agent scan` replays captures
//! through exactly the same `pipeline::Pipeline`. Without its default
//! features (`sensor`, `store`) only the types, the catalog, the policy and
//! the detectors remain: what the console needs.

pub mod catalog;
pub mod clipboard;
pub mod detect;
pub mod diag;
pub mod event;
pub mod inventory;
#[cfg(feature = "sensor")]
pub mod pipeline;
pub mod policy;
pub mod proto;
#[cfg(feature = "sensor")]
pub mod replay;
#[cfg(feature = "sensor")]
pub mod resolver;
pub mod sensor;
pub mod siem;
pub mod sockdiag;
#[cfg(feature = "store")]
pub mod store;
pub mod timefmt;

/// Parser entry points for fuzzing and benchmarks; not a stable API.
#[cfg(feature = "sensor")]
#[doc(hidden)]
pub mod internal {
    pub use crate::resolver::wire::{age_response, inspect_response, parse_query, strip_ech, ttl_offsets};
    pub use crate::sensor::dns::parse_dns_message;
    pub use crate::sensor::frame::{decode_frame, LinkType};
    pub use crate::sensor::quic::{initial_client_hello_fragments, InitialKeys};
    pub use crate::sensor::tls::{parse_client_hello_body, parse_client_hello_records};
}
