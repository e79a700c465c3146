//! `ringlog check-host`: can this host, and this data directory, run ringlog?
//!
//! Each check prints one line, `PASS`, `WARN` or `FAIL`, with what was found and, unless it
//! passed, what to do (STYLE.md section 6: a failed startup check names the missing kernel
//! feature, the limit to raise, or the file system that lacks O_DIRECT). The checks are the
//! ones the server's startup depends on, in the order it meets them: kernel, io_uring,
//! the write path (`direct` by default, `mmap` as the fallback), the memlock limit and the
//! file system under the data directory; then two that set its latency: how the CPUs idle
//! (each wake-up of an idle CPU is on the path of a request at low load) and one
//! fdatasync, which every acknowledged write waits for.
//!
//! Invariants: the checks write only inside temporary entries of the data directory
//! (`.ringlog-check-host-<pid>-*`), which are removed before the command returns, also when
//! a check fails; nothing else in the directory is touched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use ringlog_types::units::{KIB, MIB};
use ringlog_types::{Epoch, Offset};
use ringlog_uring::{
    dio_alignment, memlock_limit_bytes, AlignedBuf, DioAlign, Ring, RingConfig, SetupMode,
};
use ringlog_wal::{PartitionHandle, Wal, WalConfig, WritePath};

use crate::cli::CheckHostArgs;

/// Oldest kernel ringlog supports: io_uring `SINGLE_ISSUER | DEFER_TASKRUN` appeared in 6.1.
const KERNEL_VERSION_MIN: (u32, u32) = (6, 1);
/// Where the kernel says its release.
const OSRELEASE_PATH: &str = "/proc/sys/kernel/osrelease";
/// Below this memlock limit, registered buffers do not fit a shard's tail and read pools.
const MEMLOCK_BYTES_MIN: u64 = 64 * MIB;
/// Number of timed write + fdatasync pairs.
const LATENCY_SAMPLES_COUNT: usize = 200;
/// Size of the pre-filled file the timed writes land in (they cycle over it).
const LATENCY_FILE_SIZE_BYTES: u64 = MIB;
/// Size of one timed write, unless the O_DIRECT alignment is larger.
const LATENCY_WRITE_SIZE_BYTES: u64 = 4 * KIB;
/// A median fdatasync slower than this is reported.
const LATENCY_P50_WARN: Duration = Duration::from_millis(2);
/// Where the kernel lists the mounts this process sees.
const MOUNTINFO_PATH: &str = "/proc/self/mountinfo";
/// One directory per block device whose ext4 journal (jbd2) is running, named
/// `<device>-<journal inode>`.
const JBD2_PATH: &str = "/proc/fs/jbd2";
/// Where the kernel describes CPUs and modules.
const SYS_PATH: &str = "/sys";
/// An enabled idle state with at least this exit latency is reported: the tuning guide's
/// example threshold (C1 stays, C1E and deeper go).
const IDLE_EXIT_LATENCY_WARN_US: u64 = 10;
/// How long a test commit may wait for a spare segment or a tail buffer.
const TRIAL_BACKPRESSURE_TIMEOUT: Duration = Duration::from_secs(10);

const _: () = assert!(LATENCY_FILE_SIZE_BYTES % LATENCY_WRITE_SIZE_BYTES == 0);

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Pass,
    Warn,
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Pass => "PASS",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One check's line.
struct Check {
    name: &'static str,
    level: Level,
    message: String,
}

impl Check {
    fn new(name: &'static str, level: Level, message: impl Into<String>) -> Check {
        Check {
            name,
            level,
            message: message.into(),
        }
    }
}

/// The checks printed so far.
struct Report<'a> {
    out: &'a mut dyn Write,
    checks: Vec<Check>,
}

impl Report<'_> {
    /// Prints `check` at once and keeps it; returns its level.
    fn add(&mut self, check: Check) -> io::Result<Level> {
        let level = check.level;
        writeln!(
            self.out,
            "{:<4}  {:<18} {}",
            level.label(),
            check.name,
            check.message
        )?;
        // The slower checks follow: show each line as soon as it is known.
        self.out.flush()?;
        self.checks.push(check);
        Ok(level)
    }

    fn count(&self, level: Level) -> usize {
        self.checks
            .iter()
            .filter(|check| check.level == level)
            .count()
    }
}

/// Runs every check on `args.data_dir` and prints them to `out`. `Ok(true)` if none failed;
/// `Err` if the data directory cannot be checked at all.
pub fn run(args: &CheckHostArgs, out: &mut dyn Write) -> anyhow::Result<bool> {
    let dir = &args.data_dir;
    if !dir.is_dir() {
        bail!(
            "data directory {} does not exist or is not a directory",
            dir.display()
        );
    }
    writeln!(
        out,
        "checking this host for a ringlog data directory at {}",
        dir.display()
    )?;
    let mut report = Report {
        out,
        checks: Vec::new(),
    };
    report.add(check_kernel())?;
    report.add(check_io_uring())?;
    let (direct, alignment) = check_direct_write_path(dir);
    let direct_failed = report.add(direct)? == Level::Fail;
    let mmap_passed = report.add(check_mmap_write_path(dir, direct_failed))? == Level::Pass;
    report.add(check_memlock())?;
    report.add(check_file_system(dir))?;
    report.add(check_cpu_idle(Path::new(SYS_PATH)))?;
    report.add(check_fdatasync_latency(dir, alignment))?;
    let failed = report.count(Level::Fail);
    writeln!(
        report.out,
        "{} passed, {} warned, {failed} failed",
        report.count(Level::Pass),
        report.count(Level::Warn)
    )?;
    if direct_failed && mmap_passed {
        writeln!(
            report.out,
            "the default write path (direct) cannot run on this data directory; the mmap \
             check passed, so run ringlog with --write-path mmap here"
        )?;
    }
    Ok(failed == 0)
}

fn check_kernel() -> Check {
    const NAME: &str = "kernel";
    let release = match fs::read_to_string(OSRELEASE_PATH) {
        Ok(release) => release.trim().to_string(),
        Err(error) => {
            let message =
                format!("could not read {OSRELEASE_PATH} ({error}); ringlog needs Linux >= 6.1");
            return Check::new(NAME, Level::Warn, message);
        }
    };
    match parse_kernel_version(&release) {
        Some(version) if version >= KERNEL_VERSION_MIN => {
            Check::new(NAME, Level::Pass, format!("Linux {release}"))
        }
        Some(_) => Check::new(
            NAME,
            Level::Fail,
            format!(
                "Linux {release} is older than 6.1, which ringlog needs (io_uring \
                 SINGLE_ISSUER|DEFER_TASKRUN, linked fsync): upgrade the kernel"
            ),
        ),
        None => Check::new(
            NAME,
            Level::Warn,
            format!("cannot read a version in {release:?}; ringlog needs Linux >= 6.1"),
        ),
    }
}

/// `(major, minor)` from a release such as `6.18.0-12-generic`.
fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor_text = parts.next()?;
    let digits_end = minor_text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(minor_text.len());
    let minor = minor_text[..digits_end].parse().ok()?;
    Some((major, minor))
}

fn check_io_uring() -> Check {
    const NAME: &str = "io_uring";
    let config = RingConfig {
        entries: 8,
        ops_in_flight_max: 16,
    };
    let ring = match Ring::new(config) {
        Ok(ring) => ring,
        Err(error) => {
            let message = format!(
                "cannot set up a ring ({error}); check sysctl kernel.io_uring_disabled (0, or 1 \
                 with ringlog's group in kernel.io_uring_group) and, in a container, that the \
                 seccomp profile allows io_uring_setup"
            );
            return Check::new(NAME, Level::Fail, message);
        }
    };
    if let Err(error) = ring.probe() {
        return Check::new(NAME, Level::Fail, error.to_string());
    }
    match ring.setup_mode() {
        SetupMode::DeferTaskrun => Check::new(
            NAME,
            Level::Pass,
            "setup mode SINGLE_ISSUER|DEFER_TASKRUN; every operation ringlog uses is supported",
        ),
        SetupMode::Plain => Check::new(
            NAME,
            Level::Warn,
            format!(
                "setup mode plain: the kernel refused SINGLE_ISSUER|DEFER_TASKRUN ({}); ringlog \
                 runs, with more interrupts per completion: use Linux >= 6.1",
                ring.setup_fallback_reason().unwrap_or("no reason given")
            ),
        ),
    }
}

/// O_DIRECT support (statx), then a real commit on the direct path. Also returns the
/// alignment, for the latency probe.
fn check_direct_write_path(dir: &Path) -> (Check, Option<DioAlign>) {
    const NAME: &str = "direct write path";
    let alignment = match dio_alignment(dir) {
        Ok(Some(alignment)) => alignment,
        Ok(None) => {
            let message = "O_DIRECT is unavailable on this file system (e.g. tmpfs): run with \
                           --write-path mmap, or put the data directory on ext4/XFS";
            return (Check::new(NAME, Level::Fail, message), None);
        }
        Err(error) => {
            let message =
                format!("cannot ask the file system for its O_DIRECT alignment (statx): {error}");
            return (Check::new(NAME, Level::Fail, message), None);
        }
    };
    let found = format!(
        "O_DIRECT alignment {} bytes (memory), {} bytes (file positions)",
        alignment.memory_align_bytes, alignment.offset_align_bytes
    );
    let check = match trial_commit(dir, WritePath::Direct) {
        Ok(()) => Check::new(
            NAME,
            Level::Pass,
            format!("{found}; a test commit (O_DIRECT write with RWF_DSYNC on io_uring) succeeded"),
        ),
        Err(error) => Check::new(
            NAME,
            Level::Fail,
            format!("{found}, but a test commit failed: {error:#}"),
        ),
    };
    (check, Some(alignment))
}

fn check_mmap_write_path(dir: &Path, direct_failed: bool) -> Check {
    const NAME: &str = "mmap write path";
    match trial_commit(dir, WritePath::Mmap) {
        Ok(()) if direct_failed => Check::new(
            NAME,
            Level::Pass,
            "mmap works: a test commit (mmap copy + fdatasync) succeeded, so --write-path mmap \
             can run on this data directory",
        ),
        Ok(()) => Check::new(
            NAME,
            Level::Pass,
            "mmap works: a test commit (mmap copy + fdatasync) succeeded",
        ),
        Err(error) => Check::new(
            NAME,
            Level::Fail,
            format!("a test commit failed: {error:#}"),
        ),
    }
}

/// Opens a partition log on `write_path` in a scratch directory, makes one batch durable,
/// closes it and removes the directory.
fn trial_commit(dir: &Path, write_path: WritePath) -> anyhow::Result<()> {
    let scratch = ScratchPath::new(dir, write_path.name());
    scratch.remove()?;
    fs::create_dir(&scratch.path)
        .with_context(|| format!("creating {}", scratch.path.display()))?;
    // Small segments: the check fills two (the first and a spare), not two of 128 MiB.
    let mut config = WalConfig::new(&scratch.path, write_path);
    config.segment_size_bytes = MIB;
    config.tail_chunk_bytes = 256 * KIB;
    config.tail_chunks_max = 2;
    config.batch_size_bytes_max = 64 * KIB;
    config.spare_segments_count = 1;
    let mut wal = Wal::new(config)?;
    let partition = wal.open_partition("check-0")?;
    append_retrying(&mut wal, partition, &ringlog_wal::testing::batch_for(0, 1))?;
    let durable_end = wal.sync(partition)?;
    ensure!(
        durable_end == Offset(1),
        "durable end {durable_end} after one record, expected 1"
    );
    wal.close()?;
    scratch.remove()
}

/// Appends, waiting while the log answers `Backpressure` (its spare still being filled).
fn append_retrying(wal: &mut Wal, partition: PartitionHandle, batch: &[u8]) -> anyhow::Result<()> {
    let deadline = Instant::now() + TRIAL_BACKPRESSURE_TIMEOUT;
    loop {
        match wal.append(partition, batch, Epoch(1)) {
            Ok(_) => return Ok(()),
            Err(ringlog_wal::Error::Backpressure { reason }) => {
                ensure!(
                    Instant::now() < deadline,
                    "the log stayed busy ({reason}) for {TRIAL_BACKPRESSURE_TIMEOUT:?}"
                );
                if wal.is_committing() {
                    wal.wait()?;
                } else {
                    wal.poll()?;
                    std::thread::yield_now();
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

fn check_file_system(dir: &Path) -> Check {
    const NAME: &str = "file system";
    let mount = match mount_of(dir) {
        Ok(mount) => mount,
        Err(error) => {
            return Check::new(
                NAME,
                Level::Warn,
                format!("cannot tell which file system holds the data directory: {error:#}"),
            )
        }
    };
    let found = format!(
        "{} ({} on {})",
        mount.fs_type,
        mount.source,
        mount.mount_point.display()
    );
    if mount.fs_type != "ext4" {
        return Check::new(NAME, Level::Pass, found);
    }
    match has_ext4_journal(&mount.device) {
        Ok(true) => Check::new(NAME, Level::Pass, format!("{found}, with a journal")),
        Ok(false) => Check::new(
            NAME,
            Level::Warn,
            format!(
                "{found}, without a journal: every fdatasync then also writes the segment's \
                 inode whenever its modification time changed since the last one (up to once \
                 per kernel tick), one more device write on the path of those commits; \
                 ringlog runs, but an ext4 with a journal (mkfs.ext4's default) or XFS avoids it"
            ),
        ),
        Err(error) => Check::new(
            NAME,
            Level::Pass,
            format!("{found}; whether it has a journal is unknown: {error:#}"),
        ),
    }
}

/// The mount that holds a path, from `/proc/self/mountinfo`.
struct Mount {
    mount_point: PathBuf,
    fs_type: String,
    source: String,
    /// `major:minor` of the file system's device.
    device: String,
}

/// The last-mounted entry of `/proc/self/mountinfo` whose mount point is the longest prefix
/// of `dir` (canonicalized).
fn mount_of(dir: &Path) -> anyhow::Result<Mount> {
    let dir = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let table =
        fs::read_to_string(MOUNTINFO_PATH).with_context(|| format!("reading {MOUNTINFO_PATH}"))?;
    let mut best: Option<Mount> = None;
    for line in table.lines() {
        let Some(mount) = parse_mountinfo_line(line) else {
            continue;
        };
        let longer = best.as_ref().is_none_or(|best| {
            mount.mount_point.as_os_str().len() >= best.mount_point.as_os_str().len()
        });
        if dir.starts_with(&mount.mount_point) && longer {
            best = Some(mount);
        }
    }
    best.with_context(|| format!("no mount in {MOUNTINFO_PATH} holds {}", dir.display()))
}

/// One line of `/proc/self/mountinfo`: `id parent major:minor root mount-point options
/// [optional fields] - type source super-options`.
fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    let (mount_part, fs_part) = line.split_once(" - ")?;
    let fields: Vec<&str> = mount_part.split(' ').collect();
    let device = (*fields.get(2)?).to_owned();
    let mount_point = PathBuf::from(unescape_mountinfo(fields.get(4)?));
    let mut fs_fields = fs_part.split(' ');
    let fs_type = fs_fields.next()?.to_owned();
    let source = unescape_mountinfo(fs_fields.next()?);
    Some(Mount {
        mount_point,
        fs_type,
        source,
        device,
    })
}

/// Undoes the kernel's octal escapes (`\040` for a space) in a mountinfo field.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes.get(index + 1..index + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[index], escaped) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the ext4 on block device `major:minor` runs a journal: the kernel lists one
/// `/proc/fs/jbd2/<device name>-<inode>` directory per running journal.
fn has_ext4_journal(device: &str) -> anyhow::Result<bool> {
    let link = Path::new("/sys/dev/block").join(device);
    let target = fs::read_link(&link).with_context(|| format!("reading {}", link.display()))?;
    let name = target
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("{} names no device", link.display()))?;
    let prefix = format!("{name}-");
    let entries = match fs::read_dir(JBD2_PATH) {
        Ok(entries) => entries,
        // No journal was ever started on this host: the directory is not there either.
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error).with_context(|| format!("listing {JBD2_PATH}")),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {JBD2_PATH}"))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// How the CPUs idle, from the cpuidle driver under `sys` (`/sys` outside tests). At queue
/// depth 1 each request wakes an idle CPU several times (a node's thread when a message
/// arrives, the thread waiting for a disk completion), so each wake-up's cost is added to
/// every request.
fn check_cpu_idle(sys: &Path) -> Check {
    const NAME: &str = "cpu idle";
    let cpuidle = sys.join("devices/system/cpu/cpuidle");
    let Some(driver) = read_sys(&cpuidle.join("current_driver")) else {
        return Check::new(
            NAME,
            Level::Pass,
            "no cpuidle driver: the CPUs idle the architecture's default way",
        );
    };
    let governor = read_sys(&cpuidle.join("current_governor"))
        .map_or_else(String::new, |governor| format!(", governor {governor}"));
    if driver == "haltpoll" {
        // A virtual machine's driver: an idle vCPU polls for up to guest_halt_poll_ns, then
        // halts, and waking a halted vCPU goes through the hypervisor.
        let poll = sys.join("module/haltpoll/parameters/guest_halt_poll_ns");
        return match read_sys(&poll).and_then(|text| text.parse::<u64>().ok()) {
            Some(0) => Check::new(
                NAME,
                Level::Warn,
                format!(
                    "driver haltpoll{governor}, guest_halt_poll_ns 0: an idle vCPU halts at once, \
                     and every wake-up of one exits to the hypervisor, tens of microseconds \
                     added to each request at low load (85-89 us for a 1 KiB loopback round trip \
                     against 15-24 us with polling, on a 2-vCPU VM); let idle vCPUs poll first, \
                     e.g. echo 200000 > {} (tuning/README.md, section 4)",
                    poll.display()
                ),
            ),
            Some(nanoseconds) => Check::new(
                NAME,
                Level::Pass,
                format!(
                    "driver haltpoll{governor}: an idle vCPU polls up to {nanoseconds} ns \
                     before it halts"
                ),
            ),
            None => Check::new(
                NAME,
                Level::Pass,
                format!("driver haltpoll{governor}; its poll time is unknown"),
            ),
        };
    }
    match deepest_enabled_idle_state(sys) {
        Some(state) if state.exit_latency_us >= IDLE_EXIT_LATENCY_WARN_US => Check::new(
            NAME,
            Level::Warn,
            format!(
                "driver {driver}{governor}, idle states down to {} enabled ({} us to wake \
                 from): a CPU woken from it adds up to that to a request; for the lowest \
                 latency disable the deep states, e.g. cpupower idle-set -D {} \
                 (tuning/README.md, section 4)",
                state.name, state.exit_latency_us, IDLE_EXIT_LATENCY_WARN_US
            ),
        ),
        Some(state) => Check::new(
            NAME,
            Level::Pass,
            format!(
                "driver {driver}{governor}, deepest enabled idle state {} ({} us to wake from)",
                state.name, state.exit_latency_us
            ),
        ),
        None => Check::new(
            NAME,
            Level::Pass,
            format!("driver {driver}{governor}, no enabled idle state listed"),
        ),
    }
}

/// One idle state of a CPU (`cpuN/cpuidle/stateM`).
struct IdleState {
    name: String,
    exit_latency_us: u64,
}

/// The enabled idle state with the longest exit latency over every CPU under `sys`.
fn deepest_enabled_idle_state(sys: &Path) -> Option<IdleState> {
    let cpus = fs::read_dir(sys.join("devices/system/cpu")).ok()?;
    let mut deepest: Option<IdleState> = None;
    for cpu in cpus.flatten() {
        let is_cpu = cpu
            .file_name()
            .to_str()
            .and_then(|name| name.strip_prefix("cpu"))
            .is_some_and(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()));
        if !is_cpu {
            continue;
        }
        let Ok(states) = fs::read_dir(cpu.path().join("cpuidle")) else {
            continue;
        };
        for state in states.flatten() {
            let dir = state.path();
            if read_sys(&dir.join("disable")).as_deref() == Some("1") {
                continue;
            }
            let (Some(name), Some(exit_latency_us)) = (
                read_sys(&dir.join("name")),
                read_sys(&dir.join("latency")).and_then(|text| text.parse::<u64>().ok()),
            ) else {
                continue;
            };
            if deepest
                .as_ref()
                .is_none_or(|deepest| exit_latency_us > deepest.exit_latency_us)
            {
                deepest = Some(IdleState {
                    name,
                    exit_latency_us,
                });
            }
        }
    }
    deepest
}

/// A sysfs attribute, trimmed; None if it cannot be read or is empty.
fn read_sys(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn check_memlock() -> Check {
    const NAME: &str = "memlock";
    match memlock_limit_bytes() {
        Ok(None) => Check::new(NAME, Level::Pass, "RLIMIT_MEMLOCK unlimited"),
        Ok(Some(limit)) if limit >= MEMLOCK_BYTES_MIN => Check::new(
            NAME,
            Level::Pass,
            format!("RLIMIT_MEMLOCK {} MiB", limit / MIB),
        ),
        Ok(Some(limit)) => Check::new(
            NAME,
            Level::Warn,
            format!(
                "RLIMIT_MEMLOCK is {} KiB, below 64 MiB: io_uring registered buffers count \
                 against it, and without them every I/O pins its pages again; set \
                 LimitMEMLOCK=infinity in the systemd unit, or `ulimit -l unlimited` (memlock \
                 in /etc/security/limits.conf) for the user running ringlog",
                limit / KIB
            ),
        ),
        Err(error) => Check::new(
            NAME,
            Level::Warn,
            format!("cannot read RLIMIT_MEMLOCK ({error}); ringlog wants at least 64 MiB"),
        ),
    }
}

fn check_fdatasync_latency(dir: &Path, alignment: Option<DioAlign>) -> Check {
    const NAME: &str = "fdatasync latency";
    let latencies = match measure_fdatasync(dir, alignment) {
        Ok(latencies) => latencies,
        Err(error) => {
            let message = format!("the probe could not write the data directory: {error:#}");
            return Check::new(NAME, Level::Fail, message);
        }
    };
    let percentile = |per_cent: usize| latencies[(latencies.len() - 1) * per_cent / 100];
    let p50 = percentile(50);
    let p99 = percentile(99);
    let how = if alignment.is_some() {
        "O_DIRECT write"
    } else {
        "buffered write (no O_DIRECT here)"
    };
    let found = format!(
        "p50 {} us, p99 {} us over {LATENCY_SAMPLES_COUNT} x {how} + fdatasync",
        p50.as_micros(),
        p99.as_micros()
    );
    if p50 > LATENCY_P50_WARN {
        let message = format!(
            "{found}; p50 above 2 ms: likely a slow device, or cache flushes that wait for \
             the medium (no volatile write cache flush support); every acknowledged write \
             waits for one fdatasync"
        );
        return Check::new(NAME, Level::Warn, message);
    }
    Check::new(NAME, Level::Pass, found)
}

/// Times `LATENCY_SAMPLES_COUNT` pairs of one block write and fdatasync over a pre-filled
/// file (so that no write allocates and fdatasync has no metadata to commit). Sorted.
fn measure_fdatasync(dir: &Path, alignment: Option<DioAlign>) -> anyhow::Result<Vec<Duration>> {
    let scratch = ScratchPath::new(dir, "fdatasync");
    scratch.remove()?;
    let path = &scratch.path;
    let file_size = usize::try_from(LATENCY_FILE_SIZE_BYTES)?;
    let mut filler = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    filler.write_all(&vec![0; file_size])?;
    filler.sync_all()?;
    drop(filler);
    let mut options = OpenOptions::new();
    options.write(true);
    let write_size = match alignment {
        Some(alignment) => {
            options.custom_flags(libc::O_DIRECT);
            LATENCY_WRITE_SIZE_BYTES.max(u64::from(alignment.offset_align_bytes))
        }
        None => LATENCY_WRITE_SIZE_BYTES,
    };
    let memory_align = alignment.map_or(0, |alignment| alignment.memory_align_bytes);
    let buffer_align = usize::try_from(memory_align)?.max(4 * 1024);
    let mut buffer = AlignedBuf::zeroed(usize::try_from(write_size)?, buffer_align);
    buffer.as_mut_slice().fill(0xa5);
    let file = options
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let slots_count = (LATENCY_FILE_SIZE_BYTES / write_size).max(1);
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES_COUNT);
    for (sample, slot) in (0..LATENCY_SAMPLES_COUNT).zip((0..slots_count).cycle()) {
        let start = Instant::now();
        file.write_all_at(buffer.as_slice(), slot * write_size)
            .with_context(|| format!("write {sample} to {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("fdatasync {sample} of {}", path.display()))?;
        latencies.push(start.elapsed());
    }
    drop(file);
    scratch.remove()?;
    latencies.sort_unstable();
    Ok(latencies)
}

/// A temporary entry of the data directory, removed when dropped (also on early returns).
struct ScratchPath {
    path: PathBuf,
}

impl ScratchPath {
    fn new(dir: &Path, what: &str) -> ScratchPath {
        let name = format!(".ringlog-check-host-{}-{what}", std::process::id());
        ScratchPath {
            path: dir.join(name),
        }
    }

    /// Removes the entry (a file or a directory tree) if it exists.
    fn remove(&self) -> anyhow::Result<()> {
        let result = match fs::symlink_metadata(&self.path) {
            Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(&self.path),
            Ok(_) => fs::remove_file(&self.path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        };
        result.with_context(|| format!("removing {}", self.path.display()))
    }
}

impl Drop for ScratchPath {
    fn drop(&mut self) {
        // Best effort on error paths; the success paths call `remove` and report failures.
        let _ = self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks that kernel releases in the forms distributions use give (major, minor), and
    // that nonsense gives None.
    #[test]
    fn kernel_versions_parse() {
        let cases = [
            ("6.18.0-12-generic", Some((6, 18))),
            ("6.1.0", Some((6, 1))),
            ("5.15.167.4-microsoft-standard-WSL2", Some((5, 15))),
            ("6.9-rc1", Some((6, 9))),
            ("6.12+deb13-amd64", Some((6, 12))),
            ("linux", None),
            ("", None),
        ];
        for (release, expected) in cases {
            assert_eq!(parse_kernel_version(release), expected, "{release}");
        }
        assert!(parse_kernel_version("6.1.0").unwrap() >= KERNEL_VERSION_MIN);
        assert!(parse_kernel_version("5.19.0").unwrap() < KERNEL_VERSION_MIN);
    }

    // Checks that mountinfo lines give the mount point (escapes undone), the type, the
    // source and the device, with or without optional fields, and that a line without the
    // " - " separator gives None.
    #[test]
    fn mountinfo_lines_parse() {
        let line = r"36 35 98:0 / /mnt/data\040disk rw,noatime master:1 - ext4 /dev/sdb1 rw";
        let mount = parse_mountinfo_line(line).unwrap();
        assert_eq!(mount.mount_point, PathBuf::from("/mnt/data disk"));
        assert_eq!(mount.fs_type, "ext4");
        assert_eq!(mount.source, "/dev/sdb1");
        assert_eq!(mount.device, "98:0");
        let line = "22 1 0:21 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw,inode64";
        let mount = parse_mountinfo_line(line).unwrap();
        assert_eq!(mount.mount_point, PathBuf::from("/dev/shm"));
        assert_eq!(mount.fs_type, "tmpfs");
        assert!(parse_mountinfo_line("36 35 98:0 / /mnt rw").is_none());
        assert_eq!(unescape_mountinfo(r"a\134b\011c"), "a\\b\tc");
        assert_eq!(unescape_mountinfo(r"trailing\04"), r"trailing\04");
    }

    /// A fake `/sys` under `root` with `files` (relative path, contents).
    fn fake_sys(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, contents) in files {
            let path = root.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, format!("{contents}\n")).unwrap();
        }
        root
    }

    const CPUIDLE_DRIVER: &str = "devices/system/cpu/cpuidle/current_driver";
    const HALT_POLL_NS: &str = "module/haltpoll/parameters/guest_halt_poll_ns";

    // Checks that a VM whose idle vCPUs halt without polling (haltpoll, guest_halt_poll_ns
    // 0, as on this machine's VMs) is warned about with the parameter to set, and that one
    // that polls passes with its poll time.
    #[test]
    fn cpu_idle_warns_about_a_vm_that_halts_without_polling() {
        let sys = fake_sys(&[(CPUIDLE_DRIVER, "haltpoll"), (HALT_POLL_NS, "0")]);
        let check = check_cpu_idle(sys.path());
        assert_eq!(check.level, Level::Warn, "{}", check.message);
        assert!(
            check.message.contains("guest_halt_poll_ns 0"),
            "{}",
            check.message
        );
        assert!(check.message.contains(HALT_POLL_NS), "{}", check.message);
        let sys = fake_sys(&[(CPUIDLE_DRIVER, "haltpoll"), (HALT_POLL_NS, "200000")]);
        let check = check_cpu_idle(sys.path());
        assert_eq!(check.level, Level::Pass, "{}", check.message);
        assert!(check.message.contains("200000 ns"), "{}", check.message);
    }

    // Checks that on a host with C-states the deepest enabled one over all CPUs is found
    // (a disabled deeper state and non-CPU directories ignored), that it is warned about
    // from 10 us of exit latency, and that shallow states pass.
    #[test]
    fn cpu_idle_reports_the_deepest_enabled_state() {
        let deep = [
            (CPUIDLE_DRIVER, "intel_idle"),
            ("devices/system/cpu/cpu0/cpuidle/state0/name", "POLL"),
            ("devices/system/cpu/cpu0/cpuidle/state0/latency", "0"),
            ("devices/system/cpu/cpu0/cpuidle/state1/name", "C1"),
            ("devices/system/cpu/cpu0/cpuidle/state1/latency", "2"),
            ("devices/system/cpu/cpu1/cpuidle/state2/name", "C6"),
            ("devices/system/cpu/cpu1/cpuidle/state2/latency", "133"),
            ("devices/system/cpu/cpu1/cpuidle/state2/disable", "0"),
            ("devices/system/cpu/cpu1/cpuidle/state3/name", "C10"),
            ("devices/system/cpu/cpu1/cpuidle/state3/latency", "890"),
            ("devices/system/cpu/cpu1/cpuidle/state3/disable", "1"),
            ("devices/system/cpu/cpufreq/cpuidle/state9/name", "X"),
            ("devices/system/cpu/cpufreq/cpuidle/state9/latency", "5000"),
        ];
        let sys = fake_sys(&deep);
        let check = check_cpu_idle(sys.path());
        assert_eq!(check.level, Level::Warn, "{}", check.message);
        assert!(
            check.message.contains("C6 enabled (133 us"),
            "{}",
            check.message
        );
        let shallow = &deep[..5];
        let sys = fake_sys(shallow);
        let check = check_cpu_idle(sys.path());
        assert_eq!(check.level, Level::Pass, "{}", check.message);
        assert!(check.message.contains("C1 (2 us"), "{}", check.message);
    }

    // Checks that a host without a cpuidle driver (some VMs, containers without /sys)
    // passes and says so.
    #[test]
    fn cpu_idle_passes_without_a_driver() {
        let sys = fake_sys(&[]);
        let check = check_cpu_idle(sys.path());
        assert_eq!(check.level, Level::Pass);
        assert!(
            check.message.contains("no cpuidle driver"),
            "{}",
            check.message
        );
    }
}
