//! ApiVersions request body: empty in v0-2; v3 adds the client's software name and version.
//!
//! Invariant: a flexible body ends in tagged fields, like every flexible struct.

use kafka_protocol::messages::ApiVersionsRequest;

use crate::error::DecodeError;
use crate::wire::Reader;

pub(super) fn decode(reader: &mut Reader, version: i16) -> Result<ApiVersionsRequest, DecodeError> {
    let mut request = ApiVersionsRequest::default();
    if version >= 3 {
        request.client_software_name = reader.string("ApiVersions.client_software_name")?;
        request.client_software_version = reader.string("ApiVersions.client_software_version")?;
    }
    reader.tagged_fields("ApiVersions.tagged_fields", |_tag, _value| Ok(false))?;
    Ok(request)
}
