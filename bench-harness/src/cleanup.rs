//! What a run must not leave behind when it is interrupted: the node processes it started and
//! its data directory. SIGINT, SIGTERM and SIGHUP run `on_signal` (the `ctrlc` crate's handler
//! thread), which kills every registered child by its PID, waits for it, removes every
//! registered directory and exits with status 130.
//!
//! Invariants: a PID is registered from its spawn until it has been reaped, and the reaping
//! happens under the registry's lock (`with_child_locked`), so the handler never signals a PID
//! that the kernel may already have given to another process; only PIDs of this process's own
//! children are ever registered. A directory is registered from its preparation until its
//! removal, with what removal means for it (the whole directory, or its contents).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::data_dir::remove_run_data;

/// Exit status after an interrupt (128 + SIGINT, what shells report for Ctrl-C).
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// The children and directories to clean up on a signal.
#[derive(Debug)]
struct Registry {
    child_pids: Vec<u32>,
    /// Directory, and whether the run created it (then it goes; else only its contents).
    dirs: Vec<(PathBuf, bool)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    child_pids: Vec::new(),
    dirs: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Installs the handler of SIGINT, SIGTERM and SIGHUP; once per process.
pub fn install_signal_handler() -> anyhow::Result<()> {
    ctrlc::set_handler(on_signal).context("installing the SIGINT/SIGTERM handler")
}

/// Registers a child just spawned.
pub fn register_child(pid: u32) {
    registry().child_pids.push(pid);
}

/// Runs `reap` on the child `pid` under the registry's lock, and forgets the PID if `reap`
/// says it reaped the child (killed and waited for it, or found it exited).
pub fn with_child_locked<T>(pid: u32, reap: impl FnOnce() -> (T, bool)) -> T {
    let mut registry = registry();
    let (result, reaped) = reap();
    if reaped {
        registry.child_pids.retain(|registered| *registered != pid);
    }
    result
}

/// Registers a data directory to remove on a signal (`created`: the whole directory, else
/// only what is in it).
pub fn register_dir(path: &Path, created: bool) {
    registry().dirs.push((path.to_owned(), created));
}

/// Forgets a data directory (it has been removed, or is being removed now).
pub fn unregister_dir(path: &Path) {
    registry().dirs.retain(|(registered, _)| registered != path);
}

/// The signal handler: kill and reap every child, remove every directory, exit.
fn on_signal() {
    let registry = registry();
    eprintln!(
        "\ninterrupted: killing {} node process(es) {:?} and removing {} data director{}",
        registry.child_pids.len(),
        registry.child_pids,
        registry.dirs.len(),
        if registry.dirs.len() == 1 { "y" } else { "ies" }
    );
    for pid in &registry.child_pids {
        let Ok(raw) = i32::try_from(*pid) else {
            continue;
        };
        // SIGKILL also ends a stopped (SIGSTOP) node; reaping makes sure it no longer writes
        // into the directory removed next.
        if kill(Pid::from_raw(raw), Signal::SIGKILL).is_ok() {
            let _ = waitpid(Pid::from_raw(raw), None);
        }
    }
    for (dir, created) in &registry.dirs {
        if let Err(error) = remove_run_data(dir, *created) {
            eprintln!("warning: could not remove {}: {error}", dir.display());
        } else {
            eprintln!("removed {}", dir.display());
        }
    }
    std::process::exit(INTERRUPTED_EXIT_CODE);
}
