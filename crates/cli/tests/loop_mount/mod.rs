//! A small ext4 file system on a loop device, for tests that need a file system of their
//! own: a full disk, an ext4 without a journal. Needs root (mount).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context};

/// A loop-mounted ext4 file system, unmounted on drop.
pub struct LoopMount {
    /// Where it is mounted: `<dir>/mnt`.
    pub mount_point: PathBuf,
}

impl LoopMount {
    /// Makes an ext4 of `size_bytes` in `<dir>/fs.img` with `mkfs.ext4 -q -F <mkfs_args>`
    /// and mounts it on `<dir>/mnt`.
    pub fn new(dir: &Path, size_bytes: u64, mkfs_args: &[&str]) -> anyhow::Result<LoopMount> {
        let image = dir.join("fs.img");
        std::fs::File::create(&image)?.set_len(size_bytes)?;
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .args(mkfs_args)
            .arg(&image)
            .output()
            .context("running mkfs.ext4 (e2fsprogs)")?;
        ensure!(
            mkfs.status.success(),
            "mkfs.ext4 failed: {}",
            String::from_utf8_lossy(&mkfs.stderr)
        );
        let mount_point = dir.join("mnt");
        std::fs::create_dir(&mount_point)?;
        let mount = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount_point)
            .output()
            .context("running mount")?;
        if !mount.status.success() {
            bail!(
                "mounting a loop device failed (this test needs root and a free /dev/loop*; \
                 run it as root, or in CI's privileged container): {}",
                String::from_utf8_lossy(&mount.stderr)
            );
        }
        Ok(LoopMount { mount_point })
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.mount_point)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .status();
        }
    }
}
