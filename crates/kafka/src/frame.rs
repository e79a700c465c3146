//! Request framing: every Kafka request is a 4-byte big-endian size, then that many bytes.
//!
//! Invariants: [`frame_length`] looks at no more than the first [`SIZE_PREFIX_SIZE_BYTES`]
//! bytes, allocates nothing, and accepts a size only if it lies in
//! `[REQUEST_HEADER_SIZE_BYTES_MIN, request_size_bytes_max]`. A connection reading requests
//! therefore never buffers more than `SIZE_PREFIX_SIZE_BYTES + request_size_bytes_max` bytes for
//! one request, and a rejected size closes the connection (there is no way to find the next
//! frame after a bad prefix).

use crate::error::FrameError;
use ringlog_types::units::MIB;

/// Bytes of the size prefix in front of every request and response.
pub const SIZE_PREFIX_SIZE_BYTES: usize = 4;

/// The smallest request header: api_key (2), api_version (2), correlation_id (4) and the
/// client_id length (2, -1 for null). Every request version ringlog serves has at least this.
pub const REQUEST_HEADER_SIZE_BYTES_MIN: usize = 2 + 2 + 4 + 2;

/// Default for `request_size_bytes_max`: Kafka's `socket.request.max.bytes` default (100 MiB).
#[allow(clippy::cast_possible_truncation)] // 100 MiB fits the usize of every supported target.
pub const REQUEST_SIZE_BYTES_MAX_DEFAULT: usize = (100 * MIB) as usize;

/// The size of the request frame whose prefix starts `prefix`, not counting the prefix.
///
/// Returns `Ok(None)` while fewer than [`SIZE_PREFIX_SIZE_BYTES`] bytes are available, and an
/// error if the declared size is below [`REQUEST_HEADER_SIZE_BYTES_MIN`] (including negative
/// sizes) or above `request_size_bytes_max`. Bytes after the prefix are not looked at.
///
/// ```
/// use ringlog_kafka::frame::{frame_length, REQUEST_SIZE_BYTES_MAX_DEFAULT};
/// let buffer = [0, 0, 0, 20, 0, 18];
/// assert_eq!(frame_length(&buffer, REQUEST_SIZE_BYTES_MAX_DEFAULT), Ok(Some(20)));
/// assert_eq!(frame_length(&buffer[..3], REQUEST_SIZE_BYTES_MAX_DEFAULT), Ok(None));
/// ```
pub fn frame_length(
    prefix: &[u8],
    request_size_bytes_max: usize,
) -> Result<Option<usize>, FrameError> {
    let Some(size_prefix) = prefix.first_chunk::<SIZE_PREFIX_SIZE_BYTES>() else {
        return Ok(None);
    };
    let size_bytes = i32::from_be_bytes(*size_prefix);
    let Ok(size_bytes) = usize::try_from(size_bytes) else {
        return Err(FrameError::TooSmall {
            size_bytes: i64::from(size_bytes),
            size_bytes_min: REQUEST_HEADER_SIZE_BYTES_MIN,
        });
    };
    if size_bytes < REQUEST_HEADER_SIZE_BYTES_MIN {
        return Err(FrameError::TooSmall {
            size_bytes: i64::try_from(size_bytes).unwrap_or(i64::MAX),
            size_bytes_min: REQUEST_HEADER_SIZE_BYTES_MIN,
        });
    }
    if size_bytes > request_size_bytes_max {
        return Err(FrameError::TooLarge {
            size_bytes,
            size_bytes_max: request_size_bytes_max,
        });
    }
    Ok(Some(size_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks every outcome of `frame_length` on its boundaries: not enough bytes yet, the
    // smallest and largest accepted sizes, one byte outside each, a negative size, and that
    // bytes after the prefix do not change the answer.
    #[test]
    fn frame_length_boundaries() {
        let size_max = 1000;
        let prefix = |size: i32| size.to_be_bytes();
        assert_eq!(frame_length(&[], size_max), Ok(None));
        assert_eq!(frame_length(&[0, 0, 0], size_max), Ok(None));
        assert_eq!(frame_length(&prefix(10), size_max), Ok(Some(10)));
        assert_eq!(frame_length(&prefix(1000), size_max), Ok(Some(1000)));
        assert_eq!(
            frame_length(&prefix(9), size_max),
            Err(FrameError::TooSmall {
                size_bytes: 9,
                size_bytes_min: 10
            })
        );
        assert_eq!(
            frame_length(&prefix(0), size_max),
            Err(FrameError::TooSmall {
                size_bytes: 0,
                size_bytes_min: 10
            })
        );
        assert_eq!(
            frame_length(&prefix(-1), size_max),
            Err(FrameError::TooSmall {
                size_bytes: -1,
                size_bytes_min: 10
            })
        );
        assert_eq!(
            frame_length(&prefix(i32::MIN), size_max),
            Err(FrameError::TooSmall {
                size_bytes: i64::from(i32::MIN),
                size_bytes_min: 10
            })
        );
        assert_eq!(
            frame_length(&prefix(1001), size_max),
            Err(FrameError::TooLarge {
                size_bytes: 1001,
                size_bytes_max: 1000
            })
        );
        let mut longer = prefix(20).to_vec();
        longer.extend_from_slice(&[0xff; 64]);
        assert_eq!(frame_length(&longer, size_max), Ok(Some(20)));
        assert_eq!(
            frame_length(&prefix(i32::MAX), REQUEST_SIZE_BYTES_MAX_DEFAULT),
            Err(FrameError::TooLarge {
                size_bytes: 0x7fff_ffff,
                size_bytes_max: REQUEST_SIZE_BYTES_MAX_DEFAULT
            })
        );
    }
}
