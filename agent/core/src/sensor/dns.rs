//! DNS messages, decoded by hickory-proto: the names asked and, for answers,
//! the addresses given.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RData;

use super::ParseError;

/// Answers list a handful of addresses; a message with more is reported by its first ones.
const MAX_ADDRESSES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuestion {
    /// Lowercase ASCII (punycode) form, no trailing dot.
    pub name: String,
    pub qtype: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMessage {
    /// The message id: an answer carries its query's.
    pub id: u16,
    pub response: bool,
    pub rcode: u16,
    pub questions: Vec<DnsQuestion>,
    /// A and AAAA addresses in the answer section.
    pub addresses: Vec<IpAddr>,
}

/// A DNS message over UDP, or one message taken off a TCP stream after its
/// two-byte length prefix.
pub fn parse_dns_message(bytes: &[u8]) -> Result<DnsMessage, ParseError> {
    let message = Message::from_vec(bytes).map_err(|_| ParseError::Invalid("dns message"))?;
    let questions = message
        .queries()
        .iter()
        .map(|q| {
            let mut name = q.name().to_ascii();
            if name.len() > 1 && name.ends_with('.') {
                name.pop();
            }
            name.make_ascii_lowercase();
            DnsQuestion { name, qtype: u16::from(q.query_type()) }
        })
        .collect();
    let addresses = message
        .answers()
        .iter()
        .take(MAX_ADDRESSES)
        .filter_map(|record| match record.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    Ok(DnsMessage {
        id: message.id(),
        response: message.message_type() == MessageType::Response,
        rcode: u16::from(message.response_code()),
        questions,
        addresses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dig chatgpt.com A` as sent by dig 9.18 (with an EDNS cookie).
    const QUERY: &[u8] = &[
        0x4a, 0x1f, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x07, b'C', b'h', b'a', b't',
        b'G', b'P', b'T', 0x03, b'c', b'o', b'm', 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x29, 0x04, 0xd0,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn query_name_is_lowercased_without_trailing_dot() {
        let m = parse_dns_message(QUERY).unwrap();
        assert!(!m.response);
        assert_eq!(m.questions, vec![DnsQuestion { name: "chatgpt.com".into(), qtype: 1 }]);
    }

    #[test]
    fn every_prefix_fails_cleanly() {
        for len in 0..QUERY.len() {
            let _ = parse_dns_message(&QUERY[..len]);
        }
        assert!(parse_dns_message(&QUERY[..20]).is_err());
    }
}
