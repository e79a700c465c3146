//! The trash of deleted topics: `<data_dir>/deleted/<topic_id>/`, holding the partition
//! directories of a topic being deleted.
//!
//! A deletion moves every partition directory of the topic into the trash (rename, then
//! fsync of the data directory and of the trash directory), then removes the topic from the
//! registry (the commit point), then removes the trash. A trash directory is therefore the
//! durable record of a deletion in progress: at start, one whose topic id is still in the
//! registry is a deletion that a crash interrupted before its commit point, and it is
//! finished (the rest of the partitions moved, the topic removed from the registry); one
//! whose topic id is not is only waiting to be removed. Either way the topic never comes back
//! half deleted, and a topic created again under the same name never finds the old logs.
//!
//! Invariants: nothing is removed before the registry no longer lists its topic; every
//! rename is made durable (fsync of both directories) before the registry is written.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Name of the trash directory inside the data directory.
pub const DIR_NAME: &str = "deleted";

/// The trash directory of the topic with id `topic_id` (32 hex digits).
pub fn topic_dir(data_dir: &Path, topic_id: &str) -> PathBuf {
    data_dir.join(DIR_NAME).join(topic_id)
}

/// Moves the partition directories `names` (those that exist) of a topic into its trash
/// directory, durably: creates the trash directories as needed, renames, then fsyncs the
/// data directory and the topic's trash directory.
pub fn move_partitions(data_dir: &Path, topic_id: &str, names: &[String]) -> io::Result<()> {
    let trash = data_dir.join(DIR_NAME);
    let target = topic_dir(data_dir, topic_id);
    if !target.exists() {
        fs::create_dir_all(&target)?;
        fsync_dir(&trash)?;
        fsync_dir(data_dir)?;
    }
    for name in names {
        let source = data_dir.join(name);
        if source.exists() {
            fs::rename(&source, target.join(name))?;
        }
    }
    fsync_dir(data_dir)?;
    fsync_dir(&target)
}

/// Removes a topic's trash directory with everything in it, and makes that durable.
pub fn remove(data_dir: &Path, topic_id: &str) -> io::Result<()> {
    let target = topic_dir(data_dir, topic_id);
    match fs::remove_dir_all(&target) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    }
    fsync_dir(&data_dir.join(DIR_NAME))
}

/// The topic ids of the deletions found in the trash (in progress or not yet removed).
pub fn pending(data_dir: &Path) -> io::Result<Vec<String>> {
    let trash = data_dir.join(DIR_NAME);
    let entries = match fs::read_dir(&trash) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str() {
            ids.push(name.to_string());
        }
    }
    ids.sort();
    Ok(ids)
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Moving makes the directories leave the data directory for the topic's trash; removing
    // empties the trash; `pending` lists what is there in between.
    #[test]
    fn move_list_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path();
        fs::create_dir(data.join("t-0")).expect("mkdir");
        fs::write(data.join("t-0").join("x.log"), b"x").expect("write");
        let names = vec!["t-0".to_string(), "t-1".to_string()];
        move_partitions(data, "abc", &names).expect("move");
        assert!(!data.join("t-0").exists());
        assert!(topic_dir(data, "abc").join("t-0").join("x.log").exists());
        assert_eq!(pending(data).expect("list"), vec!["abc".to_string()]);
        remove(data, "abc").expect("remove");
        assert!(pending(data).expect("list").is_empty());
        remove(data, "abc").expect("removing twice is fine");
    }
}
