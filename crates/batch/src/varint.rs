//! Kafka's variable-length integers: zigzag, then unsigned LEB128 (7 bits per byte, least
//! significant group first, high bit set on every byte but the last), as in Protocol Buffers.
//!
//! Invariants: a varint (32-bit) is at most 5 bytes and its value fits 32 bits; a varlong is
//! at most 10 bytes and fits 64 bits. Anything longer or wider is
//! [`Error::VarintOverflow`], never silently truncated. Reading never passes `end`. The
//! encoders write the shortest form, which the decoders read back to the same value.

use crate::error::{Error, Result};

/// Longest encoding of a 32-bit varint.
pub(crate) const VARINT_SIZE_BYTES_MAX: usize = 5;
/// Longest encoding of a 64-bit varlong.
pub(crate) const VARLONG_SIZE_BYTES_MAX: usize = 10;

/// A cursor over `bytes[position..end]`; positions are relative to the start of `bytes`
/// (the batch), so errors point at the byte in the batch.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `bytes[position..end]`. Panics if the range is not inside `bytes`: the
    /// caller computed it from lengths it already checked.
    pub(crate) fn new(bytes: &'a [u8], position: usize, end: usize) -> Reader<'a> {
        assert!(position <= end, "position={position} end={end}");
        assert!(end <= bytes.len(), "end={end} len={}", bytes.len());
        Reader {
            bytes,
            position,
            end,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn remaining_bytes(&self) -> usize {
        self.end - self.position
    }

    /// A reader of the next `length` bytes, which this reader then skips. Panics if fewer
    /// remain: callers bound `length` by [`Reader::remaining_bytes`] first.
    pub(crate) fn split(&mut self, length: usize) -> Reader<'a> {
        let remaining_bytes = self.remaining_bytes();
        assert!(
            length <= remaining_bytes,
            "length={length} remaining_bytes={remaining_bytes}"
        );
        let part = Reader::new(self.bytes, self.position, self.position + length);
        self.position += length;
        part
    }

    /// One signed byte.
    pub(crate) fn read_i8(&mut self, field: &'static str) -> Result<i8> {
        let [byte] = self.read_array::<1>(field)?;
        Ok(i8::from_be_bytes([byte]))
    }

    /// A zigzag varint that must fit an `i32`.
    pub(crate) fn read_varint(&mut self, field: &'static str) -> Result<i32> {
        let start = self.position;
        let value = self.read_zigzag(field, 32)?;
        i32::try_from(value).map_err(|_| Error::VarintOverflow {
            field,
            position: start,
            width_bits: 32,
        })
    }

    /// A zigzag varlong.
    pub(crate) fn read_varlong(&mut self, field: &'static str) -> Result<i64> {
        self.read_zigzag(field, 64)
    }

    /// The next `length` bytes, borrowed.
    pub(crate) fn read_bytes(&mut self, field: &'static str, length: usize) -> Result<&'a [u8]> {
        if length > self.remaining_bytes() {
            return Err(Error::RecordTruncated {
                field,
                position: self.position,
            });
        }
        let bytes = &self.bytes[self.position..self.position + length];
        self.position += length;
        Ok(bytes)
    }

    fn read_array<const WIDTH: usize>(&mut self, field: &'static str) -> Result<[u8; WIDTH]> {
        let mut value = [0; WIDTH];
        value.copy_from_slice(self.read_bytes(field, WIDTH)?);
        Ok(value)
    }

    /// Unsigned LEB128 of a `width_bits`-bit value (at most 5 or 10 bytes), zigzag-decoded.
    fn read_zigzag(&mut self, field: &'static str, width_bits: u32) -> Result<i64> {
        let start = self.position;
        let size_bytes_max = if width_bits == 32 {
            VARINT_SIZE_BYTES_MAX
        } else {
            VARLONG_SIZE_BYTES_MAX
        };
        let overflow = Error::VarintOverflow {
            field,
            position: start,
            width_bits,
        };
        let mut unsigned: u64 = 0;
        for index in 0..size_bytes_max {
            let Some(&byte) = self.bytes[..self.end].get(start + index) else {
                return Err(Error::RecordTruncated {
                    field,
                    position: start,
                });
            };
            let group = u64::from(byte & 0x7f);
            let shift = 7 * index;
            // Bits shifted out of the top would be lost: refuse them instead.
            if (group << shift) >> shift != group {
                return Err(overflow);
            }
            unsigned |= group << shift;
            if byte & 0x80 == 0 {
                self.position = start + index + 1;
                if width_bits == 32 && unsigned > u64::from(u32::MAX) {
                    return Err(overflow);
                }
                return Ok(zigzag_decode(unsigned));
            }
        }
        Err(overflow)
    }
}

fn zigzag_decode(unsigned: u64) -> i64 {
    let magnitude = i64::try_from(unsigned >> 1).unwrap_or(i64::MAX);
    if unsigned & 1 == 0 {
        magnitude
    } else {
        -magnitude - 1
    }
}

fn zigzag_encode(value: i64) -> u64 {
    // (value << 1) ^ (value >> 63) is the usual form; this spells out the same mapping
    // (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) without a sign-losing cast.
    match u64::try_from(value) {
        Ok(positive) => positive << 1,
        Err(_) => ((value.unsigned_abs() - 1) << 1) | 1,
    }
}

/// Appends the zigzag varint (or varlong: same bytes for values in `i32` range) of `value`.
pub(crate) fn put_varlong(target: &mut Vec<u8>, value: i64) {
    let mut unsigned = zigzag_encode(value);
    while unsigned >= 0x80 {
        // Only the low 7 bits are kept, so the cast cannot lose anything.
        target.push(u8::try_from(unsigned & 0x7f).unwrap_or(0) | 0x80);
        unsigned >>= 7;
    }
    target.push(u8::try_from(unsigned).unwrap_or(0));
}

/// Bytes [`put_varlong`] writes for `value`.
pub(crate) fn varlong_size_bytes(value: i64) -> usize {
    let significant_bits = 64 - zigzag_encode(value).leading_zeros();
    let significant_bits = usize::try_from(significant_bits).unwrap_or(64);
    significant_bits.div_ceil(7).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: i64) -> Vec<u8> {
        let mut bytes = Vec::new();
        put_varlong(&mut bytes, value);
        bytes
    }

    // Table of known encodings (zigzag then LEB128), covering one- to ten-byte forms and
    // both ends of the i32 and i64 ranges; each must encode, size and decode exactly.
    #[test]
    fn known_encodings() {
        let cases: [(i64, &[u8]); 10] = [
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
            (i64::from(i32::MAX), &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i64::from(i32::MIN), &[0xff, 0xff, 0xff, 0xff, 0x0f]),
            (
                i64::MAX,
                &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
            (
                i64::MIN,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, bytes) in cases {
            assert_eq!(encode(value), bytes, "value={value}");
            assert_eq!(varlong_size_bytes(value), bytes.len(), "value={value}");
            let mut reader = Reader::new(bytes, 0, bytes.len());
            assert_eq!(reader.read_varlong("v"), Ok(value));
            assert_eq!(reader.remaining_bytes(), 0);
            if let Ok(narrow) = i32::try_from(value) {
                let mut reader = Reader::new(bytes, 0, bytes.len());
                assert_eq!(reader.read_varint("v"), Ok(narrow));
            }
        }
    }

    // Table of malformed inputs: truncated continuations, too many bytes, and values that
    // do not fit the width. Each must be the named error at the varint's start position.
    #[test]
    fn malformed_varints() {
        let truncated = |position| {
            Err(Error::RecordTruncated {
                field: "v",
                position,
            })
        };
        let overflow = |width_bits| {
            Err(Error::VarintOverflow {
                field: "v",
                position: 1,
                width_bits,
            })
        };
        let cases: [(&str, &[u8], bool, Result<i64>); 7] = [
            ("empty", &[0x00], true, truncated(1)),
            ("continuation at end", &[0x00, 0x80], true, truncated(1)),
            (
                "six-byte varint",
                &[0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
                true,
                overflow(32),
            ),
            (
                "varint above u32",
                &[0x00, 0xff, 0xff, 0xff, 0xff, 0x1f],
                true,
                overflow(32),
            ),
            (
                "varlong 10th byte 2",
                &[
                    0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
                false,
                overflow(64),
            ),
            (
                "eleven-byte varlong",
                &[
                    0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
                ],
                false,
                overflow(64),
            ),
            (
                "varlong truncated",
                &[0x00, 0xff, 0xff],
                false,
                truncated(1),
            ),
        ];
        for (name, bytes, narrow, expected) in cases {
            let mut reader = Reader::new(bytes, 1, bytes.len());
            let got = if narrow {
                reader.read_varint("v").map(i64::from)
            } else {
                reader.read_varlong("v")
            };
            assert_eq!(got, expected, "{name}");
        }
    }

    // Checks that a reader never reads past its end even when the slice goes on: a varint
    // cut by the end of its record is truncated although the next bytes would complete it.
    #[test]
    fn reader_stops_at_end_not_slice_end() {
        let bytes = [0x80, 0x01, 0x05];
        let mut reader = Reader::new(&bytes, 0, 1);
        let expected = Err(Error::RecordTruncated {
            field: "v",
            position: 0,
        });
        assert_eq!(reader.read_varint("v"), expected);
        assert_eq!(
            reader.read_bytes("b", 2),
            Err(Error::RecordTruncated {
                field: "b",
                position: 0
            })
        );
        assert_eq!(reader.read_i8("a"), Ok(-128));
        assert_eq!(
            reader.read_i8("a"),
            Err(Error::RecordTruncated {
                field: "a",
                position: 1
            })
        );
    }
}
