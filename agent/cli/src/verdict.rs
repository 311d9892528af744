//! Packet verdicts (enforcement point 2, Linux), for clients that bypass
//! the resolver (DNS over HTTPS, hard-coded resolvers, IP literals): the
//! first packets of every TCP and UDP connection to port 443 go through
//! NFQUEUE to the same sensor as the capture; a ClientHello or QUIC Initial
//! whose name the policy denies is rejected (TCP reset, ICMP for QUIC, so
//! browsers fall back or fail at once), and so is the rest of its
//! connection, in the kernel, by its conntrack mark.
//!
//! Rules live in their own places, ahead of the administrator's, and go
//! when the agent stops:
//! - the queue rule, at the mangle priority (before any filter rule can
//!   accept the packet, and an accept verdict ends only this table, so the
//!   administrator's filter rules still apply): iptables chain `VIGIE` in
//!   the mangle table (also ip6tables), because this kernel lacks nftables'
//!   `queue` statement; where `nft` accepts it, a chain of the agent's
//!   nftables table instead. With `--queue-bypass` (fail-open) or without
//!   (fail-closed).
//! - nftables table `inet vigie`, at filter priority − 10: the denied mark
//!   saved to the connection, the rejects by connection mark, and the sets
//!   of addresses that blocked names resolved to, rejected with a timeout.

use std::collections::HashMap;
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
use vigie_core::policy::{Action, FailureMode, Subject};
use vigie_core::sensor::frame::LinkType;

use crate::attribution::OwnerLookup;
use crate::prompts::Prompts;
use crate::run::{now_micros, send, LivePipeline, Record, Rules};

/// The mark bit of a denied connection's first packet, saved into its
/// conntrack entry so that the kernel rejects what follows. One bit, OR-ed
/// into whatever mark the packet had: other users of marks (VPNs, policy
/// routing) keep theirs.
const DENIED_MARK: u32 = 0x0400_0000;
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

/// The nftables table: the denied connections' rejects, the address sets,
/// and the queue rule when the kernel has nftables' queue.
fn nft_table(queue_rule: Option<&str>) -> String {
    let queue = queue_rule.map_or(String::new(), |rule| {
        format!("  chain queue {{\n    type filter hook output priority mangle; policy accept;\n    {rule}\n  }}\n")
    });
    let mark = format!("{DENIED_MARK:#x}");
    format!(
        "table inet {TABLE} {{
  set blocked4 {{ type ipv4_addr; flags timeout; }}
  set blocked6 {{ type ipv6_addr; flags timeout; }}
{queue}  chain output {{
    type filter hook output priority filter - 10; policy accept;
    meta mark and {mark} == {mark} ct mark set ct mark or {mark}
    ct direction original ct mark and {mark} == {mark} meta l4proto tcp reject with tcp reset
    ct direction original ct mark and {mark} == {mark} reject
    ip daddr @blocked4 meta l4proto tcp reject with tcp reset
    ip daddr @blocked4 reject
    ip6 daddr @blocked6 meta l4proto tcp reject with tcp reset
    ip6 daddr @blocked6 reject
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
/// Fail-open rules let packets through when nobody reads the queue;
/// fail-closed ones drop them.
fn install(config: &VerdictConfig, failure: FailureMode) -> Result<Installed> {
    let open = failure == FailureMode::Open;
    uninstall_all();
    // From here, a failure part way removes what was added (on drop).
    let mut installed = Installed { iptables: Vec::new() };
    let queue = config.queue;
    // Conntrack counts the packet being filtered: the SYN is packet 1.
    let packets = config.packets_per_connection.max(1);
    let mark = format!("{DENIED_MARK:#x}");
    let nft_queue = format!(
        "meta l4proto {{ tcp, udp }} th dport 443 ct original packets 1-{packets} \
         meta mark and {mark} != {mark} queue num {queue}{}",
        if open { " bypass" } else { "" }
    );
    let native = nft_load(&nft_table(Some(&nft_queue))).is_ok();
    if !native {
        nft_load(&nft_table(None)).context("nftables table")?;
        for tool in ["iptables", "ip6tables"] {
            let Ok(()) = run_tool(tool, &["-w", "-t", "mangle", "-N", CHAIN]) else {
                warn!(tool, "cannot create the verdict chain; skipping this family");
                continue;
            };
            installed.iptables.push(tool);
            for proto in ["tcp", "udp"] {
                let rule = format!(
                    "-w -t mangle -A {CHAIN} -p {proto} --dport 443 -m connbytes --connbytes 1:{packets} \
                     --connbytes-dir original --connbytes-mode packets -m mark ! --mark {mark}/{mark} \
                     -j NFQUEUE --queue-num {queue}{}",
                    if open { " --queue-bypass" } else { "" }
                );
                let args: Vec<&str> = rule.split_whitespace().collect();
                run_tool(tool, &args)?;
            }
            // First: no rule of the administrator's decides before the agent looks.
            run_tool(tool, &["-w", "-t", "mangle", "-I", "OUTPUT", "1", "-j", CHAIN])?;
        }
        if installed.iptables.is_empty() {
            bail!("no way to queue packets: neither iptables nor nftables' queue works here");
        }
    }
    info!(queue = config.queue, nft_queue = native, ?failure, "packet verdict rules installed");
    Ok(installed)
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

/// Removes every rule the agent may have installed (this version's and an
/// earlier one's); errors mean "was not there".
fn uninstall_all() {
    for tool in ["iptables", "ip6tables"] {
        for table in ["mangle", "filter"] {
            while run_tool(tool, &["-w", "-t", table, "-D", "OUTPUT", "-j", CHAIN]).is_ok() {}
            let _ = run_tool(tool, &["-w", "-t", table, "-F", CHAIN]);
            let _ = run_tool(tool, &["-w", "-t", table, "-X", CHAIN]);
        }
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
    /// Addresses never blocked: the resolver's upstreams.
    pub(crate) spared: Vec<IpAddr>,
}

impl AddressBlocker {
    pub(crate) fn block(&self, address: IpAddr, stats: &VerdictStats) {
        // Never this machine, its link or a broadcast: an answer anyone can
        // send must not cut the workstation off its own network.
        let (set, text) = match address {
            IpAddr::V4(v4)
                if !(v4.is_unspecified()
                    || v4.is_loopback()
                    || v4.is_link_local()
                    || v4.is_multicast()
                    || v4.is_broadcast()) =>
            {
                ("blocked4", v4.to_string())
            }
            IpAddr::V6(v6)
                if !(v6.is_unspecified()
                    || v6.is_loopback()
                    || v6.is_multicast()
                    || v6.is_unicast_link_local()) =>
            {
                ("blocked6", v6.to_string())
            }
            _ => return,
        };
        if self.spared.contains(&address) {
            return;
        }
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
pub(crate) fn start(config: &VerdictConfig, failure: FailureMode, verdicts: Verdicts) -> Result<Installed> {
    let mut queue = nfq::Queue::open().context("NFQUEUE (needs CAP_NET_ADMIN)")?;
    queue.bind(config.queue).with_context(|| format!("binding NFQUEUE {}", config.queue))?;
    // A full queue lets packets through (fail-open) or drops them (fail-closed).
    queue.set_fail_open(config.queue, failure == FailureMode::Open)?;
    queue.set_queue_max_len(config.queue, 4096)?;
    // A GSO packet comes whole: a ClientHello is never split by the kernel for us.
    queue.set_recv_gso(config.queue, true)?;
    // The socket owner's uid, as the kernel saw it when queueing: what is
    // left when the socket is closed before it can be looked up.
    queue.set_recv_uid_gid(config.queue, true)?;
    let installed = install(config, failure)?;
    std::thread::Builder::new().name("verdicts".into()).spawn(move || decide_loop(queue, &verdicts))?;
    Ok(installed)
}

/// How long a connection's first data packet may wait for the next one
/// when it holds only part of a handshake (Chromium's ClientHello often
/// spans two segments, its QUIC Initial two datagrams). Held, the server
/// gets none of a denied handshake, and the socket is still open when the
/// second packet names the service and the agent looks up its owner.
const HOLD: Duration = Duration::from_millis(50);
const MAX_HELD: usize = 256;
const MAX_STARTED: usize = 8192;

/// A flow's direction, and whether it is TCP: what holding is keyed by.
type FlowKey = (std::net::SocketAddr, std::net::SocketAddr, bool);

/// The flow of a queued packet that carries handshake-capable data: TCP
/// payload, or a QUIC long-header datagram.
fn data_flow(packet: &[u8]) -> Option<FlowKey> {
    use std::net::SocketAddr;
    use vigie_core::sensor::frame::{decode_frame, Frame, Transport};
    let Ok(Frame::Ip(ip)) = decode_frame(LinkType::RawIp, packet) else { return None };
    match ip.transport {
        Transport::Tcp(segment) if !segment.payload.is_empty() => {
            Some((SocketAddr::new(ip.src, segment.src_port), SocketAddr::new(ip.dst, segment.dst_port), true))
        }
        Transport::Udp { src_port, dst_port, payload } if payload.first().is_some_and(|b| b & 0x80 != 0) => {
            Some((SocketAddr::new(ip.src, src_port), SocketAddr::new(ip.dst, dst_port), false))
        }
        _ => None,
    }
}

#[cfg(target_os = "linux")]
struct Verdicter<'v> {
    queue: nfq::Queue,
    v: &'v Verdicts,
    /// First data packets waiting for the rest of their handshake.
    held: std::collections::VecDeque<(nfq::Message, FlowKey, Instant)>,
    /// Flows whose first data packet was seen, so later ones are not held.
    started: HashMap<FlowKey, Instant>,
}

#[cfg(target_os = "linux")]
impl Verdicter<'_> {
    fn send(&mut self, mut message: nfq::Message, deny: bool) {
        if deny {
            self.v.stats.rejected.fetch_add(1, Ordering::Relaxed);
            // Back through OUTPUT with the mark: the agent's nftables chain
            // saves it to the connection and rejects.
            let mark = message.get_nfmark() | DENIED_MARK;
            message.set_nfmark(mark);
            message.set_verdict(nfq::Verdict::Repeat);
        } else {
            self.v.stats.accepted.fetch_add(1, Ordering::Relaxed);
            message.set_verdict(nfq::Verdict::Accept);
        }
        if let Err(e) = self.queue.verdict(message) {
            self.v.stats.errors.fetch_add(1, Ordering::Relaxed);
            debug!(error = %e, "NFQUEUE verdict");
        }
    }

    /// Decides the packets held for `key` (all of them, with `None`: those
    /// past their time are let through).
    fn release(&mut self, key: Option<&FlowKey>, deny: bool) {
        let now = Instant::now();
        let (due, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(_, k, since)| key.map_or(now.duration_since(*since) >= HOLD, |key| k == key));
        self.held = kept.into();
        for (message, _, _) in due {
            self.send(message, deny);
        }
    }
}

#[cfg(target_os = "linux")]
fn decide_loop(queue: nfq::Queue, v: &Verdicts) {
    let Ok(mut live) = LivePipeline::new(&v.rules) else { return };
    let mut q = Verdicter { queue, v, held: std::collections::VecDeque::new(), started: HashMap::new() };
    loop {
        // Block while nothing is held; otherwise poll, to let held packets go in time.
        q.queue.set_nonblocking(!q.held.is_empty());
        let message = match q.queue.recv() {
            Ok(message) => message,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
                q.release(None, false);
                continue;
            }
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
        let (mut deny, mut observed) = (false, false);
        let queued_uid = message.get_uid();
        let flow = data_flow(message.get_payload());
        pipeline.process(
            now_micros(),
            LinkType::RawIp,
            message.get_payload(),
            &Subject::default(),
            &mut |d| {
                observed = true;
                let o = &d.observation;
                let Some((service, _)) = &d.verdict else { return };
                let mut owner = v.owners.owner(o.flow.protocol, o.flow.src, o.flow.dst);
                if owner.attribution.uid.is_none() {
                    if let Some(uid) = queued_uid {
                        owner = v.owners.for_uid(uid);
                    }
                }
                let decision = policy.decide(service, &owner.subject());
                let justified = decision.action == Action::Coach
                    && v.prompts.bypassed(owner.attribution.uid, &service.id);
                let denies = decision.action.denies(justified);
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
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        v.stats.decision_nanos.fetch_add(nanos, Ordering::Relaxed);
        let Some(key) = flow else {
            q.send(message, deny);
            continue;
        };
        let first = q.started.insert(key, Instant::now()).is_none();
        if q.started.len() > MAX_STARTED {
            q.started.retain(|_, at| at.elapsed() < Duration::from_secs(60));
            if q.started.len() > MAX_STARTED {
                // A burst of new flows: forget them all (a later packet is then
                // at worst held once more).
                q.started.clear();
            }
        }
        if !observed && first {
            if q.held.len() >= MAX_HELD {
                if let Some((oldest, _, _)) = q.held.pop_front() {
                    q.send(oldest, false);
                }
            }
            q.held.push_back((message, key, Instant::now()));
            continue;
        }
        // What was held for this flow shares the fate of what completed it.
        q.release(Some(&key), deny);
        q.send(message, deny);
    }
}
