//! The small OS differences the rest of the daemon meets outside the four
//! seams: who owns a file, file modes and links, the console's local socket,
//! the resolver's per-worker sockets, the journal's socket. Each has the
//! Unix way and, where the port is not built (agent/PORTING.md), an answer
//! that says so rather than one that pretends.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;

use anyhow::Result;

/// The uid that owns a file. `None` where files have no uid (Windows: an
/// owner SID, not read yet), so that callers that require a file to be a
/// given user's treat it as not theirs.
pub fn owner_uid(meta: &Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(meta.uid())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Sets a file's Unix permission bits exactly (whatever the umask);
/// elsewhere the file keeps its folder's access list.
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Makes `link` a symbolic link to `target`; an error where the agent does
/// not make links (Windows needs a privilege for them).
pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::symlink(target, link);
    #[cfg(not(unix))]
    {
        let _ = (target, link);
        Err(io::Error::new(io::ErrorKind::Unsupported, "links are made on Unix only"))
    }
}

/// The uid a process runs as; `None` where users are SIDs (Windows, not
/// mapped yet), so that the process is attributed to no one.
pub fn process_uid(process: &sysinfo::Process) -> Option<u32> {
    #[cfg(unix)]
    return process.user_id().map(|uid| **uid);
    #[cfg(not(unix))]
    {
        let _ = process;
        None
    }
}

/// Opens `path` to read it, without waiting on a FIFO a user put in place
/// of a file (on Unix: `O_NONBLOCK`; Windows has no FIFOs in the file system).
pub fn open_for_reading(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nix::libc::O_NONBLOCK);
    }
    options.open(path)
}

/// `options` with the Unix permission bits a new file gets; elsewhere the
/// file takes its folder's access list, which the service's state folder
/// restricts (agent/PORTING.md).
pub fn with_mode(options: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        options
    }
}

/// One UDP socket per resolver worker on `addr`. On Linux each has its own
/// (`SO_REUSEPORT` spreads datagrams over them: no receive queue shared
/// between workers); elsewhere they share one socket's queue, since the
/// BSDs' `SO_REUSEPORT` hands every unicast datagram to one socket.
pub fn udp_worker_sockets(
    addr: SocketAddr,
    workers: usize,
    timeout: std::time::Duration,
) -> io::Result<Vec<UdpSocket>> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let bound = || -> io::Result<UdpSocket> {
        let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        #[cfg(target_os = "linux")]
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        socket.set_read_timeout(Some(timeout))?;
        Ok(socket.into())
    };
    if cfg!(target_os = "linux") {
        (0..workers.max(1)).map(|_| bound()).collect()
    } else {
        let first = bound()?;
        let mut sockets = Vec::with_capacity(workers.max(1));
        for _ in 1..workers.max(1) {
            sockets.push(first.try_clone()?);
        }
        sockets.push(first);
        Ok(sockets)
    }
}

/// Whether this system has the systemd journal (the `[export]` section
/// refuses `journald = true` elsewhere).
pub const HAS_JOURNAL: bool = cfg!(target_os = "linux");

/// A datagram socket to the systemd journal's native socket.
#[derive(Debug)]
pub struct JournalSender {
    #[cfg(target_os = "linux")]
    socket: std::os::unix::net::UnixDatagram,
}

impl JournalSender {
    /// A journald that stops reading must not hold the caller for ever:
    /// sends time out after `timeout`.
    pub fn new(timeout: std::time::Duration) -> Result<Self> {
        #[cfg(target_os = "linux")]
        {
            use anyhow::Context as _;
            let socket = std::os::unix::net::UnixDatagram::unbound().context("a socket for the journal")?;
            socket.set_write_timeout(Some(timeout)).context("a socket for the journal")?;
            Ok(Self { socket })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = timeout;
            anyhow::bail!("the systemd journal exists on Linux only: export to a file here")
        }
    }

    pub fn send_to(&self, entry: &[u8], journal: &Path) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        return self.socket.send_to(entry, journal);
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (entry, journal);
            Err(io::ErrorKind::Unsupported.into())
        }
    }
}

/// Who is at the other end of a console connection, as the kernel says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPeer {
    pub uid: u32,
    pub pid: Option<i32>,
}

/// A console connection.
#[cfg(unix)]
pub type LocalStream = tokio::net::UnixStream;
/// No console transport is built here (the Windows named pipe: agent/PORTING.md).
#[cfg(not(unix))]
pub type LocalStream = tokio::io::DuplexStream;

/// The console's listening socket: a Unix socket open to every local user,
/// each peer known by its credentials (`SO_PEERCRED`, `getpeereid`).
#[derive(Debug)]
pub struct LocalListener {
    #[cfg(unix)]
    listener: tokio::net::UnixListener,
    #[cfg(not(unix))]
    never: std::convert::Infallible,
}

impl LocalListener {
    /// Binds `path` (replacing a stale socket) inside a Tokio runtime.
    pub fn bind(path: &Path) -> Result<Self> {
        use anyhow::Context as _;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing stale {}", path.display())),
            }
            let listener = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("console socket {}", path.display()))?;
            // Open to every local user: what each may do is decided per
            // request from its credentials.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
                .with_context(|| format!("console socket {}", path.display()))?;
            Ok(Self { listener })
        }
        #[cfg(not(unix))]
        Err(io::Error::from(io::ErrorKind::Unsupported))
            .with_context(|| format!("console socket {}: the named pipe is not built yet", path.display()))
    }

    /// The next connection.
    pub async fn accept(&self) -> io::Result<LocalStream> {
        #[cfg(unix)]
        return self.listener.accept().await.map(|(stream, _)| stream);
        #[cfg(not(unix))]
        match self.never {}
    }
}

/// Who is connected, as the kernel says: asked per connection, so that a
/// peer gone before the question ends its own connection, not the listener.
pub fn local_peer(stream: &LocalStream) -> io::Result<LocalPeer> {
    #[cfg(unix)]
    {
        let cred = stream.peer_cred()?;
        Ok(LocalPeer { uid: cred.uid(), pid: cred.pid() })
    }
    #[cfg(not(unix))]
    {
        let _ = stream;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// A blocking connection to the console socket, for `vigie-agent status`
/// and `request`.
#[cfg(unix)]
pub type LocalClient = std::os::unix::net::UnixStream;
/// Only a type here: `connect_local` refuses until the named pipe is built.
#[cfg(not(unix))]
pub type LocalClient = std::net::TcpStream;

/// Connects to the agent's console socket at `path`.
pub fn connect_local(path: &Path) -> io::Result<LocalClient> {
    #[cfg(unix)]
    return LocalClient::connect(path);
    #[cfg(not(unix))]
    {
        let _ = path;
        Err(io::Error::new(io::ErrorKind::Unsupported, "the agent's named pipe is not built for this system"))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    #[cfg(target_os = "linux")]
    fn each_resolver_worker_has_its_own_socket_on_one_port() {
        let first = udp_worker_sockets("127.0.0.1:0".parse().unwrap(), 1, Duration::from_millis(50)).unwrap();
        let addr = first[0].local_addr().unwrap();
        drop(first);
        let sockets = udp_worker_sockets(addr, 3, Duration::from_millis(50)).unwrap();
        assert_eq!(sockets.len(), 3);
        assert!(sockets.iter().all(|s| s.local_addr().unwrap() == addr));
        // Distinct sockets (not clones of one): each has its own descriptor
        // and its own queue; a datagram reaches exactly one of them.
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"q", addr).unwrap();
        let received = sockets.iter().filter(|s| s.recv(&mut [0u8; 4]).is_ok()).count();
        assert_eq!(received, 1);
    }

    #[test]
    fn a_file_owner_and_a_console_peer_are_known_by_uid() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        // The folder this test made is its own user's.
        let me = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir.path()).unwrap());
        assert_eq!(owner_uid(&std::fs::metadata(&file).unwrap()), Some(me));

        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let path = dir.path().join("run/agent.sock");
            std::fs::create_dir_all(dir.path().join("run")).unwrap();
            std::fs::write(&path, b"stale").unwrap();
            let listener = LocalListener::bind(&path).unwrap();
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o666);
            let _client = tokio::net::UnixStream::connect(&path).await.unwrap();
            let stream = listener.accept().await.unwrap();
            let peer = local_peer(&stream).unwrap();
            assert_eq!((peer.uid, peer.pid), (me, Some(i32::try_from(std::process::id()).unwrap())));
        });
    }
}
