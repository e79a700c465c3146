//! The machine a report was measured on: kernel, CPU, file system, device and source revision.
//!
//! Results are only comparable within one machine class (STYLE.md §12), so every report says
//! where it came from. The file system and device are those of the data directory: its mount
//! is the `/proc/self/mountinfo` entry with the longest mount point that contains it (the last
//! such entry when mounts are stacked), and the device is found through `/sys/dev/block`.
//!
//! Collection never fails a run: anything unreadable is reported as "unknown".

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

const UNKNOWN: &str = "unknown";

/// Where the benchmark ran. Serialised as the report's `environment` object.
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPU model name.
    pub cpu: String,
    /// CPUs this process may run on.
    pub cores: u64,
    /// Which CPUs those are, as the kernel lists them ("0-1"), or "unknown". The default
    /// mode's report says in `cluster` which of them each node and the load generator used.
    pub cpus_allowed: String,
    /// How idle CPUs wait: the cpuidle driver, and for a VM's `haltpoll` how long an idle
    /// vCPU polls before it halts ("haltpoll, guest_halt_poll_ns 0"); "none" without a
    /// driver. Every wake-up of a halted vCPU goes through the hypervisor, which the
    /// baselines' round trips include.
    pub cpu_idle: String,
    /// File system type of the data directory, e.g. "ext4".
    pub filesystem: String,
    /// Mount options of that file system: per-mount options, then superblock options.
    pub mount_options: String,
    /// Mount point containing the data directory.
    pub mount_point: String,
    /// Block device name, e.g. "vda", or the mount source when there is no block device.
    pub device: String,
    /// Device model, or a description saying that the device reports none.
    pub device_model: String,
    /// Logical block size of the device, when known.
    pub logical_block_size_bytes: Option<u64>,
    /// O_DIRECT position and length alignment of the data directory's file system
    /// (`statx` `dio_offset_align`); None if it reports no O_DIRECT support or cannot say.
    pub dio_offset_align_bytes: Option<u32>,
    /// `git rev-parse --short HEAD`, or "unknown".
    pub git_sha: String,
    /// Absolute data directory.
    pub data_dir: String,
}

impl Environment {
    /// Collects the environment of a run whose data lives in `data_dir` (which must exist).
    pub fn collect(data_dir: &Path) -> Environment {
        let mounts = fs::read_to_string("/proc/self/mountinfo")
            .map(|text| parse_mountinfo(&text))
            .unwrap_or_default();
        let mount = mount_for_path(&mounts, data_dir);
        let device = match mount {
            Some(mount) => BlockDevice::resolve(&mount.major_minor, &mount.source),
            None => BlockDevice::unknown(),
        };
        Environment {
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(unknown),
            cpu: fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|text| cpu_model(&text))
                .unwrap_or_else(unknown),
            cores: std::thread::available_parallelism().map_or(0, |cores| cores.get() as u64),
            cpus_allowed: fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|status| cpus_allowed_list(&status))
                .unwrap_or_else(unknown),
            cpu_idle: cpu_idle(Path::new("/sys")),
            filesystem: mount.map_or_else(unknown, |mount| mount.filesystem.clone()),
            mount_options: mount.map_or_else(unknown, MountEntry::options),
            mount_point: mount.map_or_else(unknown, |mount| display(&mount.mount_point)),
            device: device.name,
            device_model: device.model,
            logical_block_size_bytes: device.logical_block_size_bytes,
            dio_offset_align_bytes: ringlog_uring::dio_alignment(data_dir)
                .ok()
                .flatten()
                .map(|align| align.offset_align_bytes),
            git_sha: git_sha(),
            data_dir: display(data_dir),
        }
    }
}

fn unknown() -> String {
    UNKNOWN.to_owned()
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The CPU's model from `/proc/cpuinfo` text ("model name" on x86, "Model"/"Hardware" on
/// some ARM kernels).
fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware", "cpu model"]
        .iter()
        .find_map(|wanted| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == *wanted && !value.trim().is_empty()).then(|| value.trim())
            })
        })
        .map(str::to_owned)
}

/// The cpuidle driver under `sys` (`/sys` outside tests), with `haltpoll`'s poll time.
fn cpu_idle(sys: &Path) -> String {
    let Some(driver) = read_trimmed(sys.join("devices/system/cpu/cpuidle/current_driver")) else {
        return "none".to_owned();
    };
    if driver != "haltpoll" {
        return driver;
    }
    let poll = read_trimmed(sys.join("module/haltpoll/parameters/guest_halt_poll_ns"))
        .unwrap_or_else(unknown);
    format!("haltpoll, guest_halt_poll_ns {poll}")
}

/// The `Cpus_allowed_list` of a `/proc/<pid>/status` text.
fn cpus_allowed_list(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
        .filter(|list| !list.is_empty())
}

fn git_sha() -> String {
    let run_in = |dir: &Path| -> Option<String> {
        let output = Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let sha = String::from_utf8(output.stdout).ok()?;
        let sha = sha.trim();
        (output.status.success() && !sha.is_empty()).then(|| sha.to_owned())
    };
    // The current directory first (the checkout being measured); failing that, the source
    // tree this binary was built from, if it is still there.
    std::env::current_dir()
        .ok()
        .and_then(|dir| run_in(&dir))
        .or_else(|| run_in(Path::new(env!("CARGO_MANIFEST_DIR"))))
        .unwrap_or_else(unknown)
}

/// One line of `/proc/self/mountinfo` (see proc_pid_mountinfo(5)).
#[derive(Clone, Debug, PartialEq, Eq)]
struct MountEntry {
    major_minor: String,
    mount_point: PathBuf,
    mount_options: String,
    filesystem: String,
    source: String,
    super_options: String,
}

impl MountEntry {
    /// Per-mount options followed by the superblock options not already listed, which is
    /// what `/proc/mounts` shows.
    fn options(&self) -> String {
        let mut options: Vec<&str> = self.mount_options.split(',').collect();
        for option in self.super_options.split(',') {
            if !option.is_empty() && !options.contains(&option) {
                options.push(option);
            }
        }
        options.join(",")
    }
}

fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

/// `id parent major:minor root mount_point options [optional...] - fstype source super`
fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let fields: Vec<&str> = line.split(' ').collect();
    let separator = fields.iter().position(|field| *field == "-")?;
    if separator < 6 || fields.len() < separator + 4 {
        return None;
    }
    Some(MountEntry {
        major_minor: fields[2].to_owned(),
        mount_point: PathBuf::from(unescape_octal(fields[4])),
        mount_options: fields[5].to_owned(),
        filesystem: fields[separator + 1].to_owned(),
        source: unescape_octal(fields[separator + 2]),
        super_options: fields[separator + 3].to_owned(),
    })
}

/// Undoes the kernel's `\ooo` escaping of space, tab, newline and backslash in mountinfo.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut unescaped = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let digits = bytes.get(index + 1..index + 4);
        let octal =
            digits.filter(|digits| digits.iter().all(|digit| (b'0'..=b'7').contains(digit)));
        match (bytes[index], octal) {
            (b'\\', Some(digits)) => {
                let value = digits
                    .iter()
                    .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                unescaped.push(u8::try_from(value).unwrap_or(b'?'));
                index += 4;
            }
            (byte, _) => {
                unescaped.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&unescaped).into_owned()
}

/// The mount holding `path`: the longest mount point that is a path prefix of it
/// (component-wise, so `/data` does not contain `/database`), the last one if stacked.
fn mount_for_path<'m>(mounts: &'m [MountEntry], path: &Path) -> Option<&'m MountEntry> {
    let mut best: Option<&MountEntry> = None;
    for mount in mounts
        .iter()
        .filter(|mount| path.starts_with(&mount.mount_point))
    {
        let depth = mount.mount_point.components().count();
        if best.is_none_or(|best| depth >= best.mount_point.components().count()) {
            best = Some(mount);
        }
    }
    best
}

/// A block device as sysfs describes it.
#[derive(Debug)]
struct BlockDevice {
    name: String,
    model: String,
    logical_block_size_bytes: Option<u64>,
}

impl BlockDevice {
    fn unknown() -> BlockDevice {
        BlockDevice {
            name: unknown(),
            model: unknown(),
            logical_block_size_bytes: None,
        }
    }

    /// Resolves `major:minor` through `/sys/dev/block`, going from a partition to its disk,
    /// which is where `device/model` and `queue/` live.
    fn resolve(major_minor: &str, source: &str) -> BlockDevice {
        let Ok(mut disk) = fs::canonicalize(Path::new("/sys/dev/block").join(major_minor)) else {
            return BlockDevice {
                name: source.to_owned(),
                model: format!("{source} (no block device)"),
                logical_block_size_bytes: None,
            };
        };
        if disk.join("partition").exists() {
            disk.pop();
        }
        let name = disk
            .file_name()
            .map_or_else(unknown, |name| name.to_string_lossy().into_owned());
        let driver = fs::read_link(disk.join("device/driver"))
            .ok()
            .and_then(|driver| {
                driver
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            });
        let model = match (read_trimmed(disk.join("device/model")), driver) {
            (Some(model), _) => model,
            (None, Some(driver)) => format!("{name} ({driver}, no model)"),
            (None, None) => format!("{name} (no model)"),
        };
        let logical_block_size_bytes =
            read_trimmed(disk.join("queue/logical_block_size")).and_then(|size| size.parse().ok());
        BlockDevice {
            name,
            model,
            logical_block_size_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict
40 27 259:2 / /data rw,noatime shared:7 - xfs /dev/nvme0n1p2 rw,attr2,inode64
41 40 0:40 / /data/ram\\040disk rw,nosuid master:3 - tmpfs tmpfs rw,size=1024k
42 27 259:3 / /data rw,noatime - ext4 /dev/nvme0n1p3 rw
";

    // Parses a mountinfo with optional fields and an escaped space, then checks that the
    // longest component-wise prefix wins, that stacked mounts resolve to the top one, and
    // that a sibling with a common string prefix (/database) is not mistaken for /data.
    #[test]
    fn resolves_the_mount_of_a_path() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 5);
        assert_eq!(mounts[3].mount_point, PathBuf::from("/data/ram disk"));
        assert_eq!(mounts[2].filesystem, "xfs");
        assert_eq!(mounts[2].major_minor, "259:2");

        let mount_of = |path: &str| mount_for_path(&mounts, Path::new(path)).unwrap();
        assert_eq!(mount_of("/data/ram disk/x").filesystem, "tmpfs");
        assert_eq!(mount_of("/data/wal").source, "/dev/nvme0n1p3");
        assert_eq!(mount_of("/database").source, "/dev/vda");
        assert_eq!(mount_of("/").filesystem, "ext4");
        assert!(mount_for_path(&mounts, Path::new("relative")).is_none());
    }

    #[test]
    fn merges_mount_and_superblock_options() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts[1].options(), "rw,relatime,discard,resv_strict");
        assert_eq!(mounts[2].options(), "rw,noatime,attr2,inode64");
    }

    #[test]
    fn rejects_malformed_lines_and_unescapes() {
        assert!(parse_mountinfo_line("1 2 3:4 / /x rw").is_none());
        assert!(parse_mountinfo_line("1 2 3:4 / - ext4 /dev/x rw").is_none());
        assert_eq!(unescape_octal(r"a\040b\011c\134d"), "a b\tc\\d");
        assert_eq!(unescape_octal(r"trailing\04"), r"trailing\04");
        assert_eq!(unescape_octal(r"not\999octal"), r"not\999octal");
    }

    #[test]
    fn finds_the_cpu_model() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(x86).as_deref(), Some("AMD EPYC 7B13"));
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\n\nModel\t\t: Raspberry Pi 4\n";
        assert_eq!(cpu_model(arm).as_deref(), Some("Raspberry Pi 4"));
        assert_eq!(cpu_model("processor\t: 0\n"), None);
    }

    // Checks that the cpuidle driver is named, with the poll time for haltpoll, and that a
    // host without a driver says "none".
    #[test]
    fn names_the_cpu_idle_driver() {
        let sys = tempfile::tempdir().unwrap();
        assert_eq!(cpu_idle(sys.path()), "none");
        let cpuidle = sys.path().join("devices/system/cpu/cpuidle");
        fs::create_dir_all(&cpuidle).unwrap();
        fs::write(cpuidle.join("current_driver"), "intel_idle\n").unwrap();
        assert_eq!(cpu_idle(sys.path()), "intel_idle");
        fs::write(cpuidle.join("current_driver"), "haltpoll\n").unwrap();
        assert_eq!(cpu_idle(sys.path()), "haltpoll, guest_halt_poll_ns unknown");
        let parameters = sys.path().join("module/haltpoll/parameters");
        fs::create_dir_all(&parameters).unwrap();
        fs::write(parameters.join("guest_halt_poll_ns"), "0\n").unwrap();
        assert_eq!(cpu_idle(sys.path()), "haltpoll, guest_halt_poll_ns 0");
    }

    // Runs against this machine: the root directory always has a mount and a kernel.
    #[test]
    fn collects_this_machine() {
        let environment = Environment::collect(Path::new("/"));
        assert_ne!(environment.kernel, UNKNOWN);
        assert_ne!(environment.filesystem, UNKNOWN);
        assert!(environment.cores >= 1);
        assert_ne!(environment.cpus_allowed, UNKNOWN);
        let status = "Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n";
        assert_eq!(cpus_allowed_list(status).as_deref(), Some("0-1"));
        assert_eq!(cpus_allowed_list("Cpus_allowed_list:\t\n"), None);
    }
}
