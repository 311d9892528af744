//! The fleet collector: agents' events on PostgreSQL, behind mutual TLS.
//! See `agent/FLEET.md`.

pub mod alerts;
pub mod config;
pub mod db;
pub mod export;
pub mod pki;
pub mod report;
pub mod server;
