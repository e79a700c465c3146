//! The segment header: block 0 of every segment file.
//!
//! A segment file is a fixed-size file named after its base offset, zero-filled before its
//! first use or recycled from a segment that retention dropped. Its first block holds this
//! header, written as part of the segment's first commit; commits of whole batches follow
//! from position `block_size_bytes` on. The header names the file's base offset, block size
//! and size, so that recovery can tell a misdirected or foreign file from the segment it
//! expects, says whether the file is recycled, and carries a CRC32C so that a torn or rotten
//! header is never mistaken for a valid one.
//!
//! Invariants:
//!
//! - The encoding is fixed-width and little-endian, and never contains a `usize`.
//! - [`SegmentHeader::encode`] only accepts a header that describes a well-formed segment
//!   (power-of-two block size, size a multiple of the block size); [`SegmentHeader::decode`]
//!   never panics, whatever the bytes, and reports each defect as a [`HeaderError`].
//! - Decoding only checks the encoding (length, magic, version, checksum, known flags).
//!   Whether the header belongs to the file that holds it is the caller's question (see
//!   `recovery`).
//! - A header without [`SegmentHeader::recycled`] promises that the file was zero-filled
//!   before its first commit, so that every byte after the data is zero. A recycled file
//!   (a segment that retention dropped, renamed to a spare and rolled into again) keeps the
//!   bytes of its previous life after the data, and its header says so: recovery must not
//!   take those stale bytes for damage.

use ringlog_types::Offset;

// Byte layout of the header, little-endian, at position 0 of block 0:
//
//   position  size  field
//   0         8     magic               b"RLOGSEG\0"
//   8         4     version             u32, 1
//   12        4     block_size_bytes    u32
//   16        8     base_offset         u64
//   24        8     segment_size_bytes  u64
//   32        4     flags               u32, bit 0 RECYCLED; every other bit 0
//   36        4     crc32c              u32, CRC32C of bytes [0, 36)
//   40              end of the header; the rest of block 0 is zero
//
// Each position is derived from the previous field so that the table above and the code
// cannot drift apart.
const MAGIC_POSITION: usize = 0;
const MAGIC_SIZE_BYTES: usize = 8;
const VERSION_POSITION: usize = MAGIC_POSITION + MAGIC_SIZE_BYTES;
const VERSION_SIZE_BYTES: usize = 4;
const BLOCK_SIZE_POSITION: usize = VERSION_POSITION + VERSION_SIZE_BYTES;
const BLOCK_SIZE_SIZE_BYTES: usize = 4;
const BASE_OFFSET_POSITION: usize = BLOCK_SIZE_POSITION + BLOCK_SIZE_SIZE_BYTES;
const BASE_OFFSET_SIZE_BYTES: usize = 8;
const SEGMENT_SIZE_POSITION: usize = BASE_OFFSET_POSITION + BASE_OFFSET_SIZE_BYTES;
const SEGMENT_SIZE_SIZE_BYTES: usize = 8;
const FLAGS_POSITION: usize = SEGMENT_SIZE_POSITION + SEGMENT_SIZE_SIZE_BYTES;
const FLAGS_SIZE_BYTES: usize = 4;
const CRC_POSITION: usize = FLAGS_POSITION + FLAGS_SIZE_BYTES;
const CRC_SIZE_BYTES: usize = 4;

/// Number of meaningful bytes at the start of block 0; the rest of the block is zero.
pub const SEGMENT_HEADER_SIZE_BYTES: usize = CRC_POSITION + CRC_SIZE_BYTES;

/// The first eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; MAGIC_SIZE_BYTES] = *b"RLOGSEG\0";

/// The only segment format version this code reads and writes.
pub const SEGMENT_VERSION: u32 = 1;

/// Flag bit: the file had a previous life, so the bytes after its data may be stale ones
/// from that life rather than zeros. See [`SegmentHeader::recycled`].
pub const SEGMENT_FLAG_RECYCLED: u32 = 1 << 0;

/// Every flag bit this version knows; decoding refuses a header with any other bit set.
const SEGMENT_FLAGS_KNOWN: u32 = SEGMENT_FLAG_RECYCLED;

// The smallest O_DIRECT alignment we support is 512 bytes: the header must fit in it.
const _: () = assert!(SEGMENT_HEADER_SIZE_BYTES == 40);
const _: () = assert!(SEGMENT_HEADER_SIZE_BYTES <= 512);

/// The decoded header of one segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Offset of the first record the segment holds; also the file's name.
    pub base_offset: Offset,
    /// O_DIRECT alignment the segment was written with: commits start on multiples of it.
    pub block_size_bytes: u32,
    /// Size of the whole file, header block included.
    pub segment_size_bytes: u64,
    /// The file was a segment before (retention renamed it to a spare instead of deleting
    /// it): past the end of this life's data it may hold stale bytes of the previous life,
    /// all of them for offsets below `base_offset`. Without this flag the file was
    /// zero-filled before its first commit. Stored as [`SEGMENT_FLAG_RECYCLED`].
    pub recycled: bool,
}

/// Why block 0 does not hold a valid segment header.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer bytes than a header occupies.
    #[error("segment header too short: {len_bytes} bytes, need {SEGMENT_HEADER_SIZE_BYTES}")]
    TooShort {
        /// Number of bytes that were available.
        len_bytes: usize,
    },
    /// The first eight bytes are not [`SEGMENT_MAGIC`]: not a segment, or a zeroed block.
    #[error("segment header has bad magic {found:02x?}")]
    BadMagic {
        /// The eight bytes found at position 0.
        found: [u8; MAGIC_SIZE_BYTES],
    },
    /// A format version this code does not know.
    #[error("segment header version {version} is not supported (expected {SEGMENT_VERSION})")]
    UnsupportedVersion {
        /// The version found in the header.
        version: u32,
    },
    /// The stored CRC32C does not match the header bytes: torn or damaged.
    #[error("segment header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadChecksum {
        /// The CRC32C stored in the header.
        stored: u32,
        /// The CRC32C of the header bytes as read.
        computed: u32,
    },
    /// The checksum holds but flag bits this code does not know are set: a header written
    /// by a later format, which this code cannot interpret.
    #[error("segment header has unknown flags {flags:#010x} (known: {SEGMENT_FLAGS_KNOWN:#010x})")]
    UnknownFlags {
        /// The whole flags field as found.
        flags: u32,
    },
}

impl SegmentHeader {
    /// Writes the header into the first [`SEGMENT_HEADER_SIZE_BYTES`] bytes of `out`, which
    /// is the start of block 0. The caller owns the rest of the block and keeps it zero.
    ///
    /// Panics if `out` is too short or if the header does not describe a well-formed segment
    /// (block size not a power of two, segment size not a multiple of the block size): both
    /// are programmer errors, and a header is checked before it is written as it is after it
    /// is read.
    pub fn encode(&self, out: &mut [u8]) {
        assert!(
            out.len() >= SEGMENT_HEADER_SIZE_BYTES,
            "out.len()={} SEGMENT_HEADER_SIZE_BYTES={SEGMENT_HEADER_SIZE_BYTES}",
            out.len()
        );
        assert!(
            self.block_size_bytes.is_power_of_two(),
            "block_size_bytes={}",
            self.block_size_bytes
        );
        assert!(
            // The block size is a power of two (asserted above), so this is `% block == 0`.
            self.segment_size_bytes & (u64::from(self.block_size_bytes) - 1) == 0,
            "segment_size_bytes={} block_size_bytes={}",
            self.segment_size_bytes,
            self.block_size_bytes
        );
        let header = &mut out[..SEGMENT_HEADER_SIZE_BYTES];
        header[MAGIC_POSITION..VERSION_POSITION].copy_from_slice(&SEGMENT_MAGIC);
        header[VERSION_POSITION..BLOCK_SIZE_POSITION]
            .copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        header[BLOCK_SIZE_POSITION..BASE_OFFSET_POSITION]
            .copy_from_slice(&self.block_size_bytes.to_le_bytes());
        header[BASE_OFFSET_POSITION..SEGMENT_SIZE_POSITION]
            .copy_from_slice(&self.base_offset.0.to_le_bytes());
        header[SEGMENT_SIZE_POSITION..FLAGS_POSITION]
            .copy_from_slice(&self.segment_size_bytes.to_le_bytes());
        header[FLAGS_POSITION..CRC_POSITION].copy_from_slice(&self.flags().to_le_bytes());
        let crc = ringlog_batch::crc32c(&header[..CRC_POSITION]);
        header[CRC_POSITION..SEGMENT_HEADER_SIZE_BYTES].copy_from_slice(&crc.to_le_bytes());
    }

    /// Reads a header from the start of `bytes` (block 0 of a segment file).
    ///
    /// Checks, in order: length, magic, version, checksum, flags. The version comes before
    /// the checksum because a later version may place its checksum elsewhere; the flags come
    /// after it, so that a damaged flags field is a checksum error, and an unknown flag one
    /// that a later writer set on purpose.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let Some(header) = bytes.get(..SEGMENT_HEADER_SIZE_BYTES) else {
            return Err(HeaderError::TooShort {
                len_bytes: bytes.len(),
            });
        };
        let magic: [u8; MAGIC_SIZE_BYTES] = field(header, MAGIC_POSITION);
        if magic != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic { found: magic });
        }
        let version = u32::from_le_bytes(field(header, VERSION_POSITION));
        if version != SEGMENT_VERSION {
            return Err(HeaderError::UnsupportedVersion { version });
        }
        let stored = u32::from_le_bytes(field(header, CRC_POSITION));
        let computed = ringlog_batch::crc32c(&header[..CRC_POSITION]);
        if stored != computed {
            return Err(HeaderError::BadChecksum { stored, computed });
        }
        let flags = u32::from_le_bytes(field(header, FLAGS_POSITION));
        if flags & !SEGMENT_FLAGS_KNOWN != 0 {
            return Err(HeaderError::UnknownFlags { flags });
        }
        Ok(SegmentHeader {
            base_offset: Offset(u64::from_le_bytes(field(header, BASE_OFFSET_POSITION))),
            block_size_bytes: u32::from_le_bytes(field(header, BLOCK_SIZE_POSITION)),
            segment_size_bytes: u64::from_le_bytes(field(header, SEGMENT_SIZE_POSITION)),
            recycled: flags & SEGMENT_FLAG_RECYCLED != 0,
        })
    }

    /// The flags field as stored.
    fn flags(&self) -> u32 {
        if self.recycled {
            SEGMENT_FLAG_RECYCLED
        } else {
            0
        }
    }
}

/// The `N` bytes of `header` starting at `position`. `header` is always the full header, so
/// every field lies inside it; the `const` layout above guarantees the ranges.
fn field<const N: usize>(header: &[u8], position: usize) -> [u8; N] {
    let mut value = [0_u8; N];
    value.copy_from_slice(&header[position..position + N]);
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> SegmentHeader {
        SegmentHeader {
            base_offset: Offset(1_234_567),
            block_size_bytes: 4096,
            segment_size_bytes: 64 * 4096,
            recycled: false,
        }
    }

    fn encoded(header: &SegmentHeader) -> Vec<u8> {
        let mut block = vec![0_u8; 4096];
        header.encode(&mut block);
        block
    }

    // Checks the byte layout against the table in the layout comment, field by field, so a
    // change of position or endianness fails here before it reaches a disk.
    #[test]
    fn encode_writes_the_documented_layout() {
        let block = encoded(&sample());
        assert_eq!(&block[0..8], b"RLOGSEG\0");
        assert_eq!(&block[8..12], &1_u32.to_le_bytes());
        assert_eq!(&block[12..16], &4096_u32.to_le_bytes());
        assert_eq!(&block[16..24], &1_234_567_u64.to_le_bytes());
        assert_eq!(&block[24..32], &(64_u64 * 4096).to_le_bytes());
        assert_eq!(&block[32..36], &[0, 0, 0, 0]);
        let crc = ringlog_batch::crc32c(&block[..36]);
        assert_eq!(&block[36..40], &crc.to_le_bytes());
        assert!(block[40..].iter().all(|&byte| byte == 0));

        let recycled = encoded(&SegmentHeader {
            recycled: true,
            ..sample()
        });
        assert_eq!(&recycled[32..36], &[1, 0, 0, 0]);
        assert_eq!(&recycled[..32], &block[..32]);
        let crc = ringlog_batch::crc32c(&recycled[..36]);
        assert_eq!(&recycled[36..40], &crc.to_le_bytes());
    }

    // Encodes into an exactly sized buffer and into a dirty one, with and without the
    // recycled flag: encode touches only the header bytes, and decode gives back the same
    // header.
    #[test]
    fn round_trip_exact_and_dirty_buffers() {
        for recycled in [false, true] {
            let header = SegmentHeader {
                recycled,
                ..sample()
            };
            let mut exact = [0_u8; SEGMENT_HEADER_SIZE_BYTES];
            header.encode(&mut exact);
            assert_eq!(SegmentHeader::decode(&exact), Ok(header));

            let mut dirty = vec![0xAB_u8; 512];
            header.encode(&mut dirty);
            assert_eq!(SegmentHeader::decode(&dirty), Ok(header));
            assert!(dirty[SEGMENT_HEADER_SIZE_BYTES..]
                .iter()
                .all(|&byte| byte == 0xAB));
        }
    }

    // Every length below the header size is TooShort with that length, including empty.
    #[test]
    fn decode_too_short() {
        let block = encoded(&sample());
        for len_bytes in 0..SEGMENT_HEADER_SIZE_BYTES {
            assert_eq!(
                SegmentHeader::decode(&block[..len_bytes]),
                Err(HeaderError::TooShort { len_bytes })
            );
        }
    }

    // A zeroed block (the state of a segment before its first commit) and a flipped magic
    // byte are both BadMagic, and the error carries the bytes found.
    #[test]
    fn decode_bad_magic() {
        let zero = [0_u8; 512];
        assert_eq!(
            SegmentHeader::decode(&zero),
            Err(HeaderError::BadMagic { found: [0; 8] })
        );
        let mut block = encoded(&sample());
        block[3] ^= 0x01;
        let mut found = *b"RLOGSEG\0";
        found[3] ^= 0x01;
        assert_eq!(
            SegmentHeader::decode(&block),
            Err(HeaderError::BadMagic { found })
        );
    }

    // A version other than 1 is refused before the checksum is looked at, even when the
    // checksum was recomputed for it (as a future writer would).
    #[test]
    fn decode_unsupported_version() {
        let mut block = encoded(&sample());
        block[VERSION_POSITION..BLOCK_SIZE_POSITION].copy_from_slice(&2_u32.to_le_bytes());
        let crc = ringlog_batch::crc32c(&block[..CRC_POSITION]);
        block[CRC_POSITION..SEGMENT_HEADER_SIZE_BYTES].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            SegmentHeader::decode(&block),
            Err(HeaderError::UnsupportedVersion { version: 2 })
        );
    }

    // Each flag bit other than RECYCLED, set with the checksum recomputed for it (as a later
    // writer would), is UnknownFlags with the whole field, whether RECYCLED is set or not.
    #[test]
    fn decode_unknown_flags() {
        for bit in 1..32 {
            for recycled in [0, SEGMENT_FLAG_RECYCLED] {
                let flags = (1_u32 << bit) | recycled;
                let mut block = encoded(&sample());
                block[FLAGS_POSITION..CRC_POSITION].copy_from_slice(&flags.to_le_bytes());
                let crc = ringlog_batch::crc32c(&block[..CRC_POSITION]);
                block[CRC_POSITION..SEGMENT_HEADER_SIZE_BYTES].copy_from_slice(&crc.to_le_bytes());
                assert_eq!(
                    SegmentHeader::decode(&block),
                    Err(HeaderError::UnknownFlags { flags }),
                    "flags={flags:#x}"
                );
            }
        }
    }

    // Flipping any bit of the fields after the version, or of the checksum itself, is
    // BadChecksum with both the stored and the recomputed value: a flipped flag bit
    // included, since the checksum is checked before the flags.
    #[test]
    fn decode_bad_checksum_on_every_bit_flip() {
        let block = encoded(&sample());
        for bit in (BLOCK_SIZE_POSITION * 8)..(SEGMENT_HEADER_SIZE_BYTES * 8) {
            let mut damaged = block.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let stored = u32::from_le_bytes(field(&damaged, CRC_POSITION));
            let computed = ringlog_batch::crc32c(&damaged[..CRC_POSITION]);
            assert_eq!(
                SegmentHeader::decode(&damaged),
                Err(HeaderError::BadChecksum { stored, computed }),
                "bit={bit}"
            );
        }
    }

    // Encoding is refused for a buffer shorter than the header: a programmer error.
    #[test]
    #[should_panic(expected = "out.len()=39")]
    fn encode_panics_on_short_buffer() {
        sample().encode(&mut [0_u8; SEGMENT_HEADER_SIZE_BYTES - 1]);
    }

    // Encoding is refused for a segment size that is not a multiple of the block size.
    #[test]
    #[should_panic(expected = "segment_size_bytes=4097")]
    fn encode_panics_on_misaligned_segment_size() {
        let header = SegmentHeader {
            segment_size_bytes: 4097,
            ..sample()
        };
        header.encode(&mut [0_u8; 4096]);
    }

    proptest! {
        // Any well-formed header survives encode then decode unchanged.
        #[test]
        fn round_trip_any_header(
            base_offset in any::<u64>(),
            block_shift in 9_u32..=16,
            blocks in 1_u64..=(1 << 20),
            recycled in any::<bool>(),
        ) {
            let block_size_bytes = 1_u32 << block_shift;
            let header = SegmentHeader {
                base_offset: Offset(base_offset),
                block_size_bytes,
                segment_size_bytes: blocks * u64::from(block_size_bytes),
                recycled,
            };
            let mut block = vec![0_u8; 512];
            header.encode(&mut block);
            prop_assert_eq!(SegmentHeader::decode(&block), Ok(header));
        }

        // Arbitrary bytes never panic decode.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = SegmentHeader::decode(&bytes);
        }
    }
}
