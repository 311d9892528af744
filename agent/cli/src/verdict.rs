//! Packet verdicts (enforcement point 2, Linux), for clients that bypass
//! the resolver (DNS over HTTPS, hard-coded resolvers, IP literals): the
//! first packets of every TCP and UDP connection to port 443 go through
//! NFQUEUE to the same sensor as the capture; a ClientHello or QUIC Initial
//! whose name the policy denies is rejected (TCP reset, ICMP for QUIC, so
//! browsers fall back or fail at once), and so is the rest of its
//! connection, in the kernel, by its conntrack mark.
//!
//! Rules live in their own places and go when the agent stops:
//! - iptables chain `VIGIE` (filter/OUTPUT; also ip6tables): the NFQUEUE
//!   rule with `--queue-bypass`, so that traffic flows while no agent
//!   listens (fail-open), and the rejects by mark. iptables because this
//!   kernel lacks nftables' `queue` statement; where `nft` accepts it, the
//!   queue rule goes in the nftables table instead.
//! - nftables table `inet vigie`: sets of addresses that names the policy
//!   blocks resolved to (seen in DNS answers on the wire), rejected with a
//!   timeout.

use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use vigie_core::event::Event;
use vigie_core::policy::{Action, Subject};
use vigie_core::sensor::frame::LinkType;

use crate::attribution::OwnerLookup;
use crate::prompts::Prompts;
use crate::run::{now_micros, send, LivePipeline, Record, Rules};

/// The packet mark of a denied connection's first packet, saved into its
/// conntrack entry so that the kernel rejects what follows ("VG" 1).
const DENIED_MARK: u32 = 0x5647_0001;
const CHAIN: &str = "VIGIE";
const TABLE: &str = "vigie";
/// Addresses of blocked names stay rejected this long after being seen.
const BLOCKED_ADDRESS_TIMEOUT: &str = "10m";

/// `[verdicts]` in the agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VerdictConfig {
    /// With enforcement on, also judge packets (off: the resolver alone).
    pub(crate) enabled: bool,
    /// The NFQUEUE number the agent reads.
    pub(crate) queue: u16,
    /// How many packets of each connection (from its first) are queued: a
    /// ClientHello or QUIC Initial takes one to three.
    pub(crate) packets_per_connection: u32,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        Self { enabled: true, queue: 4242, packets_per_connection: 8 }
    }
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct VerdictStats {
    pub(crate) packets: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) addresses_blocked: AtomicU64,
    /// Nanoseconds spent deciding, over `packets`.
    pub(crate) decision_nanos: AtomicU64,
    pub(crate) errors: AtomicU64,
}

fn run_tool(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (install iptables and nftables)"))?;
    if !out.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The nftables table: address sets and the rejects that use them.
fn nft_table(queue_rule: Option<&str>) -> String {
    let queue = queue_rule.unwrap_or("");
    format!(
        "table inet {TABLE} {{
  set blocked4 {{ type ipv4_addr; flags timeout; }}
  set blocked6 {{ type ipv6_addr; flags timeout; }}
  chain output {{
    type filter hook output priority filter - 10; policy accept;
    ip daddr @blocked4 meta l4proto tcp reject with tcp reset
    ip daddr @blocked4 reject
    ip6 daddr @blocked6 meta l4proto tcp reject with tcp reset
    ip6 daddr @blocked6 reject
    {queue}
  }}
}}
"
    )
}

/// Installed rules; removed on drop.
#[derive(Debug)]
pub(crate) struct Installed {
    iptables: Vec<&'static str>,
}

/// Removes whatever an earlier run (maybe killed) left, then installs.
fn install(config: &VerdictConfig) -> Result<Installed> {
    uninstall_all();
    let queue = config.queue;
    let last = config.packets_per_connection.saturating_sub(1);
    // Prefer nftables' own queue where the kernel has it.
    let nft_queue = format!(
        "meta l4proto {{ tcp, udp }} th dport 443 ct original packets 0-{last} \
         meta mark != {DENIED_MARK:#x} queue num {queue} bypass"
    );
    let native = nft_load(&nft_table(Some(&nft_queue))).is_ok();
    if !native {
        nft_load(&nft_table(None)).context("nftables table")?;
    }
    let mut iptables = Vec::new();
    for tool in ["iptables", "ip6tables"] {
        let Ok(()) = run_tool(tool, &["-w", "-N", CHAIN]) else {
            warn!(tool, "cannot create the verdict chain; skipping this family");
            continue;
        };
        iptables.push(tool);
        let rules: Vec<Vec<String>> = [
            // The rest of a denied connection, then its first packet (back
            // here after the verdict asked to repeat with the mark). Only
            // the client's direction: the reset the kernel sends back to the
            // client belongs to the same connection and must pass.
            format!("-m connmark --mark {DENIED_MARK:#x} -m conntrack --ctdir ORIGINAL -p tcp -j REJECT --reject-with tcp-reset"),
            format!("-m connmark --mark {DENIED_MARK:#x} -m conntrack --ctdir ORIGINAL -j REJECT"),
            format!("-m mark --mark {DENIED_MARK:#x} -j CONNMARK --save-mark"),
            format!("-m mark --mark {DENIED_MARK:#x} -p tcp -j REJECT --reject-with tcp-reset"),
            format!("-m mark --mark {DENIED_MARK:#x} -j REJECT"),
        ]
        .into_iter()
        .chain(if native {
            Vec::new()
        } else {
            ["tcp", "udp"]
                .into_iter()
                .map(|proto| {
                    format!(
                        "-p {proto} --dport 443 -m connbytes --connbytes 0:{last} --connbytes-dir original \
                         --connbytes-mode packets -j NFQUEUE --queue-num {queue} --queue-bypass"
                    )
                })
                .collect()
        })
        .map(|rule| rule.split_whitespace().map(str::to_owned).collect())
        .collect();
        for rule in rules {
            let mut args = vec!["-w".to_owned(), "-A".to_owned(), CHAIN.to_owned()];
            args.extend(rule);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_tool(tool, &args)?;
        }
        // Last in OUTPUT: the administrator's own rules decide first.
        run_tool(tool, &["-w", "-A", "OUTPUT", "-j", CHAIN])?;
    }
    if iptables.is_empty() && !native {
        bail!("no way to queue packets: neither iptables nor nftables' queue works here");
    }
    info!(queue = config.queue, nft_queue = native, "packet verdict rules installed");
    Ok(Installed { iptables })
}

fn nft_load(ruleset: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running nft (install nftables)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ruleset.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Removes every rule the agent may have installed; errors mean "was not there".
fn uninstall_all() {
    for tool in ["iptables", "ip6tables"] {
        while run_tool(tool, &["-w", "-D", "OUTPUT", "-j", CHAIN]).is_ok() {}
        let _ = run_tool(tool, &["-w", "-F", CHAIN]);
        let _ = run_tool(tool, &["-w", "-X", CHAIN]);
    }
    let _ = run_tool("nft", &["delete", "table", "inet", TABLE]);
}

impl Drop for Installed {
    fn drop(&mut self) {
        uninstall_all();
        info!(families = ?self.iptables, "packet verdict rules removed");
    }
}

/// Puts the addresses blocked names resolve to into the nftables sets.
/// Each costs an `nft` run (a few ms), so an address added recently is
/// not added again.
#[derive(Debug, Default)]
pub(crate) struct AddressBlocker {
    recent: std::sync::Mutex<std::collections::HashMap<IpAddr, Instant>>,
}

impl AddressBlocker {
    pub(crate) fn block(&self, address: IpAddr, stats: &VerdictStats) {
        let (set, text) = match address {
            IpAddr::V4(v4) if !v4.is_unspecified() && !v4.is_loopback() => ("blocked4", v4.to_string()),
            IpAddr::V6(v6) if !v6.is_unspecified() && !v6.is_loopback() => ("blocked6", v6.to_string()),
            _ => return,
        };
        let Ok(mut recent) = self.recent.lock() else { return };
        let now = Instant::now();
        recent.retain(|_, added| now.duration_since(*added) < Duration::from_secs(60));
        if recent.contains_key(&address) || recent.len() >= 4096 {
            return;
        }
        recent.insert(address, now);
        drop(recent);
        let element = format!("{{ {text} timeout {BLOCKED_ADDRESS_TIMEOUT} }}");
        match run_tool("nft", &["add", "element", "inet", TABLE, set, &element]) {
            Ok(()) => {
                stats.addresses_blocked.fetch_add(1, Ordering::Relaxed);
                info!(%address, "address of a blocked name rejected");
            }
            Err(e) => warn!(error = %e, "adding a blocked address"),
        }
    }
}

/// The verdict thread's view of the agent.
#[derive(Debug)]
pub(crate) struct Verdicts {
    pub(crate) rules: Arc<Rules>,
    pub(crate) prompts: Arc<Prompts>,
    pub(crate) owners: Arc<dyn OwnerLookup>,
    /// Taken away when the agent stops: this thread is never joined, and a
    /// sender it held would keep the store writer waiting forever.
    pub(crate) events: Arc<std::sync::Mutex<Option<SyncSender<Record>>>>,
    pub(crate) dropped: Arc<AtomicU64>,
    pub(crate) stats: Arc<VerdictStats>,
}

/// What the passive capture shares with the verdicts: it sees the DNS
/// answers that give blocked names' addresses, and skips the handshakes
/// the verdicts already reported.
#[derive(Debug, Default)]
pub(crate) struct Link {
    pub(crate) blocker: AddressBlocker,
    pub(crate) stats: Arc<VerdictStats>,
}

/// Installs the rules and starts deciding. The thread is not joined: it
/// blocks in the kernel until a packet comes, and goes with the process;
/// the rules go first (on drop of the returned value), and with queue
/// bypass, traffic flows in between.
#[cfg(target_os = "linux")]
pub(crate) fn start(config: &VerdictConfig, verdicts: Verdicts) -> Result<Installed> {
    let mut queue = nfq::Queue::open().context("NFQUEUE (needs CAP_NET_ADMIN)")?;
    queue.bind(config.queue).with_context(|| format!("binding NFQUEUE {}", config.queue))?;
    // A full queue lets packets through rather than dropping them.
    queue.set_fail_open(config.queue, true)?;
    queue.set_queue_max_len(config.queue, 4096)?;
    // A GSO packet comes whole: a ClientHello is never split by the kernel for us.
    queue.set_recv_gso(config.queue, true)?;
    let installed = install(config)?;
    std::thread::Builder::new().name("verdicts".into()).spawn(move || decide_loop(queue, &verdicts))?;
    Ok(installed)
}

#[cfg(target_os = "linux")]
fn decide_loop(mut queue: nfq::Queue, v: &Verdicts) {
    let Ok(mut live) = LivePipeline::new(&v.rules) else { return };
    loop {
        let mut message = match queue.recv() {
            Ok(message) => message,
            Err(e) => {
                v.stats.errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "NFQUEUE receive");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let started = Instant::now();
        live.refresh(&v.rules);
        let LivePipeline { pipeline, policy, version, .. } = &mut live;
        let mut deny = false;
        pipeline.process(
            now_micros(),
            LinkType::RawIp,
            message.get_payload(),
            &Subject::default(),
            &mut |d| {
                let o = &d.observation;
                let Some((service, _)) = &d.verdict else { return };
                let owner = v.owners.owner(o.flow.protocol, o.flow.src, o.flow.dst);
                let decision = policy.decide(service, &owner.subject());
                let bypassed = decision.action == Action::Coach
                    && v.prompts.bypassed(owner.attribution.uid, &service.id);
                let denies = match decision.action {
                    Action::Block => true,
                    Action::Coach => !bypassed,
                    Action::Allow | Action::Monitor | Action::Warn => false,
                };
                deny |= denies;
                if decision.action == Action::Allow {
                    return;
                }
                info!(
                    source = "verdict",
                    name = %o.name,
                    service = %service.id,
                    action = decision.action.as_str(),
                    rule = %decision.rule_id,
                    flow = %o.flow,
                    uid = owner.attribution.uid,
                    program = owner.attribution.program.as_deref(),
                    rejected = denies,
                    "decision"
                );
                let event = Event::new(o, service, &decision, version, owner.attribution);
                v.prompts.notify(&event, policy);
                if let Some(events) = v.events.lock().ok().as_deref().and_then(Option::as_ref) {
                    send(events, &v.dropped, event);
                }
            },
        );
        v.stats.packets.fetch_add(1, Ordering::Relaxed);
        if deny {
            v.stats.rejected.fetch_add(1, Ordering::Relaxed);
            // Back through OUTPUT with the mark: the rules there save it to
            // the connection and reject.
            message.set_nfmark(DENIED_MARK);
            message.set_verdict(nfq::Verdict::Repeat);
        } else {
            v.stats.accepted.fetch_add(1, Ordering::Relaxed);
            message.set_verdict(nfq::Verdict::Accept);
        }
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        v.stats.decision_nanos.fetch_add(nanos, Ordering::Relaxed);
        debug!(deny, id = message.get_packet_id(), mark = message.get_nfmark(), "verdict");
        if let Err(e) = queue.verdict(message) {
            v.stats.errors.fetch_add(1, Ordering::Relaxed);
            debug!(error = %e, "NFQUEUE verdict");
        }
    }
}
