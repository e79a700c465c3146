//! The benchmark's scratch directory, removed when the run ends, also when it fails.
//!
//! Invariants: the harness only ever deletes what it owns. A directory that already holds
//! files is refused rather than used, because the run deletes everything in it at exit. A
//! directory the harness created is removed entirely; a pre-existing empty one is emptied and
//! kept. Removal happens in `finish()` (errors reported) or, on an early return, in `Drop`
//! (errors printed). With `panic = "abort"` a panic skips `Drop`; so does SIGKILL. SIGINT,
//! SIGTERM and SIGHUP remove it through `cleanup.rs`, where every prepared directory is
//! registered until it is removed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A data directory owned by this run.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    created: bool,
    cleaned: bool,
}

impl DataDir {
    /// Creates `path` (and missing parents) or adopts it if it exists and is empty.
    pub fn prepare(path: &Path) -> anyhow::Result<DataDir> {
        let created = match fs::read_dir(path) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    bail!(
                        "data directory {} is not empty; the benchmark deletes its data \
                         directory at exit, so pass --dir with a new or empty directory",
                        path.display()
                    );
                }
                false
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(path)
                    .with_context(|| format!("creating data directory {}", path.display()))?;
                true
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("opening data directory {}", path.display()));
            }
        };
        let path = fs::canonicalize(path)
            .with_context(|| format!("resolving data directory {}", path.display()))?;
        crate::cleanup::register_dir(&path, created);
        Ok(DataDir {
            path,
            created,
            cleaned: false,
        })
    }

    /// Absolute path of the directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes what the run put in the directory (and the directory, if the run created it).
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.cleaned = true;
        self.clean()
            .with_context(|| format!("removing data directory {}", self.path.display()))
    }

    fn clean(&self) -> io::Result<()> {
        crate::cleanup::unregister_dir(&self.path);
        remove_run_data(&self.path, self.created)
    }
}

/// Removes `path` if the run `created` it, else only what is in it.
pub fn remove_run_data(path: &Path, created: bool) -> io::Result<()> {
    if created {
        return fs::remove_dir_all(path);
    }
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        // `file_type` does not follow symlinks, so a link is unlinked, never descended.
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        if let Err(error) = self.clean() {
            eprintln!(
                "warning: could not remove data directory {}: {error}",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A directory the run creates disappears, whether the run finishes or returns early.
    #[test]
    fn created_directory_is_removed_on_finish_and_on_drop() {
        let scratch = tempfile::tempdir().unwrap();
        let finished = scratch.path().join("a/b");
        let data_dir = DataDir::prepare(&finished).unwrap();
        fs::write(data_dir.path().join("segment"), b"x").unwrap();
        data_dir.finish().unwrap();
        assert!(!finished.exists());

        let dropped = scratch.path().join("c");
        let data_dir = DataDir::prepare(&dropped).unwrap();
        fs::create_dir(data_dir.path().join("partition-0")).unwrap();
        drop(data_dir);
        assert!(!dropped.exists());
        assert!(scratch.path().join("a").exists(), "parents are left alone");
    }

    // A pre-existing empty directory is emptied but kept; a non-empty one is refused and
    // left untouched.
    #[test]
    fn existing_directories_are_kept_or_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let data_dir = DataDir::prepare(scratch.path()).unwrap();
        fs::create_dir(data_dir.path().join("partition-0")).unwrap();
        fs::write(data_dir.path().join("segment"), b"x").unwrap();
        data_dir.finish().unwrap();
        assert!(scratch.path().exists());
        assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0);

        fs::write(scratch.path().join("precious"), b"x").unwrap();
        let error = DataDir::prepare(scratch.path()).unwrap_err();
        assert!(error.to_string().contains("not empty"), "{error}");
        assert!(scratch.path().join("precious").exists());
    }
}
