//! The directory store's file operations, in one place so that every write, fsync and
//! rename can be made to fail on purpose in the crash-safety tests.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// File operations of the directory store. In tests it can carry a fault plan that
/// fails the n-th step.
#[derive(Clone, Default)]
pub(crate) struct Disk {
    #[cfg(test)]
    pub(crate) faults: Option<std::sync::Arc<faults::FaultPlan>>,
}

/// The kind of a step, for the fault plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Create,
    Write,
    Sync,
    Rename,
    SyncDir,
    Remove,
}

impl Disk {
    fn step(&self, _step: Step) -> io::Result<()> {
        #[cfg(test)]
        if let Some(plan) = &self.faults {
            return plan.step(_step);
        }
        Ok(())
    }

    /// Creates a new file for writing; fails if it exists.
    pub(crate) fn create_new(&self, path: &Path) -> io::Result<File> {
        self.step(Step::Create)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    /// Creates or truncates a file for writing.
    pub(crate) fn create_truncate(&self, path: &Path) -> io::Result<File> {
        self.step(Step::Create)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Writes all of `buf` at `offset`. An injected fault writes half of it first, as a
    /// torn write would.
    pub(crate) fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Err(e) = self.step(Step::Write) {
            write_all_at(file, &buf[..buf.len() / 2], offset)?;
            return Err(e);
        }
        write_all_at(file, buf, offset)
    }

    /// Flushes a file's data and metadata to stable storage.
    pub(crate) fn sync(&self, file: &File) -> io::Result<()> {
        self.step(Step::Sync)?;
        file.sync_all()
    }

    /// Renames `from` to `to`, replacing `to` atomically.
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step(Step::Rename)?;
        std::fs::rename(from, to)
    }

    /// Makes a directory's entries (created, renamed, removed files) durable.
    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.step(Step::SyncDir)?;
        sync_dir(dir)
    }

    /// Removes a file.
    pub(crate) fn remove(&self, path: &Path) -> io::Result<()> {
        self.step(Step::Remove)?;
        std::fs::remove_file(path)
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows makes renames durable with the file; directories cannot be opened here.
    Ok(())
}

/// Reads exactly `buf.len()` bytes at `offset`; a short file is `UnexpectedEof`.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_write(
                file,
                &buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod faults {
    use super::Step;
    use std::io;
    use std::sync::Mutex;

    /// Fails the `fail_at`-th step (counting from 0) and every step after it, as a disk
    /// that went bad would; records the steps taken.
    #[derive(Debug)]
    pub(crate) struct FaultPlan {
        fail_at: u64,
        taken: Mutex<Vec<Step>>,
    }

    impl FaultPlan {
        pub(crate) fn failing_at(fail_at: u64) -> Self {
            FaultPlan {
                fail_at,
                taken: Mutex::new(Vec::new()),
            }
        }

        pub(crate) fn steps(&self) -> Vec<Step> {
            self.taken.lock().unwrap().clone()
        }

        pub(crate) fn step(&self, step: Step) -> io::Result<()> {
            let mut taken = self.taken.lock().unwrap();
            let n = taken.len() as u64;
            taken.push(step);
            if n >= self.fail_at {
                Err(io::Error::other(format!(
                    "injected fault at step {n} ({step:?})"
                )))
            } else {
                Ok(())
            }
        }
    }
}
