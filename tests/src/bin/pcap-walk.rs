//! The floor for the speed benchmark: reads a classic pcap file and walks
//! its records (header, then skip the frame), doing nothing else. Any
//! detector must at least do this much I/O and parsing.

// The fixed-size header arrays are indexed with constants below their size.
#![allow(clippy::indexing_slicing)]

use std::io::{BufReader, Read};

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let path = std::env::args().nth(1).context("usage: pcap-walk FILE.pcap")?;
    let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(&path).with_context(|| path.clone())?);
    let mut header = [0u8; 24];
    r.read_exact(&mut header)?;
    if header[..4] != 0xa1b2_c3d4u32.to_le_bytes() {
        bail!("{path}: only little-endian microsecond pcap is walked");
    }
    let (mut packets, mut bytes, mut checksum) = (0u64, 0u64, 0u8);
    let mut record = [0u8; 16];
    let mut frame = vec![0u8; 262_144];
    loop {
        match r.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_le_bytes([record[8], record[9], record[10], record[11]]) as usize;
        let data = frame.get_mut(..len).context("record larger than snaplen")?;
        r.read_exact(data)?;
        // Touch the frame so the read cannot be optimised away.
        checksum ^= data.first().copied().unwrap_or(0);
        packets += 1;
        bytes += len as u64;
    }
    println!("{packets} packets, {bytes} bytes ({checksum})");
    Ok(())
}
