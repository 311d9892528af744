//! QUIC Initial packets (RFC 9000 §17.2.2): header parsing, Initial key
//! derivation and removal of packet protection (RFC 9001 §5, RFC 9369 for
//! QUIC v2), and the CRYPTO frames that carry the ClientHello.
//!
//! Written here rather than taken from a QUIC stack: quinn and quiche only
//! decrypt packets of connections they own, and we observe other programs'.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use super::reader::Reader;
use super::ParseError;

pub const VERSION_1: u32 = 0x0000_0001;
pub const VERSION_2: u32 = 0x6b33_43cf;
pub const VERSION_DRAFT_29: u32 = 0xff00_001d;

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc,
    0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9,
    0xbd, 0x2e, 0xd9,
];
const SALT_DRAFT_29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43,
    0x90, 0xa8, 0x99,
];
const MAX_CID_LEN: usize = 20;
/// A datagram holds one client Initial (RFC 9000 §12.2 coalesces packets of
/// different types); more is crafted, and each costs a key derivation.
const MAX_INITIALS_PER_DATAGRAM: usize = 4;

/// Whether `version` is one whose Initial packets we can decrypt.
pub fn is_supported_version(version: u32) -> bool {
    matches!(version, VERSION_1 | VERSION_2 | VERSION_DRAFT_29)
}

/// The client's Initial packet protection keys (RFC 9001 §5.2).
#[derive(Clone)]
pub struct InitialKeys {
    aead: Aes128Gcm,
    iv: [u8; 12],
    header: aes::Aes128,
}

impl std::fmt::Debug for InitialKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InitialKeys { .. }")
    }
}

fn expand_label(prk: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) -> Result<(), ParseError> {
    let out_len = u16::try_from(out.len()).map_err(|_| ParseError::Invalid("hkdf length"))?;
    let label_len = u8::try_from(6 + label.len()).map_err(|_| ParseError::Invalid("hkdf label"))?;
    prk.expand_multi_info(&[&out_len.to_be_bytes(), &[label_len], b"tls13 ", label, &[0]], out)
        .map_err(|_| ParseError::Invalid("hkdf length"))
}

impl InitialKeys {
    /// Keys that protect the client's Initial packets of a connection whose
    /// first Destination Connection ID is `dcid`.
    pub fn client(version: u32, dcid: &[u8]) -> Result<Self, ParseError> {
        let (salt, key_label, iv_label, hp_label): (&[u8], &[u8], &[u8], &[u8]) = match version {
            VERSION_1 => (&SALT_V1, b"quic key", b"quic iv", b"quic hp"),
            VERSION_DRAFT_29 => (&SALT_DRAFT_29, b"quic key", b"quic iv", b"quic hp"),
            VERSION_2 => (&SALT_V2, b"quicv2 key", b"quicv2 iv", b"quicv2 hp"),
            _ => return Err(ParseError::Unsupported("quic version")),
        };
        let initial = Hkdf::<Sha256>::new(Some(salt), dcid);
        let mut client_secret = [0u8; 32];
        expand_label(&initial, b"client in", &mut client_secret)?;
        let secret = Hkdf::<Sha256>::from_prk(&client_secret).map_err(|_| ParseError::Invalid("hkdf prk"))?;
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&secret, key_label, &mut key)?;
        expand_label(&secret, iv_label, &mut iv)?;
        expand_label(&secret, hp_label, &mut hp)?;
        Ok(Self { aead: Aes128Gcm::new(&key.into()), iv, header: aes::Aes128::new(&hp.into()) })
    }

    /// The header protection mask (RFC 9001 §5.4): AES over the 16 bytes
    /// sampled 4 bytes after the packet number's start.
    fn header_mask(&self, packet: &[u8], pn_offset: usize) -> Result<[u8; 16], ParseError> {
        let sample: [u8; 16] = packet
            .get(pn_offset + 4..pn_offset + 20)
            .and_then(|s| s.try_into().ok())
            .ok_or(ParseError::Truncated("quic header protection sample"))?;
        let mut mask = sample.into();
        self.header.encrypt_block(&mut mask);
        Ok(mask.into())
    }

    /// Removes header and payload protection from one Initial packet and
    /// returns its plaintext frames.
    pub fn decrypt(&self, packet: &InitialPacket<'_>) -> Result<Vec<u8>, ParseError> {
        let pn_offset = packet.pn_offset;
        let [mask_first, mask_pn @ ..] = self.header_mask(packet.bytes, pn_offset)?;
        let first =
            packet.bytes.first().ok_or(ParseError::Truncated("quic first byte"))? ^ (mask_first & 0x0f);
        let pn_len = usize::from(first & 0x03) + 1;
        let mut header = packet
            .bytes
            .get(..pn_offset + pn_len)
            .ok_or(ParseError::Truncated("quic packet number"))?
            .to_vec();
        let mut packet_number = 0u64;
        if let Some(byte) = header.first_mut() {
            *byte = first;
        }
        for (byte, m) in header.iter_mut().skip(pn_offset).zip(mask_pn) {
            *byte ^= m;
            packet_number = (packet_number << 8) | u64::from(*byte);
        }
        // RFC 9001 §5.3: the nonce is the IV XORed with the packet number. Client
        // Initial packet numbers are small, so the truncated value is the full one.
        let mut nonce = self.iv;
        for (n, p) in nonce.iter_mut().rev().zip(packet_number.to_le_bytes()) {
            *n ^= p;
        }
        let mut payload =
            packet.bytes.get(pn_offset + pn_len..).ok_or(ParseError::Truncated("quic payload"))?.to_vec();
        self.aead
            .decrypt_in_place(Nonce::from_slice(&nonce), &header, &mut payload)
            .map_err(|_| ParseError::Invalid("quic initial does not decrypt"))?;
        Ok(payload)
    }
}

/// Appends `value` as a QUIC variable-length integer (RFC 9000 §16).
fn put_varint(out: &mut Vec<u8>, value: u64) {
    match value {
        0..=0x3f => out.push(value as u8),
        0x40..=0x3fff => out.extend_from_slice(&(0x4000 | value as u16).to_be_bytes()),
        0x4000..=0x3fff_ffff => out.extend_from_slice(&(0x8000_0000 | value as u32).to_be_bytes()),
        _ => out.extend_from_slice(&(0xc000_0000_0000_0000 | value).to_be_bytes()),
    }
}

/// A CRYPTO frame carrying `data` at stream `offset`.
pub fn crypto_frame(offset: u64, data: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x06];
    put_varint(&mut frame, offset);
    put_varint(&mut frame, data.len() as u64);
    frame.extend_from_slice(data);
    frame
}

impl InitialKeys {
    /// A client Initial datagram of `version` carrying `frames`, as packet
    /// number `pn`, padded to 1200 bytes and protected as a client does.
    /// The agent only reads Initials: this crafts the evasion cases of the
    /// tests (a hello cut over many Initials) and fuzz seeds.
    #[doc(hidden)]
    pub fn seal_client_initial(
        &self,
        version: u32,
        dcid: &[u8],
        pn: u32,
        frames: &[u8],
    ) -> Result<Vec<u8>, ParseError> {
        const PN_LEN: usize = 4;
        const TAG_LEN: usize = 16;
        let kind_bits: u8 = if version == VERSION_2 { 1 } else { 0 };
        let dcid_len = u8::try_from(dcid.len()).map_err(|_| ParseError::Invalid("quic dcid length"))?;
        let mut header = vec![0xc0 | (kind_bits << 4) | (PN_LEN as u8 - 1)];
        header.extend_from_slice(&version.to_be_bytes());
        header.push(dcid_len);
        header.extend_from_slice(dcid);
        header.push(0); // no source connection id
        header.push(0); // no token
                        // The payload is padded so that the datagram makes 1200 bytes.
        let fixed = header.len() + 2 + PN_LEN + TAG_LEN;
        let mut payload = frames.to_vec();
        payload.resize(payload.len().max(1200usize.saturating_sub(fixed)), 0);
        let length = u16::try_from(PN_LEN + payload.len() + TAG_LEN)
            .ok()
            .filter(|l| *l < 0x4000)
            .ok_or(ParseError::Invalid("quic length"))?;
        header.extend_from_slice(&(0x4000 | length).to_be_bytes());
        let pn_offset = header.len();
        header.extend_from_slice(&pn.to_be_bytes());
        let mut nonce = self.iv;
        for (n, p) in nonce.iter_mut().rev().zip(u64::from(pn).to_le_bytes()) {
            *n ^= p;
        }
        self.aead
            .encrypt_in_place(Nonce::from_slice(&nonce), &header, &mut payload)
            .map_err(|_| ParseError::Invalid("quic initial does not encrypt"))?;
        let mut packet = header;
        packet.extend_from_slice(&payload);
        let [mask_first, mask_pn @ ..] = self.header_mask(&packet, pn_offset)?;
        if let Some(first) = packet.first_mut() {
            *first ^= mask_first & 0x0f;
        }
        for (byte, m) in packet.iter_mut().skip(pn_offset).take(PN_LEN).zip(mask_pn) {
            *byte ^= m;
        }
        Ok(packet)
    }
}

/// One long-header Initial packet inside a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialPacket<'a> {
    pub version: u32,
    pub dcid: &'a [u8],
    /// The whole packet, from its first byte to the end of its payload.
    pub bytes: &'a [u8],
    /// Where the (protected) packet number starts in `bytes`.
    pub pn_offset: usize,
}

/// Cheap test on a UDP payload: a long header of a version we decrypt.
pub fn looks_like_initial(datagram: &[u8]) -> bool {
    match datagram {
        [first, v0, v1, v2, v3, ..] if first & 0x80 != 0 => {
            let version = u32::from_be_bytes([*v0, *v1, *v2, *v3]);
            is_supported_version(version) && long_packet_type(*first, version) == Some(LongType::Initial)
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LongType {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
}

fn long_packet_type(first: u8, version: u32) -> Option<LongType> {
    let bits = (first >> 4) & 0x03;
    // RFC 9369 §3.2 rotates the type codes in version 2.
    let types = if version == VERSION_2 {
        [LongType::Retry, LongType::Initial, LongType::ZeroRtt, LongType::Handshake]
    } else {
        [LongType::Initial, LongType::ZeroRtt, LongType::Handshake, LongType::Retry]
    };
    types.get(usize::from(bits)).copied()
}

/// Splits a datagram into its coalesced long-header packets (RFC 9000 §12.2)
/// and returns the Initial ones. Stops at a short-header packet or padding.
pub fn initial_packets(datagram: &[u8]) -> Result<Vec<InitialPacket<'_>>, ParseError> {
    let mut packets = Vec::new();
    parse_initials(datagram, &mut packets)?;
    Ok(packets)
}

/// The Initial packets at the front of a datagram that parse, and whether
/// something after them did not: a server reads the packets before a
/// damaged one, so the verdicts must too.
pub fn initial_packets_prefix(datagram: &[u8]) -> (Vec<InitialPacket<'_>>, bool) {
    let mut packets = Vec::new();
    let damaged = parse_initials(datagram, &mut packets).is_err();
    (packets, damaged)
}

fn parse_initials<'a>(datagram: &'a [u8], packets: &mut Vec<InitialPacket<'a>>) -> Result<(), ParseError> {
    let mut rest = datagram;
    while let [first, ..] = rest {
        if first & 0x80 == 0 {
            break; // A short header runs to the end of the datagram.
        }
        let mut r = Reader::new(rest);
        let first = r.u8("quic first byte")?;
        let version = r.u32("quic version")?;
        if version == 0 {
            break; // Version negotiation.
        }
        if !is_supported_version(version) {
            return Err(ParseError::Unsupported("quic version"));
        }
        let dcid_len = usize::from(r.u8("quic dcid length")?);
        if dcid_len > MAX_CID_LEN {
            return Err(ParseError::Invalid("quic dcid length"));
        }
        let dcid = r.take(dcid_len, "quic dcid")?;
        let scid_len = usize::from(r.u8("quic scid length")?);
        if scid_len > MAX_CID_LEN {
            return Err(ParseError::Invalid("quic scid length"));
        }
        r.skip(scid_len, "quic scid")?;
        let kind = long_packet_type(first, version).ok_or(ParseError::Invalid("quic packet type"))?;
        if kind == LongType::Retry {
            break; // A Retry packet fills the rest of the datagram.
        }
        if kind == LongType::Initial {
            let token_len = r.varint_len("quic token length")?;
            r.skip(token_len, "quic token")?;
        }
        let length = r.varint_len("quic length")?;
        let pn_offset = rest.len() - r.remaining();
        let total = pn_offset.checked_add(length).ok_or(ParseError::Invalid("quic length"))?;
        let (bytes, tail) = rest.split_at_checked(total).ok_or(ParseError::Truncated("quic packet"))?;
        if kind == LongType::Initial {
            if packets.len() == MAX_INITIALS_PER_DATAGRAM {
                return Err(ParseError::Invalid("too many initial packets in one datagram"));
            }
            packets.push(InitialPacket { version, dcid, bytes, pn_offset });
        }
        rest = tail;
    }
    Ok(())
}

/// The CRYPTO frames (offset, data) of a decrypted Initial payload. Only the
/// frames RFC 9000 §12.4 allows in Initial packets are accepted.
pub fn crypto_frames(plaintext: &[u8]) -> Result<Vec<(u64, &[u8])>, ParseError> {
    let mut r = Reader::new(plaintext);
    let mut frames = Vec::new();
    while !r.is_empty() {
        match r.varint("quic frame type")? {
            0x00 | 0x01 => {} // PADDING, PING
            kind @ (0x02 | 0x03) => {
                r.varint("ack largest")?;
                r.varint("ack delay")?;
                let ranges = r.varint("ack range count")?;
                r.varint("ack first range")?;
                for _ in 0..ranges {
                    r.varint("ack gap")?;
                    r.varint("ack range")?;
                }
                if kind == 0x03 {
                    for _ in 0..3 {
                        r.varint("ack ecn count")?;
                    }
                }
            }
            0x06 => {
                let offset = r.varint("crypto offset")?;
                let len = r.varint_len("crypto length")?;
                frames.push((offset, r.take(len, "crypto data")?));
            }
            0x1c => {
                r.varint("close error")?;
                r.varint("close frame type")?;
                let len = r.varint_len("close reason length")?;
                r.skip(len, "close reason")?;
            }
            _ => return Err(ParseError::Invalid("frame not allowed in an initial packet")),
        }
    }
    Ok(frames)
}

/// Every CRYPTO fragment of every client Initial in one datagram, each packet
/// decrypted with keys from its own Destination Connection ID. For fuzzing.
pub fn initial_client_hello_fragments(datagram: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, ParseError> {
    let mut out = Vec::new();
    for packet in initial_packets(datagram)? {
        let plaintext = InitialKeys::client(packet.version, packet.dcid)?.decrypt(&packet)?;
        for (offset, data) in crypto_frames(&plaintext)? {
            out.push((offset, data.to_vec()));
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 9001 Appendix A.2: the client Initial, protected.
    pub(crate) const RFC9001_CLIENT_INITIAL: &str = include_str!("testdata/rfc9001-client-initial.hex");
    /// RFC 9369 Appendix A.2: the same ClientHello in a QUIC v2 Initial.
    pub(crate) const RFC9369_CLIENT_INITIAL: &str = include_str!("testdata/rfc9369-client-initial.hex");

    #[test]
    fn rfc9001_appendix_a_keys() {
        let dcid = hex("8394c8f03e515708");
        let initial = Hkdf::<Sha256>::new(Some(&SALT_V1), &dcid);
        let mut client = [0u8; 32];
        expand_label(&initial, b"client in", &mut client).unwrap();
        assert_eq!(client.to_vec(), hex("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"));
        let secret = Hkdf::<Sha256>::from_prk(&client).unwrap();
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&secret, b"quic key", &mut key).unwrap();
        expand_label(&secret, b"quic iv", &mut iv).unwrap();
        expand_label(&secret, b"quic hp", &mut hp).unwrap();
        assert_eq!(key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
    }

    fn check_vector(packet_hex: &str, version: u32) {
        let datagram = hex(packet_hex);
        assert_eq!(datagram.len(), 1200);
        assert!(looks_like_initial(&datagram));
        let packets = initial_packets(&datagram).unwrap();
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].version, version);
        let frames = initial_client_hello_fragments(&datagram).unwrap();
        assert_eq!(frames.len(), 1);
        let (offset, data) = &frames[0];
        assert_eq!(*offset, 0);
        let body = crate::sensor::tls::handshake_message(data).unwrap().unwrap();
        let hello = crate::sensor::tls::parse_client_hello_body(body).unwrap();
        assert_eq!(hello.server_name, Some("example.com"));
    }

    #[test]
    fn rfc9001_appendix_a_client_initial_decrypts() {
        check_vector(RFC9001_CLIENT_INITIAL, VERSION_1);
    }

    #[test]
    fn rfc9369_appendix_a_client_initial_decrypts() {
        check_vector(RFC9369_CLIENT_INITIAL, VERSION_2);
    }

    #[test]
    fn sealed_initials_decrypt_to_their_frames() {
        for version in [VERSION_1, VERSION_2] {
            let dcid = hex("8394c8f03e515708");
            let keys = InitialKeys::client(version, &dcid).unwrap();
            let frame = crypto_frame(300, b"part of a hello");
            let datagram = keys.seal_client_initial(version, &dcid, 7, &frame).unwrap();
            assert_eq!(datagram.len(), 1200);
            assert!(looks_like_initial(&datagram));
            let fragments = initial_client_hello_fragments(&datagram).unwrap();
            assert_eq!(fragments, [(300, b"part of a hello".to_vec())]);
        }
    }

    #[test]
    fn tampered_or_truncated_initials_fail_cleanly() {
        let datagram = hex(RFC9001_CLIENT_INITIAL);
        for len in 0..datagram.len() {
            assert!(initial_client_hello_fragments(&datagram[..len]).is_err() || len == 0, "{len}");
        }
        let mut tampered = datagram.clone();
        tampered[600] ^= 1;
        assert_eq!(
            initial_client_hello_fragments(&tampered),
            Err(ParseError::Invalid("quic initial does not decrypt"))
        );
    }
}
