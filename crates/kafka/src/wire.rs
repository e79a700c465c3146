//! Kafka's primitive wire types: the bounds-checked [`Reader`] that every request decoder
//! uses, and the few writes this crate does itself (response headers, the Fetch response,
//! the Produce v0-2 refusal).
//!
//! Invariants:
//!
//! - A read never goes past `end`; any shortfall is [`DecodeError::Truncated`], never a
//!   panic. Strings, byte arrays and record sets are zero-copy slices of the frame's
//!   [`Bytes`].
//! - An array count is accepted only if `count * element_size_bytes_min` fits in the bytes
//!   that remain, and at most [`ARRAY_PREALLOCATED_ELEMENTS_MAX`] elements are allocated
//!   before they are read: a forged count cannot make the decoder allocate more than the
//!   request's real content needs. (kafka-protocol's own decoders trust the count, which is
//!   why requests are not decoded with them.)
//! - Flexible versions use compact lengths (unsigned varint of length + 1, 0 for null) and
//!   end every struct with tagged fields; the reader's `flexible` flag selects the encoding.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;

use crate::error::{DecodeError, MalformedReason};

/// Elements allocated ahead of reading them; larger arrays grow as their elements arrive.
pub(crate) const ARRAY_PREALLOCATED_ELEMENTS_MAX: usize = 256;

/// A cursor over one request frame (the bytes after the size prefix).
pub(crate) struct Reader {
    frame: Bytes,
    position: usize,
    end: usize,
    flexible: bool,
}

type Result<T> = std::result::Result<T, DecodeError>;

impl Reader {
    /// A reader over the whole frame, in the non-flexible encoding.
    pub(crate) fn new(frame: Bytes) -> Reader {
        let end = frame.len();
        Reader {
            frame,
            position: 0,
            end,
            flexible: false,
        }
    }

    /// Switches between the classic and the flexible (compact) encoding.
    pub(crate) fn set_flexible(&mut self, flexible: bool) {
        self.flexible = flexible;
    }

    pub(crate) fn remaining_bytes(&self) -> usize {
        self.end - self.position
    }

    /// The next `size_bytes` bytes as a slice of the frame.
    pub(crate) fn take(&mut self, field: &'static str, size_bytes: usize) -> Result<Bytes> {
        let remaining_bytes = self.remaining_bytes();
        if size_bytes > remaining_bytes {
            return Err(DecodeError::Truncated {
                field,
                position: self.position,
                needed_bytes: size_bytes,
                remaining_bytes,
            });
        }
        let start = self.position;
        self.position += size_bytes;
        Ok(self.frame.slice(start..self.position))
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let remaining_bytes = self.remaining_bytes();
        let bytes = self.frame[self.position..self.end]
            .first_chunk::<N>()
            .ok_or(DecodeError::Truncated {
                field,
                position: self.position,
                needed_bytes: N,
                remaining_bytes,
            })?;
        let bytes = *bytes;
        self.position += N;
        Ok(bytes)
    }

    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// Kafka's boolean: any non-zero byte is true (as Kafka's own readers treat it).
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool> {
        Ok(self.i8(field)? != 0)
    }

    pub(crate) fn uuid(&mut self, field: &'static str) -> Result<uuid::Uuid> {
        Ok(uuid::Uuid::from_bytes(self.array(field)?))
    }

    /// An unsigned LEB128 varint of at most 5 bytes.
    pub(crate) fn uvarint(&mut self, field: &'static str) -> Result<u32> {
        let start = self.position;
        let mut value: u32 = 0;
        for index in 0..5 {
            let [byte] = self.array::<1>(field)?;
            value |= u32::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed(field, start, MalformedReason::VarintTooLong))
    }

    /// A length prefix: i16 (strings) or i32 (bytes, arrays) classic, or a compact varint.
    /// Returns `None` for null (-1, or compact 0) and rejects anything below -1.
    fn length(&mut self, field: &'static str, wide: bool) -> Result<Option<usize>> {
        let start = self.position;
        let length = if self.flexible {
            i64::from(self.uvarint(field)?) - 1
        } else if wide {
            i64::from(self.i32(field)?)
        } else {
            i64::from(self.i16(field)?)
        };
        match usize::try_from(length) {
            Ok(length) => Ok(Some(length)),
            Err(_) if length == -1 => Ok(None),
            Err(_) => Err(malformed(
                field,
                start,
                MalformedReason::LengthInvalid { length },
            )),
        }
    }

    pub(crate) fn nullable_string(&mut self, field: &'static str) -> Result<Option<StrBytes>> {
        let Some(length) = self.length(field, false)? else {
            return Ok(None);
        };
        let start = self.position;
        let bytes = self.take(field, length)?;
        let string = StrBytes::from_utf8(bytes)
            .map_err(|_| malformed(field, start, MalformedReason::InvalidUtf8))?;
        Ok(Some(string))
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<StrBytes> {
        let start = self.position;
        self.nullable_string(field)?.ok_or(malformed(
            field,
            start,
            MalformedReason::LengthInvalid { length: -1 },
        ))
    }

    pub(crate) fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<Bytes>> {
        match self.length(field, true)? {
            Some(length) => Ok(Some(self.take(field, length)?)),
            None => Ok(None),
        }
    }

    /// An array's element count, or `None` for a null array.
    pub(crate) fn nullable_count(
        &mut self,
        field: &'static str,
        element_size_bytes_min: usize,
    ) -> Result<Option<usize>> {
        let start = self.position;
        let Some(count) = self.length(field, true)? else {
            return Ok(None);
        };
        let remaining_bytes = self.remaining_bytes();
        if count.saturating_mul(element_size_bytes_min) > remaining_bytes {
            return Err(malformed(
                field,
                start,
                MalformedReason::CountTooLarge {
                    count: u64::try_from(count).unwrap_or(u64::MAX),
                    element_size_bytes_min,
                    remaining_bytes,
                },
            ));
        }
        Ok(Some(count))
    }

    /// A nullable array whose elements `read_element` decodes.
    pub(crate) fn nullable_array<T>(
        &mut self,
        field: &'static str,
        element_size_bytes_min: usize,
        mut read_element: impl FnMut(&mut Reader) -> Result<T>,
    ) -> Result<Option<Vec<T>>> {
        let Some(count) = self.nullable_count(field, element_size_bytes_min)? else {
            return Ok(None);
        };
        let mut elements = Vec::with_capacity(count.min(ARRAY_PREALLOCATED_ELEMENTS_MAX));
        for _ in 0..count {
            elements.push(read_element(self)?);
        }
        Ok(Some(elements))
    }

    /// A non-nullable array whose elements `read_element` decodes.
    pub(crate) fn array_of<T>(
        &mut self,
        field: &'static str,
        element_size_bytes_min: usize,
        read_element: impl FnMut(&mut Reader) -> Result<T>,
    ) -> Result<Vec<T>> {
        let start = self.position;
        self.nullable_array(field, element_size_bytes_min, read_element)?
            .ok_or(malformed(
                field,
                start,
                MalformedReason::LengthInvalid { length: -1 },
            ))
    }

    /// The tagged fields that end a struct in a flexible version; a no-op otherwise.
    ///
    /// `read_known` is offered each tag with a reader bounded to the tag's value; it returns
    /// `Ok(true)` if it decoded the tag (which must then use the value exactly), `Ok(false)`
    /// to skip it. Unknown tags are skipped, not kept: nothing in ringlog reads them.
    pub(crate) fn tagged_fields(
        &mut self,
        field: &'static str,
        mut read_known: impl FnMut(u32, &mut Reader) -> Result<bool>,
    ) -> Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint(field)?;
        for _ in 0..count {
            let tag = self.uvarint(field)?;
            let size_bytes = self.uvarint(field)?;
            let size_bytes = usize::try_from(size_bytes).unwrap_or(usize::MAX);
            let value = self.take(field, size_bytes)?;
            let value_start = self.position - value.len();
            let mut value_reader = Reader {
                frame: self.frame.clone(),
                position: value_start,
                end: self.position,
                flexible: true,
            };
            if read_known(tag, &mut value_reader)? {
                value_reader.finish(field)?;
            }
        }
        Ok(())
    }

    /// Checks that the reader has used every byte it was given.
    pub(crate) fn finish(&self, field: &'static str) -> Result<()> {
        let unused_bytes = self.remaining_bytes();
        if unused_bytes == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                field,
                position: self.position,
                unused_bytes,
            })
        }
    }
}

fn malformed(field: &'static str, position: usize, reason: MalformedReason) -> DecodeError {
    DecodeError::Malformed {
        field,
        position,
        reason,
    }
}

/// Appends an unsigned LEB128 varint.
pub(crate) fn put_uvarint(out: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        // Truncation is the point: the low 7 bits, with the continuation bit set.
        #[allow(clippy::cast_possible_truncation)]
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)] // value < 0x80 here.
    out.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks the varint reader on its edges: the largest 1- and 5-byte values, a 6th
    // continuation byte (malformed) and a varint cut short (truncated), and that the writer
    // produces what the reader accepts.
    #[test]
    fn uvarint_edges() {
        for value in [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, u32::MAX] {
            let mut out = BytesMut::new();
            put_uvarint(&mut out, value);
            let mut reader = Reader::new(out.freeze());
            assert_eq!(reader.uvarint("v").unwrap(), value);
            assert_eq!(reader.remaining_bytes(), 0);
        }
        let mut reader = Reader::new(Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]));
        assert!(matches!(
            reader.uvarint("v"),
            Err(DecodeError::Malformed {
                reason: MalformedReason::VarintTooLong,
                ..
            })
        ));
        let mut reader = Reader::new(Bytes::from_static(&[0x80]));
        assert!(matches!(
            reader.uvarint("v"),
            Err(DecodeError::Truncated { position: 1, .. })
        ));
    }

    // Checks that a forged array count is rejected before anything is allocated, in both
    // encodings, and that null arrays and strings are told apart from empty ones.
    #[test]
    fn counts_and_nulls() {
        let mut reader = Reader::new(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 0]));
        assert!(matches!(
            reader.array_of("a", 1, |reader| reader.i8("e")),
            Err(DecodeError::Malformed {
                reason: MalformedReason::CountTooLarge { .. },
                ..
            })
        ));
        let mut reader = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]));
        assert_eq!(
            reader
                .nullable_array("a", 1, |reader| reader.i8("e"))
                .unwrap(),
            None
        );
        let mut reader = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]));
        assert!(matches!(
            reader.nullable_array("a", 1, |reader| reader.i8("e")),
            Err(DecodeError::Malformed {
                reason: MalformedReason::LengthInvalid { length: -2 },
                ..
            })
        ));
        let mut reader = Reader::new(Bytes::from_static(&[0, 1, 0, 0]));
        reader.set_flexible(true);
        assert_eq!(reader.nullable_string("s").unwrap(), None);
        assert_eq!(reader.string("s").unwrap(), StrBytes::from_static_str(""));
        assert!(reader.string("s").is_err());
        let mut reader = Reader::new(Bytes::from_static(&[0, 2, 0xc3, 0x28]));
        assert!(matches!(
            reader.string("s"),
            Err(DecodeError::Malformed {
                reason: MalformedReason::InvalidUtf8,
                position: 2,
                ..
            })
        ));
    }
}
