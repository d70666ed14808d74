//! Primitive readers and writers: fixed-width little-endian integers, strings, byte blobs,
//! optionals and counted lists. Every length or count is checked against the bytes that remain in
//! the frame before any slice is taken or any vector is allocated.

use bytes::{BufMut, BytesMut};

use super::error::{EncodeError, Malformed};

/// A decoding failure before it is attached to a frame header.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub field: &'static str,
    pub reason: Malformed,
}

pub(crate) type ReadResult<T> = Result<T, FieldError>;

fn fail<T>(field: &'static str, reason: Malformed) -> ReadResult<T> {
    Err(FieldError { field, reason })
}

/// Cursor over one frame body. Slices it returns borrow from the input (zero copy).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, field: &'static str, n: u64) -> ReadResult<&'a [u8]> {
        let remaining = self.buf.len();
        match usize::try_from(n) {
            Ok(n) if n <= remaining => {
                let (head, tail) = self.buf.split_at(n);
                self.buf = tail;
                Ok(head)
            }
            _ => fail(
                field,
                Malformed::Truncated {
                    needed_bytes: n,
                    remaining_bytes: remaining,
                },
            ),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> ReadResult<[u8; N]> {
        let bytes = self.take(field, N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> ReadResult<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> ReadResult<u16> {
        self.array(field).map(u16::from_le_bytes)
    }

    pub fn u32(&mut self, field: &'static str) -> ReadResult<u32> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub fn i32(&mut self, field: &'static str) -> ReadResult<i32> {
        self.array(field).map(i32::from_le_bytes)
    }

    pub fn u64(&mut self, field: &'static str) -> ReadResult<u64> {
        self.array(field).map(u64::from_le_bytes)
    }

    pub fn i64(&mut self, field: &'static str) -> ReadResult<i64> {
        self.array(field).map(i64::from_le_bytes)
    }

    /// `u8` that must be 0 or 1.
    pub fn bool(&mut self, field: &'static str) -> ReadResult<bool> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => fail(
                field,
                Malformed::InvalidValue {
                    value: i64::from(other),
                },
            ),
        }
    }

    /// Presence byte (0 or 1) followed by a `u64` when present.
    pub fn opt_u64(&mut self, field: &'static str) -> ReadResult<Option<u64>> {
        if self.bool(field)? {
            self.u64(field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Presence byte (0 or 1) followed by a `u16` when present.
    pub fn opt_u16(&mut self, field: &'static str) -> ReadResult<Option<u16>> {
        if self.bool(field)? {
            self.u16(field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Presence byte (0 or 1) followed by a `u32` when present.
    pub fn opt_u32(&mut self, field: &'static str) -> ReadResult<Option<u32>> {
        if self.bool(field)? {
            self.u32(field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `u16` length + UTF-8.
    pub fn str(&mut self, field: &'static str) -> ReadResult<&'a str> {
        let len = self.u16(field)?;
        let bytes = self.take(field, u64::from(len))?;
        std::str::from_utf8(bytes).or_else(|_| fail(field, Malformed::InvalidUtf8))
    }

    /// `u32` length + bytes.
    pub fn bytes(&mut self, field: &'static str) -> ReadResult<&'a [u8]> {
        let len = self.u32(field)?;
        self.take(field, u64::from(len))
    }

    /// `i32` length + bytes, `-1` = absent; any other negative length is malformed.
    pub fn opt_bytes(&mut self, field: &'static str) -> ReadResult<Option<&'a [u8]>> {
        match self.i32(field)? {
            -1 => Ok(None),
            len if len < 0 => fail(
                field,
                Malformed::InvalidValue {
                    value: i64::from(len),
                },
            ),
            len => self.take(field, len.unsigned_abs().into()).map(Some),
        }
    }

    /// Validates a list count: every element needs at least `min_element_bytes`, so a count
    /// that cannot fit in the remaining bytes fails here, before any allocation.
    fn checked_count(
        &self,
        field: &'static str,
        count: u64,
        min_element_bytes: usize,
    ) -> ReadResult<usize> {
        let remaining = self.buf.len();
        let fits = count
            .checked_mul(min_element_bytes.max(1) as u64)
            .is_some_and(|needed| needed <= remaining as u64);
        match usize::try_from(count) {
            Ok(count) if fits => Ok(count),
            _ => fail(
                field,
                Malformed::CountTooLarge {
                    count,
                    remaining_bytes: remaining,
                },
            ),
        }
    }

    /// `u32` count followed by that many elements, each at least `min_element_bytes` long.
    pub fn list<T>(
        &mut self,
        field: &'static str,
        min_element_bytes: usize,
        mut element: impl FnMut(&mut Self) -> ReadResult<T>,
    ) -> ReadResult<Vec<T>> {
        let count = self.u32(field)?;
        let count = self.checked_count(field, u64::from(count), min_element_bytes)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(element(self)?);
        }
        Ok(out)
    }

    /// Like [`Reader::list`], but a count above `count_max` is malformed (checked before the
    /// count is compared with the remaining bytes, and before any allocation).
    pub fn capped_list<T>(
        &mut self,
        field: &'static str,
        count_max: usize,
        min_element_bytes: usize,
        mut element: impl FnMut(&mut Self) -> ReadResult<T>,
    ) -> ReadResult<Vec<T>> {
        let count = self.u32(field)?;
        if u64::from(count) > count_max as u64 {
            return fail(
                field,
                Malformed::CountAboveLimit {
                    count: u64::from(count),
                    limit: count_max as u64,
                },
            );
        }
        let count = self.checked_count(field, u64::from(count), min_element_bytes)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(element(self)?);
        }
        Ok(out)
    }

    /// Like [`Reader::list`] but with an `i32` count where `-1` means absent.
    pub fn opt_list<T>(
        &mut self,
        field: &'static str,
        min_element_bytes: usize,
        mut element: impl FnMut(&mut Self) -> ReadResult<T>,
    ) -> ReadResult<Option<Vec<T>>> {
        match self.i32(field)? {
            -1 => Ok(None),
            count if count < 0 => fail(
                field,
                Malformed::InvalidValue {
                    value: i64::from(count),
                },
            ),
            count => {
                let count =
                    self.checked_count(field, count.unsigned_abs().into(), min_element_bytes)?;
                let mut out = Vec::with_capacity(count);
                for _ in 0..count {
                    out.push(element(self)?);
                }
                Ok(Some(out))
            }
        }
    }

    /// Headers: `u32` count, then per header `bytes` key and `bytes` value.
    pub fn headers(&mut self, field: &'static str) -> ReadResult<Vec<(&'a [u8], &'a [u8])>> {
        self.list(field, 8, |r| Ok((r.bytes(field)?, r.bytes(field)?)))
    }

    /// The body must be consumed exactly.
    pub fn finish(self) -> ReadResult<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            fail(
                "body",
                Malformed::TrailingBytes {
                    count: self.buf.len(),
                },
            )
        }
    }
}

pub(crate) type WriteResult = Result<(), EncodeError>;

/// Appends primitives to a `BytesMut`. Length checks happen before anything is written for the
/// field, and [`crate::codec::encode`] truncates the buffer back on any error.
pub(crate) struct Writer<'b> {
    pub buf: &'b mut BytesMut,
}

impl Writer<'_> {
    pub fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.put_u16_le(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.put_u32_le(v);
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32_le(v);
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.put_u64_le(v);
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.put_i64_le(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    pub fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }

    pub fn opt_u16(&mut self, v: Option<u16>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u16(v);
            }
            None => self.u8(0),
        }
    }

    pub fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u32(v);
            }
            None => self.u8(0),
        }
    }

    pub fn str(&mut self, field: &'static str, s: &str) -> WriteResult {
        let len = u16::try_from(s.len()).map_err(|_| EncodeError::StringTooLong {
            field,
            length_bytes: s.len(),
            limit_bytes: usize::from(u16::MAX),
        })?;
        self.u16(len);
        self.buf.put_slice(s.as_bytes());
        Ok(())
    }

    pub fn bytes(&mut self, field: &'static str, b: &[u8]) -> WriteResult {
        let len =
            u32::try_from(b.len()).map_err(|_| too_long(field, b.len(), u32::MAX as usize))?;
        self.u32(len);
        self.buf.put_slice(b);
        Ok(())
    }

    pub fn opt_bytes(&mut self, field: &'static str, b: Option<&[u8]>) -> WriteResult {
        match b {
            None => self.i32(-1),
            Some(b) => {
                let len = i32::try_from(b.len())
                    .map_err(|_| too_long(field, b.len(), i32::MAX as usize))?;
                self.i32(len);
                self.buf.put_slice(b);
            }
        }
        Ok(())
    }

    pub fn count(&mut self, field: &'static str, count: usize) -> WriteResult {
        let count = u32::try_from(count).map_err(|_| EncodeError::CountTooLarge {
            field,
            count,
            limit: u32::MAX as usize,
        })?;
        self.u32(count);
        Ok(())
    }

    /// A list count that the decoder caps at `count_max` ([`Reader::capped_list`]).
    pub fn capped_count(
        &mut self,
        field: &'static str,
        count: usize,
        count_max: usize,
    ) -> WriteResult {
        if count > count_max {
            return Err(EncodeError::CountTooLarge {
                field,
                count,
                limit: count_max,
            });
        }
        self.count(field, count)
    }

    pub fn opt_count(&mut self, field: &'static str, count: Option<usize>) -> WriteResult {
        match count {
            None => self.i32(-1),
            Some(count) => {
                let count = i32::try_from(count).map_err(|_| EncodeError::CountTooLarge {
                    field,
                    count,
                    limit: i32::MAX as usize,
                })?;
                self.i32(count);
            }
        }
        Ok(())
    }

    pub fn headers(&mut self, field: &'static str, headers: &[(&[u8], &[u8])]) -> WriteResult {
        self.count(field, headers.len())?;
        for (k, v) in headers {
            self.bytes(field, k)?;
            self.bytes(field, v)?;
        }
        Ok(())
    }
}

fn too_long(field: &'static str, length_bytes: usize, limit_bytes: usize) -> EncodeError {
    EncodeError::BytesTooLong {
        field,
        length_bytes,
        limit_bytes,
    }
}
