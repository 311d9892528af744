//! Byte-stream reassembly by offset, shared by TCP streams and QUIC CRYPTO
//! streams: segments may arrive out of order, twice, or overlapping. Only the
//! first `limit` bytes of a stream are kept: a handshake is all we look for.

/// Too much buffered for one stream: give up on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    /// Bytes from offset 0, without holes.
    contiguous: Vec<u8>,
    /// Segments past a hole, by offset; an overlap keeps the bytes seen first.
    pending: Vec<(u64, Vec<u8>)>,
    pending_bytes: usize,
}

const MAX_PENDING_SEGMENTS: usize = 64;

impl Reassembler {
    pub(crate) fn contiguous(&self) -> &[u8] {
        &self.contiguous
    }

    /// Bytes held, contiguous and pending.
    pub(crate) fn buffered(&self) -> usize {
        self.contiguous.len() + self.pending_bytes
    }

    /// Adds `bytes` found at stream `offset`, keeping at most `limit` bytes.
    pub(crate) fn insert(&mut self, offset: u64, bytes: &[u8], limit: usize) -> Result<(), Overflow> {
        let end = offset.saturating_add(bytes.len() as u64);
        if end > limit as u64 {
            return Err(Overflow);
        }
        let have = self.contiguous.len() as u64;
        if offset > have {
            if self.pending.len() >= MAX_PENDING_SEGMENTS || self.pending_bytes + bytes.len() > limit {
                return Err(Overflow);
            }
            self.pending_bytes += bytes.len();
            self.pending.push((offset, bytes.to_vec()));
            return Ok(());
        }
        self.append_from(offset, bytes);
        // Segments that were waiting on this hole may now follow on.
        loop {
            let have = self.contiguous.len() as u64;
            let Some(index) = self.pending.iter().position(|(o, _)| *o <= have) else { break };
            let (o, data) = self.pending.swap_remove(index);
            self.pending_bytes -= data.len();
            self.append_from(o, &data);
        }
        Ok(())
    }

    /// Appends the part of `bytes` (at `offset` ≤ current length) not seen yet.
    fn append_from(&mut self, offset: u64, bytes: &[u8]) {
        let seen = (self.contiguous.len() as u64).saturating_sub(offset);
        let skip = usize::try_from(seen).unwrap_or(usize::MAX);
        if let Some(new) = bytes.get(skip..) {
            self.contiguous.extend_from_slice(new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_overlapping_and_repeated_segments() {
        let data: Vec<u8> = (0..200u8).collect();
        let mut r = Reassembler::default();
        r.insert(150, &data[150..], 1000).unwrap();
        r.insert(50, &data[50..120], 1000).unwrap();
        r.insert(100, &data[100..160], 1000).unwrap(); // overlaps both sides
        assert!(r.contiguous().is_empty());
        r.insert(0, &data[..60], 1000).unwrap();
        r.insert(0, &data[..60], 1000).unwrap(); // retransmission
        assert_eq!(r.contiguous(), &data[..]);
    }

    #[test]
    fn limits_bound_memory() {
        let mut r = Reassembler::default();
        assert_eq!(r.insert(10, &[0; 100], 50), Err(Overflow));
        for i in 0..MAX_PENDING_SEGMENTS as u64 {
            r.insert(10 + i, &[1], 1000).unwrap();
        }
        assert_eq!(r.insert(500, &[1], 1000), Err(Overflow));
    }
}
