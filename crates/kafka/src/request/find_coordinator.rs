//! FindCoordinator request body (v0-6).
//!
//! Invariants: v0-3 ask for one `key` (a group id or transactional id); `key_type` (0 group,
//! 1 transaction, 2 share group) is there from v1, and v0 means a group. From v4 the single
//! key is gone and `coordinator_keys` carries a batch of keys of that type (KIP-699).
//! Flexible from v3.

use kafka_protocol::messages::FindCoordinatorRequest;

use crate::error::DecodeError;
use crate::wire::Reader;

pub(super) fn decode(
    reader: &mut Reader,
    version: i16,
) -> Result<FindCoordinatorRequest, DecodeError> {
    let mut request = FindCoordinatorRequest::default();
    if version <= 3 {
        request.key = reader.string("FindCoordinator.key")?;
    }
    if version >= 1 {
        request.key_type = reader.i8("FindCoordinator.key_type")?;
    }
    if version >= 4 {
        // A compact string is at least its one-byte length.
        request.coordinator_keys =
            reader.array_of("FindCoordinator.coordinator_keys", 1, |reader| {
                reader.string("FindCoordinator.coordinator_keys[]")
            })?;
    }
    reader.tagged_fields("FindCoordinator.tagged_fields", |_tag, _value| Ok(false))?;
    Ok(request)
}
