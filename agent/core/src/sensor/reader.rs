//! A checked cursor over borrowed bytes: every read says what it was reading,
//! so truncated input becomes a precise error instead of a panic.

use super::ParseError;

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ParseError> {
        let (head, tail) = self.buf.split_at_checked(n).ok_or(ParseError::Truncated(what))?;
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn skip(&mut self, n: usize, what: &'static str) -> Result<(), ParseError> {
        self.take(n, what).map(|_| ())
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ParseError> {
        let (head, tail) = self.buf.split_first_chunk::<N>().ok_or(ParseError::Truncated(what))?;
        self.buf = tail;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, ParseError> {
        self.array::<1>(what).map(|[b]| b)
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, ParseError> {
        self.array::<2>(what).map(u16::from_be_bytes)
    }

    pub(crate) fn u24(&mut self, what: &'static str) -> Result<u32, ParseError> {
        self.array::<3>(what).map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, ParseError> {
        self.array::<4>(what).map(u32::from_be_bytes)
    }

    /// A vector prefixed by a one-byte length.
    pub(crate) fn vec_u8(&mut self, what: &'static str) -> Result<&'a [u8], ParseError> {
        let len = self.u8(what)?;
        self.take(usize::from(len), what)
    }

    /// A vector prefixed by a two-byte length.
    pub(crate) fn vec_u16(&mut self, what: &'static str) -> Result<&'a [u8], ParseError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    /// A QUIC variable-length integer (RFC 9000 §16).
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, ParseError> {
        let first = self.u8(what)?;
        let extra = (1usize << (first >> 6)) - 1;
        let mut value = u64::from(first & 0x3f);
        for &byte in self.take(extra, what)? {
            value = (value << 8) | u64::from(byte);
        }
        Ok(value)
    }

    /// A varint used as a length within this buffer.
    pub(crate) fn varint_len(&mut self, what: &'static str) -> Result<usize, ParseError> {
        let value = self.varint(what)?;
        usize::try_from(value).map_err(|_| ParseError::Invalid(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_examples_from_rfc9000() {
        for (bytes, value) in [
            (&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c][..], 151_288_809_941_952_652u64),
            (&[0x9d, 0x7f, 0x3e, 0x7d][..], 494_878_333),
            (&[0x7b, 0xbd][..], 15_293),
            (&[0x25][..], 37),
            (&[0x40, 0x25][..], 37),
        ] {
            assert_eq!(Reader::new(bytes).varint("v"), Ok(value));
        }
        assert_eq!(Reader::new(&[0x7b]).varint("v"), Err(ParseError::Truncated("v")));
    }

    #[test]
    fn reads_never_go_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("a"), Ok(0x0102));
        assert_eq!(r.u16("b"), Err(ParseError::Truncated("b")));
        assert_eq!(r.u8("c"), Ok(3));
        assert!(r.is_empty());
        assert_eq!(Reader::new(&[5, 1]).vec_u8("v"), Err(ParseError::Truncated("v")));
    }
}
