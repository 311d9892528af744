//! TLS ClientHello: server name (SNI) and whether Encrypted Client Hello is
//! offered. The handshake message may span several TLS records (RFC 8446
//! §5.1 allows a record to carry a fragment of a handshake message).

use super::reader::Reader;
use super::ParseError;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
/// RFC 8446 §5.1: a plaintext record is at most 2^14 bytes.
const MAX_RECORD: usize = 1 << 14;
/// A ClientHello larger than this is not one a real client sends (post-quantum
/// key shares bring Chromium's to ~2 KB); refusing bigger bounds memory per flow.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// What a ClientHello tells about its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The host name from the server_name extension, as sent (not lowercased).
    pub server_name: Option<&'a str>,
    /// An encrypted_client_hello extension is present: `server_name` is then
    /// the outer, public name, not the real destination.
    pub ech_offered: bool,
}

/// The state of a TLS byte stream that should start with a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloProgress {
    /// The stream is a valid prefix of a ClientHello: nothing can change
    /// until the stream holds at least this many bytes.
    NeedMore(usize),
    Done(OwnedClientHello),
}

/// A ClientHello copied out of the stream buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedClientHello {
    pub server_name: Option<String>,
    pub ech_offered: bool,
}

impl From<ClientHello<'_>> for OwnedClientHello {
    fn from(hello: ClientHello<'_>) -> Self {
        Self { server_name: hello.server_name.map(str::to_owned), ech_offered: hello.ech_offered }
    }
}

/// Cheap test on the first bytes of a TCP payload: could this be the start of
/// a ClientHello record?
pub fn looks_like_client_hello_start(payload: &[u8]) -> bool {
    matches!(payload, [CONTENT_HANDSHAKE, 3, 0..=4, ..])
        && payload.get(5).is_none_or(|&t| t == HANDSHAKE_CLIENT_HELLO)
}

/// Parses a ClientHello from the start of a TLS byte stream (records).
/// Returns `NeedMore` while the stream is a valid prefix.
pub fn parse_client_hello_records(stream: &[u8]) -> Result<HelloProgress, ParseError> {
    let mut r = Reader::new(stream);
    // Fast path: the whole handshake message sits in the first record.
    let mut joined: Vec<u8> = Vec::new();
    let mut first: &[u8] = &[];
    let mut records = 0usize;
    loop {
        let at = stream.len() - r.remaining();
        if r.remaining() < 5 {
            return Ok(HelloProgress::NeedMore(at + 5));
        }
        let content = r.u8("record type")?;
        let major = r.u8("record version")?;
        r.skip(1, "record version")?;
        let len = usize::from(r.u16("record length")?);
        if content != CONTENT_HANDSHAKE {
            return Err(ParseError::Invalid("not a handshake record"));
        }
        if major != 3 {
            return Err(ParseError::Invalid("record version"));
        }
        if len == 0 || len > MAX_RECORD {
            return Err(ParseError::Invalid("record length"));
        }
        let Ok(fragment) = r.take(len, "record") else {
            return Ok(HelloProgress::NeedMore(at + 5 + len));
        };
        // No cap on the count of records: evasion tools cut a hello into
        // hundreds, and the stream's byte limit (the caller's) bounds them.
        records += 1;
        let message: &[u8] = if records == 1 {
            first = fragment;
            first
        } else {
            if records == 2 {
                joined.extend_from_slice(first);
            }
            joined.extend_from_slice(fragment);
            &joined
        };
        match handshake_message(message)? {
            Some(body) => return parse_client_hello_body(body).map(|h| HelloProgress::Done(h.into())),
            None if message.len() > MAX_CLIENT_HELLO => {
                return Err(ParseError::Invalid("client hello too large"))
            }
            None => {}
        }
    }
}

/// Splits a complete ClientHello handshake message (type, 24-bit length,
/// body) off the front of `message`; `None` while it is incomplete.
pub(crate) fn handshake_message(message: &[u8]) -> Result<Option<&[u8]>, ParseError> {
    let mut r = Reader::new(message);
    let Ok(kind) = r.u8("handshake type") else { return Ok(None) };
    if kind != HANDSHAKE_CLIENT_HELLO {
        return Err(ParseError::Invalid("not a client hello"));
    }
    let Ok(len) = r.u24("handshake length") else { return Ok(None) };
    let len = usize::try_from(len).map_err(|_| ParseError::Invalid("handshake length"))?;
    if len > MAX_CLIENT_HELLO {
        return Err(ParseError::Invalid("client hello too large"));
    }
    Ok(r.take(len, "client hello").ok())
}

/// Parses the body of a ClientHello handshake message (after its 4-byte header).
pub fn parse_client_hello_body(body: &[u8]) -> Result<ClientHello<'_>, ParseError> {
    let mut r = Reader::new(body);
    let version = r.u16("client version")?;
    if version >> 8 != 3 {
        return Err(ParseError::Invalid("client version"));
    }
    r.skip(32, "client random")?;
    r.vec_u8("session id")?;
    r.vec_u16("cipher suites")?;
    r.vec_u8("compression methods")?;
    let mut hello = ClientHello { server_name: None, ech_offered: false };
    if r.is_empty() {
        // SSLv3-era hellos have no extensions at all.
        return Ok(hello);
    }
    let mut extensions = Reader::new(r.vec_u16("extensions")?);
    while !extensions.is_empty() {
        let kind = extensions.u16("extension type")?;
        let data = extensions.vec_u16("extension data")?;
        match kind {
            EXT_SERVER_NAME => {
                if hello.server_name.is_some() {
                    return Err(ParseError::Invalid("duplicate server_name extension"));
                }
                hello.server_name = parse_server_name(data)?;
            }
            EXT_ENCRYPTED_CLIENT_HELLO => hello.ech_offered = true,
            _ => {}
        }
    }
    Ok(hello)
}

fn parse_server_name(data: &[u8]) -> Result<Option<&str>, ParseError> {
    let mut r = Reader::new(data);
    let mut list = Reader::new(r.vec_u16("server name list")?);
    let mut name = None;
    while !list.is_empty() {
        let kind = list.u8("server name type")?;
        let value = list.vec_u16("server name")?;
        // Only host_name (0) is defined; RFC 6066 allows one name per type.
        if kind == 0 && name.is_none() {
            name = Some(host_name(value)?);
        }
    }
    Ok(name)
}

/// A host name as it may appear in SNI or DNS: ASCII letters, digits,
/// hyphen, underscore and dots, at most 253 characters.
pub(crate) fn host_name(value: &[u8]) -> Result<&str, ParseError> {
    if value.is_empty() || value.len() > 253 {
        return Err(ParseError::Invalid("host name length"));
    }
    if !value.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        return Err(ParseError::Invalid("host name characters"));
    }
    std::str::from_utf8(value).map_err(|_| ParseError::Invalid("host name characters"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal but well-formed ClientHello handshake message for `name`.
    pub(crate) fn client_hello_message(name: &str, ech: bool, padding: usize) -> Vec<u8> {
        let mut ext = Vec::new();
        let n = name.len();
        ext.extend_from_slice(&[0, 0]);
        ext.extend_from_slice(&((n + 5) as u16).to_be_bytes());
        ext.extend_from_slice(&((n + 3) as u16).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&(n as u16).to_be_bytes());
        ext.extend_from_slice(name.as_bytes());
        if ech {
            ext.extend_from_slice(&[0xfe, 0x0d, 0, 2, 0, 0]);
        }
        // Padding extension (21), to make big hellos like Chromium's.
        ext.extend_from_slice(&[0, 21]);
        ext.extend_from_slice(&(padding as u16).to_be_bytes());
        ext.extend(std::iter::repeat_n(0, padding));
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut msg = vec![1];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend(body);
        msg
    }

    /// Wraps a handshake message into TLS records of at most `max` bytes.
    pub(crate) fn records(message: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in message.chunks(max) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    fn done(name: &str, ech: bool) -> HelloProgress {
        HelloProgress::Done(OwnedClientHello { server_name: Some(name.into()), ech_offered: ech })
    }

    #[test]
    fn single_and_multi_record_hellos() {
        let msg = client_hello_message("chatgpt.com", false, 1500);
        assert_eq!(parse_client_hello_records(&records(&msg, 16384)), Ok(done("chatgpt.com", false)));
        assert_eq!(parse_client_hello_records(&records(&msg, 512)), Ok(done("chatgpt.com", false)));
        assert_eq!(parse_client_hello_records(&records(&msg, 64)), Ok(done("chatgpt.com", false)));
        // One byte a record, as DPI-evasion tools send it: the caller's
        // byte limit on the stream is the only bound.
        assert_eq!(parse_client_hello_records(&records(&msg, 1)), Ok(done("chatgpt.com", false)));
        let ech = client_hello_message("public.example", true, 0);
        assert_eq!(parse_client_hello_records(&records(&ech, 100)), Ok(done("public.example", true)));
    }

    #[test]
    fn every_prefix_needs_more_and_never_panics() {
        let msg = client_hello_message("claude.ai", false, 300);
        for max in [16384, 64, 7] {
            let stream = records(&msg, max);
            for len in 0..stream.len() {
                // The hint never points at bytes already held, nor past the hello.
                match parse_client_hello_records(&stream[..len]) {
                    Ok(HelloProgress::NeedMore(need)) => {
                        assert!(need > len && need <= stream.len(), "{max} {len}");
                    }
                    other => panic!("{max} {len}: {other:?}"),
                }
            }
        }
        let body = &msg[4..];
        for len in 0..body.len() {
            // A hello that ends right after compression methods is valid (no
            // extensions), but no prefix may yield the server name.
            let hello = parse_client_hello_body(&body[..len]);
            assert!(hello.is_err() || hello.unwrap().server_name.is_none(), "{len}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_client_hello() {
        assert!(parse_client_hello_records(b"GET / HTTP/1.1\r\n").is_err());
        assert!(parse_client_hello_records(&[22, 3, 3, 0, 4, 2, 0, 0, 0]).is_err()); // ServerHello
        let msg = client_hello_message("bad name!", false, 0);
        assert_eq!(
            parse_client_hello_records(&records(&msg, 100)),
            Err(ParseError::Invalid("host name characters"))
        );
    }
}
