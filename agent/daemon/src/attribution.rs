//! Who is behind a flow: the user and program owning its local socket.
//! One trait; each platform implements it (see `platform`).

use std::net::SocketAddr;

use vigie_core::event::Attribution;
use vigie_core::policy::Subject;
use vigie_core::sensor::Protocol;

/// A flow's owner, with the groups policy rules match on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    pub attribution: Attribution,
    pub groups: Vec<String>,
}

impl Owner {
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            user: self.attribution.user.as_deref(),
            groups: &self.groups,
            program: self.attribution.program.as_deref(),
            program_path: self.attribution.program_path.as_deref(),
        }
    }
}

pub trait OwnerLookup: Send + Sync + std::fmt::Debug {
    /// The owner of the local socket `local` talking to `remote`; what
    /// cannot be found stays empty (a flow routed through this machine has
    /// no local socket).
    fn owner(&self, protocol: Protocol, local: SocketAddr, remote: SocketAddr) -> Owner;

    /// An owner known only by uid (from the kernel, when the socket itself is
    /// gone): the user and their groups, no program.
    fn for_uid(&self, uid: u32) -> Owner {
        Owner { attribution: Attribution { uid: Some(uid), ..Attribution::default() }, groups: Vec::new() }
    }

    /// The name and executable of a process, as flows record them.
    fn program(&self, _pid: u32) -> (Option<String>, Option<String>) {
        (None, None)
    }

    /// Microseconds each attribution took so far (bounded), for the
    /// performance figures.
    fn timings(&self) -> Vec<u32> {
        Vec::new()
    }
}
