//! DNS wire format for the resolver's hot path, by hand: the question of a
//! query, replies built from it, and TTL walks over a response. hickory-proto
//! decodes whole messages into owned records, which costs more than the
//! forwarding itself; a forwarder only needs these few fields. ECH stripping,
//! which rewrites records, goes through hickory (see `strip_ech`).

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::svcb::{SvcParamKey, SVCB};
use hickory_proto::rr::rdata::HTTPS;
use hickory_proto::rr::RData;

const HEADER_LEN: usize = 12;
const MAX_NAME_LEN: usize = 255;
/// A compression pointer can only point backwards, so a valid name has fewer
/// jumps than labels; this bounds a malicious loop.
const MAX_NAME_STEPS: usize = 128;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_SVCB: u16 = 64;
pub const TYPE_HTTPS: u16 = 65;
pub const CLASS_IN: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated DNS message")]
    Truncated,
    #[error("not a query")]
    NotQuery,
    #[error("unsupported opcode {0}")]
    Opcode(u8),
    #[error("expected one question, got {0}")]
    QuestionCount(u16),
    #[error("malformed name")]
    Name,
}

/// The question of a query, borrowed from the message it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    pub id: u16,
    /// Lowercase, dot-separated, no trailing dot; `None` when a label holds
    /// bytes no host name can (dots, spaces, non-ASCII): such a name is not
    /// in the catalog and is only forwarded.
    pub name: Option<String>,
    pub qtype: u16,
    pub qclass: u16,
    pub recursion_desired: bool,
    /// CD: the sender asks not to have DNSSEC checked for it.
    pub checking_disabled: bool,
    /// The sender understands EDNS (RFC 6891): replies may carry an OPT record.
    pub edns: bool,
    /// DO, in the OPT record: the sender wants DNSSEC records.
    pub dnssec_ok: bool,
    /// Name, type and class exactly as sent: copied into replies.
    pub question: &'a [u8],
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, WireError> {
    match msg.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(WireError::Truncated),
    }
}

fn u32_at(msg: &[u8], at: usize) -> Result<u32, WireError> {
    match msg.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(WireError::Truncated),
    }
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Result<usize, WireError> {
    for _ in 0..MAX_NAME_STEPS {
        let len = *msg.get(at).ok_or(WireError::Truncated)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Ok(at + 1),
            0x00 => at += 1 + usize::from(len),
            // A pointer ends the name where it stands.
            0xC0 => return msg.get(at + 1).map(|_| at + 2).ok_or(WireError::Truncated),
            _ => return Err(WireError::Name),
        }
    }
    Err(WireError::Name)
}

/// Reads the single question of a query. Queries carry uncompressed names
/// (nothing precedes the question to point to), so a pointer is an error.
pub fn parse_query(msg: &[u8]) -> Result<Query<'_>, WireError> {
    let header = msg.get(..HEADER_LEN).ok_or(WireError::Truncated)?;
    let flags = u16_at(header, 2)?;
    if flags & 0x8000 != 0 {
        return Err(WireError::NotQuery);
    }
    let opcode = ((flags >> 11) & 0x0F) as u8;
    if opcode != 0 {
        return Err(WireError::Opcode(opcode));
    }
    let questions = u16_at(header, 4)?;
    if questions != 1 {
        return Err(WireError::QuestionCount(questions));
    }
    let mut name = String::new();
    let mut printable = true;
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*msg.get(at).ok_or(WireError::Truncated)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len > 63 {
            return Err(WireError::Name);
        }
        let label = msg.get(at + 1..at + 1 + len).ok_or(WireError::Truncated)?;
        // The name so far, this label and the closing root label, in wire bytes.
        if at - HEADER_LEN + 1 + len + 1 > MAX_NAME_LEN {
            return Err(WireError::Name);
        }
        printable &= label.iter().all(|b| b.is_ascii_graphic() && *b != b'.');
        if printable {
            if !name.is_empty() {
                name.push('.');
            }
            name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
        }
        at += 1 + len;
    }
    let qtype = u16_at(msg, at)?;
    let qclass = u16_at(msg, at + 2)?;
    let question = msg.get(HEADER_LEN..at + 4).ok_or(WireError::Truncated)?;
    let opt_flags = opt_flags(msg, at + 4, header)?;
    Ok(Query {
        id: u16_at(header, 0)?,
        name: printable.then_some(name),
        qtype,
        qclass,
        recursion_desired: flags & 0x0100 != 0,
        checking_disabled: flags & 0x0010 != 0,
        edns: opt_flags.is_some(),
        dnssec_ok: opt_flags.is_some_and(|f| f & 0x8000 != 0),
        question,
    })
}

/// The EDNS flags of the OPT record among the records after the question,
/// if there is one.
fn opt_flags(msg: &[u8], mut at: usize, header: &[u8]) -> Result<Option<u16>, WireError> {
    let records =
        u32::from(u16_at(header, 6)?) + u32::from(u16_at(header, 8)?) + u32::from(u16_at(header, 10)?);
    for _ in 0..records {
        at = skip_name(msg, at)?;
        let rtype = u16_at(msg, at)?;
        if rtype == TYPE_OPT {
            // Type, class (payload size), extended rcode, version, then the flags.
            return u16_at(msg, at + 6).map(Some);
        }
        at += 10 + usize::from(u16_at(msg, at + 8)?);
    }
    Ok(None)
}

/// A response to `query` with `rcode`, the question, and `answers` (records
/// already encoded, each naming the question through a pointer). With EDNS,
/// an OPT record carries `ede` (RFC 8914: info code and text) when given.
fn reply(query: &Query<'_>, rcode: Rcode, answers: &[Vec<u8>], ede: Option<(u16, &str)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + query.question.len() + 64);
    out.extend_from_slice(&query.id.to_be_bytes());
    // QR, the RD bit echoed, RA: a recursive resolver's answer.
    let flags: u16 = 0x8000 | if query.recursion_desired { 0x0100 } else { 0 } | 0x0080 | rcode as u16;
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::try_from(answers.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&u16::from(query.edns).to_be_bytes());
    out.extend_from_slice(query.question);
    for answer in answers {
        out.extend_from_slice(answer);
    }
    if query.edns {
        // Root name, OPT, 1232-byte payload (the DNS flag day value), no flags.
        out.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0]);
        let option: Vec<u8> = match ede {
            Some((code, text)) => {
                let text = text.as_bytes().get(..text.len().min(200)).unwrap_or_default();
                let mut o = Vec::with_capacity(6 + text.len());
                o.extend_from_slice(&15u16.to_be_bytes());
                o.extend_from_slice(&u16::try_from(2 + text.len()).unwrap_or(2).to_be_bytes());
                o.extend_from_slice(&code.to_be_bytes());
                o.extend_from_slice(text);
                o
            }
            None => Vec::new(),
        };
        out.extend_from_slice(&u16::try_from(option.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&option);
    }
    out
}

/// An answer record for the question's name (pointer to offset 12).
fn record(qtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut rr = Vec::with_capacity(12 + rdata.len());
    rr.extend_from_slice(&[0xC0, 0x0C]);
    rr.extend_from_slice(&qtype.to_be_bytes());
    rr.extend_from_slice(&CLASS_IN.to_be_bytes());
    rr.extend_from_slice(&ttl.to_be_bytes());
    rr.extend_from_slice(&u16::try_from(rdata.len()).unwrap_or(0).to_be_bytes());
    rr.extend_from_slice(rdata);
    rr
}

/// RFC 8914 info code 15: blocked by the operator's policy.
pub const EDE_BLOCKED: u16 = 15;

/// The answer for a denied name: 0.0.0.0 / :: (other types: no data), or
/// NXDOMAIN. The short TTL lets a justified user through soon after.
pub fn denied(query: &Query<'_>, nxdomain: bool, ttl: u32, why: &str) -> Vec<u8> {
    let ede = Some((EDE_BLOCKED, why));
    if nxdomain {
        return reply(query, Rcode::NxDomain, &[], ede);
    }
    let answers: Vec<Vec<u8>> = match (query.qclass, query.qtype) {
        (CLASS_IN, TYPE_A) => vec![record(TYPE_A, ttl, &[0; 4])],
        (CLASS_IN, TYPE_AAAA) => vec![record(TYPE_AAAA, ttl, &[0; 16])],
        _ => Vec::new(),
    };
    reply(query, Rcode::NoError, &answers, ede)
}

/// A reply with no answer and `rcode`: SERVFAIL when no upstream answered,
/// NXDOMAIN for the Firefox canary.
pub fn bare(query: &Query<'_>, rcode: Rcode) -> Vec<u8> {
    reply(query, rcode, &[], None)
}

/// The reply to a message that is not a usable query, when its header can
/// still be read: FORMERR or NOTIMP with no question. `None`: drop it.
pub fn reject(msg: &[u8], error: WireError) -> Option<Vec<u8>> {
    let header = msg.get(..HEADER_LEN)?;
    let rcode = match error {
        WireError::NotQuery => return None,
        WireError::Opcode(_) => Rcode::NotImp,
        _ => Rcode::FormErr,
    };
    let (id, flags) = (u16_at(header, 0).ok()?, u16_at(header, 2).ok()?);
    let flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode as u16;
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

/// What a response says of itself, for the forwarder and its cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseInfo {
    pub id: u16,
    pub rcode: u8,
    pub truncated: bool,
    /// The smallest TTL of its answer and authority records; `None` without any.
    pub min_ttl: Option<u32>,
}

/// Checks that `msg` is a response to the question `question` (compared
/// case-insensitively, as a resolver may change case) and reads its TTLs.
pub fn inspect_response(msg: &[u8], question: &[u8]) -> Result<ResponseInfo, WireError> {
    let header = msg.get(..HEADER_LEN).ok_or(WireError::Truncated)?;
    let flags = u16_at(header, 2)?;
    if flags & 0x8000 == 0 || u16_at(header, 4)? != 1 {
        return Err(WireError::NotQuery);
    }
    let sent = msg.get(HEADER_LEN..HEADER_LEN + question.len()).ok_or(WireError::Truncated)?;
    if !sent.eq_ignore_ascii_case(question) {
        return Err(WireError::Name);
    }
    let mut min_ttl = None;
    walk_ttls(msg, HEADER_LEN + question.len(), |ttl, _| {
        min_ttl = Some(min_ttl.map_or(ttl, |m: u32| m.min(ttl)));
    })?;
    Ok(ResponseInfo {
        id: u16_at(header, 0)?,
        rcode: (flags & 0x0F) as u8,
        truncated: flags & 0x0200 != 0,
        min_ttl,
    })
}

/// Calls `each(ttl, offset_of_ttl)` for every answer and authority record
/// after the question ending at `at`; additional records are not cached
/// state and OPT's TTL field holds flags, so both are skipped.
fn walk_ttls(msg: &[u8], mut at: usize, mut each: impl FnMut(u32, usize)) -> Result<(), WireError> {
    let records = u32::from(u16_at(msg, 6)?) + u32::from(u16_at(msg, 8)?);
    for _ in 0..records {
        at = skip_name(msg, at)?;
        let rtype = u16_at(msg, at)?;
        let ttl = u32_at(msg, at + 4)?;
        let rdlen = usize::from(u16_at(msg, at + 8)?);
        if rtype != TYPE_OPT {
            each(ttl, at + 4);
        }
        at += 10 + rdlen;
        if at > msg.len() {
            return Err(WireError::Truncated);
        }
    }
    Ok(())
}

/// Where the TTLs of a response's answer and authority records sit, so
/// that a cache can age a copy without walking the records again.
pub fn ttl_offsets(msg: &[u8], question_len: usize) -> Result<Vec<usize>, WireError> {
    let mut offsets = Vec::new();
    walk_ttls(msg, HEADER_LEN + question_len, |_, at| offsets.push(at))?;
    Ok(offsets)
}

/// Rewrites a cached response for a new query: its id, and the TTLs at
/// `ttl_offsets` (from [`ttl_offsets`]) lowered by the seconds it spent in
/// the cache. Offsets past the end are ignored.
pub fn age_response(msg: &mut [u8], id: u16, ttl_offsets: &[usize], elapsed: u32) {
    for &at in ttl_offsets {
        let Some(end) = at.checked_add(4) else { continue };
        if let Some(field) = msg.get_mut(at..end) {
            if let Ok(ttl) = <[u8; 4]>::try_from(&*field) {
                field.copy_from_slice(&u32::from_be_bytes(ttl).saturating_sub(elapsed).to_be_bytes());
            }
        }
    }
    if let Some(field) = msg.get_mut(..2) {
        field.copy_from_slice(&id.to_be_bytes());
    }
}

/// Removes ECH configurations from the HTTPS and SVCB records of a response
/// so that the browser sends a ClientHello whose SNI names the service
/// (and which the policy can therefore see). `Ok(None)`: nothing to strip.
pub fn strip_ech(msg: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
    let mut message = Message::from_vec(msg).map_err(|_| WireError::Truncated)?;
    let has_ech = |svcb: &SVCB| svcb.svc_params().iter().any(|(key, _)| *key == SvcParamKey::EchConfigList);
    let without_ech = |svcb: &SVCB| {
        SVCB::new(
            svcb.svc_priority(),
            svcb.target_name().clone(),
            svcb.svc_params().iter().filter(|(key, _)| *key != SvcParamKey::EchConfigList).cloned().collect(),
        )
    };
    let mut changed = false;
    for record in message.answers_mut() {
        let stripped = match record.data() {
            RData::HTTPS(https) if has_ech(&https.0) => RData::HTTPS(HTTPS(without_ech(&https.0))),
            RData::SVCB(svcb) if has_ech(svcb) => RData::SVCB(without_ech(svcb)),
            _ => continue,
        };
        record.set_data(stripped);
        changed = true;
    }
    if !changed {
        return Ok(None);
    }
    message.to_vec().map(Some).map_err(|_| WireError::Truncated)
}
