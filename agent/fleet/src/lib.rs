//! The fleet: what agents and the collector say to each other, and the
//! signed policy bundle the security team publishes through it.
//!
//! Identity is the agent's TLS client certificate (subject = agent id),
//! issued by the fleet CA at enrolment: nothing in a request body says who
//! the agent is. See `agent/FLEET.md` for the whole design.

pub mod bundle;
pub mod proto;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "https")]
pub mod https;

use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file and a rename, with
/// `mode` set before any byte is written: a crash leaves the old file or
/// the new one, and a key is never readable by others, not even briefly.
pub fn write_private(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    // Elsewhere the file takes its folder's access list (agent/PORTING.md:
    // the service's state folder is the administrators' and SYSTEM's).
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// The TLS primitives of both ends: ring, which builds with nothing but a C
/// compiler. rustls marks it deprecated because it has no post-quantum key
/// exchange (X25519MLKEM768 needs aws-lc-rs); moving both ends to aws-lc-rs
/// is a one-line change here once its build is accepted in CI.
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
