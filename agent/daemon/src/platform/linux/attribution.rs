//! Socket → user and program on Linux. The kernel names a flow's owner uid
//! and socket inode through one sock_diag lookup (microseconds); the
//! process holding that inode is found in /proc, first among the processes
//! that owned recent flows (browsers open many), then among that uid's
//! processes. Only flows the policy cares about are attributed, so this
//! runs for a handful of flows, not for every packet.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NetlinkAddr};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
use tracing::debug;
use vigie_core::event::Attribution;
use vigie_core::sensor::Protocol;
use vigie_core::sockdiag::{lookup_request, parse_lookup_reply, SocketOwner};

use crate::accounts::Accounts;
use crate::attribution::{Owner, OwnerLookup};

/// Processes scanned first, most recent owner first.
const HOT_PROCESSES: usize = 32;
/// Longest a search through `/proc` may take before giving up the program.
const SCAN_BUDGET: Duration = Duration::from_millis(20);
/// Known socket inodes; the index starts over past this.
const MAX_INDEXED_SOCKETS: usize = 1 << 18;

#[derive(Debug, Default)]
struct ProcIndex {
    by_inode: HashMap<u64, u32>,
    hot: VecDeque<u32>,
}

impl ProcIndex {
    /// Records the sockets `pid` holds, until `deadline`; whether `inode`
    /// is among them. A process holding hundreds of thousands of
    /// descriptors is read only as far as the budget goes.
    fn scan(&mut self, pid: u32, inode: u64, deadline: Instant) -> bool {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
        let mut found = false;
        for (i, fd) in fds.flatten().enumerate() {
            if i % 256 == 255 && Instant::now() >= deadline {
                break;
            }
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let Some(socket) = target.to_str().and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']'))
            else {
                continue;
            };
            let Ok(socket) = socket.parse::<u64>() else { continue };
            if self.by_inode.len() >= MAX_INDEXED_SOCKETS {
                self.by_inode.clear();
            }
            self.by_inode.insert(socket, pid);
            found |= socket == inode;
        }
        found
    }

    fn find(&mut self, owner: SocketOwner) -> Option<u32> {
        if let Some(&pid) = self.by_inode.get(&owner.inode) {
            return Some(pid);
        }
        let deadline = Instant::now() + SCAN_BUDGET;
        // A socket's uid is its creator's: only that user's processes are looked at.
        let same_user =
            |pid: u32| std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == owner.uid);
        let hot: Vec<u32> = self.hot.iter().copied().collect();
        let pid = hot
            .into_iter()
            .find(|&pid| same_user(pid) && self.scan(pid, owner.inode, deadline))
            .or_else(|| {
                // Newest first: a connection that no recent owner made most
                // likely comes from a process that just started (pids grow).
                let mut pids: Vec<u32> = std::fs::read_dir("/proc")
                    .ok()?
                    .flatten()
                    .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                    .collect();
                pids.sort_unstable_by(|a, b| b.cmp(a));
                // For a bounded time: the caller holds the lookup lock.
                pids.into_iter()
                    .take_while(|_| Instant::now() < deadline)
                    .find(|&pid| same_user(pid) && self.scan(pid, owner.inode, deadline))
            })?;
        self.hot.retain(|&p| p != pid);
        self.hot.push_front(pid);
        self.hot.truncate(HOT_PROCESSES);
        Some(pid)
    }
}

/// How long a flow's owner, and a process's name, are reused: a client
/// that sends many queries from one socket is looked up once.
const OWNER_TTL: Duration = Duration::from_secs(2);
const PROGRAM_TTL: Duration = Duration::from_secs(10);
const MAX_CACHED: usize = 4096;

#[derive(Debug)]
struct State {
    netlink: Option<Socket>,
    seq: u32,
    index: ProcIndex,
    system: System,
    owners: HashMap<(bool, SocketAddr, SocketAddr), (Instant, Owner)>,
    programs: HashMap<u32, (Instant, Option<String>, Option<String>)>,
}

impl std::fmt::Debug for LinuxAttributor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxAttributor").finish_non_exhaustive()
    }
}

/// Shared by the capture threads and the resolver.
pub(super) struct LinuxAttributor {
    state: Mutex<State>,
    accounts: Mutex<(Instant, Arc<Accounts>)>,
    timings: Mutex<Vec<u32>>,
}

impl Default for LinuxAttributor {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                netlink: None,
                seq: 0,
                index: ProcIndex::default(),
                system: System::new(),
                owners: HashMap::new(),
                programs: HashMap::new(),
            }),
            accounts: Mutex::new((Instant::now(), Arc::new(Accounts::load()))),
            timings: Mutex::new(Vec::new()),
        }
    }
}

fn open_netlink() -> std::io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&NetlinkAddr::new(0, 0))?;
    Ok(socket)
}

impl LinuxAttributor {
    fn accounts(&self) -> Arc<Accounts> {
        let Ok(mut cached) = self.accounts.lock() else { return Arc::new(Accounts::load()) };
        if cached.0.elapsed().as_secs() >= 60 {
            *cached = (Instant::now(), Arc::new(Accounts::load()));
        }
        Arc::clone(&cached.1)
    }
}

impl OwnerLookup for LinuxAttributor {
    fn owner(&self, protocol: Protocol, local: SocketAddr, remote: SocketAddr) -> Owner {
        let started = Instant::now();
        let Ok(mut state) = self.state.lock() else { return Owner::default() };
        let key = (protocol == Protocol::Tcp, local, remote);
        if let Some((at, owner)) = state.owners.get(&key) {
            if at.elapsed() < OWNER_TTL {
                return owner.clone();
            }
        }
        let Some(socket) = state.socket_owner(protocol, local, remote) else { return Owner::default() };
        let mut attribution = Attribution { uid: Some(socket.uid), ..Attribution::default() };
        if let Some(pid) = state.index.find(socket) {
            attribution.pid = Some(pid);
            let (program, path) = state.program(pid);
            attribution.program = program;
            attribution.program_path = path;
        }
        let accounts = self.accounts();
        attribution.user = accounts.user_name(socket.uid).map(str::to_owned);
        let owner = Owner { attribution, groups: accounts.groups_of(socket.uid) };
        if state.owners.len() >= MAX_CACHED {
            state.owners.retain(|_, (at, _)| at.elapsed() < OWNER_TTL);
            if state.owners.len() >= MAX_CACHED {
                state.owners.clear();
            }
        }
        state.owners.insert(key, (Instant::now(), owner.clone()));
        drop(state);
        if let Ok(mut timings) = self.timings.lock() {
            if timings.len() < 100_000 {
                timings.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
        }
        owner
    }

    fn for_uid(&self, uid: u32) -> Owner {
        let accounts = self.accounts();
        let attribution = Attribution {
            uid: Some(uid),
            user: accounts.user_name(uid).map(str::to_owned),
            ..Attribution::default()
        };
        Owner { attribution, groups: accounts.groups_of(uid) }
    }

    fn program(&self, pid: u32) -> (Option<String>, Option<String>) {
        match self.state.lock() {
            Ok(mut state) => state.program(pid),
            Err(_) => (None, None),
        }
    }

    fn timings(&self) -> Vec<u32> {
        self.timings.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl State {
    /// The name and executable of `pid`, through sysinfo, kept a few seconds.
    fn program(&mut self, pid: u32) -> (Option<String>, Option<String>) {
        if let Some((at, name, path)) = self.programs.get(&pid) {
            if at.elapsed() < PROGRAM_TTL {
                return (name.clone(), path.clone());
            }
        }
        let sys_pid = Pid::from_u32(pid);
        let refresh = ProcessRefreshKind::nothing().with_exe(UpdateKind::Always);
        self.system.refresh_processes_specifics(ProcessesToUpdate::Some(&[sys_pid]), true, refresh);
        let (name, path) = match self.system.process(sys_pid) {
            Some(process) => (
                Some(process.name().to_string_lossy().into_owned()),
                process.exe().map(|p| p.display().to_string()),
            ),
            None => (None, None),
        };
        if self.programs.len() >= MAX_CACHED {
            self.programs.clear();
        }
        self.programs.insert(pid, (Instant::now(), name.clone(), path.clone()));
        (name, path)
    }

    fn socket_owner(
        &mut self,
        protocol: Protocol,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<SocketOwner> {
        self.seq = self.seq.wrapping_add(1);
        let request = lookup_request(protocol, local, remote, self.seq)?;
        if self.netlink.is_none() {
            self.netlink = open_netlink().map_err(|e| debug!(error = %e, "sock_diag socket")).ok();
        }
        let socket = self.netlink.as_ref()?;
        let mut reply = Vec::with_capacity(8192);
        let exchanged = socket.send(&request, 0).and_then(|_| socket.recv(&mut reply, 0));
        match exchanged {
            Ok(_) => {
                parse_lookup_reply(&reply, self.seq).map_err(|e| debug!(error = %e, "sock_diag")).ok()?
            }
            Err(e) => {
                debug!(error = %e, "sock_diag exchange");
                // Start over with a fresh socket next time.
                self.netlink = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    #[test]
    fn finds_this_process_behind_its_own_sockets() {
        let attributor = LinuxAttributor::default();
        let me = std::process::id();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let owner =
            attributor.owner(Protocol::Tcp, client.local_addr().unwrap(), listener.local_addr().unwrap());
        assert_eq!(owner.attribution.pid, Some(me));
        assert!(owner.attribution.program_path.is_some(), "{owner:?}");
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.connect(server.local_addr().unwrap()).unwrap();
        let owner = attributor.owner(Protocol::Udp, udp.local_addr().unwrap(), server.local_addr().unwrap());
        assert_eq!(owner.attribution.pid, Some(me), "connected UDP");
        // An unconnected socket, as a resolver client that used sendto().
        let loose = UdpSocket::bind("127.0.0.1:0").unwrap();
        let owner =
            attributor.owner(Protocol::Udp, loose.local_addr().unwrap(), server.local_addr().unwrap());
        assert_eq!(owner.attribution.pid, Some(me), "unconnected UDP");
        let gone: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let nobody = attributor.owner(Protocol::Tcp, gone, listener.local_addr().unwrap());
        assert_eq!(nobody, Owner::default());
    }

    #[test]
    fn a_process_with_many_descriptors_is_read_only_within_the_budget() {
        // 2,000 descriptors, then the socket looked for, at the end.
        let held: Vec<std::fs::File> = (0..2000).map(|_| std::fs::File::open("/dev/null").unwrap()).collect();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        assert!(fd > 2000, "the socket comes after the files");
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let inode: u64 = target
            .to_str()
            .unwrap()
            .strip_prefix("socket:[")
            .unwrap()
            .strip_suffix(']')
            .unwrap()
            .parse()
            .unwrap();
        let me = std::process::id();
        let mut index = ProcIndex::default();
        assert!(!index.scan(me, inode, Instant::now()), "past its deadline, the scan stops early");
        assert!(index.by_inode.len() < 300, "{} sockets read", index.by_inode.len());
        let mut index = ProcIndex::default();
        assert!(index.scan(me, inode, Instant::now() + Duration::from_secs(5)));
        drop((held, socket));
    }
}
