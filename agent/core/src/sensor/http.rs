//! The host a plaintext HTTP/1 request names: the authority of a proxy's
//! `CONNECT chatgpt.com:443`, the absolute URI a forward proxy is asked
//! for, or the `Host` header (RFC 9112 §3.2). A proxy on another port or a
//! plain `http://` request names its destination in clear, before any TLS.

use super::tls::host_name;
use super::ParseError;

/// Methods a request may start with (RFC 9110 §9, and the common WebDAV
/// ones are left out: they never open a session to a GenAI service).
const METHODS: [&[u8]; 8] =
    [b"CONNECT ", b"GET ", b"POST ", b"HEAD ", b"PUT ", b"OPTIONS ", b"DELETE ", b"PATCH "];
/// A request head larger than this is not read further.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// What the start of a TCP stream says about an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpProgress {
    /// A valid prefix of a request head: read more.
    NeedMore,
    /// The request names this host (lowercase, no port); `connect` for a
    /// proxy tunnel.
    Named { host: String, connect: bool },
    /// A whole request head that names no host (HTTP/1.0 without `Host`).
    Unnamed,
}

/// Whether `stream` starts like an HTTP request, or is too short to tell.
pub fn could_be_request(stream: &[u8]) -> bool {
    METHODS.iter().any(|method| {
        let n = stream.len().min(method.len());
        stream.get(..n) == method.get(..n)
    })
}

/// Reads the host an HTTP request at the start of `stream` is for.
pub fn request_host(stream: &[u8]) -> Result<HttpProgress, ParseError> {
    let Some(method) = METHODS.iter().find(|m| stream.starts_with(m)) else {
        return if could_be_request(stream) {
            Ok(HttpProgress::NeedMore)
        } else {
            Err(ParseError::Invalid("not an http request"))
        };
    };
    let mut lines = Lines { rest: stream };
    let Some(request_line) = lines.next() else { return progress_or_too_large(stream) };
    // method SP request-target SP HTTP-version (RFC 9112 §3).
    let mut parts = request_line.get(method.len()..).unwrap_or_default().split(|&b| b == b' ');
    let (Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ParseError::Invalid("request line"));
    };
    if !version.starts_with(b"HTTP/") {
        return Err(ParseError::Invalid("request line"));
    }
    let connect = method.starts_with(b"CONNECT");
    if connect {
        return Ok(HttpProgress::Named { host: authority_host(target)?, connect });
    }
    // An absolute URI (to a forward proxy) names its host itself.
    for scheme in [b"http://".as_slice(), b"https://"] {
        if target.len() > scheme.len()
            && target.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        {
            let rest = target.get(scheme.len()..).unwrap_or_default();
            let authority = rest.split(|&b| matches!(b, b'/' | b'?' | b'#')).next().unwrap_or_default();
            return Ok(HttpProgress::Named { host: authority_host(authority)?, connect });
        }
    }
    for line in lines {
        if line.is_empty() {
            return Ok(HttpProgress::Unnamed);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(ParseError::Invalid("header line"));
        };
        let (name, value) = line.split_at(colon);
        if name.eq_ignore_ascii_case(b"host") {
            let value = value.get(1..).unwrap_or_default().trim_ascii();
            return Ok(HttpProgress::Named { host: authority_host(value)?, connect });
        }
    }
    progress_or_too_large(stream)
}

fn progress_or_too_large(stream: &[u8]) -> Result<HttpProgress, ParseError> {
    if stream.len() >= MAX_REQUEST_HEAD {
        Err(ParseError::Invalid("http request head too large"))
    } else {
        Ok(HttpProgress::NeedMore)
    }
}

/// The host of `host[:port]` or `[v6]:port`, lowercase.
fn authority_host(authority: &[u8]) -> Result<String, ParseError> {
    let host = match authority {
        [b'[', rest @ ..] => {
            let end = rest.iter().position(|&b| b == b']').ok_or(ParseError::Invalid("ipv6 authority"))?;
            rest.get(..end).unwrap_or_default()
        }
        _ => authority.split(|&b| b == b':').next().unwrap_or_default(),
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    if authority.first() == Some(&b'[') {
        let text = std::str::from_utf8(host).map_err(|_| ParseError::Invalid("ipv6 authority"))?;
        let address: std::net::Ipv6Addr = text.parse().map_err(|_| ParseError::Invalid("ipv6 authority"))?;
        return Ok(address.to_string());
    }
    Ok(host_name(host)?.to_ascii_lowercase())
}

/// Complete CRLF-terminated lines (a bare LF is accepted, as servers do).
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = self.rest.iter().position(|&b| b == b'\n')?;
        let line = self.rest.get(..end)?;
        self.rest = self.rest.get(end + 1..)?;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(host: &str, connect: bool) -> Result<HttpProgress, ParseError> {
        Ok(HttpProgress::Named { host: host.into(), connect })
    }

    #[test]
    fn connect_absolute_uri_and_host_header() {
        let connect = b"CONNECT ChatGPT.com:443 HTTP/1.1\r\nHost: chatgpt.com:443\r\n\r\n";
        assert_eq!(request_host(connect), named("chatgpt.com", true));
        let proxy = b"GET http://claude.ai/new?x=1 HTTP/1.1\r\nHost: claude.ai\r\n\r\n";
        assert_eq!(request_host(proxy), named("claude.ai", false));
        let plain = b"POST /v1/chat HTTP/1.1\r\nUser-Agent: curl\r\nhost:  api.openai.com \r\n\r\n";
        assert_eq!(request_host(plain), named("api.openai.com", false));
        let v6 = b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n";
        assert_eq!(request_host(v6), named("2001:db8::1", true));
        assert_eq!(request_host(b"GET / HTTP/1.0\r\n\r\n"), Ok(HttpProgress::Unnamed));
    }

    #[test]
    fn every_prefix_needs_more_and_other_protocols_are_refused() {
        let request = b"GET / HTTP/1.1\r\nAccept: */*\r\nHost: chatgpt.com\r\n\r\n";
        let host_line = request.windows(6).position(|w| w == b"Host: ").unwrap();
        let name_ends = host_line + "Host: chatgpt.com\r\n".len();
        for cut in 0..name_ends {
            assert_eq!(request_host(&request[..cut]), Ok(HttpProgress::NeedMore), "cut at {cut}");
        }
        assert_eq!(request_host(&request[..name_ends]), named("chatgpt.com", false));
        for other in [&b"SSH-2.0-OpenSSH_9.2\r\n"[..], b"\x16\x03\x01", b"GETX / HTTP/1.1\r\n"] {
            assert!(request_host(other).is_err(), "{other:?}");
            assert!(!could_be_request(other));
        }
        assert!(
            request_host(b"CONNECT chat gpt.com:443 HTTP/1.1\r\n").is_err(),
            "one space between the parts"
        );
        assert!(request_host(b"GET / HTTP/1.1\r\nHost: bad/name\r\n").is_err());
    }

    #[test]
    fn a_head_without_end_is_bounded() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        while head.len() < MAX_REQUEST_HEAD {
            head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(request_host(&head).is_err());
    }
}
