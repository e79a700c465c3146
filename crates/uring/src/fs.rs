//! File system and process probes run at startup: O_DIRECT alignment and the memlock limit.
//!
//! These are blocking system calls, meant for startup and tooling (`ringlog check-host`),
//! never for a shard thread's loop.
//!
//! Invariants:
//!
//! - `dio_alignment` answers `Some` only when the kernel reported both alignments and they are
//!   non-zero; a file system that reports nothing (or zero) is treated as lacking O_DIRECT.
//! - Probing a directory never leaves a file behind: it uses an unnamed `O_TMPFILE`.

use std::ffi::{CStr, CString};
use std::fs::OpenOptions;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// O_DIRECT alignment requirements reported by `statx(STATX_DIOALIGN)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DioAlign {
    /// Required alignment of the user memory of an O_DIRECT transfer, in bytes.
    pub memory_align_bytes: u32,
    /// Required alignment of the file position and length of an O_DIRECT transfer, in bytes.
    pub offset_align_bytes: u32,
}

/// `statx(STATX_DIOALIGN)` on `path`: `Ok(Some(..))` if the file system supports O_DIRECT,
/// `Ok(None)` if it reports no support (e.g. tmpfs), `Err` if the probe itself failed.
///
/// File systems report the alignment on regular files only, so for a directory (a data
/// directory is the usual argument) the probe creates an unnamed temporary file inside it
/// (`O_TMPFILE`, gone when closed) and asks about that file.
pub fn dio_alignment(path: &Path) -> io::Result<Option<DioAlign>> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let stats = statx_path(&c_path)?;
    if u32::from(stats.stx_mode) & libc::S_IFMT != libc::S_IFDIR {
        return Ok(dio_align_of(&stats));
    }
    let probe_file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(path)?;
    let stats = statx_fd(probe_file.as_fd())?;
    Ok(dio_align_of(&stats))
}

/// The `RLIMIT_MEMLOCK` soft limit in bytes, `None` if unlimited. Registered buffers count
/// against it for unprivileged processes (systemd `LimitMEMLOCK=`).
pub fn memlock_limit_bytes() -> io::Result<Option<u64>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through the pointer, which points to a live,
    // properly aligned local of exactly that type.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut limit) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return Ok(None);
    }
    Ok(Some(limit.rlim_cur))
}

fn dio_align_of(stats: &libc::statx) -> Option<DioAlign> {
    if stats.stx_mask & libc::STATX_DIOALIGN == 0 {
        return None;
    }
    if stats.stx_dio_mem_align == 0 || stats.stx_dio_offset_align == 0 {
        return None;
    }
    Some(DioAlign {
        memory_align_bytes: stats.stx_dio_mem_align,
        offset_align_bytes: stats.stx_dio_offset_align,
    })
}

fn statx_path(path: &CStr) -> io::Result<libc::statx> {
    statx_raw(libc::AT_FDCWD, path, 0)
}

fn statx_fd(fd: BorrowedFd<'_>) -> io::Result<libc::statx> {
    statx_raw(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
}

fn statx_raw(dir_fd: libc::c_int, path: &CStr, flags: libc::c_int) -> io::Result<libc::statx> {
    let mask = libc::STATX_TYPE | libc::STATX_DIOALIGN;
    let mut stats = MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `path` is a NUL-terminated string alive for the call; `stats` points to writable
    // memory of the size and alignment of `struct statx`, which the kernel fills. `dir_fd` is
    // `AT_FDCWD` or a descriptor borrowed for the duration of the call.
    let status = unsafe { libc::statx(dir_fd, path.as_ptr(), flags, mask, stats.as_mut_ptr()) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `struct statx` is plain integers, for which all-zero bytes (how `stats` was
    // initialised) and any bytes the kernel wrote are valid values.
    Ok(unsafe { stats.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks that /tmp (ext4 here) reports O_DIRECT alignment, both as a directory (through
    // the O_TMPFILE probe) and on a regular file, and that the values are sane powers of two.
    #[test]
    fn tmp_supports_direct_io() {
        let directory = tempfile::tempdir_in("/tmp").unwrap();
        let align = dio_alignment(directory.path()).unwrap();
        let Some(align) = align else {
            println!("skipped: /tmp does not report O_DIRECT support on this host");
            return;
        };
        assert!(align.offset_align_bytes.is_power_of_two(), "{align:?}");
        assert!(align.memory_align_bytes.is_power_of_two(), "{align:?}");
        let file_path = directory.path().join("file");
        std::fs::write(&file_path, b"x").unwrap();
        assert_eq!(dio_alignment(&file_path).unwrap(), Some(align));
        assert_eq!(
            std::fs::read_dir(directory.path()).unwrap().count(),
            1,
            "no probe left"
        );
    }

    // Checks that tmpfs (/dev/shm) is reported as lacking O_DIRECT (None) or fails with an
    // error; it must never claim an alignment of zero.
    #[test]
    fn tmpfs_reports_no_direct_io() {
        match dio_alignment(Path::new("/dev/shm")) {
            Ok(None) => {}
            Ok(Some(align)) => {
                assert!(align.offset_align_bytes > 0, "{align:?}");
                println!("note: this kernel's tmpfs reports O_DIRECT alignment {align:?}");
            }
            Err(error) => println!("note: probing /dev/shm failed: {error}"),
        }
    }

    // Checks that a missing path is an error, not "no O_DIRECT".
    #[test]
    fn missing_path_is_an_error() {
        let error = dio_alignment(Path::new("/nonexistent/ringlog")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    // Checks that the memlock limit can be read and, when limited, is non-zero.
    #[test]
    fn memlock_limit_is_readable() {
        if let Some(limit) = memlock_limit_bytes().unwrap() {
            assert!(limit > 0);
        }
    }
}
