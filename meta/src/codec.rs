//! Little-endian, fixed-width building blocks shared by the command, snapshot
//! and log-file encodings (layouts: `docs/metadata-format.md`).
//!
//! Every variable-length field carries its length first; [`Reader`] checks that
//! length against both a caller-supplied maximum and the bytes actually left
//! before it allocates anything, so a hostile prefix cannot make us reserve
//! more than the input holds.

use std::ops::RangeInclusive;

use crate::error::CodecError;

/// Appends fixed-width little-endian fields to a `Vec<u8>`.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A `u16` length then the UTF-8 bytes. Callers validate the length
    /// against the field's limit first, so the cast cannot truncate.
    pub(crate) fn str16(&mut self, s: &str) {
        debug_assert!(s.len() <= usize::from(u16::MAX));
        self.u16(s.len() as u16);
        self.raw(s.as_bytes());
    }

    /// A `u32` length then the bytes.
    pub(crate) fn bytes32(&mut self, b: &[u8]) {
        debug_assert!(b.len() <= u32::MAX as usize);
        self.u32(b.len() as u32);
        self.raw(b);
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Opens a framed blob: `magic u32, version u16, reserved u16, body ..., crc32c u32`
/// (the CRC covers everything before it). Checks the CRC, the magic and that
/// the version lies in `versions`; returns the version found and a reader
/// positioned after the reserved field.
pub(crate) fn open_framed<'a>(
    bytes: &'a [u8],
    what: &'static str,
    magic: u32,
    versions: RangeInclusive<u16>,
) -> Result<(u16, Reader<'a>), CodecError> {
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(CodecError::Truncated {
            field: what,
            needed_bytes: 4,
            remaining_bytes: bytes.len() as u64,
        });
    };
    let stored = u32::from_le_bytes(*crc);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(CodecError::ChecksumMismatch {
            what,
            stored,
            computed,
        });
    }
    let mut r = Reader::new(body);
    let found = r.u32("magic")?;
    if found != magic {
        return Err(CodecError::BadMagic { what, found });
    }
    let v = r.u16("format version")?;
    if !versions.contains(&v) {
        return Err(CodecError::UnsupportedVersion { what, version: v });
    }
    let _reserved = r.u16("reserved")?;
    Ok((v, r))
}

/// Reads what [`Writer`] wrote, refusing lengths beyond their limit or beyond
/// the remaining input.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated {
                field,
                needed_bytes: n as u64,
                remaining_bytes: self.remaining() as u64,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn raw(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        self.take(n, field)
    }

    /// A count of items that each take at least `item_bytes_min` bytes: checked
    /// against `max` and against what is left, so the caller may reserve it.
    pub(crate) fn count(
        &mut self,
        max: u32,
        item_bytes_min: usize,
        field: &'static str,
    ) -> Result<usize, CodecError> {
        let n = self.u32(field)?;
        if n > max {
            return Err(CodecError::TooLong {
                field,
                len: u64::from(n),
                max: u64::from(max),
            });
        }
        let n = n as usize;
        let needed = n.saturating_mul(item_bytes_min);
        if needed > self.remaining() {
            return Err(CodecError::Truncated {
                field,
                needed_bytes: needed as u64,
                remaining_bytes: self.remaining() as u64,
            });
        }
        Ok(n)
    }

    pub(crate) fn str16(&mut self, max: usize, field: &'static str) -> Result<String, CodecError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(CodecError::TooLong {
                field,
                len: len as u64,
                max: max as u64,
            });
        }
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| CodecError::InvalidUtf8 { field })
    }

    pub(crate) fn bytes32(
        &mut self,
        max: usize,
        field: &'static str,
    ) -> Result<&'a [u8], CodecError> {
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(CodecError::TooLong {
                field,
                len: len as u64,
                max: max as u64,
            });
        }
        self.take(len, field)
    }

    /// Fails unless every byte was consumed: trailing garbage means the
    /// writer and reader disagree about the layout.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), CodecError> {
        if self.remaining() != 0 {
            return Err(CodecError::TrailingBytes {
                what,
                trailing_bytes: self.remaining() as u64,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_little_endian() {
        let mut w = Writer::default();
        w.u16(0x0102);
        w.u32(0x0304_0506);
        w.u64(7);
        w.str16("ab");
        let v = w.into_vec();
        assert_eq!(&v[..6], &[0x02, 0x01, 0x06, 0x05, 0x04, 0x03]);
        let mut r = Reader::new(&v);
        assert_eq!(r.u16("a").unwrap(), 0x0102);
        assert_eq!(r.u32("b").unwrap(), 0x0304_0506);
        assert_eq!(r.u64("c").unwrap(), 7);
        assert_eq!(r.str16(8, "d").unwrap(), "ab");
        r.finish("test").unwrap();
    }

    #[test]
    fn oversized_lengths_are_refused_before_allocating() {
        let mut w = Writer::default();
        w.u32(u32::MAX);
        let v = w.into_vec();
        let err = Reader::new(&v).bytes32(1 << 20, "blob").unwrap_err();
        assert!(matches!(err, CodecError::TooLong { field: "blob", .. }));
        // Within the limit but beyond the input.
        let err = Reader::new(&v).count(u32::MAX, 8, "items").unwrap_err();
        assert!(matches!(err, CodecError::Truncated { field: "items", .. }));
        let err = Reader::new(&[5, 0, b'a']).str16(10, "name").unwrap_err();
        assert!(matches!(
            err,
            CodecError::Truncated {
                needed_bytes: 5,
                ..
            }
        ));
    }
}
