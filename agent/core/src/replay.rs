//! Reading pcap and pcapng files frame by frame, for `scan`, tests and
//! benchmarks. The frames then go through the same pipeline as live ones.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::Path;

use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};

use crate::sensor::frame::LinkType;
use crate::sensor::Micros;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The message says the cause, which is therefore no `source()` (a
    /// report of the whole chain would say it twice).
    #[error("{path}: {error}")]
    Open { path: String, error: std::io::Error },
    #[error("{path}: not a pcap or pcapng capture (unrecognised header)")]
    NotACapture { path: String },
    #[error("{path}: empty file")]
    Empty { path: String },
    #[error("{path}: capture truncated after {frames} frames")]
    Truncated { path: String, frames: u64 },
    #[error("{path}: malformed capture after {frames} frames: {reason}")]
    Malformed { path: String, frames: u64, reason: String },
    #[error("{path}: unsupported link type {linktype} (supported: Ethernet, Linux cooked SLL/SLL2, raw IP, loopback)")]
    UnsupportedLinkType { path: String, linktype: i32 },
    #[error("{path}: packet for unknown interface {interface}")]
    UnknownInterface { path: String, interface: u32 },
}

/// Per-interface facts a pcapng file declares before its packets.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    /// Ticks per second of this interface's timestamps.
    resolution: u64,
    offset_secs: i64,
}

/// Start small, so the buffer stays in cache between the kernel's copy and
/// our parse; grow for large blocks, up to pcapng's 16 MiB.
const INITIAL_BUFFER: usize = 1 << 20;
const MAX_BUFFER: usize = 16 << 20;

/// Reads every frame of the capture at `path` and hands it to `frame`.
/// Returns the number of frames read.
pub fn for_each_frame(
    path: &Path,
    mut frame: impl FnMut(Micros, LinkType, &[u8]),
) -> Result<u64, ReplayError> {
    try_for_each_frame(path, |ts, link, data| {
        frame(ts, link, data);
        ControlFlow::Continue(())
    })
}

/// Like [`for_each_frame`], but stops reading as soon as `frame` breaks
/// (e.g. when nobody reads the output any more). Returns the number of
/// frames read, the last one handed to `frame` included.
pub fn try_for_each_frame(
    path: &Path,
    mut frame: impl FnMut(Micros, LinkType, &[u8]) -> ControlFlow<()>,
) -> Result<u64, ReplayError> {
    let name = path.display().to_string();
    let open_error = |error| ReplayError::Open { path: name.clone(), error };
    let mut file = File::open(path).map_err(open_error)?;
    let mut header = [0u8; 24];
    let read = read_full(&mut file, &mut header).map_err(open_error)?;
    if read == header.len() {
        if let Some(format) = ClassicFormat::from_header(&header) {
            return for_each_classic_frame(&name, file, format, frame);
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(open_error)?;
    let mut capacity = INITIAL_BUFFER;
    let mut reader = match create_reader(capacity, file) {
        Ok(reader) => reader,
        Err(PcapError::Eof) => return Err(ReplayError::Empty { path: name }),
        Err(PcapError::HeaderNotRecognized) => return Err(ReplayError::NotACapture { path: name }),
        Err(e) => return Err(ReplayError::Malformed { path: name, frames: 0, reason: format!("{e:?}") }),
    };
    let mut frames = 0u64;
    let mut legacy: Option<(LinkType, bool)> = None;
    let mut interfaces: Vec<Interface> = Vec::new();
    loop {
        match reader.next() {
            Ok((consumed, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        let linktype = header.network.0;
                        let link = LinkType::from_linktype(linktype)
                            .ok_or(ReplayError::UnsupportedLinkType { path: name.clone(), linktype })?;
                        legacy = Some((link, header.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(packet) => {
                        let (link, nanos) =
                            legacy.ok_or_else(|| malformed(&name, frames, "packet before header"))?;
                        let frac = i64::from(packet.ts_usec);
                        let ts =
                            i64::from(packet.ts_sec) * 1_000_000 + if nanos { frac / 1000 } else { frac };
                        let caplen = usize::try_from(packet.caplen).unwrap_or(usize::MAX);
                        let data = packet.data.get(..caplen).unwrap_or(packet.data);
                        frames += 1;
                        if frame(ts, link, data).is_break() {
                            return Ok(frames);
                        }
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let linktype = idb.linktype.0;
                        let link = LinkType::from_linktype(linktype)
                            .ok_or(ReplayError::UnsupportedLinkType { path: name.clone(), linktype })?;
                        let resolution = match idb.if_tsresol() {
                            None => Some(1_000_000),
                            Some(Ok(code)) => ticks_per_second(code),
                            Some(Err(_)) => None,
                        }
                        .ok_or_else(|| malformed(&name, frames, "invalid if_tsresol"))?;
                        interfaces.push(Interface { link, resolution, offset_secs: idb.ts_offset() });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let interface = interfaces.get(epb.if_id as usize).copied().ok_or(
                            ReplayError::UnknownInterface { path: name.clone(), interface: epb.if_id },
                        )?;
                        let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let ts = ticks_to_micros(ticks, interface);
                        let caplen = usize::try_from(epb.caplen).unwrap_or(usize::MAX);
                        let data = epb.data.get(..caplen).unwrap_or(epb.data);
                        frames += 1;
                        if frame(ts, interface.link, data).is_break() {
                            return Ok(frames);
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let interface = interfaces
                            .first()
                            .copied()
                            .ok_or(ReplayError::UnknownInterface { path: name.clone(), interface: 0 })?;
                        let len = usize::try_from(spb.origlen).unwrap_or(usize::MAX);
                        let data = spb.data.get(..len).unwrap_or(spb.data);
                        frames += 1;
                        if frame(0, interface.link, data).is_break() {
                            return Ok(frames);
                        }
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                // Shift the buffer only on refill: moving the unread half on every
                // consume would copy the capture a second time.
                reader.consume_noshift(consumed);
            }
            Err(PcapError::Eof) => return Ok(frames),
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    return Err(ReplayError::Truncated { path: name, frames });
                }
                reader.refill().map_err(|e| malformed(&name, frames, &format!("{e:?}")))?;
            }
            Err(PcapError::UnexpectedEof) => return Err(ReplayError::Truncated { path: name, frames }),
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_BUFFER {
                    return Err(malformed(&name, frames, "block larger than 16 MiB"));
                }
                capacity *= 4;
                reader.grow(capacity);
                reader.refill().map_err(|e| malformed(&name, frames, &format!("{e:?}")))?;
            }
            Err(e) => return Err(malformed(&name, frames, &format!("{e:?}"))),
        }
    }
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The classic libpcap format: a 24-byte file header, then a 16-byte
/// header per record. Read here rather than through pcap-parser's generic
/// block iterator, which cost about a third of the per-packet time in the
/// benchmark (README, Performance); pcapng still goes through pcap-parser.
#[derive(Debug, Clone, Copy)]
struct ClassicFormat {
    big_endian: bool,
    nanos: bool,
    linktype: i32,
}

impl ClassicFormat {
    fn from_header(header: &[u8; 24]) -> Option<Self> {
        let (magic, rest) = header.split_first_chunk::<4>()?;
        let (big_endian, nanos) = match u32::from_le_bytes(*magic) {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            _ => return None,
        };
        let network = rest.get(16..20)?.first_chunk::<4>()?;
        let network = if big_endian { u32::from_be_bytes(*network) } else { u32::from_le_bytes(*network) };
        // The upper bits carry FCS information, not the link type.
        let linktype = i32::try_from(network & 0xffff).ok()?;
        Some(Self { big_endian, nanos, linktype })
    }

    fn u32(self, bytes: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    }
}

fn for_each_classic_frame(
    name: &str,
    mut file: File,
    format: ClassicFormat,
    mut frame: impl FnMut(Micros, LinkType, &[u8]) -> ControlFlow<()>,
) -> Result<u64, ReplayError> {
    let linktype = format.linktype;
    let link = LinkType::from_linktype(linktype)
        .ok_or_else(|| ReplayError::UnsupportedLinkType { path: name.to_owned(), linktype })?;
    let mut buf = vec![0u8; INITIAL_BUFFER];
    let (mut start, mut end) = (0usize, 0usize);
    let mut frames = 0u64;
    loop {
        // One record: its header, then its bytes; refill the buffer when short.
        let available = end - start;
        let record_len = match buf.get(start..end).and_then(|b| b.first_chunk::<16>()) {
            Some(header) => {
                let word = |i: usize| header.get(i..i + 4).and_then(|w| w.first_chunk::<4>()).copied();
                let caplen = word(8).map(|w| format.u32(w)).unwrap_or(0) as usize;
                if caplen > MAX_BUFFER {
                    return Err(malformed(name, frames, "record larger than 16 MiB"));
                }
                16 + caplen
            }
            None => 16,
        };
        if available < record_len {
            if record_len > buf.len() {
                buf.resize(record_len.next_power_of_two(), 0);
            }
            buf.copy_within(start..end, 0);
            (start, end) = (0, available);
            let read = read_full(&mut file, buf.get_mut(end..).unwrap_or_default())
                .map_err(|e| malformed(name, frames, &e.to_string()))?;
            end += read;
            if end - start < record_len {
                if read == 0 && end == start {
                    return Ok(frames);
                }
                if read == 0 {
                    return Err(ReplayError::Truncated { path: name.to_owned(), frames });
                }
            }
            continue;
        }
        let record = buf.get(start..start + record_len).unwrap_or_default();
        let (header, data) = record.split_at_checked(16).unwrap_or_default();
        let word =
            |i: usize| header.get(i..i + 4).and_then(|w| w.first_chunk::<4>()).map_or(0, |w| format.u32(*w));
        let frac = i64::from(word(4));
        let ts = i64::from(word(0)) * 1_000_000 + if format.nanos { frac / 1000 } else { frac };
        frames += 1;
        if frame(ts, link, data).is_break() {
            return Ok(frames);
        }
        start += record_len;
    }
}

fn malformed(path: &str, frames: u64, reason: &str) -> ReplayError {
    ReplayError::Malformed { path: path.to_owned(), frames, reason: reason.to_owned() }
}

/// pcapng `if_tsresol`: the high bit picks a power of two, else of ten.
/// (pcap-parser's own helper rejects the power-of-two form.)
fn ticks_per_second(code: u8) -> Option<u64> {
    let exponent = u32::from(code & 0x7f);
    if code & 0x80 != 0 {
        2u64.checked_pow(exponent)
    } else {
        10u64.checked_pow(exponent)
    }
}

fn ticks_to_micros(ticks: u64, interface: Interface) -> Micros {
    // `resolution` is at least 1: 2^0 or 10^0.
    let micros = u128::from(ticks) * 1_000_000 / u128::from(interface.resolution.max(1));
    i64::try_from(micros).unwrap_or(i64::MAX).saturating_add(interface.offset_secs.saturating_mul(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_resolutions() {
        assert_eq!(ticks_per_second(6), Some(1_000_000));
        assert_eq!(ticks_per_second(9), Some(1_000_000_000));
        assert_eq!(ticks_per_second(0x80 | 20), Some(1 << 20));
        assert_eq!(ticks_per_second(20), None);
        let nanos = Interface { link: LinkType::Ethernet, resolution: 1_000_000_000, offset_secs: 0 };
        assert_eq!(ticks_to_micros(1_795_795_200_123_456_789, nanos), 1_795_795_200_123_456);
        let binary = Interface { link: LinkType::Ethernet, resolution: 1 << 20, offset_secs: 10 };
        assert_eq!(ticks_to_micros(3 << 19, binary), 11_500_000);
    }

    #[test]
    fn open_errors_say_the_cause_once() {
        let error = for_each_frame(Path::new("/nonexistent/x.pcap"), |_, _, _| {}).unwrap_err();
        assert_eq!(crate::diag::chain(&error), "/nonexistent/x.pcap: No such file or directory (os error 2)");
    }

    #[test]
    fn a_break_stops_reading() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pcap");
        for file in ["curl-tls.pcap", "openssl-gnutls-python.pcapng"] {
            let path = dir.join(file);
            let all = for_each_frame(&path, |_, _, _| {}).unwrap();
            assert!(all > 3, "{file}");
            let mut seen = 0u64;
            let read = try_for_each_frame(&path, |_, _, _| {
                seen += 1;
                if seen == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            assert_eq!((read.unwrap(), seen), (3, 3), "{file}");
        }
    }
}
