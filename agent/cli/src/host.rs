//! What an administrator (or the package's scripts) changes on the machine
//! around the agent: where its DNS points, and the clean-up at removal.

use std::path::Path;

use anyhow::{bail, Context, Result};
use vigie_daemon::system_dns::{resolver_address, DnsState, SystemDns};
use vigie_daemon::Config;

use crate::client::print;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum DnsAction {
    On,
    Off,
    Status,
}

fn system_dns(config: &Config) -> Result<(SystemDns, std::net::IpAddr)> {
    let resolver = resolver_address(&config.resolver.listen).context("[resolver] listen is empty")?;
    Ok((SystemDns::system(config.state_dir()), resolver))
}

pub(crate) fn dns(action: DnsAction, config: Option<&Path>) -> Result<()> {
    let config = Config::load(config)?;
    let (dns, resolver) = system_dns(&config)?;
    let message = match action {
        DnsAction::On => {
            if let Some(parent) = dns.saved.parent() {
                std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
            }
            if dns.point(resolver)? {
                match dns.saved_link_target() {
                    Some(target) => format!(
                        "{} was a link to {} (systemd-resolved): it is now a file that asks the agent \
                         ({resolver}) first and resolved's stub after it; the agent forwards to the servers \
                         resolved uses. `vigie-agent dns off` puts the link back\n",
                        dns.resolv_conf.display(),
                        target.display()
                    ),
                    None => format!(
                        "{} now asks the agent ({resolver}) first; the previous file is kept in {}\n",
                        dns.resolv_conf.display(),
                        dns.saved.display()
                    ),
                }
            } else {
                format!("{} already asks the agent ({resolver}) first\n", dns.resolv_conf.display())
            }
        }
        DnsAction::Off => {
            let link = dns.saved_link_target();
            if dns.restore()? {
                if let Some(target) = link {
                    return print(&format!(
                        "{} is back as it was before `dns on`: a link to {}\n",
                        dns.resolv_conf.display(),
                        target.display()
                    ));
                }
                format!("{} is back as it was before `dns on`\n", dns.resolv_conf.display())
            } else {
                "nothing to put back: `dns on` changed nothing here\n".to_owned()
            }
        }
        DnsAction::Status => match dns.state(resolver) {
            DnsState::Untouched => "untouched: DNS is not pointed at the agent by `dns on`\n".to_owned(),
            DnsState::PointedAtAgent => format!("on: the agent ({resolver}) is asked first\n"),
            DnsState::MovedAway { first } => format!(
                "moved away: `dns on` pointed DNS at the agent, but {} now asks {} first\n",
                dns.resolv_conf.display(),
                first.map_or_else(|| "no nameserver".to_owned(), |ip| ip.to_string())
            ),
        },
    };
    print(&message)
}

/// Rules first: a configuration that no longer parses must not leave the
/// machine's traffic queued to an agent that is gone.
pub(crate) fn cleanup(config: Option<&Path>) -> Result<()> {
    let firewall = vigie_daemon::Platform::this_machine().firewall;
    firewall.uninstall();
    if firewall.remaining() {
        bail!("packet rules of the agent are still installed after removing them: see `nft list table inet vigie` and `iptables -t mangle -S VIGIE`");
    }
    let dns = match Config::load(config) {
        Ok(config) => system_dns(&config)?.0,
        Err(e) => {
            print(&format!(
                "configuration unreadable ({e:#}): looking for the saved DNS set-up in /var/lib/vigie\n"
            ))?;
            SystemDns::system(Path::new("/var/lib/vigie"))
        }
    };
    let restored = dns.restore()?;
    print(&format!(
        "packet rules removed; DNS {}\n",
        if restored {
            "put back as it was before `dns on`"
        } else {
            "left as it is (not changed by `dns on`, or changed since)"
        }
    ))
}

/// `vigie-agent enroll`: the identity in the state folder, then the outbox
/// opened in the store (a new identity sends everything again).
pub(crate) fn enroll(
    url: &str,
    token_file: &Path,
    ca: &Path,
    policy_key: Option<&Path>,
    force: bool,
    config: Option<&Path>,
) -> Result<()> {
    let config = Config::load(config)?;
    let read = |path: &Path| std::fs::read(path).with_context(|| path.display().to_string());
    let token = if token_file == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(std::io::stdin().lock(), 4_096), &mut text)
            .context("reading the token from standard input")?;
        text
    } else {
        String::from_utf8(read(token_file)?).context("the token file is not text")?
    };
    let policy_key_pem = policy_key
        .map(|p| read(p).and_then(|bytes| String::from_utf8(bytes).context("--policy-key is not PEM text")))
        .transpose()?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
    let options = vigie_fleet::client::EnrollOptions {
        url: url.to_owned(),
        token: token.trim().to_owned(),
        ca_pem: read(ca)?,
        policy_key_pem,
        hostname,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        force,
    };
    let fleet = vigie_fleet::client::FleetDir::new(config.state_dir());
    let enrolment = vigie_fleet::client::enroll(&fleet, &options)?;
    if force {
        // The old fleet's bundle is not this one's; nor its key, if none came.
        let _ = std::fs::remove_file(fleet.bundle_path());
        if options.policy_key_pem.is_none() {
            let _ = std::fs::remove_file(fleet.policy_key_path());
        }
    }
    let mut store = vigie_core::store::Store::open(&config.database)
        .with_context(|| config.database.display().to_string())?;
    store.outbox_open(force)?;
    print(&format!(
        "enrolled as {} in group {} at {}; the running agent starts uploading within seconds\n",
        enrolment.agent_id, enrolment.group, enrolment.url
    ))
}
