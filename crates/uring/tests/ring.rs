//! Kernel tests of the ring: real io_uring, real files (O_DIRECT where the file system
//! supports it). A test whose kernel lacks an opcode prints why and returns early, like
//! io-uring-test's `require!`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ringlog_uring::{
    dio_alignment, memlock_limit_bytes, AlignedBuf, AppendWriter, BufPool, Completion, FaultPlan,
    IoError, OpBuf, Ring, RingConfig, SetupMode,
};

/// Block size used for O_DIRECT transfers: a multiple of every logical block size in use.
const BLOCK_BYTES: usize = 4096;

/// Returns the value, or prints why the test is skipped and returns from the test.
macro_rules! require {
    ($option:expr) => {
        match $option {
            Some(value) => value,
            None => return,
        }
    };
}

/// A ring whose kernel supports every opcode ringlog needs, or `None` (with the reason).
fn ring_with(config: RingConfig) -> Option<Ring> {
    let ring = match Ring::new(config) {
        Ok(ring) => ring,
        Err(error) => {
            println!("skipped: cannot create an io_uring here: {error}");
            return None;
        }
    };
    if let Err(error) = ring.probe() {
        println!("skipped: {error}");
        return None;
    }
    Some(ring)
}

fn default_ring() -> Option<Ring> {
    ring_with(RingConfig {
        entries: 64,
        ops_in_flight_max: 64,
    })
}

/// A temporary directory on a file system with O_DIRECT: /tmp, else the target directory.
fn direct_dir() -> Option<tempfile::TempDir> {
    for base in ["/tmp", env!("CARGO_TARGET_TMPDIR")] {
        if let Ok(Some(align)) = dio_alignment(Path::new(base)) {
            assert!(u64::from(align.offset_align_bytes) <= BLOCK_BYTES as u64);
            assert!(u64::from(align.memory_align_bytes) <= BLOCK_BYTES as u64);
            return Some(tempfile::tempdir_in(base).expect("create a temporary directory"));
        }
    }
    println!("skipped: neither /tmp nor the target directory supports O_DIRECT");
    None
}

fn open_direct(path: &Path) -> Arc<OwnedFd> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .expect("open with O_DIRECT");
    Arc::new(OwnedFd::from(file))
}

fn open_dir(path: &Path) -> Arc<OwnedFd> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)
        .expect("open directory");
    Arc::new(OwnedFd::from(dir))
}

/// A block-aligned buffer filled with `byte`.
fn filled(len: usize, byte: u8) -> AlignedBuf {
    let mut buf = AlignedBuf::zeroed(len, BLOCK_BYTES);
    buf.fill(byte);
    buf
}

/// Submits and reaps until `count` completions arrived (bounded number of rounds), returning
/// them in arrival order.
fn wait_for(ring: &mut Ring, count: usize) -> Vec<Completion> {
    let mut completions = Vec::new();
    for _ in 0..10_000 {
        if completions.len() >= count {
            assert_eq!(completions.len(), count, "more completions than expected");
            return completions;
        }
        ring.submit_and_wait(1).expect("submit_and_wait");
        ring.reap(&mut completions);
    }
    panic!("only {} of {count} completions arrived", completions.len());
}

fn by_tag(completions: Vec<Completion>) -> BTreeMap<u64, Completion> {
    let mut map = BTreeMap::new();
    for completion in completions {
        let tag = completion.tag;
        assert!(
            map.insert(tag, completion).is_none(),
            "tag {tag} completed twice"
        );
    }
    map
}

fn arrival_position(completions: &[Completion], tag: u64) -> usize {
    completions
        .iter()
        .position(|completion| completion.tag == tag)
        .expect("tag arrived")
}

fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read file back")
}

// Checks that the kernel supports every opcode ringlog needs and reports which setup flags the
// ring got (SINGLE_ISSUER|DEFER_TASKRUN on Linux >= 6.1).
#[test]
fn probe_passes_and_setup_is_reported() {
    let ring = require!(default_ring());
    println!("setup mode: {:?}", ring.setup_mode());
    match ring.setup_mode() {
        SetupMode::DeferTaskrun => assert!(ring.setup_fallback_reason().is_none()),
        SetupMode::Plain => {
            let reason = ring
                .setup_fallback_reason()
                .expect("a fallback has a reason");
            println!("fallback reason: {reason}");
        }
    }
    assert_eq!(ring.in_flight(), 0);
}

// Checks the durable write path end to end: a Shared range of a tail buffer is written with
// O_DIRECT and a linked fdatasync, both complete successfully under their own tags, and an
// O_DIRECT read into an owned buffer returns the same bytes.
#[test]
fn linked_write_and_fsync_then_read_back() {
    let mut ring = require!(default_ring());
    let dir = require!(direct_dir());
    let path = dir.path().join("segment");
    let fd = open_direct(&path);
    let mut tail = AppendWriter::new(64 * 1024, BLOCK_BYTES);
    tail.append(b"first batch").unwrap();
    tail.append_with(5000, |target| target.fill(0x5A)).unwrap();
    tail.pad_to_alignment();
    let range = 0..tail.published_len();
    assert_eq!(range.len(), 2 * BLOCK_BYTES);

    ring.write(
        &fd,
        OpBuf::Shared(tail.shared(), range.clone()),
        0,
        10,
        Some(11),
    )
    .unwrap();
    let completions = by_tag(wait_for(&mut ring, 2));
    assert_eq!(
        completions[&10].result,
        Ok(u32::try_from(range.len()).unwrap())
    );
    assert_eq!(completions[&11].result, Ok(0));

    ring.read(&fd, AlignedBuf::zeroed(range.len(), BLOCK_BYTES), 0, 12)
        .unwrap();
    let mut read = wait_for(&mut ring, 1);
    let read = read.pop().unwrap();
    assert_eq!(read.result, Ok(u32::try_from(range.len()).unwrap()));
    assert_eq!(read.buf.unwrap().bytes(), tail.shared().published());
    assert_eq!(&read_file(&path)[..11], b"first batch");
}

// Checks that completions are reported per tag in whatever order the kernel finishes them:
// a NOP queued after a 4 MiB write + linked fsync completes before the fsync (it has no I/O
// to wait for), the fsync arrives separately under its own tag and after its write, and every
// tag is reported exactly once.
#[test]
fn completions_arrive_out_of_order_with_separate_fsync_tag() {
    let mut ring = require!(default_ring());
    let dir = require!(direct_dir());
    let fd = open_direct(&dir.path().join("segment"));
    let big_len = 4 << 20;
    ring.write(&fd, OpBuf::Owned(filled(big_len, 1)), 0, 1, Some(2))
        .unwrap();
    ring.nop(3).unwrap();
    ring.write(
        &fd,
        OpBuf::Owned(filled(BLOCK_BYTES, 2)),
        u64::try_from(big_len).unwrap(),
        4,
        None,
    )
    .unwrap();
    let completions = wait_for(&mut ring, 4);
    let order: Vec<u64> = completions
        .iter()
        .map(|completion| completion.tag)
        .collect();
    println!("arrival order: {order:?}");
    assert!(
        arrival_position(&completions, 3) < arrival_position(&completions, 2),
        "{order:?}"
    );
    assert!(
        arrival_position(&completions, 1) < arrival_position(&completions, 2),
        "{order:?}"
    );
    let completions = by_tag(completions);
    assert_eq!(
        completions.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(completions[&1].result, Ok(u32::try_from(big_len).unwrap()));
    assert_eq!(completions[&2].result, Ok(0));
    assert!(completions[&2].buf.is_none(), "an fsync owns no buffer");
    assert_eq!(completions[&3].result, Ok(0));
    assert_eq!(
        completions[&4].result,
        Ok(u32::try_from(BLOCK_BYTES).unwrap())
    );
}

const SHORT_WRITE_CHILD_ENV: &str = "RINGLOG_URING_TEST_SHORT_WRITE_CHILD";

// Checks short-write handling on a real kernel: with RLIMIT_FSIZE at 8 KiB, a 16 KiB write at
// position 0 writes only 8 KiB, which is reported as Ok(8192), and the kernel cancels the
// linked fsync (Err(Canceled)). After lifting the limit, the caller writes the rest and syncs,
// and the file holds every byte. RLIMIT_FSIZE is per process, so the test re-runs itself in a
// child process (this same test, selected by an environment variable) to leave the other
// tests alone.
#[test]
fn short_write_is_reported_and_cancels_linked_fsync() {
    if std::env::var_os(SHORT_WRITE_CHILD_ENV).is_some() {
        short_write_in_child();
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "short_write_is_reported_and_cancels_linked_fsync",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env(SHORT_WRITE_CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}");
    print!("{stdout}");
}

fn set_file_size_limit(limit_bytes: libc::rlim_t) {
    let limit = libc::rlimit {
        rlim_cur: limit_bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `setrlimit` reads one `rlimit` from a pointer to a live local of that type.
    let status = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &raw const limit) };
    assert_eq!(status, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

fn short_write_in_child() {
    let mut ring = require!(default_ring());
    let dir = require!(direct_dir());
    let path = dir.path().join("segment");
    let fd = open_direct(&path);
    // SAFETY: ignoring SIGXFSZ installs no handler (no code runs on the signal); it only makes
    // a write past the limit fail with EFBIG instead of killing this child process.
    let previous = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    assert_ne!(previous, libc::SIG_ERR);
    set_file_size_limit(2 * 4096);

    let whole = OpBuf::Owned(filled(4 * 4096, 7));
    ring.write(&fd, whole, 0, 1, Some(2))
        .expect("queue the write");
    let completions = by_tag(wait_for(&mut ring, 2));
    assert_eq!(
        completions[&1].result,
        Ok(2 * 4096),
        "short write is Ok(n < requested)"
    );
    assert_eq!(
        completions[&2].result,
        Err(IoError::Canceled),
        "fsync after a short write"
    );

    set_file_size_limit(libc::RLIM_INFINITY);
    let rest = filled(2 * 4096, 7);
    ring.write(&fd, OpBuf::Owned(rest), 2 * 4096, 3, Some(4))
        .expect("queue the rest");
    let completions = by_tag(wait_for(&mut ring, 2));
    assert_eq!(completions[&3].result, Ok(2 * 4096));
    assert_eq!(completions[&4].result, Ok(0));
    assert_eq!(read_file(&path), vec![7; 4 * 4096]);

    // The same with RWF_DSYNC: a short write reports what it wrote, and the rest follows.
    set_file_size_limit(6 * 4096);
    ring.write_dsync(&fd, OpBuf::Owned(filled(4 * 4096, 8)), 4 * 4096, 5)
        .expect("queue the dsync write");
    let completions = by_tag(wait_for(&mut ring, 1));
    assert_eq!(completions[&5].result, Ok(2 * 4096), "short dsync write");
    set_file_size_limit(libc::RLIM_INFINITY);
    ring.write_dsync(&fd, OpBuf::Owned(filled(2 * 4096, 8)), 6 * 4096, 6)
        .expect("queue the rest");
    let completions = by_tag(wait_for(&mut ring, 1));
    assert_eq!(completions[&6].result, Ok(2 * 4096));
    assert_eq!(read_file(&path)[4 * 4096..], vec![8; 4 * 4096]);
}

// Checks a write with RWF_DSYNC: one completion under its tag for every byte, no second op,
// the bytes read back; the fault plan fails it as a write and, counted as an fdatasync too,
// as an fsync.
#[test]
fn dsync_write_is_one_op_and_faults_as_write_or_fsync() {
    let mut ring = require!(default_ring());
    let dir = require!(direct_dir());
    let path = dir.path().join("segment");
    let fd = open_direct(&path);
    ring.write_dsync(&fd, OpBuf::Owned(filled(2 * BLOCK_BYTES, 4)), 0, 1)
        .unwrap();
    let completions = wait_for(&mut ring, 1);
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].tag, 1);
    assert_eq!(
        completions[0].result,
        Ok(u32::try_from(2 * BLOCK_BYTES).unwrap())
    );
    assert_eq!(read_file(&path), vec![4; 2 * BLOCK_BYTES]);

    ring.set_fault_plan(FaultPlan::parse("fsync:2,errno=ENOSPC").unwrap());
    ring.write_dsync(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 5)), 0, 2)
        .unwrap();
    ring.write_dsync(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 6)), 4096, 3)
        .unwrap();
    let completions = by_tag(wait_for(&mut ring, 2));
    assert_eq!(completions[&2].result, Ok(4096));
    assert_eq!(completions[&3].result, Err(IoError::NoSpace));
    ring.set_fault_plan(FaultPlan::parse("write:1").unwrap());
    ring.write_dsync(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 7)), 0, 4)
        .unwrap();
    let completions = by_tag(wait_for(&mut ring, 1));
    assert_eq!(completions[&4].result, Err(IoError::Io));
    let bytes = read_file(&path);
    assert_eq!(
        bytes[..4096],
        vec![5; 4096],
        "the faulted writes never reached it"
    );
    assert_eq!(bytes[4096..], vec![4; 4096]);
}

// Checks the fault plan on a failed write: the write completes with the plan's error without
// reaching the kernel (the file stays empty), its linked fsync completes with Canceled as the
// kernel would do, and earlier writes are not affected.
#[test]
fn fault_plan_failed_write_cancels_linked_fsync() {
    let mut ring = require!(default_ring());
    let dir = require!(direct_dir());
    let path = dir.path().join("segment");
    let fd = open_direct(&path);
    ring.set_fault_plan(FaultPlan::parse("write:2").unwrap());
    ring.write(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 1)), 0, 1, Some(2))
        .unwrap();
    ring.write(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 9)), 4096, 3, Some(4))
        .unwrap();
    ring.write(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 9)), 8192, 5, None)
        .unwrap();
    let completions = by_tag(wait_for(&mut ring, 5));
    assert_eq!(completions[&1].result, Ok(4096));
    assert_eq!(completions[&2].result, Ok(0));
    assert_eq!(completions[&3].result, Err(IoError::Io));
    assert_eq!(completions[&4].result, Err(IoError::Canceled));
    assert_eq!(
        completions[&5].result,
        Err(IoError::Io),
        "every later write fails too"
    );
    assert!(
        completions[&3].buf.is_some(),
        "a faulted write hands its buffer back"
    );
    assert_eq!(
        read_file(&path),
        vec![1; 4096],
        "faulted writes never reached the file"
    );
}

// Checks the fault plan on failed fsyncs (errno ENOSPC): the write before a faulted linked
// fsync really happens and is reported first, then the fsync fails with NoSpace; a standalone
// fsync fails the same way; and a fresh plan restarts the count.
#[test]
fn fault_plan_failed_fsync_is_reported_after_its_write() {
    let mut ring = require!(default_ring());
    let dir = require!(direct_dir());
    let path = dir.path().join("segment");
    let fd = open_direct(&path);
    ring.set_fault_plan(FaultPlan::parse("fsync:1,errno=ENOSPC").unwrap());
    ring.write(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 3)), 0, 1, Some(2))
        .unwrap();
    ring.fsync(&fd, false, 3).unwrap();
    let completions = wait_for(&mut ring, 3);
    assert!(arrival_position(&completions, 1) < arrival_position(&completions, 2));
    let completions = by_tag(completions);
    assert_eq!(completions[&1].result, Ok(4096));
    assert_eq!(completions[&2].result, Err(IoError::NoSpace));
    assert_eq!(completions[&3].result, Err(IoError::NoSpace));
    assert_eq!(
        read_file(&path),
        vec![3; 4096],
        "the write itself reached the file"
    );

    ring.set_fault_plan(FaultPlan {
        fail_fsync_from: Some(2),
        ..FaultPlan::default()
    });
    ring.fsync(&fd, true, 4).unwrap();
    ring.fsync(&fd, true, 5).unwrap();
    let completions = by_tag(wait_for(&mut ring, 2));
    assert_eq!(completions[&4].result, Ok(0));
    assert_eq!(
        completions[&5].result,
        Err(IoError::Io),
        "errno 0 in a plan means EIO"
    );
}

// Checks that an op's buffer comes back in its completion: the same Owned allocation, the
// same Shared Arc and range (and the Arc is the last reference once the completion is
// dropped), and a read's buffer holding the data read.
#[test]
fn buffers_come_back_in_their_completions() {
    let mut ring = require!(default_ring());
    let dir = require!(direct_dir());
    let fd = open_direct(&dir.path().join("segment"));
    let owned = filled(BLOCK_BYTES, 4);
    let owned_address = owned.as_ptr();
    let mut tail = AppendWriter::new(4 * BLOCK_BYTES, BLOCK_BYTES);
    tail.append(&[8; BLOCK_BYTES]).unwrap();
    let shared = tail.shared();
    ring.write(&fd, OpBuf::Owned(owned), 0, 1, None).unwrap();
    ring.write(
        &fd,
        OpBuf::Shared(tail.shared(), 0..BLOCK_BYTES),
        4096,
        2,
        None,
    )
    .unwrap();
    assert!(
        !tail.try_reset(),
        "an in-flight write holds the tail buffer"
    );
    let mut completions = by_tag(wait_for(&mut ring, 2));

    let owned_back = completions
        .remove(&1)
        .unwrap()
        .buf
        .unwrap()
        .into_owned()
        .unwrap();
    assert_eq!(owned_back.as_ptr(), owned_address);
    match completions.remove(&2).unwrap().buf.unwrap() {
        OpBuf::Shared(buf, range) => {
            assert!(Arc::ptr_eq(&buf, &shared));
            assert_eq!(range, 0..BLOCK_BYTES);
        }
        other => panic!("a Shared write must hand back its Arc: {other:?}"),
    }
    drop(shared);
    assert!(
        tail.try_reset(),
        "no reference is left once the completion is dropped"
    );

    ring.read(&fd, owned_back, 4096, 3).unwrap();
    let read = wait_for(&mut ring, 1).pop().unwrap();
    let read_buf = read.buf.unwrap().into_owned().unwrap();
    assert_eq!(read_buf.as_ptr(), owned_address);
    assert_eq!(read_buf.as_slice(), &[8; BLOCK_BYTES]);
}

// Checks that dropping a ring with operations in flight (some not even submitted yet) waits
// for them: nothing crashes, every write reached the file, and the tail buffer's Arcs held by
// the in-flight ops are released (try_reset succeeds afterwards).
#[test]
fn dropping_ring_with_ops_in_flight_waits_for_them() {
    let dir = require!(direct_dir());
    let path = dir.path().join("segment");
    let fd = open_direct(&path);
    let mut tail = AppendWriter::new(1 << 20, BLOCK_BYTES);
    tail.append_with(1 << 20, |target| target.fill(6)).unwrap();
    {
        let mut ring = require!(default_ring());
        for block in 0..8_u64 {
            let range = 0..(1 << 20);
            let position = block << 20;
            let tag = block * 2;
            ring.write(
                &fd,
                OpBuf::Shared(tail.shared(), range),
                position,
                tag,
                Some(tag + 1),
            )
            .unwrap();
            if block == 3 {
                ring.submit_and_wait(0).unwrap();
            }
        }
        ring.nop(100).unwrap();
        assert_eq!(ring.in_flight(), 17);
    }
    assert!(
        tail.try_reset(),
        "the dropped ring released every in-flight Arc"
    );
    let contents = read_file(&path);
    assert_eq!(contents.len(), 8 << 20);
    assert!(contents.iter().all(|&byte| byte == 6));
}

// Checks rename_then_fsync_dir: the rename and the directory fsync both succeed under their
// own tags and the file is under its new name; a rename that fails (missing source) is
// reported, and its linked directory fsync completes too (Linux 6.18 runs it anyway: only
// read/write failures break a link there; older kernels cancel it).
#[test]
fn rename_then_fsync_dir_renames_and_syncs() {
    let mut ring = require!(default_ring());
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(dir.path().join("segment.tmp"), b"filled").unwrap();
    let dir_fd = open_dir(dir.path());
    let from = CString::new("segment.tmp").unwrap();
    let to = CString::new("00000000000000000000.log").unwrap();
    ring.rename_then_fsync_dir(&dir_fd, &from, &to, 1, 2)
        .unwrap();
    let completions = by_tag(wait_for(&mut ring, 2));
    assert_eq!(completions[&1].result, Ok(0));
    assert_eq!(completions[&2].result, Ok(0));
    assert!(!dir.path().join("segment.tmp").exists());
    assert_eq!(
        read_file(&dir.path().join("00000000000000000000.log")),
        b"filled"
    );

    ring.rename_then_fsync_dir(&dir_fd, &from, &to, 3, 4)
        .unwrap();
    let completions = by_tag(wait_for(&mut ring, 2));
    let missing = IoError::Unexpected {
        op: "renameat",
        errno: libc::ENOENT,
    };
    assert_eq!(completions[&3].result, Err(missing));
    let fsync = &completions[&4].result;
    assert!(matches!(fsync, Ok(0) | Err(IoError::Canceled)), "{fsync:?}");
}

// Checks the in-flight bound: with room for 3 ops, a write + fsync chain and a nop fit, the
// next op is refused with Busy (changing nothing), and reaping makes room again.
#[test]
fn in_flight_bound_refuses_with_busy() {
    let mut ring = require!(ring_with(RingConfig {
        entries: 2,
        ops_in_flight_max: 3
    }));
    let file = tempfile::tempfile_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fd = Arc::new(OwnedFd::from(file));
    ring.write(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 1)), 0, 1, Some(2))
        .unwrap();
    ring.nop(3).unwrap();
    assert_eq!(
        ring.nop(4),
        Err(IoError::Busy {
            ops_in_flight_max: 3
        })
    );
    assert_eq!(ring.in_flight(), 3);
    let completions = by_tag(wait_for(&mut ring, 3));
    assert_eq!(completions.len(), 3);
    ring.write(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 1)), 0, 5, Some(6))
        .unwrap();
    assert!(matches!(ring.fsync(&fd, true, 7), Ok(())));
    assert_eq!(
        ring.write(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 1)), 0, 8, Some(9)),
        Err(IoError::Busy {
            ops_in_flight_max: 3
        })
    );
    assert_eq!(by_tag(wait_for(&mut ring, 3)).len(), 3);
}

// Checks that more ops than the submission queue holds can be queued: the ring submits to make
// room (SQ of 2 entries, 16 ops).
#[test]
fn full_submission_queue_is_submitted_to_make_room() {
    let mut ring = require!(ring_with(RingConfig {
        entries: 2,
        ops_in_flight_max: 16
    }));
    for tag in 0..16 {
        ring.nop(tag).unwrap();
    }
    let completions = by_tag(wait_for(&mut ring, 16));
    assert_eq!(
        completions.keys().copied().collect::<Vec<_>>(),
        (0..16).collect::<Vec<_>>()
    );
}

// Checks buffer registration under the memlock limit (8 MiB here): a pool of 256 KiB
// registers, reads into its buffers use READ_FIXED and return the right bytes, and writes of
// a registered tail buffer use WRITE_FIXED; a buffer allocated after a registered one was
// freed uses plain READ.
#[test]
fn registered_buffers_use_fixed_ops() {
    let mut ring = require!(default_ring());
    let dir = require!(direct_dir());
    let path = dir.path().join("segment");
    let fd = open_direct(&path);
    let mut pool = BufPool::new(4, 64 * 1024, BLOCK_BYTES);
    let mut tail = AppendWriter::new(64 * 1024, BLOCK_BYTES);
    let pool_bufs: Vec<&AlignedBuf> = pool.free_buffers().collect();
    assert!(
        ring.register(&pool_bufs, &[&tail.shared()]).unwrap(),
        "256 KiB fits 8 MiB"
    );
    assert_eq!(ring.registered_buffer_count(), 5);

    tail.append_with(8192, |target| target.fill(0xC3)).unwrap();
    ring.write(&fd, OpBuf::Shared(tail.shared(), 0..8192), 0, 1, Some(2))
        .unwrap();
    assert_eq!(ring.fixed_op_count(), 1, "WRITE_FIXED");
    let completions = by_tag(wait_for(&mut ring, 2));
    assert_eq!(completions[&1].result, Ok(8192));
    assert_eq!(completions[&2].result, Ok(0));
    // The read is queued only after the write completed: completions are unordered.
    ring.read(&fd, pool.take().unwrap(), 0, 3).unwrap();
    assert_eq!(ring.fixed_op_count(), 2, "READ_FIXED");
    let read = wait_for(&mut ring, 1).pop().unwrap();
    assert_eq!(read.result, Ok(8192), "short read at end of file");
    let read_buf = read.buf.unwrap().into_owned().unwrap();
    assert_eq!(&read_buf[..8192], &[0xC3; 8192]);
    pool.give(read_buf);

    let mut other_ring = require!(default_ring());
    let registered = AlignedBuf::zeroed(BLOCK_BYTES, BLOCK_BYTES);
    assert!(other_ring.register_buffers(&[&registered]).unwrap());
    drop(registered);
    let fresh = AlignedBuf::zeroed(BLOCK_BYTES, BLOCK_BYTES);
    other_ring.read(&fd, fresh, 0, 4).unwrap();
    assert_eq!(
        other_ring.fixed_op_count(),
        0,
        "a freed registration is never used"
    );
    let read = wait_for(&mut other_ring, 1).pop().unwrap();
    assert_eq!(read.buf.unwrap().bytes(), &[0xC3; BLOCK_BYTES]);
}

// Checks that registration beyond RLIMIT_MEMLOCK is declined with Ok(false), leaving the ring
// usable with plain operations, and that registering twice is an error.
#[test]
fn registration_beyond_memlock_limit_is_declined() {
    let mut ring = require!(default_ring());
    let Some(limit_bytes) = memlock_limit_bytes().unwrap() else {
        println!("skipped: RLIMIT_MEMLOCK is unlimited here");
        return;
    };
    let too_big = usize::try_from(limit_bytes).unwrap() + BLOCK_BYTES;
    let buf = AlignedBuf::zeroed(too_big, BLOCK_BYTES);
    assert_eq!(ring.register_buffers(&[&buf]), Ok(false));
    assert_eq!(ring.registered_buffer_count(), 0);
    let pool = BufPool::new(2, BLOCK_BYTES, BLOCK_BYTES);
    assert_eq!(ring.register_pool(&pool), Ok(true));
    let again = ring.register_pool(&pool);
    assert_eq!(
        again,
        Err(IoError::Unexpected {
            op: "register_buffers",
            errno: libc::EBUSY
        })
    );
    ring.nop(1).unwrap();
    assert_eq!(wait_for(&mut ring, 1)[0].result, Ok(0));
}

// Checks fallocate: the file grows to the requested size and reads as zeroes.
#[test]
fn fallocate_extends_file() {
    let mut ring = require!(default_ring());
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path: PathBuf = dir.path().join("segment");
    let file = File::create(&path).unwrap();
    let fd = Arc::new(OwnedFd::from(file));
    ring.fallocate(&fd, 0, 0, 1 << 20, 1).unwrap();
    let completion = wait_for(&mut ring, 1).pop().unwrap();
    assert_eq!(completion.result, Ok(0));
    assert!(completion.buf.is_none());
    let file = File::open(&path).unwrap();
    assert_eq!(file.metadata().unwrap().len(), 1 << 20);
    let mut block = [1_u8; 512];
    file.read_exact_at(&mut block, 4096).unwrap();
    assert_eq!(block, [0; 512]);
}

// Checks that reap alone (after a non-waiting submit) makes progress: with DEFER_TASKRUN the
// ring must enter the kernel itself to run deferred completion work. Polls with a bounded
// number of rounds, never sleeps.
#[test]
fn reap_makes_progress_without_blocking_waits() {
    let mut ring = require!(default_ring());
    let dir = require!(direct_dir());
    let fd = open_direct(&dir.path().join("segment"));
    ring.write(&fd, OpBuf::Owned(filled(BLOCK_BYTES, 5)), 0, 1, Some(2))
        .unwrap();
    assert_eq!(ring.submit_and_wait(0).unwrap(), 2);
    let mut completions = Vec::new();
    let mut rounds = 0_u64;
    while completions.len() < 2 {
        rounds += 1;
        assert!(
            rounds < 100_000_000,
            "completions never arrived through reap"
        );
        ring.reap(&mut completions);
    }
    let completions = by_tag(completions);
    assert_eq!(completions[&1].result, Ok(4096));
    assert_eq!(completions[&2].result, Ok(0));
}

// Checks that submit_and_wait never waits for more completions than can still arrive (asking
// for 5 with one op in flight returns once that one is done).
#[test]
fn submit_and_wait_never_waits_for_impossible_completions() {
    let mut ring = require!(default_ring());
    ring.nop(1).unwrap();
    ring.submit_and_wait(5).unwrap();
    let mut completions = Vec::new();
    ring.submit_and_wait(5).unwrap();
    ring.reap(&mut completions);
    assert_eq!(completions.len(), 1);
    assert_eq!(
        ring.submit_and_wait(3).unwrap(),
        0,
        "nothing in flight: returns at once"
    );
}

// Checks the single-issuer contract: a DEFER_TASKRUN ring moved to another thread refuses to
// submit there (EEXIST), and dropping it there, with an op it could not wait for, leaks that
// op's buffer instead of crashing or freeing memory the kernel may touch.
#[test]
fn ring_moved_to_another_thread_fails_cleanly() {
    let mut ring = require!(default_ring());
    if ring.setup_mode() != SetupMode::DeferTaskrun {
        println!("skipped: the ring is not single-issuer here");
        return;
    }
    let file = tempfile::tempfile_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary file");
    let fd = Arc::new(OwnedFd::from(file));
    let mut tail = AppendWriter::new(BLOCK_BYTES, BLOCK_BYTES);
    tail.append(b"leaked").expect("fits");
    ring.write(&fd, OpBuf::Shared(tail.shared(), 0..6), 0, 1, None)
        .expect("queue");
    let outcome = std::thread::spawn(move || {
        let submitted = ring.submit_and_wait(1);
        drop(ring);
        submitted
    })
    .join()
    .expect("the other thread does not panic");
    let refused = IoError::Unexpected {
        op: "io_uring_enter",
        errno: libc::EEXIST,
    };
    assert_eq!(outcome, Err(refused));
    assert!(!tail.try_reset(), "the op's Arc was leaked, not freed");
}
