//! Pointing the workstation's DNS at the agent's resolver, and back.
//!
//! `vigie-agent dns on` (run by an administrator or the package, as root,
//! outside the service's sandbox) puts the agent's resolver first in a
//! plain `/etc/resolv.conf` and keeps the network's nameservers after it,
//! for when the agent does not answer (the resolver then forwards to them).
//! The file as it was is kept beside the store, so that `dns off` (and the
//! package's removal) puts it back exactly. A resolv.conf that another
//! program manages (a symlink: systemd-resolved, resolvconf) is not
//! rewritten: the README says how to point those at the agent.
//!
//! While the saved copy exists, the agent's integrity checks expect the
//! resolver first and record it when something moved DNS away.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The files involved: the system's resolv.conf and the saved original.
#[derive(Debug, Clone)]
pub struct SystemDns {
    pub resolv_conf: PathBuf,
    pub saved: PathBuf,
}

/// The first line of a resolv.conf written by `dns on`.
const MARKER: &str = "# Written by `vigie-agent dns on`";

/// glibc reads only the first three nameservers (MAXNS).
const MAX_NAMESERVERS: usize = 3;

/// What `status` finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsState {
    /// Not changed by the agent.
    Untouched,
    /// Changed by `dns on`, and the agent's resolver is first.
    PointedAtAgent,
    /// Changed by `dns on`, but something moved DNS away since.
    MovedAway { first: Option<IpAddr> },
}

impl SystemDns {
    /// The system's files; the saved copy beside the event store.
    pub fn system(state_dir: &Path) -> Self {
        Self {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            saved: state_dir.join("resolv.conf.before-vigie"),
        }
    }

    /// Puts `resolver` first. Idempotent: a second `on` keeps the first
    /// saved original.
    pub fn point(&self, resolver: IpAddr) -> Result<bool> {
        let meta = std::fs::symlink_metadata(&self.resolv_conf)
            .with_context(|| format!("reading {}", self.resolv_conf.display()))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&self.resolv_conf).unwrap_or_default();
            bail!(
                "{} is a link to {}: another program (systemd-resolved, resolvconf) manages DNS here; \
                 point it at {resolver} as the README says instead",
                self.resolv_conf.display(),
                target.display()
            );
        }
        let current = std::fs::read_to_string(&self.resolv_conf)
            .with_context(|| format!("reading {}", self.resolv_conf.display()))?;
        if self.saved.exists() && first_nameserver(&current) == Some(resolver) {
            return Ok(false);
        }
        // The file to put back is the latest one not written here: a DHCP
        // client that rewrote it since knows the network's resolvers better.
        if !current.starts_with(MARKER) {
            write_atomically(&self.saved, current.as_bytes(), 0o644)?;
        }
        let original = std::fs::read_to_string(&self.saved)
            .with_context(|| format!("reading {}", self.saved.display()))?;
        write_atomically(&self.resolv_conf, pointed(&original, resolver).as_bytes(), 0o644)?;
        Ok(true)
    }

    /// Puts back the file `point` saved, if the one in place is still the
    /// one `point` wrote (else something rewrote it since, a DHCP client or
    /// an administrator, and it stays); `false` when nothing was put back.
    pub fn restore(&self) -> Result<bool> {
        let original = match std::fs::read(&self.saved) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.saved.display())),
        };
        let ours = !std::fs::symlink_metadata(&self.resolv_conf).is_ok_and(|m| m.file_type().is_symlink())
            && std::fs::read_to_string(&self.resolv_conf).is_ok_and(|text| text.starts_with(MARKER));
        if !ours {
            std::fs::remove_file(&self.saved)
                .with_context(|| format!("removing {}", self.saved.display()))?;
            return Ok(false);
        }
        write_atomically(&self.resolv_conf, &original, 0o644)?;
        std::fs::remove_file(&self.saved).with_context(|| format!("removing {}", self.saved.display()))?;
        Ok(true)
    }

    pub fn state(&self, resolver: IpAddr) -> DnsState {
        if !self.saved.exists() {
            return DnsState::Untouched;
        }
        let current = std::fs::read_to_string(&self.resolv_conf).unwrap_or_default();
        match first_nameserver(&current) {
            Some(first) if first == resolver => DnsState::PointedAtAgent,
            first => DnsState::MovedAway { first },
        }
    }
}

/// The resolver's address that clients use (the first listen address).
pub fn resolver_address(listen: &[SocketAddr]) -> Option<IpAddr> {
    listen.first().map(SocketAddr::ip)
}

fn nameservers(text: &str) -> impl Iterator<Item = IpAddr> + '_ {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
}

fn first_nameserver(text: &str) -> Option<IpAddr> {
    nameservers(text).next()
}

/// `original` with `resolver` first and the network's nameservers after it
/// (as many as glibc reads), every other line kept.
fn pointed(original: &str, resolver: IpAddr) -> String {
    let mut out = format!(
        "{MARKER}: the agent's resolver first, then the network's (used when the agent does not\n\
         # answer). `vigie-agent dns off` puts back the previous file.\n\
         nameserver {resolver}\n"
    );
    let mut kept = 1;
    for line in original.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("nameserver") {
            let ip = rest.trim().split('%').next().and_then(|s| s.parse::<IpAddr>().ok());
            if ip == Some(resolver) || kept >= MAX_NAMESERVERS {
                continue;
            }
            kept += 1;
        } else if trimmed.starts_with(MARKER) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Writes beside the target then renames: a reader sees the old file or
/// the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = parent.join(format!(".{name}.vigie-new"));
    let mut file =
        std::fs::File::create(&temporary).with_context(|| format!("writing {}", temporary.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    set_mode(&temporary, mode)?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 153));

    fn files(resolv: &str) -> (tempfile::TempDir, SystemDns) {
        let dir = tempfile::tempdir().unwrap();
        let dns = SystemDns { resolv_conf: dir.path().join("resolv.conf"), saved: dir.path().join("saved") };
        std::fs::write(&dns.resolv_conf, resolv).unwrap();
        (dir, dns)
    }

    #[test]
    fn on_puts_the_agent_first_keeps_the_rest_and_off_restores_the_file_exactly() {
        let original = "# from DHCP\nsearch corp.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\noptions edns0\n";
        let (_dir, dns) = files(original);
        assert_eq!(dns.state(AGENT), DnsState::Untouched);
        assert!(dns.point(AGENT).unwrap());
        let now = std::fs::read_to_string(&dns.resolv_conf).unwrap();
        let servers: Vec<IpAddr> = nameservers(&now).collect();
        assert_eq!(servers, ["127.0.0.153", "10.0.0.2", "10.0.0.3"].map(|s| s.parse::<IpAddr>().unwrap()));
        assert!(now.contains("search corp.example") && now.contains("options edns0"));
        assert_eq!(dns.state(AGENT), DnsState::PointedAtAgent);
        assert!(!dns.point(AGENT).unwrap(), "a second `on` changes nothing");

        assert!(dns.restore().unwrap());
        assert_eq!(std::fs::read_to_string(&dns.resolv_conf).unwrap(), original);
        assert_eq!(dns.state(AGENT), DnsState::Untouched);
        assert!(!dns.restore().unwrap(), "nothing left to restore");
    }

    #[test]
    fn a_file_rewritten_since_by_dhcp_is_kept_and_becomes_the_one_to_put_back() {
        let (_dir, dns) = files("nameserver 10.0.0.2\n");
        assert!(dns.point(AGENT).unwrap());
        // The laptop moves: DHCP writes the new network's resolver.
        std::fs::write(&dns.resolv_conf, "nameserver 192.168.1.1\n").unwrap();
        assert_eq!(dns.state(AGENT), DnsState::MovedAway { first: Some("192.168.1.1".parse().unwrap()) });
        // `on` again: the agent first, then the new network's resolver.
        assert!(dns.point(AGENT).unwrap());
        let servers: Vec<IpAddr> = nameservers(&std::fs::read_to_string(&dns.resolv_conf).unwrap()).collect();
        assert_eq!(servers, ["127.0.0.153", "192.168.1.1"].map(|s| s.parse::<IpAddr>().unwrap()));
        assert!(dns.restore().unwrap());
        assert_eq!(std::fs::read_to_string(&dns.resolv_conf).unwrap(), "nameserver 192.168.1.1\n");
        // Rewritten after `on`, then `off`: what is there stays.
        assert!(dns.point(AGENT).unwrap());
        std::fs::write(&dns.resolv_conf, "nameserver 172.16.0.1\n").unwrap();
        assert!(!dns.restore().unwrap());
        assert_eq!(std::fs::read_to_string(&dns.resolv_conf).unwrap(), "nameserver 172.16.0.1\n");
        assert_eq!(dns.state(AGENT), DnsState::Untouched);
    }

    #[test]
    fn a_managed_resolv_conf_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("stub-resolv.conf");
        std::fs::write(&target, "nameserver 127.0.0.53\n").unwrap();
        let dns = SystemDns { resolv_conf: dir.path().join("resolv.conf"), saved: dir.path().join("saved") };
        std::os::unix::fs::symlink(&target, &dns.resolv_conf).unwrap();
        let error = dns.point(AGENT).unwrap_err().to_string();
        assert!(error.contains("is a link to") && error.contains("stub-resolv.conf"), "{error}");
        assert!(!dns.saved.exists());
    }
}
