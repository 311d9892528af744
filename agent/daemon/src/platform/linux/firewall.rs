//! Packet verdicts on Linux: NFQUEUE fed by rules in the agent's own
//! places, ahead of the administrator's, removed when the agent stops:
//! - the queue rules, at the mangle priority (before any filter rule can
//!   accept the packet, and an accept verdict ends only this table, so the
//!   administrator's filter rules still apply), on the OUTPUT path and on
//!   the FORWARD path (containers and VMs of the workstation): every TCP
//!   flow on every port, and every UDP datagram shaped like a QUIC long
//!   header, until the agent has decided the flow (a connection mark) or a
//!   kernel-side cap on its packets (twice the gate's own budget) is
//!   reached. Loopback is not judged: nothing leaves the machine there.
//!   iptables chain `VIGIE` in the mangle table (also ip6tables), because
//!   some kernels lack nftables' `queue` statement; where `nft` accepts it,
//!   chains of the agent's nftables table instead. With `--queue-bypass`
//!   (fail-open) or without (fail-closed).
//! - nftables table `inet vigie`, at filter priority − 10: the decided and
//!   denied marks saved to the connection, the rejects by connection mark,
//!   and the sets of addresses that blocked names resolved to, rejected
//!   with a timeout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{BorrowedFd, RawFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tracing::{info, warn};
use vigie_core::policy::FailureMode;

use crate::platform::{Firewall, PacketQueue, QueuedPacket, Received, Verdict, VerdictConfig};

/// The mark bit of a denied connection's first packet, saved into its
/// conntrack entry so that the kernel rejects what follows. One bit, OR-ed
/// into whatever mark the packet had: other users of marks (VPNs, policy
/// routing) keep theirs.
/// The bits are `[verdicts] denied_mark` and `decided_mark`, by default
/// clear of the marks of common VPNs and tools (Mullvad's 0x6d6f6c65,
/// Tailscale's 0x00ff0000, wg-quick's and kube-proxy's low bits).
/// The mark bit of a decided connection's packet (let through) is saved to
/// conntrack like the denied one, so its later packets are not queued.
#[derive(Debug, Clone, Copy)]
struct Marks {
    denied: u32,
    decided: u32,
}

impl Marks {
    fn of(config: &VerdictConfig) -> Result<Self> {
        let (denied, decided) = (config.denied_mark, config.decided_mark);
        if denied.count_ones() != 1 || decided.count_ones() != 1 || denied == decided {
            bail!(
                "[verdicts] denied_mark ({denied:#x}) and decided_mark ({decided:#x}) must be two different \
                 single bits"
            );
        }
        Ok(Self { denied, decided })
    }

    /// Either mark: the flow needs no more judging.
    fn judged(self) -> u32 {
        self.denied | self.decided
    }
}
/// Packets of one connection the kernel queues at most: twice the gate's
/// budget, so the gate always decides first; a connection that never sends
/// data (its packets are all ACKs) stops costing a queue round trip here.
const KERNEL_PACKETS: u32 = 2 * 4096;
const CHAIN: &str = "VIGIE";
/// A UDP datagram shaped like a QUIC long header (Initial, Handshake) big
/// enough to be a client's first: what nftables queues, and limits per user.
const NFT_QUIC_LONG_HEADER: &str = "meta l4proto udp @th,64,8 & 0xc0 == 0xc0 meta length >= 1200";
const TABLE: &str = "vigie";
/// Addresses of blocked names stay rejected this long after being seen.
const BLOCKED_ADDRESS_TIMEOUT: &str = "10m";

#[derive(Debug, Default)]
pub(super) struct Netfilter {
    /// The queue rules are nftables' own (else iptables', in chain VIGIE).
    native: AtomicBool,
    /// The per-user limit on new connections is in force.
    limited: AtomicBool,
    /// The rules as listed right after they went in, to tell whether a
    /// user deleted or flushed any of them since.
    installed: Mutex<Option<String>>,
}

/// What a tool printed; empty when it ran and failed (the table or chain
/// is gone); `None` when it could not be run at all.
fn listing(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    Some(if out.status.success() { String::from_utf8_lossy(&out.stdout).into_owned() } else { String::new() })
}

/// The agent's rules as the tools list them: its nftables chains (set
/// elements aside) and, with iptables, its chain and the jumps to it, for
/// both families. `None` when a tool cannot be run.
fn rules_listing(native: bool, limited: bool) -> Option<String> {
    let mut all = String::new();
    let mut chains = vec!["output", "forward"];
    if native {
        chains.extend(["judge_output", "judge_forward"]);
    }
    if limited {
        chains.extend(["limit_output", "limit_forward"]);
    }
    for chain in chains {
        all.push_str(&listing("nft", &["list", "chain", "inet", TABLE, chain])?);
    }
    if !native {
        for tool in ["iptables", "ip6tables"] {
            all.push_str(&listing(tool, &["-w", "-t", "mangle", "-S", CHAIN])?);
            for hook in ["OUTPUT", "FORWARD"] {
                let jumps = listing(tool, &["-w", "-t", "mangle", "-S", hook])?;
                for line in jumps.lines().filter(|line| line.contains(CHAIN)) {
                    all.push_str(line);
                    all.push('\n');
                }
            }
        }
    }
    Some(all)
}

fn run_tool(program: &str, args: &[&str]) -> Result<()> {
    tool_output(program, args).map(drop)
}

/// What `program` printed, or why it failed.
fn tool_output(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (install iptables and nftables)"))?;
    if !out.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The nftables table: the judged connections' marks, the rejects, the
/// address sets, and the queue rules when the kernel has nftables' queue.
fn nft_table(marks: Marks, queue: Option<(u16, bool)>) -> String {
    let judged = format!("{:#x}", marks.judged());
    let queue_chains = queue.map_or(String::new(), |(number, open)| {
        let bypass = if open { " bypass" } else { "" };
        let rules = format!(
            "    oifname \"lo\" accept
    meta mark and {judged} != 0 accept
    ct mark and {judged} != 0 accept
    meta l4proto tcp ct original packets 1-{KERNEL_PACKETS} queue num {number}{bypass}
    {NFT_QUIC_LONG_HEADER} queue num {number}{bypass}
"
        );
        ["output", "forward"]
            .map(|hook| {
                format!("  chain judge_{hook} {{\n    type filter hook {hook} priority mangle; policy accept;\n{rules}  }}\n")
            })
            .concat()
    });
    let (denied, decided) = (format!("{:#x}", marks.denied), format!("{:#x}", marks.decided));
    let rejects = format!(
        "    meta mark and {denied} == {denied} ct mark set ct mark or {denied}
    meta mark and {decided} == {decided} ct mark set ct mark or {decided}
    ct direction original ct mark and {denied} == {denied} meta l4proto tcp reject with tcp reset
    ct direction original ct mark and {denied} == {denied} reject
    ip daddr @blocked4 meta l4proto tcp reject with tcp reset
    ip daddr @blocked4 reject
    ip6 daddr @blocked6 meta l4proto tcp reject with tcp reset
    ip6 daddr @blocked6 reject
"
    );
    let reject_chains = ["output", "forward"]
        .map(|hook| {
            format!("  chain {hook} {{\n    type filter hook {hook} priority filter - 10; policy accept;\n{rejects}  }}\n")
        })
        .concat();
    format!(
        "table inet {TABLE} {{
  set blocked4 {{ type ipv4_addr; flags timeout; }}
  set blocked6 {{ type ipv6_addr; flags timeout; }}
{queue_chains}{reject_chains}}}
"
    )
}

/// The per-user limit on new connections, merged into the agent's table:
/// chains just ahead of the queue rules that drop what would open a flow to
/// judge (a TCP SYN; a QUIC-shaped datagram of a flow not yet judged) past
/// `per_second`, in bursts of twice as many, for its socket's owner, or for
/// a routed container's or VM's address (IPv6 by /64, which one machine
/// holds whole). Loopback is not limited, as it is not judged. `update`
/// keeps a busy key's allowance from starting afresh when it would expire.
fn nft_limits(per_second: u32, marks: Marks) -> String {
    let burst = per_second.saturating_mul(2);
    let limit = format!("limit rate over {per_second}/second burst {burst} packets");
    let judged = format!("{:#x}", marks.judged());
    let opening = [
        "tcp flags & (syn | ack) == syn ct state new".to_owned(),
        format!("{NFT_QUIC_LONG_HEADER} ct mark and {judged} == 0"),
    ];
    let set = |name: &str, kind: &str| {
        format!("  set {name} {{ type {kind}; size 65535; flags dynamic, timeout; timeout 1m; }}\n")
    };
    let rules = |keys: &[(&str, &str)]| -> String {
        let mut rules = String::new();
        for what in &opening {
            for (set, key) in keys {
                rules.push_str(&format!("    {what} update @{set} {{ {key} {limit} }} drop\n"));
            }
        }
        rules
    };
    let chain = |hook: &str, rules: String| {
        format!(
            "  chain limit_{hook} {{\n    type filter hook {hook} priority mangle - 5; policy accept;\n{rules}  }}\n"
        )
    };
    let output =
        chain("output", format!("    oifname \"lo\" accept\n{}", rules(&[("new_by_user", "meta skuid")])));
    let forward = chain(
        "forward",
        rules(&[("new_by_ip4", "ip saddr"), ("new_by_net6", "ip6 saddr & ffff:ffff:ffff:ffff::")]),
    );
    format!(
        "table inet {TABLE} {{\n{}{}{}{output}{forward}}}\n",
        set("new_by_user", "uid"),
        set("new_by_ip4", "ipv4_addr"),
        set("new_by_net6", "ipv6_addr")
    )
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
            for hook in ["OUTPUT", "FORWARD"] {
                while run_tool(tool, &["-w", "-t", table, "-D", hook, "-j", CHAIN]).is_ok() {}
            }
            let _ = run_tool(tool, &["-w", "-t", table, "-F", CHAIN]);
            let _ = run_tool(tool, &["-w", "-t", table, "-X", CHAIN]);
        }
    }
    let _ = run_tool("nft", &["delete", "table", "inet", TABLE]);
}

/// The iptables rules of chain `VIGIE` (mangle), for `tool`.
fn iptables_rules(tool: &str, marks: Marks, queue: u16, open: bool) -> Vec<String> {
    let judged = format!("{:#x}", marks.judged());
    let target = format!("-j NFQUEUE --queue-num {queue}{}", if open { " --queue-bypass" } else { "" });
    let budget = format!(
        "-m connbytes --connbytes 1:{KERNEL_PACKETS} --connbytes-dir original --connbytes-mode packets"
    );
    // The first byte of the UDP payload: after IPv4's variable header, or
    // IPv6's fixed one (datagrams behind extension headers are not queued).
    let quic_first_byte = if tool == "ip6tables" { "48>>24&0xC0=0xC0" } else { "0>>22&0x3C@8>>24&0xC0=0xC0" };
    vec![
        "-o lo -j RETURN".to_owned(),
        format!("-m mark ! --mark 0/{judged} -j RETURN"),
        format!("-m connmark ! --mark 0/{judged} -j RETURN"),
        format!("-p tcp {budget} {target}"),
        // No packet cap for UDP: datagrams of any shape count in conntrack,
        // and a cap would let a flood of junk open the way for an Initial.
        format!("-p udp -m length --length 1200:65535 -m u32 --u32 {quic_first_byte} {target}"),
    ]
}

/// Installs the rules; returns whether the queue rules are nftables' own,
/// and whether the per-user limit on new connections is in force.
fn install_rules(config: &VerdictConfig, marks: Marks, failure: FailureMode) -> Result<(bool, bool)> {
    let open = failure == FailureMode::Open;
    uninstall_all();
    let native = nft_load(&nft_table(marks, Some((config.queue, open)))).is_ok();
    if !native {
        nft_load(&nft_table(marks, None)).context("nftables table")?;
        let mut families = 0;
        for tool in ["iptables", "ip6tables"] {
            let Ok(()) = run_tool(tool, &["-w", "-t", "mangle", "-N", CHAIN]) else {
                warn!(tool, "cannot create the verdict chain; skipping this family");
                continue;
            };
            families += 1;
            for rule in iptables_rules(tool, marks, config.queue, open) {
                let args: Vec<&str> =
                    ["-w", "-t", "mangle", "-A", CHAIN].into_iter().chain(rule.split_whitespace()).collect();
                run_tool(tool, &args)?;
            }
            // First: no rule of the administrator's decides before the agent looks.
            for hook in ["OUTPUT", "FORWARD"] {
                run_tool(tool, &["-w", "-t", "mangle", "-I", hook, "1", "-j", CHAIN])?;
            }
        }
        if families == 0 {
            bail!("no way to queue packets: neither iptables nor nftables' queue works here");
        }
    }
    // Without the limit the agent still judges everything; a flood then
    // delays every user's new connections instead of the flooder's alone.
    let per_second = config.new_connections_per_second;
    let limited = per_second > 0
        && nft_load(&nft_limits(per_second, marks))
            .inspect_err(
                |e| warn!(error = %e, "no per-user limit on new connections (this kernel's nftables)"),
            )
            .is_ok();
    info!(
        queue = config.queue,
        nft_queue = native,
        new_connections_per_second = limited.then_some(per_second),
        ?failure,
        "packet verdict rules installed"
    );
    Ok((native, limited))
}

impl Firewall for Netfilter {
    fn install(&self, config: &VerdictConfig, failure: FailureMode) -> Result<Box<dyn PacketQueue>> {
        let marks = Marks::of(config)?;
        let others = netfilter_sockets();
        let mut queue = nfq::Queue::open().context("NFQUEUE (needs CAP_NET_ADMIN)")?;
        let socket = queue_socket(&others);
        queue.bind(config.queue).with_context(|| format!("binding NFQUEUE {}", config.queue))?;
        // A full queue drops what does not fit, in both failure modes: the
        // senders send again. Letting it through would hand a running agent's
        // verdicts to whoever floods the queue (a user's SYN flood did). The
        // failure mode is what happens while no agent reads (the rules' bypass).
        queue.set_fail_open(config.queue, false)?;
        // Above what the verdicts ever hold (8,192 packets, 1,024 per user).
        queue.set_queue_max_len(config.queue, 16_384)?;
        // A GSO packet comes whole: a ClientHello is never split by the kernel for us.
        queue.set_recv_gso(config.queue, true)?;
        // The socket owner's uid, as the kernel saw it when queueing: what is
        // left when the socket is closed before it can be looked up.
        queue.set_recv_uid_gid(config.queue, true)?;
        // An overrun of the socket is reported (then read on at once), from
        // now on only: during the calls above, which wait for the kernel's
        // reply, a flood already queued would have failed the start.
        queue.set_recv_enobufs(true)?;
        // A failure part way removes what was added.
        match install_rules(config, marks, failure) {
            Ok((native, limited)) => {
                self.native.store(native, Ordering::Relaxed);
                self.limited.store(limited, Ordering::Relaxed);
                if let Ok(mut installed) = self.installed.lock() {
                    *installed = rules_listing(native, limited);
                }
            }
            Err(e) => {
                uninstall_all();
                return Err(e);
            }
        }
        let queue = NfQueue {
            queue,
            number: config.queue,
            socket,
            marks,
            waiting: HashMap::new(),
            next_token: 0,
            drops: DropTotal::default(),
        };
        queue.enlarge_buffer();
        Ok(Box::new(queue))
    }

    fn uninstall(&self) {
        uninstall_all();
        if let Ok(mut installed) = self.installed.lock() {
            *installed = None;
        }
        info!("packet verdict rules removed");
    }

    fn intact(&self) -> Option<bool> {
        let installed = self.installed.lock().ok()?.clone()?;
        let (native, limited) = (self.native.load(Ordering::Relaxed), self.limited.load(Ordering::Relaxed));
        Some(rules_listing(native, limited)? == installed)
    }

    fn remaining(&self) -> bool {
        let table = listing("nft", &["list", "table", "inet", TABLE]).is_some_and(|out| !out.is_empty());
        let chains = ["iptables", "ip6tables"].into_iter().any(|tool| {
            ["mangle", "filter"].into_iter().any(|table| {
                listing(tool, &["-w", "-t", table, "-S", CHAIN]).is_some_and(|out| !out.is_empty())
            })
        });
        table || chains
    }

    fn block_address(&self, address: IpAddr) -> Result<()> {
        let (set, text) = match address {
            IpAddr::V4(v4) => ("blocked4", v4.to_string()),
            IpAddr::V6(v6) => ("blocked6", v6.to_string()),
        };
        let element = format!("{{ {text} timeout {BLOCKED_ADDRESS_TIMEOUT} }}");
        run_tool("nft", &["add", "element", "inet", TABLE, set, &element])
    }
}

/// The socket's receive buffer, forced past the system's limit: the
/// kernel's own queue (16,384 packets) is then what fills first under a
/// flood, not the socket's default 208 KiB (about a thousand SYNs).
const QUEUE_SOCKET_BUFFER: usize = 32 << 20;

/// The inodes of the netfilter-family netlink sockets in the kernel's
/// table of netlink sockets (`/proc/self/net/netlink`: `sk Eth Pid Groups
/// Rmem Wmem Dump Locks Drops Inode`; `Eth` is the protocol, 12 for
/// NETLINK_NETFILTER).
fn netfilter_inodes(table: &str) -> std::collections::HashSet<u64> {
    const NETLINK_NETFILTER: u32 = 12;
    table
        .lines()
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let protocol: u32 = columns.get(1)?.parse().ok()?;
            let inode: u64 = columns.get(9)?.parse().ok()?;
            (protocol == NETLINK_NETFILTER).then_some(inode)
        })
        .collect()
}

/// The process's netfilter-family netlink sockets, by descriptor number:
/// its descriptors (`/proc/self/fd`, links `socket:[inode]`) whose inode
/// the netlink table gives that protocol. Read from files only: the
/// descriptors are not touched.
fn netfilter_sockets() -> std::collections::HashSet<RawFd> {
    let inodes =
        std::fs::read_to_string("/proc/self/net/netlink").map(|t| netfilter_inodes(&t)).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return Default::default() };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let number: RawFd = entry.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(entry.path()).ok()?;
            let inode: u64 = link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()?;
            inodes.contains(&inode).then_some(number)
        })
        .collect()
}

/// The socket nfq just opened, given the ones there were before: nfq keeps
/// its descriptor private, and the agent needs it to wait with a timeout
/// and to size its buffer. `None` (with a warning) when it cannot be told
/// apart: the queue then works with the defaults, polled every millisecond.
fn queue_socket(before: &std::collections::HashSet<RawFd>) -> Option<RawFd> {
    let new: Vec<RawFd> = netfilter_sockets().difference(before).copied().collect();
    if let [number] = new.as_slice() {
        return Some(*number);
    }
    warn!(candidates = new.len(), "cannot find the packet queue's socket: default buffer, polled");
    None
}

/// Queue `number`'s two counts of packets dropped for want of room, from
/// the kernel's table of queues (`/proc/net/netfilter/nfnetlink_queue`):
/// its sixth and seventh columns, the queue full and the socket full. The
/// kernel keeps them in 32 bits.
fn queue_drops(table: &str, number: u16) -> Option<[u32; 2]> {
    table.lines().find_map(|line| {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.first()?.parse::<u16>().ok()? != number {
            return None;
        }
        let queue_full: u32 = columns.get(5)?.parse().ok()?;
        let socket_full: u32 = columns.get(6)?.parse().ok()?;
        Some([queue_full, socket_full])
    })
}

/// The kernel's 32-bit drop counts summed without wrapping: each reading
/// adds what each count moved since the one before, modulo 2³² (read each
/// second, a count cannot go round in between).
#[derive(Debug, Default)]
struct DropTotal {
    last: [u32; 2],
    total: u64,
}

impl DropTotal {
    fn update(&mut self, counts: [u32; 2]) -> u64 {
        for (count, last) in counts.iter().zip(self.last.iter_mut()) {
            self.total = self.total.saturating_add(u64::from(count.wrapping_sub(*last)));
            *last = *count;
        }
        self.total
    }
}

/// The NFQUEUE socket; packets handed out wait here for their verdict.
struct NfQueue {
    marks: Marks,
    queue: nfq::Queue,
    number: u16,
    /// The number of `queue`'s own descriptor (see [`NfQueue::socket`]).
    socket: Option<RawFd>,
    waiting: HashMap<u64, nfq::Message>,
    next_token: u64,
    drops: DropTotal,
}

impl NfQueue {
    /// `queue`'s socket, to wait on it and size its buffer.
    #[allow(unsafe_code)]
    fn socket(&self) -> Option<BorrowedFd<'_>> {
        // SAFETY: `socket` is the descriptor nfq opened for `queue`, found
        // right after it did (`queue_socket`); nfq closes it only when the
        // Queue drops, and the borrow cannot outlive `self`, which owns the
        // Queue. The one unsafe block of the workspace: nfq does not hand
        // its descriptor out, and no safe call can borrow one by number
        // (pidfd_getfd is denied to the agent's unit, with the rest of
        // systemd's @debug set).
        self.socket.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Forces the socket's receive buffer past the system's limit.
    fn enlarge_buffer(&self) {
        let Some(socket) = self.socket() else { return };
        if let Err(e) = rustix::net::sockopt::set_socket_recv_buffer_size_force(socket, QUEUE_SOCKET_BUFFER) {
            warn!(error = %e, "cannot enlarge the packet queue's buffer: a flood fills it sooner");
        }
    }

    /// A message nfq has read already or the socket has now, without waiting.
    fn try_recv(&mut self) -> std::io::Result<Option<nfq::Message>> {
        self.queue.set_nonblocking(true);
        match self.queue.recv() {
            Ok(message) => Ok(Some(message)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits at most `wait` for the socket to have something to read.
    fn wait_readable(&self, wait: Duration) {
        let Some(socket) = self.socket() else {
            std::thread::sleep(wait);
            return;
        };
        let mut fds = [rustix::event::PollFd::new(&socket, rustix::event::PollFlags::IN)];
        let timeout = rustix::event::Timespec {
            tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        // Readable, timed out or interrupted: the caller reads and sees which.
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
    }
}

impl PacketQueue for NfQueue {
    fn recv(&mut self, wait: Duration) -> std::io::Result<Received> {
        // nfq may hold messages it read in one go: those come first,
        // without waiting on a socket that has nothing more.
        let received = match self.try_recv() {
            Ok(None) => {
                self.wait_readable(wait);
                self.try_recv()
            }
            other => other,
        };
        let message = match received {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(Received::Nothing),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) => {
                return Ok(Received::Overflow)
            }
            Err(e) => return Err(e),
        };
        self.next_token = self.next_token.wrapping_add(1);
        let packet = QueuedPacket {
            token: self.next_token,
            payload: message.get_payload().to_vec(),
            uid: message.get_uid(),
        };
        self.waiting.insert(self.next_token, message);
        Ok(Received::Packet(packet))
    }

    fn kernel_dropped(&mut self) -> Option<u64> {
        let table = std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue").ok()?;
        Some(self.drops.update(queue_drops(&table, self.number)?))
    }

    fn verdict(&mut self, packet: QueuedPacket, verdict: Verdict) -> std::io::Result<()> {
        let Some(mut message) = self.waiting.remove(&packet.token) else {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such queued packet"));
        };
        match verdict {
            Verdict::Deny => {
                // Back through the hook with the mark: the agent's nftables
                // chain saves it to the connection and rejects.
                message.set_nfmark(message.get_nfmark() | self.marks.denied);
                message.set_verdict(nfq::Verdict::Repeat);
            }
            Verdict::AcceptDecided => {
                // The mark reaches conntrack in the agent's nftables chain:
                // the connection's later packets are not queued.
                message.set_nfmark(message.get_nfmark() | self.marks.decided);
                message.set_verdict(nfq::Verdict::Accept);
            }
            Verdict::Accept => message.set_verdict(nfq::Verdict::Accept),
            Verdict::Drop => message.set_verdict(nfq::Verdict::Drop),
        }
        self.queue.verdict(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_bits_come_from_the_configuration_and_must_be_two_single_bits() {
        let text = "[verdicts]\ndenied_mark = 0x00010000\ndecided_mark = 0x00020000\n";
        let config = crate::Config::parse(text, "agent.toml").unwrap();
        let marks = Marks::of(&config.verdicts).unwrap();
        let table = nft_table(marks, Some((4242, true)));
        assert!(table.contains("ct mark and 0x30000 != 0 accept"), "{table}");
        assert!(table.contains("meta mark and 0x10000 == 0x10000 ct mark set ct mark or 0x10000"), "{table}");
        let rules = iptables_rules("iptables", marks, 4242, false).join("\n");
        assert!(rules.contains("-m connmark ! --mark 0/0x30000 -j RETURN"), "{rules}");
        for (denied, decided) in [(0x3, 0x4), (0x10, 0x10), (0, 0x4)] {
            let config =
                VerdictConfig { denied_mark: denied, decided_mark: decided, ..VerdictConfig::default() };
            let error = Marks::of(&config).unwrap_err().to_string();
            assert!(error.contains("two different single bits"), "{error}");
        }
        Marks::of(&VerdictConfig::default()).unwrap();
    }

    #[test]
    fn new_connections_are_limited_per_user_ahead_of_the_queue() {
        let marks = Marks::of(&VerdictConfig::default()).unwrap();
        let limits = nft_limits(1000, marks);
        assert!(limits.contains("hook output priority mangle - 5"), "{limits}");
        let limit = "limit rate over 1000/second burst 2000 packets } drop";
        let quic = "meta l4proto udp @th,64,8 & 0xc0 == 0xc0 meta length >= 1200 ct mark and 0x12000000 == 0";
        for rule in [
            format!("ct state new update @new_by_user {{ meta skuid {limit}"),
            format!("{quic} update @new_by_user {{ meta skuid {limit}"),
            format!("ct state new update @new_by_ip4 {{ ip saddr {limit}"),
            format!("{quic} update @new_by_net6 {{ ip6 saddr & ffff:ffff:ffff:ffff:: {limit}"),
        ] {
            assert!(limits.contains(&rule), "{rule} in {limits}");
        }
        let config =
            crate::Config::parse("[verdicts]\nnew_connections_per_second = 0\n", "agent.toml").unwrap();
        assert_eq!(config.verdicts.new_connections_per_second, 0);
        assert_eq!(VerdictConfig::default().new_connections_per_second, 1000);
    }

    #[test]
    fn the_netfilter_sockets_are_told_by_protocol_in_the_netlink_table() {
        let table = "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n\
                     ffff8a0c0d3b1000 0   4195       00000111 0        0        0     2        0        31742\n\
                     ffff8a0c0d3b2000 12  1234       00000000 0        0        0     2        0        56789\n\
                     ffff8a0c0d3b3000 4   0          00000000 0        0        0     2        0        11\n\
                     garbage\n";
        assert_eq!(netfilter_inodes(table), [56789].into());
        // This test's own process: a socket of that family opened now is the one found.
        let before = netfilter_sockets();
        let socket = rustix::net::socket(
            rustix::net::AddressFamily::NETLINK,
            rustix::net::SocketType::RAW,
            Some(rustix::net::netlink::NETFILTER),
        );
        let Ok(socket) = socket else { return };
        // Listed once bound, as nfq binds its own.
        rustix::net::bind(&socket, &rustix::net::netlink::SocketAddrNetlink::new(0, 0)).unwrap();
        let opened = std::os::fd::AsRawFd::as_raw_fd(&socket);
        assert_eq!(queue_socket(&before), Some(opened));
    }

    #[test]
    fn the_kernel_s_drops_are_read_for_the_agent_s_queue_only() {
        // As Linux 6.1 prints it: number, peer, total, copy mode and range,
        // dropped (queue full), dropped (socket full), last id, 1.
        let table = "    0  12345     0 2 65531     7     0      100  1
 4242  11061    12 2 65531  3616     5     8220  1
";
        assert_eq!(queue_drops(table, 4242), Some([3616, 5]));
        assert_eq!(queue_drops(table, 0), Some([7, 0]));
        assert_eq!(queue_drops(table, 1), None);
        for broken in ["", " 4242 1 2", " 4242 1 2 3 4 x 0 1 1", "garbage\n"] {
            assert_eq!(queue_drops(broken, 4242), None, "{broken:?}");
        }
        // A count past 32 bits is not ours to read.
        assert_eq!(queue_drops(" 4242 1 2 2 65531 4294967296 0 1 1", 4242), None);
    }

    #[test]
    fn the_drop_total_goes_on_past_the_kernel_s_32_bit_counts() {
        let mut total = DropTotal::default();
        assert_eq!(total.update([3616, 5]), 3621);
        assert_eq!(total.update([u32::MAX - 1, 5]), u64::from(u32::MAX) + 4);
        // The queue-full count goes round: 10 more past its top.
        assert_eq!(total.update([8, 5]), u64::from(u32::MAX) + 14);
        assert_eq!(total.update([8, 6]), u64::from(u32::MAX) + 15);
    }
}
