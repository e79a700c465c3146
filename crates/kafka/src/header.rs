//! Request and response headers.
//!
//! Request header v1: api_key i16, api_version i16, correlation_id i32, client_id nullable
//! string (always the classic i16-length encoding). Request header v2 adds tagged fields.
//! Response header v0: correlation_id i32; v1 adds tagged fields (always empty here).
//!
//! Invariants: which header version applies comes only from
//! [`ApiKey::request_header_version`] and [`ApiKey::response_header_version`]; an unknown
//! api_key or an unsupported version is reported with its correlation id as soon as the
//! first 8 bytes are read (they have the same layout in every header version), so the
//! server can log the request it refuses even if the rest is unreadable.

use bytes::{BufMut, BytesMut};
use kafka_protocol::protocol::StrBytes;

use crate::api::{version_support, ApiKey, VersionSupport};
use crate::error::DecodeError;
use crate::wire::{put_uvarint, Reader};

/// The header of a request, decoded for a served API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    /// The API.
    pub api_key: ApiKey,
    /// The version the client speaks; responses use the same.
    pub api_version: i16,
    /// Echoed in the response so the client can match it to the request.
    pub correlation_id: i32,
    /// The client's self-chosen name (for logs and quotas), a slice of the frame.
    pub client_id: Option<StrBytes>,
}

impl RequestHeader {
    /// Reads the header at the start of `reader` and leaves the reader in the body's encoding.
    pub(crate) fn decode(reader: &mut Reader) -> Result<RequestHeader, DecodeError> {
        let api_key_code = reader.i16("RequestHeader.api_key")?;
        let api_version = reader.i16("RequestHeader.api_version")?;
        let correlation_id = reader.i32("RequestHeader.correlation_id")?;
        let Some(api_key) = ApiKey::from_code(api_key_code) else {
            return Err(DecodeError::UnknownApi {
                api_key: api_key_code,
                correlation_id,
            });
        };
        // The header's own layout depends on the version, so an unsupported version is
        // reported before reading further: the rest of the header may not be parseable.
        if version_support(api_key, api_version) == VersionSupport::Unsupported {
            return Err(DecodeError::UnsupportedVersion {
                api_key,
                api_version,
                correlation_id,
            });
        }
        reader.set_flexible(false);
        let client_id = reader.nullable_string("RequestHeader.client_id")?;
        let flexible = api_key.request_header_version(api_version) >= 2;
        reader.set_flexible(flexible);
        reader.tagged_fields("RequestHeader.tagged_fields", |_tag, _value| Ok(false))?;
        Ok(RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
        })
    }
}

/// Appends the response header for `api_key` at `api_version`.
pub(crate) fn put_response_header(
    out: &mut BytesMut,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
) {
    out.put_i32(correlation_id);
    if api_key.response_header_version(api_version) >= 1 {
        // No tagged fields.
        put_uvarint(out, 0);
    }
}
