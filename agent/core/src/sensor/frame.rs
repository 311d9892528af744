//! Link, network and transport headers: Ethernet (802.1Q/802.1ad tags), Linux
//! cooked capture v1 and v2, BSD loopback, raw IP; IPv4, IPv6 with extension
//! headers; TCP and UDP. Pure functions over `&[u8]`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::reader::Reader;
use super::ParseError;

/// The capture's link layer, from the pcap `LINKTYPE_*` registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkType {
    Ethernet,
    /// Raw IPv4 or IPv6, version taken from the first nibble.
    RawIp,
    /// BSD loopback, address family in host byte order.
    Null,
    /// OpenBSD loopback, address family in network byte order.
    Loop,
    LinuxSll,
    LinuxSll2,
}

impl LinkType {
    /// Maps a pcap/pcapng link-type number; `None` for link types we do not read.
    pub fn from_linktype(value: i32) -> Option<Self> {
        match value {
            1 => Some(Self::Ethernet),
            0 => Some(Self::Null),
            108 => Some(Self::Loop),
            // 12 and 14 are raw IP on some BSDs, 101 everywhere, 228/229 raw IPv4/IPv6.
            12 | 14 | 101 | 228 | 229 => Some(Self::RawIp),
            113 => Some(Self::LinuxSll),
            276 => Some(Self::LinuxSll2),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

impl TcpSegment<'_> {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp(TcpSegment<'a>),
    Udp {
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
    },
    /// A non-first IP fragment or a fragmented first one: not reassembled.
    Fragment,
    /// Another IP protocol (ICMP, ESP, ...).
    Other(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub transport: Transport<'a>,
}

/// What a frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Ip(IpPacket<'a>),
    /// ARP, LLDP and other non-IP link traffic.
    NotIp,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const MAX_VLAN_TAGS: usize = 4;

pub fn decode_frame(link: LinkType, frame: &[u8]) -> Result<Frame<'_>, ParseError> {
    let mut r = Reader::new(frame);
    let ethertype = match link {
        LinkType::Ethernet => {
            r.skip(12, "ethernet addresses")?;
            let mut ethertype = r.u16("ethertype")?;
            let mut tags = 0;
            while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Err(ParseError::Invalid("too many VLAN tags"));
                }
                r.skip(2, "vlan tag")?;
                ethertype = r.u16("vlan ethertype")?;
            }
            ethertype
        }
        LinkType::LinuxSll => {
            r.skip(14, "sll header")?;
            r.u16("sll protocol")?
        }
        LinkType::LinuxSll2 => {
            let protocol = r.u16("sll2 protocol")?;
            r.skip(18, "sll2 header")?;
            protocol
        }
        LinkType::Null | LinkType::Loop => {
            let family = r.array::<4>("loopback family")?;
            let family = if link == LinkType::Loop {
                u32::from_be_bytes(family)
            } else if family[0] == 0 && family[1] == 0 {
                // Written by a big-endian host.
                u32::from_be_bytes(family)
            } else {
                u32::from_le_bytes(family)
            };
            match family {
                2 => ETHERTYPE_IPV4,
                // AF_INET6 differs across BSDs and macOS.
                10 | 24 | 28 | 30 => ETHERTYPE_IPV6,
                _ => return Ok(Frame::NotIp),
            }
        }
        LinkType::RawIp => match r.clone().u8("ip version")? >> 4 {
            4 => ETHERTYPE_IPV4,
            6 => ETHERTYPE_IPV6,
            _ => return Err(ParseError::Invalid("ip version")),
        },
    };
    let packet = r.rest();
    match ethertype {
        ETHERTYPE_IPV4 => decode_ipv4(packet).map(Frame::Ip),
        ETHERTYPE_IPV6 => decode_ipv6(packet).map(Frame::Ip),
        _ => Ok(Frame::NotIp),
    }
}

/// Clips a payload to its header's stated length; a capture with a short
/// snaplen or a padded Ethernet frame differ from it in opposite directions.
fn clip(payload: &[u8], stated: usize) -> &[u8] {
    payload.get(..stated).unwrap_or(payload)
}

fn decode_ipv4(packet: &[u8]) -> Result<IpPacket<'_>, ParseError> {
    let mut r = Reader::new(packet);
    let version_ihl = r.u8("ipv4 version")?;
    if version_ihl >> 4 != 4 {
        return Err(ParseError::Invalid("ipv4 version"));
    }
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if header_len < 20 {
        return Err(ParseError::Invalid("ipv4 header length"));
    }
    r.skip(1, "ipv4 tos")?;
    let total_len = usize::from(r.u16("ipv4 total length")?);
    if total_len < header_len {
        return Err(ParseError::Invalid("ipv4 total length"));
    }
    r.skip(2, "ipv4 id")?;
    let fragment = r.u16("ipv4 fragment")?;
    r.skip(1, "ipv4 ttl")?;
    let protocol = r.u8("ipv4 protocol")?;
    r.skip(2, "ipv4 checksum")?;
    let src = IpAddr::V4(Ipv4Addr::from(r.array::<4>("ipv4 source")?));
    let dst = IpAddr::V4(Ipv4Addr::from(r.array::<4>("ipv4 destination")?));
    r.skip(header_len - 20, "ipv4 options")?;
    let payload = clip(r.rest(), total_len - header_len);
    // More-fragments set or a non-zero offset: not a whole datagram.
    let transport =
        if fragment & 0x3fff != 0 { Transport::Fragment } else { decode_transport(protocol, payload)? };
    Ok(IpPacket { src, dst, transport })
}

fn decode_ipv6(packet: &[u8]) -> Result<IpPacket<'_>, ParseError> {
    let mut r = Reader::new(packet);
    if r.u8("ipv6 version")? >> 4 != 6 {
        return Err(ParseError::Invalid("ipv6 version"));
    }
    r.skip(3, "ipv6 flow label")?;
    let payload_len = usize::from(r.u16("ipv6 payload length")?);
    let mut next = r.u8("ipv6 next header")?;
    r.skip(1, "ipv6 hop limit")?;
    let src = IpAddr::V6(Ipv6Addr::from(r.array::<16>("ipv6 source")?));
    let dst = IpAddr::V6(Ipv6Addr::from(r.array::<16>("ipv6 destination")?));
    // A zero payload length means a jumbogram or a GSO super-packet: keep all.
    let mut r = Reader::new(if payload_len == 0 { r.rest() } else { clip(r.rest(), payload_len) });
    // Bounded walk: a chain of extension headers cannot loop forever.
    for _ in 0..16 {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => {
                next = r.u8("ipv6 extension next header")?;
                let len = usize::from(r.u8("ipv6 extension length")?) * 8 + 6;
                r.skip(len, "ipv6 extension header")?;
            }
            44 => {
                next = r.u8("ipv6 fragment next header")?;
                r.skip(1, "ipv6 fragment reserved")?;
                let offset_flags = r.u16("ipv6 fragment offset")?;
                r.skip(4, "ipv6 fragment id")?;
                if offset_flags & 0xfff9 != 0 {
                    return Ok(IpPacket { src, dst, transport: Transport::Fragment });
                }
            }
            51 => {
                next = r.u8("ipv6 auth next header")?;
                let len = (usize::from(r.u8("ipv6 auth length")?) + 2) * 4 - 2;
                r.skip(len, "ipv6 auth header")?;
            }
            _ => {
                let transport = decode_transport(next, r.rest())?;
                return Ok(IpPacket { src, dst, transport });
            }
        }
    }
    Err(ParseError::Invalid("ipv6 extension header chain too long"))
}

fn decode_transport(protocol: u8, payload: &[u8]) -> Result<Transport<'_>, ParseError> {
    let mut r = Reader::new(payload);
    match protocol {
        6 => {
            let src_port = r.u16("tcp source port")?;
            let dst_port = r.u16("tcp destination port")?;
            let seq = r.u32("tcp sequence")?;
            r.skip(4, "tcp acknowledgement")?;
            let offset = usize::from(r.u8("tcp data offset")? >> 4) * 4;
            if offset < 20 {
                return Err(ParseError::Invalid("tcp data offset"));
            }
            let flags = r.u8("tcp flags")?;
            r.skip(6, "tcp window, checksum, urgent")?;
            r.skip(offset - 20, "tcp options")?;
            let payload = r.rest();
            Ok(Transport::Tcp(TcpSegment { src_port, dst_port, seq, flags, payload }))
        }
        17 => {
            let src_port = r.u16("udp source port")?;
            let dst_port = r.u16("udp destination port")?;
            let len = usize::from(r.u16("udp length")?);
            r.skip(2, "udp checksum")?;
            // Length 0 is legal for UDP over IPv6 jumbograms; GSO frames may also
            // carry a length that covers one segment only. Trust the bytes.
            let payload = r.rest();
            let payload = if len >= 8 { clip(payload, len - 8) } else { payload };
            Ok(Transport::Udp { src_port, dst_port, payload })
        }
        other => Ok(Transport::Other(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0];
        p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let udp_len = 8 + payload.len();
        p.extend_from_slice(&[0x30, 0x39, 0, 53, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ethernet_with_two_vlan_tags() {
        let mut f = vec![0; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00]);
        f.extend(ipv4_udp(b"hello"));
        f.extend_from_slice(&[0; 6]); // Ethernet padding beyond the IP length.
        let Ok(Frame::Ip(p)) = decode_frame(LinkType::Ethernet, &f) else { panic!("not decoded") };
        assert_eq!(p.transport, Transport::Udp { src_port: 12345, dst_port: 53, payload: b"hello" });
    }

    #[test]
    fn ipv6_extension_headers_are_walked() {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        p.extend_from_slice(&[0; 32]);
        // Hop-by-hop (16 bytes: length 1 counts 8-octet units past the first 8),
        // then AH (16 bytes: length 2 counts 4-octet units minus 2), then UDP.
        p.extend_from_slice(&[51, 1, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9]);
        p.extend_from_slice(&[17, 2, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9]);
        p.extend_from_slice(&[0, 1, 0, 2, 0, 9, 0, 0, 7]);
        let len = p.len() - 40;
        p[5] = len as u8;
        let Ok(Frame::Ip(ip)) = decode_frame(LinkType::RawIp, &p) else { panic!("not decoded") };
        assert_eq!(ip.transport, Transport::Udp { src_port: 1, dst_port: 2, payload: &[7] });
    }

    #[test]
    fn every_prefix_of_a_frame_is_an_error_not_a_panic() {
        let mut f = vec![0; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend(ipv4_udp(b"x"));
        for len in 0..f.len() {
            let _ = decode_frame(LinkType::Ethernet, &f[..len]);
        }
        for link in [LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Null, LinkType::RawIp] {
            for len in 0..f.len() {
                let _ = decode_frame(link, &f[..len]);
            }
        }
    }

    #[test]
    fn fragments_are_not_parsed_as_transport() {
        let mut p = ipv4_udp(b"abc");
        p[6] = 0x20; // More fragments.
        let Ok(Frame::Ip(ip)) = decode_frame(LinkType::RawIp, &p) else { panic!("not decoded") };
        assert_eq!(ip.transport, Transport::Fragment);
    }
}
