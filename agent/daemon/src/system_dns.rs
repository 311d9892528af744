//! Pointing the workstation's DNS at the agent's resolver, and back.
//!
//! `vigie-agent dns on` (run by an administrator or the package, as root,
//! outside the service's sandbox) puts the agent's resolver first in a
//! plain `/etc/resolv.conf` and keeps the network's nameservers after it,
//! for when the agent does not answer (the resolver then forwards to them).
//! The file as it was is kept beside the store, so that `dns off` (and the
//! package's removal) puts it back exactly.
//!
//! With systemd-resolved (resolv.conf a link into `/run/systemd/resolve/`),
//! the link gives way to a file that asks the agent first and resolved's
//! stub after it (when the agent does not answer): applications ask the
//! agent directly, so each lookup is attributed to its own program rather
//! than to resolved. The agent forwards to the servers resolved uses, never
//! to its stub (resolved reads a resolv.conf it does not own and would ask
//! the agent back: see `resolver::UpstreamFiles`). The agent is never made
//! resolved's upstream either: resolved would also ask the links' servers
//! in parallel and attribute everything to itself. `dns off` puts the link
//! back. Links to other managers (resolvconf, NetworkManager's own file)
//! are refused: they rewrite what the link points to, and the README says
//! what to do.
//!
//! While the saved copy exists, the agent's integrity checks expect the
//! resolver first and record it when something moved DNS away.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::platform::portable;

/// The files involved: the system's resolv.conf and the saved original.
#[derive(Debug, Clone)]
pub struct SystemDns {
    pub resolv_conf: PathBuf,
    /// The original's text (for a link, the text it pointed to).
    pub saved: PathBuf,
    /// Where the original link pointed, when it was one.
    pub saved_link: PathBuf,
    /// systemd-resolved's list of the servers it forwards to, read to
    /// refuse a set-up where resolved already forwards to the agent.
    pub resolved_upstreams: PathBuf,
}

/// The folder whose files systemd-resolved writes for resolv.conf links.
const RESOLVED_RUN_DIR: &str = "run/systemd/resolve/";

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
            saved_link: state_dir.join("resolv.conf.link-before-vigie"),
            resolved_upstreams: PathBuf::from("/run/systemd/resolve/resolv.conf"),
        }
    }

    /// Puts `resolver` first. Idempotent: a second `on` keeps the first
    /// saved original.
    pub fn point(&self, resolver: IpAddr) -> Result<bool> {
        let meta = std::fs::symlink_metadata(&self.resolv_conf)
            .with_context(|| format!("reading {}", self.resolv_conf.display()))?;
        let link = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&self.resolv_conf)
                .with_context(|| format!("reading the link {}", self.resolv_conf.display()))?;
            if !target.to_string_lossy().contains(RESOLVED_RUN_DIR) {
                bail!(
                    "{} is a link to {}: another program (resolvconf, NetworkManager) rewrites what it \
                     points to; point that program at {resolver} as the README says instead",
                    self.resolv_conf.display(),
                    target.display()
                );
            }
            self.refuse_resolved_loop(resolver)?;
            Some(target)
        } else {
            None
        };
        let current = std::fs::read_to_string(&self.resolv_conf)
            .with_context(|| format!("reading {}", self.resolv_conf.display()))?;
        if link.is_none() && self.saved.exists() && first_nameserver(&current) == Some(resolver) {
            return Ok(false);
        }
        // The file to put back is the latest one not written here: a DHCP
        // client that rewrote it since knows the network's resolvers better.
        if !current.starts_with(MARKER) {
            write_atomically(&self.saved, current.as_bytes(), 0o644)?;
            if let Some(target) = &link {
                write_atomically(&self.saved_link, target.as_os_str().as_encoded_bytes(), 0o644)?;
            } else {
                remove_if_there(&self.saved_link)?;
            }
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
        if ours {
            match self.saved_link_target() {
                Some(target) => link_atomically(&self.resolv_conf, &target)?,
                None => write_atomically(&self.resolv_conf, &original, 0o644)?,
            }
        }
        remove_if_there(&self.saved_link)?;
        std::fs::remove_file(&self.saved).with_context(|| format!("removing {}", self.saved.display()))?;
        Ok(ours)
    }

    /// Where resolv.conf pointed before `dns on`, when it was a link.
    pub fn saved_link_target(&self) -> Option<PathBuf> {
        std::fs::read(&self.saved_link)
            .ok()
            .map(|bytes| PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// systemd-resolved already forwarding to the agent (an earlier manual
    /// set-up with `DNS=` in resolved.conf) plus the agent forwarding to
    /// resolved's stub would send every lookup round in a loop.
    fn refuse_resolved_loop(&self, resolver: IpAddr) -> Result<()> {
        let text = std::fs::read_to_string(&self.resolved_upstreams).unwrap_or_default();
        if nameservers(&text).any(|ip| ip == resolver) {
            bail!(
                "systemd-resolved already forwards to the agent ({resolver} is in {}): remove that DNS= \
                 line from resolved's configuration (/etc/systemd/resolved.conf and its .d folder) first, \
                 or lookups would go round between the two",
                self.resolved_upstreams.display()
            );
        }
        Ok(())
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

/// The `nameserver` addresses of a resolv.conf, in order (a link-local
/// address's `%scope` dropped).
pub fn nameservers(text: &str) -> impl Iterator<Item = IpAddr> + '_ {
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
        "{MARKER}: the agent's resolver first, then the network's or systemd-resolved's (used\n\
         # when the agent does not answer). `vigie-agent dns off` puts back the previous file.\n\
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

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Makes `path` a link to `target` in one rename, as `write_atomically`.
fn link_atomically(path: &Path, target: &Path) -> Result<()> {
    let temporary = temporary_beside(path);
    remove_if_there(&temporary)?;
    portable::symlink(target, &temporary)
        .with_context(|| format!("linking {} to {}", temporary.display(), target.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

fn temporary_beside(path: &Path) -> PathBuf {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent.join(format!(".{name}.vigie-new"))
}

/// Writes beside the target then renames: a reader sees the old file or
/// the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let temporary = temporary_beside(path);
    let mut file =
        std::fs::File::create(&temporary).with_context(|| format!("writing {}", temporary.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    portable::set_mode(&temporary, mode)
        .with_context(|| format!("setting the mode of {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 153));

    fn in_folder(dir: &Path) -> SystemDns {
        SystemDns {
            resolv_conf: dir.join("resolv.conf"),
            saved: dir.join("saved"),
            saved_link: dir.join("saved-link"),
            resolved_upstreams: dir.join("run/systemd/resolve/resolv.conf"),
        }
    }

    fn files(resolv: &str) -> (tempfile::TempDir, SystemDns) {
        let dir = tempfile::tempdir().unwrap();
        let dns = in_folder(dir.path());
        std::fs::write(&dns.resolv_conf, resolv).unwrap();
        (dir, dns)
    }

    /// resolv.conf linked, as Debian's systemd-resolved package does, to
    /// resolved's stub file (relative link, like the package's).
    fn resolved_files(upstreams: &str) -> (tempfile::TempDir, SystemDns) {
        let dir = tempfile::tempdir().unwrap();
        let dns = in_folder(dir.path());
        std::fs::create_dir_all(dir.path().join("run/systemd/resolve")).unwrap();
        std::fs::write(
            dir.path().join("run/systemd/resolve/stub-resolv.conf"),
            "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n\
             nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n",
        )
        .unwrap();
        std::fs::write(&dns.resolved_upstreams, upstreams).unwrap();
        std::os::unix::fs::symlink("run/systemd/resolve/stub-resolv.conf", &dns.resolv_conf).unwrap();
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
    fn a_link_another_manager_rewrites_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("resolvconf-resolv.conf");
        std::fs::write(&target, "nameserver 10.0.0.2\n").unwrap();
        let dns = in_folder(dir.path());
        std::os::unix::fs::symlink(&target, &dns.resolv_conf).unwrap();
        let error = dns.point(AGENT).unwrap_err().to_string();
        assert!(error.contains("is a link to") && error.contains("resolvconf-resolv.conf"), "{error}");
        assert!(!dns.saved.exists() && !dns.saved_link.exists());
    }

    #[test]
    fn with_systemd_resolved_the_agent_comes_before_its_stub_and_off_puts_the_link_back() {
        let (_dir, dns) = resolved_files("nameserver 10.0.0.2\n");
        assert!(dns.point(AGENT).unwrap());
        let meta = std::fs::symlink_metadata(&dns.resolv_conf).unwrap();
        assert!(meta.file_type().is_file(), "the link gave way to a file");
        let now = std::fs::read_to_string(&dns.resolv_conf).unwrap();
        let servers: Vec<IpAddr> = nameservers(&now).collect();
        assert_eq!(servers, ["127.0.0.153", "127.0.0.53"].map(|s| s.parse::<IpAddr>().unwrap()));
        assert!(now.contains("search corp.example") && now.contains("options edns0 trust-ad"));
        assert_eq!(dns.state(AGENT), DnsState::PointedAtAgent);
        assert!(!dns.point(AGENT).unwrap(), "a second `on` changes nothing");
        assert_eq!(dns.saved_link_target(), Some(PathBuf::from("run/systemd/resolve/stub-resolv.conf")));

        // Someone links it back to the stub: moved away, and `on` again
        // takes the link as the original to put back.
        std::fs::remove_file(&dns.resolv_conf).unwrap();
        std::os::unix::fs::symlink("run/systemd/resolve/stub-resolv.conf", &dns.resolv_conf).unwrap();
        assert_eq!(dns.state(AGENT), DnsState::MovedAway { first: Some("127.0.0.53".parse().unwrap()) });
        assert!(dns.point(AGENT).unwrap());

        assert!(dns.restore().unwrap());
        assert_eq!(
            std::fs::read_link(&dns.resolv_conf).unwrap(),
            PathBuf::from("run/systemd/resolve/stub-resolv.conf"),
            "the same relative link as before"
        );
        assert!(!dns.saved.exists() && !dns.saved_link.exists());
        assert_eq!(dns.state(AGENT), DnsState::Untouched);
    }

    #[test]
    fn a_plain_file_after_a_link_is_put_back_as_a_file() {
        let (_dir, dns) = resolved_files("nameserver 10.0.0.2\n");
        assert!(dns.point(AGENT).unwrap());
        // NetworkManager writes a plain file over it; `on` again.
        std::fs::write(&dns.resolv_conf, "nameserver 192.168.1.1\n").unwrap();
        assert!(dns.point(AGENT).unwrap());
        assert!(!dns.saved_link.exists(), "the original to put back is now the plain file");
        assert!(dns.restore().unwrap());
        assert_eq!(std::fs::read_to_string(&dns.resolv_conf).unwrap(), "nameserver 192.168.1.1\n");
        assert!(std::fs::symlink_metadata(&dns.resolv_conf).unwrap().file_type().is_file());
    }

    #[test]
    fn resolved_already_forwarding_to_the_agent_is_refused_as_a_loop() {
        let (_dir, dns) = resolved_files("nameserver 127.0.0.153\nnameserver 10.0.0.2\n");
        let error = dns.point(AGENT).unwrap_err().to_string();
        assert!(error.contains("already forwards to the agent") && error.contains("DNS="), "{error}");
        assert!(
            std::fs::symlink_metadata(&dns.resolv_conf).unwrap().file_type().is_symlink(),
            "left as it was"
        );
        assert!(!dns.saved.exists());
    }
}
