//! Linux sock_diag (netlink) messages for one socket lookup: which uid and
//! socket inode own a TCP or UDP flow. Pure encoding and decoding; the agent
//! does the netlink I/O. Written by hand: the request and the reply are two
//! fixed-layout structs (linux/inet_diag.h), far less than the netlink-packet
//! crate family would bring in for them.

use std::net::{IpAddr, SocketAddr};

use crate::sensor::Protocol;

const NLMSG_HDR_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// inet_diag_msg: family, state, timer, retrans (4), sockid (48), expires,
/// rqueue, wqueue (12), then uid and inode.
const DIAG_MSG_UID: usize = 64;
const DIAG_MSG_INODE: usize = 68;
const DIAG_MSG_LEN: usize = 72;

/// Who holds a socket, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOwner {
    pub uid: u32,
    /// The socket's inode, as in `/proc/<pid>/fd/* -> socket:[inode]`.
    pub inode: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SockDiagError {
    #[error("truncated sock_diag reply")]
    Truncated,
    #[error("sock_diag error {0}")]
    Kernel(i32),
    #[error("unexpected netlink message type {0}")]
    Unexpected(u16),
}

fn address_bytes(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            if let Some(head) = out.get_mut(..4) {
                head.copy_from_slice(&v4.octets());
            }
        }
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

/// A request for the one socket of `protocol` bound to `local` and talking
/// to `remote` (a local process's view of the flow). `None` when the two
/// addresses are of different families.
pub fn lookup_request(
    protocol: Protocol,
    local: SocketAddr,
    remote: SocketAddr,
    seq: u32,
) -> Option<Vec<u8>> {
    let family = match (local.ip(), remote.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => AF_INET6,
        _ => return None,
    };
    // UDP's lookup takes the packet's view: its source is the remote end
    // (net/ipv4/udp_diag.c: "src and dst are swapped for historical reasons").
    let (proto, src, dst) = match protocol {
        Protocol::Tcp => (IPPROTO_TCP, local, remote),
        Protocol::Udp => (IPPROTO_UDP, remote, local),
    };
    let mut msg = Vec::with_capacity(NLMSG_HDR_LEN + 56);
    msg.extend_from_slice(&((NLMSG_HDR_LEN + 56) as u32).to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[family, proto, 0, 0]);
    msg.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    msg.extend_from_slice(&src.port().to_be_bytes());
    msg.extend_from_slice(&dst.port().to_be_bytes());
    msg.extend_from_slice(&address_bytes(src.ip()));
    msg.extend_from_slice(&address_bytes(dst.ip()));
    msg.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    msg.extend_from_slice(&u32::MAX.to_ne_bytes()); // INET_DIAG_NOCOOKIE
    msg.extend_from_slice(&u32::MAX.to_ne_bytes());
    Some(msg)
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, SockDiagError> {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ok(u32::from_ne_bytes([a, b, c, d])),
        _ => Err(SockDiagError::Truncated),
    }
}

/// The owner in the kernel's reply to [`lookup_request`] with sequence
/// number `seq`; `Ok(None)` when no such socket exists (ENOENT) or the
/// reply answers another request.
pub fn parse_lookup_reply(reply: &[u8], seq: u32) -> Result<Option<SocketOwner>, SockDiagError> {
    let mut at = 0;
    while at + NLMSG_HDR_LEN <= reply.len() {
        let len = u32_at(reply, at)? as usize;
        if len < NLMSG_HDR_LEN {
            return Err(SockDiagError::Truncated);
        }
        let message = reply.get(at..at + len).ok_or(SockDiagError::Truncated)?;
        let kind = match message.get(4..6) {
            Some(&[a, b]) => u16::from_ne_bytes([a, b]),
            _ => return Err(SockDiagError::Truncated),
        };
        let payload = message.get(NLMSG_HDR_LEN..).unwrap_or_default();
        if u32_at(message, 8)? == seq {
            match kind {
                SOCK_DIAG_BY_FAMILY if payload.len() >= DIAG_MSG_LEN => {
                    let uid = u32_at(payload, DIAG_MSG_UID)?;
                    let inode = u64::from(u32_at(payload, DIAG_MSG_INODE)?);
                    return Ok(Some(SocketOwner { uid, inode }));
                }
                SOCK_DIAG_BY_FAMILY => return Err(SockDiagError::Truncated),
                NLMSG_ERROR => {
                    let errno = u32_at(payload, 0)? as i32;
                    return match errno {
                        // An acknowledgement, or ENOENT: no such socket.
                        0 | -2 => Ok(None),
                        e => Err(SockDiagError::Kernel(e)),
                    };
                }
                NLMSG_DONE => return Ok(None),
                other => return Err(SockDiagError::Unexpected(other)),
            }
        }
        // Netlink messages are 4-byte aligned.
        at += (len + 3) & !3;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDR_LEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn request_layout() {
        let local: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let remote: SocketAddr = "10.0.0.2:443".parse().unwrap();
        let tcp = lookup_request(Protocol::Tcp, local, remote, 7).unwrap();
        assert_eq!(tcp.len(), 72);
        assert_eq!(&tcp[16..18], &[AF_INET, IPPROTO_TCP]);
        assert_eq!(&tcp[24..26], &40000u16.to_be_bytes());
        assert_eq!(&tcp[28..32], &[10, 0, 0, 1]);
        let udp = lookup_request(Protocol::Udp, local, remote, 7).unwrap();
        assert_eq!(&udp[24..26], &443u16.to_be_bytes());
        let v6: SocketAddr = "[::1]:53".parse().unwrap();
        assert!(lookup_request(Protocol::Udp, local, v6, 1).is_none());
    }

    #[test]
    fn replies() {
        let mut payload = vec![0u8; DIAG_MSG_LEN];
        payload[DIAG_MSG_UID..DIAG_MSG_UID + 4].copy_from_slice(&1000u32.to_ne_bytes());
        payload[DIAG_MSG_INODE..DIAG_MSG_INODE + 4].copy_from_slice(&123_456u32.to_ne_bytes());
        let found = reply(SOCK_DIAG_BY_FAMILY, 9, &payload);
        assert_eq!(parse_lookup_reply(&found, 9), Ok(Some(SocketOwner { uid: 1000, inode: 123_456 })));
        assert_eq!(parse_lookup_reply(&found, 8), Ok(None));
        let enoent = reply(NLMSG_ERROR, 9, &(-2i32).to_ne_bytes());
        assert_eq!(parse_lookup_reply(&enoent, 9), Ok(None));
        let eperm = reply(NLMSG_ERROR, 9, &(-1i32).to_ne_bytes());
        assert_eq!(parse_lookup_reply(&eperm, 9), Err(SockDiagError::Kernel(-1)));
        for len in 0..found.len() {
            assert_ne!(
                parse_lookup_reply(&found[..len], 9),
                Ok(Some(SocketOwner { uid: 1000, inode: 123_456 }))
            );
        }
    }
}
