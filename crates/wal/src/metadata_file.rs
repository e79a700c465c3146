//! The small metadata files of a partition (segment indexes, the epoch checkpoint): their
//! little-endian field readers, their checksum, and their durable replacement.
//!
//! Invariants: a file is replaced only by write tmp -> fsync -> rename -> fsync directory, so
//! a crash leaves either the old or the new file, whole; a file is read only after it and its
//! directory were fsynced, so no decision rests on bytes a crashed process never made durable.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use crc_fast::CrcAlgorithm;

/// The little-endian `u32` at `position`. Callers have checked the length first.
pub(crate) fn u32_at(bytes: &[u8], position: usize) -> u32 {
    let mut field = [0; size_of::<u32>()];
    field.copy_from_slice(&bytes[position..position + size_of::<u32>()]);
    u32::from_le_bytes(field)
}

/// The little-endian `u64` at `position`. Callers have checked the length first.
pub(crate) fn u64_at(bytes: &[u8], position: usize) -> u64 {
    let mut field = [0; size_of::<u64>()];
    field.copy_from_slice(&bytes[position..position + size_of::<u64>()]);
    u64::from_le_bytes(field)
}

/// CRC32C (Castagnoli), the checksum of every ringlog format.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    let checksum = crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, bytes);
    u32::try_from(checksum).expect("a CRC32 fits in 32 bits")
}

/// Replaces `<dir>/<file_name>` durably: write `<file_name>.tmp`, fsync it, rename it over
/// the target, fsync the directory so the rename itself survives a crash. A failed fsync is
/// returned, never retried.
pub(crate) fn store_durably(dir: &Path, file_name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp_path = dir.join(format!("{file_name}.tmp"));
    let mut file = File::create(&tmp_path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp_path, dir.join(file_name))?;
    File::open(dir)?.sync_all()
}

/// Reads `path` (inside `dir`), `None` if it does not exist, after fsyncing the file and
/// `dir`.
pub(crate) fn load_after_fsync(dir: &Path, path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}
